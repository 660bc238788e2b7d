"""Classify: the μP role of every parameter, decided by how the graph consumes it.

Shape alone misleads (an ``nn.Embedding`` stores (V, n); ``scale_shift_table`` is (6, n) but
is added elementwise), so we follow each parameter forward through views, casts, slices,
``cat``, constant multipliers and other shape plumbing to the op that *uses* it:

* a contraction (linear, conv, embedding, matmul, einsum) gives ``fan_in`` = the contracted
  size and ``fan_out`` = the produced size; whether each grows with ``n`` picks the role
  (docs/theory.md §2): (0,1) input, (1,1) hidden, (1,0) output, (0,0) scalar;
* an elementwise use (bias, norm gain, modulation table, positional embedding) is
  ``vector`` if the tensor has a dimension that grows with ``n``, else ``scalar``.

Weightless contractions (attention ``q·kᵀ``, ``attention·v``, SDPA) are recorded with their
contracted dim and, for attention, the head dim and the logit scale at every width.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import sympy

from tpcheck.capture import OpNode, Ref
from tpcheck.graph import (
    CONSTANT_ARITH,
    CONV,
    EMBEDDING,
    MATMUL,
    MATMUL_WITH_BIAS,
    SEE_THROUGH,
    SOFTMAX,
    OpGraph,
    constant_factor,
    op_name,
)
from tpcheck.symbols import n
from tpcheck.widths import SymShape, is_infinite

ROLES = ("input", "hidden", "output", "vector", "scalar")
UNUSED = "unused"

@dataclass(frozen=True)
class Use:
    """One place where the graph consumes a parameter."""

    tensor: str
    node: str
    op: str
    kind: str  # "contraction" or "elementwise"
    role: str
    fan_in: sympy.Expr
    fan_out: sympy.Expr
    via: tuple[str, ...] = ()  # see-through nodes between the parameter and this use
    operand: str = ""  # the node the use reads (the parameter or the last see-through node)
    pos: str = ""  # the argument position it is read at
    module: str = ""
    source: str | None = None
    #: A fan-in that concatenates blocks (``cat([h, pooled])``: ``(n, 32)``), in order along
    #: the contracted dim; empty when the input is one block.
    fan_in_blocks: tuple[sympy.Expr, ...] = ()
    #: How many outputs each input element feeds, when not ``fan_out``: a grouped convolution's
    #: ``out_channels / groups`` (1 for Sana's depthwise conv, whose fan-out is the width but
    #: whose channels never mix). The backward sums over these, not over ``fan_out``.
    fan_out_per_input: sympy.Expr | None = None


@dataclass(frozen=True)
class TensorClass:
    """The role of one parameter and the facts it was derived from."""

    name: str
    shape: SymShape
    role: str
    fan_in: sympy.Expr
    fan_out: sympy.Expr
    trainable: bool
    uses: tuple[Use, ...] = ()
    aliases: tuple[str, ...] = ()
    defined_at: str | None = None  # file:line of the assignment creating it (or its module)
    rounded: tuple[int, ...] = ()  # axes affine in n only up to rounding (≈ 8n/3)

    @property
    def roles(self) -> tuple[str, ...]:
        """Every distinct role among the uses (more than one: tied or shared weights)."""
        return tuple(dict.fromkeys(u.role for u in self.uses))

    @property
    def module(self) -> str:
        return self.name.rpartition(".")[0]


@dataclass(frozen=True)
class WeightlessContraction:
    """A contraction of two activations (no parameter), e.g. ``q·kᵀ`` or ``attn·v``."""

    node: str
    op: str
    contracted: sympy.Expr | None
    module: str = ""
    source: str | None = None


@dataclass(frozen=True)
class Attention:
    """An attention-logit computation: head dim in ``n`` and the logit scale at each width.

    ``scales[w]`` is the factor multiplying ``q·kᵀ`` at width ``w``: the product of every
    constant on the way from q and k to the logits (SDPA's ``scale`` — PyTorch's default
    ``1/√head_dim`` without one — a pre-scaled q or k, a projection's output multiplier, a
    constant on the logits), each counted once.
    """

    node: str
    op: str  # "scaled_dot_product_attention" or "matmul"
    head_dim: sympy.Expr | None
    scales: dict[int, float]
    explicit_scale: bool
    module: str = ""
    source: str | None = None
    #: Graph nodes whose constants are part of ``scales`` (``q * d**-0.5`` before the op,
    #: ``logits / d`` after it): counted here, never as a projection's forward multiplier.
    scale_nodes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Classification:
    """Roles of every parameter, plus the weightless contractions and attention ops."""

    graph: OpGraph
    tensors: dict[str, TensorClass]
    contractions: tuple[WeightlessContraction, ...] = field(default=())
    attention: tuple[Attention, ...] = field(default=())

    @property
    def attention_scale_nodes(self) -> frozenset[str]:
        """Constants that belong to an attention logit scale, not to a weight's multiplier."""
        return frozenset(n for a in self.attention for n in a.scale_nodes)


