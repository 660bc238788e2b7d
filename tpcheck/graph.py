"""Graph: the traced ops as a networkx DiGraph whose shapes are written in the width ``n``.

Nodes are keyed by the exported node name and kept in graph order, so every analysis that
walks the graph is deterministic. An edge ``u -> v`` carries ``positions``: where ``v``
reads ``u`` (``"1"`` for the second positional argument, ``"1.0"`` for the first item of a
list argument, ``"scale"`` for a keyword).
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import sympy

from tpcheck.capture import OpNode
from tpcheck.widths import Shapes


@dataclass(frozen=True)
class OpGraph:
    """The op graph of one model, with symbolic shapes."""

    shapes: Shapes
    digraph: nx.DiGraph
    param_nodes: dict[str, str]  # parameter qualified name -> placeholder node name

    def node(self, name: str) -> OpNode:
        return self.digraph.nodes[name]["op"]

    def shape(self, name: str) -> tuple[sympy.Expr | None, ...] | None:
        return self.shapes.node_shapes.get(name)

    def users(self, name: str) -> list[tuple[str, list[str]]]:
        """Consumers of ``name`` in graph order, with the argument positions they read it at."""
        edges = self.digraph.edges
        return [(v, edges[name, v]["positions"]) for v in self.digraph.successors(name)]

    def producers(self, name: str) -> list[str]:
        return list(self.digraph.predecessors(name))

    def at_width(self, name: str, width: int) -> OpNode:
        """The same node in the trace at another width (for constants that vary with n)."""
        return self.shapes.capture.traces[width].nodes[self._index[name]]

    @property
    def _index(self) -> dict[str, int]:
        return self.digraph.graph["index"]


def build(shapes: Shapes) -> OpGraph:
    """Build the op graph of ``shapes``."""
    g = nx.DiGraph()
    g.graph["index"] = {}
    param_nodes: dict[str, str] = {}
    for i, node in enumerate(shapes.nodes):
        g.add_node(node.name, op=node)
        g.graph["index"][node.name] = i
        if node.kind == "param":
            param_nodes[node.target] = node.name
        for pos, ref in node.refs():
            if g.has_edge(ref.name, node.name):
                g.edges[ref.name, node.name]["positions"].append(pos)
            else:
                g.add_edge(ref.name, node.name, positions=[pos])
    return OpGraph(shapes=shapes, digraph=g, param_nodes=param_nodes)
