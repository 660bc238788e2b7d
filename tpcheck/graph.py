"""Graph: the traced ops as a networkx DiGraph whose shapes are written in the width ``n``,
and the vocabulary every later stage reads it with (op names, op families, constants).

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

#: Ops that only move, view, cast, select or combine values: a parameter seen through
#: them is still the same parameter for classification.
SEE_THROUGH = {
    "view", "_unsafe_view", "reshape", "unsqueeze", "squeeze", "expand", "expand_as", "to",
    "_to_copy", "type_as", "clone", "contiguous", "detach", "alias", "flatten", "unflatten",
    "t", "transpose", "permute", "slice", "select", "chunk", "split", "split_with_sizes",
    "unbind", "getitem", "cat", "concat", "stack", "repeat", "movedim", "lift_fresh_copy",
    "dropout", "narrow", "index_select", "repeat_interleave", "_assert_tensor_metadata",
}
#: Ops through which a parameter passes when the other operand is a constant (a multiplier).
CONSTANT_ARITH = {"mul", "div", "add", "sub", "rsub", "true_divide"}

MATMUL = {"mm", "matmul", "bmm"}
MATMUL_WITH_BIAS = {"addmm", "baddbmm", "addbmm"}
CONV = {"conv1d", "conv2d", "conv3d", "convolution", "_convolution", "conv_transpose1d",
        "conv_transpose2d", "conv_transpose3d"}
EMBEDDING = {"embedding", "embedding_bag", "_embedding_bag"}
SOFTMAX = {"softmax", "_softmax", "_safe_softmax"}


def op_name(target: str) -> str:
    """``aten.linear.default`` -> ``linear``; non-ATen targets (``getitem``) unchanged."""
    parts = target.split(".")
    return parts[1] if len(parts) == 3 else parts[-1]


#: Normalisations over the last dims: their output has size Θ(1) whatever the input's.
NORMS = {"layer_norm", "native_layer_norm", "rms_norm", "group_norm", "native_group_norm",
         "batch_norm", "_native_batch_norm_legit_no_training", "instance_norm"}


def is_bias(node: OpNode, pos: str) -> bool:
    """Whether argument ``pos`` of ``node`` is the additive bias of a linear, conv or addmm."""
    op = op_name(node.target)
    return (pos == "2" and op in ("linear", "conv1d", "conv2d", "conv3d", "convolution")) or (
        pos == "0" and op in ("addmm", "baddbmm", "addbmm"))


def constant_factor(node: OpNode) -> float | None:
    """The factor ``node`` applies when it is ``x * c`` or ``x / c`` with a Python number c.

    The one reader of numeric constants: forward multipliers (measure), their width
    exponents (propagate) and attention logit scales (here) all go through it.
    """
    op = op_name(node.target)
    if node.kind != "call" or op not in ("mul", "div", "true_divide") or len(node.args) != 2:
        return None
    numbers = [a for a in node.args if isinstance(a, (int, float)) and not isinstance(a, bool)]
    if len(numbers) != 1:
        return None
    if op == "mul":
        return float(numbers[0])
    if isinstance(node.args[1], (int, float)) and numbers[0] != 0:
        return 1.0 / float(numbers[0])
    return None

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