def classify(graph: OpGraph) -> Classification:
    """Classify every parameter of ``graph`` (docs/theory.md §2)."""
    capture = graph.shapes.capture
    params = capture.traces[capture.widths[0]].params
    tensors: dict[str, TensorClass] = {}
    for name, info in params.items():
        shape = graph.shapes.param_shapes[name]
        node = graph.param_nodes.get(name)
        uses = tuple(_uses(graph, name, node, shape)) if node else ()
        if uses:
            first = uses[0]
            role, fan_in, fan_out = first.role, first.fan_in, first.fan_out
        else:
            role, fan_in, fan_out = UNUSED, sympy.Integer(1), sympy.Integer(1)
        rounded = tuple(axis for axis in range(len(shape))
                        if (name, axis) in graph.shapes.rounded)
        tensors[name] = TensorClass(name=name, shape=shape, role=role, fan_in=fan_in,
                                    fan_out=fan_out, trainable=info.requires_grad, uses=uses,
                                    aliases=info.aliases, defined_at=info.defined_at,
                                    rounded=rounded)
    param_uses = {u.node for t in tensors.values() for u in t.uses}
    return Classification(graph=graph, tensors=tensors,
                          contractions=tuple(_weightless(graph, param_uses)),
                          attention=tuple(_attention(graph)))


def contraction_role(fan_in: sympy.Expr, fan_out: sympy.Expr) -> str:
    """The role of a weight by whether its fan-in and fan-out grow with ``n``."""
    return {
        (False, True): "input",
        (True, True): "hidden",
        (True, False): "output",
        (False, False): "scalar",
    }[(is_infinite(fan_in), is_infinite(fan_out))]


def elementwise_use(shape: SymShape) -> tuple[str, sympy.Expr, sympy.Expr]:
    """Role and fans of a tensor used elementwise: vector if it spans a width dim."""
    wide = [d for d in shape if is_infinite(d)]
    fan_out = sympy.Mul(*wide) if wide else sympy.Integer(1)
    return ("vector" if wide else "scalar"), sympy.Integer(1), fan_out


# --- following a parameter to its uses -------------------------------------------------


def _uses(graph: OpGraph, tensor: str, start: str, own_shape: SymShape) -> list[Use]:
    uses: list[Use] = []
    seen: set[str] = set()
    stack: list[tuple[str, tuple[str, ...]]] = [(start, ())]
    while stack:
        current, via = stack.pop(0)
        for consumer, positions in graph.users(current):
            node = graph.node(consumer)
            if node.kind != "call":
                continue
            for pos in positions:
                found = _use_at(graph, tensor, node, pos, current, own_shape, via)
                if found is not None:
                    uses.append(found)
                elif consumer not in seen:
                    seen.add(consumer)
                    stack.append((consumer, (*via, consumer)))
    return uses


def _use_at(graph: OpGraph, tensor: str, node: OpNode, pos: str, operand: str,
            own_shape: SymShape, via: tuple[str, ...]) -> Use | None:
    """The use of ``operand`` at ``node``'s argument ``pos``, or None to see through."""
    op = op_name(node.target)
    fans = _contraction_fans(node, op, pos, graph.shape(operand))
    if fans is not None:
        fan_in, fan_out = fans
        return Use(tensor, node.name, op, "contraction", contraction_role(fan_in, fan_out),
                   fan_in, fan_out, via, operand, pos, node.module, node.source,
                   _concatenated(graph, node, op, fan_in),
                   _grouped_fan_out(graph, node, op, graph.shape(operand)))
    if op in SEE_THROUGH or _passes_through(graph, node, op, operand):
        return None
    role, fan_in, fan_out = elementwise_use(own_shape)
    return Use(tensor, node.name, op, "elementwise", role, fan_in, fan_out, via, operand, pos,
               node.module, node.source)


def _concatenated(graph: OpGraph, node: OpNode, op: str, fan_in: sympy.Expr
                  ) -> tuple[sympy.Expr, ...]:
    """The blocks of a mixed fan-in (a width block beside a fixed block), when the input of a
    linear is a ``cat`` along its last dim or a conv's along its channels."""
    fixed = sympy.expand(fan_in).subs(n, 0)
    if not is_infinite(fan_in) or fixed == 0 or op not in ({"linear"} | CONV):
        return ()
    x = node.args[0] if node.args else None
    for _ in range(8):
        if not isinstance(x, Ref):
            return ()
        producer = graph.node(x.name)
        pop = op_name(producer.target)
        if pop in ("cat", "concat"):
            parts = producer.args[0] if producer.args else ()
            dim = producer.args[1] if len(producer.args) > 1 else producer.kwargs.get("dim", 0)
            shape = graph.shape(x.name)
            axis = -1 if op == "linear" else 1
            if not shape or not isinstance(dim, int) or dim % len(shape) != axis % len(shape):
                return ()
            blocks = tuple(graph.shape(p.name)[axis] if isinstance(p, Ref) and graph.shape(
                p.name) else None for p in parts)
            return () if any(b is None for b in blocks) else blocks
        if pop not in ("to", "_to_copy", "contiguous", "clone", "float", "type_as"):
            return ()
        x = producer.args[0] if producer.args else None
    return ()


def _passes_through(graph: OpGraph, node: OpNode, op: str, operand: str) -> bool:
    """Unary ops and arithmetic with constants keep the parameter's identity (a multiplier).

    Only when the parameter's path is the one tensor there: a 0-d parameter times an
    activation (``out * self.temperature``) is that parameter's use, not a constant on it.
    """
    tensor_refs = [r for _, r in node.refs() if _is_tensor(graph, r)]
    if any(r.name != operand for r in tensor_refs) or len(tensor_refs) > 1:
        return False
    return op in CONSTANT_ARITH or op not in SOFTMAX


def _is_tensor(graph: OpGraph, ref: Ref) -> bool:
    """A referenced node that is a non-scalar tensor (0-d constants count as scalars)."""
    shape = graph.node(ref.name).shape
    return shape is not None and len(shape) > 0


def _grouped_fan_out(graph: OpGraph, node: OpNode, op: str,
                     weight: tuple[sympy.Expr | None, ...] | None) -> sympy.Expr | None:
    """``out_channels / groups`` of a grouped (not transposed) convolution, from the weight's
    ``(out, in / groups, *kernel)`` and the input's channels; None for any other contraction
    or a convolution with one group."""
    if op not in CONV or op.startswith("conv_transpose") or not weight or len(weight) < 2:
        return None
    x = node.args[0] if node.args else None
    x_shape = graph.shape(x.name) if isinstance(x, Ref) else None
    if not x_shape or len(x_shape) < 2 or None in (weight[0], weight[1], x_shape[1]):
        return None
    per_input = sympy.simplify(weight[0] * weight[1] / x_shape[1])
    return None if sympy.simplify(per_input - weight[0]) == 0 else per_input


def _contraction_fans(node: OpNode, op: str, pos: str,
                      operand: tuple[sympy.Expr | None, ...] | None
                      ) -> tuple[sympy.Expr, sympy.Expr] | None:
    """``(fan_in, fan_out)`` if the operand at ``pos`` is a contraction's weight."""
    if operand is None or any(d is None for d in operand):
        return None
    shape = [d for d in operand if d is not None]
    one = sympy.Integer(1)
    if op == "linear" and pos == "1":
        return shape[-1], (shape[0] if len(shape) == 2 else one)
    if op in CONV and pos == "1":
        kernel = sympy.Mul(*shape[2:]) if len(shape) > 2 else one
        transposed = op.startswith("conv_transpose") or (
            op in ("convolution", "_convolution") and len(node.args) > 6 and node.args[6])
        if transposed:
            groups = node.args[6] if op.startswith("conv_transpose") and len(node.args) > 6 else 1
            groups = groups if isinstance(groups, int) else 1
            return shape[0] * kernel, shape[1] * groups
        return shape[1] * kernel, shape[0]
    if op in EMBEDDING and pos == "0":
        return one, shape[-1]
    matmul_pos = {"0": "left", "1": "right"} if op in MATMUL else (
        {"1": "left", "2": "right"} if op in MATMUL_WITH_BIAS else {})
    side = matmul_pos.get(pos)
    if side == "left":
        return shape[-1], (shape[-2] if len(shape) >= 2 else one)
    if side == "right":
        return (shape[-2] if len(shape) >= 2 else shape[0]), (
            shape[-1] if len(shape) >= 2 else one)
    if op == "einsum" and pos.startswith("1."):
        return _einsum_fans(node, int(pos.split(".")[1]), shape)
    return None


def _einsum_fans(node: OpNode, index: int, shape: list[sympy.Expr]
                 ) -> tuple[sympy.Expr, sympy.Expr] | None:
    equation = str(node.args[0]).replace(" ", "")
    lhs, _, out = equation.partition("->")
    inputs = lhs.split(",")
    if not out and "->" not in equation:
        letters = re.sub(r"[^a-zA-Z]", "", lhs)
        out = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    if index >= len(inputs):
        return None
    mine = inputs[index]
    others = "".join(s for i, s in enumerate(inputs) if i != index)
    dims = _einsum_dims(mine, shape)
    fan_in = sympy.Mul(*[d for c, d in dims.items() if c not in out])
    fan_out = sympy.Mul(*[d for c, d in dims.items() if c in out and c not in others])
    return sympy.sympify(fan_in), sympy.sympify(fan_out)


def _einsum_dims(spec: str, shape: list[sympy.Expr]) -> dict[str, sympy.Expr]:
    head, dots, tail = spec.partition("...")
    if not dots:
        return dict(zip(head, shape, strict=False))
    dims = dict(zip(head, shape[: len(head)], strict=False))
    if tail:
        dims.update(zip(tail, shape[-len(tail):], strict=False))
    return dims


# --- weightless contractions and attention --------------------------------------------


def _weightless(graph: OpGraph, param_uses: set[str]) -> list[WeightlessContraction]:
    found = []
    for node in graph.shapes.nodes:
        op = op_name(node.target)
        if node.kind != "call" or node.name in param_uses:
            continue
        if op in MATMUL or op in MATMUL_WITH_BIAS or op == "scaled_dot_product_attention":
            left = next((r for p, r in node.refs() if p == ("1" if op in MATMUL_WITH_BIAS
                                                              else "0")), None)
            lshape = graph.shape(left.name) if left else None
            contracted = lshape[-1] if lshape else None
            found.append(WeightlessContraction(node.name, op, contracted, node.module,
                                               node.source))
    return found


def _attention(graph: OpGraph) -> list[Attention]:
    found = []
    widths = graph.shapes.widths
    for node in graph.shapes.nodes:
        if node.kind != "call":
            continue
        op = op_name(node.target)
        if op == "scaled_dot_product_attention":
            q, k = node.args[0], node.args[1]
            qshape = graph.shape(q.name) if isinstance(q, Ref) else None
            head_dim = qshape[-1] if qshape else None
            scales: dict[int, float] = {}
            explicit = node.kwargs.get("scale") is not None
            for w in widths:
                at = graph.at_width(node.name, w)
                s = at.kwargs.get("scale")
                if s is None:
                    qw = graph.shapes.capture.traces[w].nodes[
                        graph.digraph.graph["index"][q.name]].shape if isinstance(q, Ref) else None
                    s = 1.0 / math.sqrt(qw[-1]) if qw else float("nan")
                scales[w] = float(s)
            nodes = _prescaled(graph, q) + _prescaled(graph, k)
            found.append(Attention(node.name, op, head_dim, _times(graph, scales, nodes),
                                   explicit or bool(nodes), node.module, node.source,
                                   tuple(nodes)))
        elif op in MATMUL:
            logits = _matmul_attention(graph, node)
            if logits is not None:
                found.append(logits)
    return found


def _matmul_attention(graph: OpGraph, node: OpNode) -> Attention | None:
    """``q @ kᵀ`` followed (through constant scaling or masking) by a softmax."""
    widths = graph.shapes.widths
    after: list[str] = []
    current = node.name
    for _ in range(6):
        users = graph.users(current)
        if len(users) != 1:
            return None
        consumer, _ = users[0]
        cnode = graph.node(consumer)
        op = op_name(cnode.target)
        if op in SOFTMAX:
            break
        if constant_factor(cnode) is not None:
            after.append(consumer)
        elif op not in ("add", "sub", "masked_fill", "to", "_to_copy", "where", "float",
                        "type_as"):
            return None
        current = consumer
    else:
        return None
    nodes = after + [n for arg in node.args[:2] for n in _prescaled(graph, arg)]
    left = node.args[0]
    lshape = graph.shape(left.name) if isinstance(left, Ref) else None
    head_dim = lshape[-1] if lshape else None
    scales = _times(graph, {w: 1.0 for w in widths}, nodes)
    return Attention(node.name, "matmul", head_dim, scales, True, node.module, node.source,
                     tuple(nodes))


#: Ops between a projection and the attention logits that move values without changing them.
_REARRANGE = {"transpose", "permute", "t", "view", "reshape", "contiguous", "clone", "expand",
              "_unsafe_view", "unsqueeze", "squeeze", "flatten", "unflatten", "movedim",
              "getitem", "chunk", "split", "split_with_sizes", "unbind", "to", "_to_copy",
              "float", "type_as", "alias", "select", "slice", "narrow"}


def _prescaled(graph: OpGraph, arg: object) -> list[str]:
    """The constant multipliers between q (or k) and the projection or norm that made it.

    They scale the logits only: q and k feed nothing else. So they are part of the logit
    scale (counted once, here) and not of the projection's forward multiplier. A norm stops
    the walk: a constant before a QK-norm is cancelled by it.
    """
    nodes: list[str] = []
    current = arg.name if isinstance(arg, Ref) else None
    for _ in range(16):
        if current is None:
            break
        node = graph.node(current)
        if node.kind != "call":
            break
        if constant_factor(node) is not None:
            nodes.append(current)
        elif op_name(node.target) not in _REARRANGE:
            break
        current = next((r.name for _, r in node.refs()), None)
    return nodes


def _times(graph: OpGraph, scales: dict[int, float], nodes: list[str]) -> dict[int, float]:
    """``scales`` times the constants of ``nodes``, width by width."""
    out = dict(scales)
    for name in nodes:
        for w in out:
            out[w] *= constant_factor(graph.at_width(name, w)) or 1.0
    return out
