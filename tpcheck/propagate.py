"""Propagate: static exponents of every activation at init (``s``) and after one step (``u``).

An activation whose coordinates have size ``Θ(n^s)`` at init changes by ``Θ(n^u)`` after one
optimizer step. The rules per op are theory.md §4; the tensors' invariants ``I``, ``U`` come
from :mod:`tpcheck.measure`. Constants that make up a use's forward multiplier are already
part of that use's ``I`` and ``U``, so the nodes holding them pass exponents through unchanged.
Each exponent remembers the tensor whose term produced it, so a finding names the activation
*and* the weight responsible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import sympy

from tpcheck.capture import OpNode, Ref
from tpcheck.exponents import fit_power_law
from tpcheck.graph import EMBEDDING, MATMUL, NORMS, SOFTMAX, OpGraph, constant_factor, op_name
from tpcheck.measure import Measurement, UseExponents, multiplier_nodes
from tpcheck.widths import is_infinite

NEG_INF = -sympy.oo
ZERO = sympy.Integer(0)
HALF = sympy.Rational(1, 2)


@dataclass(frozen=True)
class Exp:
    """Exponents of one activation, with the tensor each came from (None: the inputs)."""

    s: sympy.Expr
    u: sympy.Expr
    s_from: str | None = None
    u_from: str | None = None


@dataclass(frozen=True)
class NodeExponents:
    """``s`` and ``u`` of one graph node, and whether any of its dims grows with ``n``."""

    node: str
    s: sympy.Expr
    u: sympy.Expr
    s_from: str | None
    u_from: str | None
    width_sized: bool
    own_s: bool  # s comes from a weight used at this node (a root cause, not a consequence)
    own_u: bool
    module: str = ""
    source: str | None = None


@dataclass(frozen=True)
class Propagation:
    """Exponents of every tensor-valued node, plus the nodes the graph returns."""

    measurement: Measurement
    nodes: dict[str, NodeExponents]
    outputs: tuple[str, ...]
    width_reductions: dict[str, sympy.Expr]  # node -> growth exponent of a sum over the width


def propagate(measurement: Measurement) -> Propagation:
    """Compute ``s`` and ``u`` for every node of the measured model's graph."""
    graph = measurement.classification.graph
    kind = measurement.optimizer.kind
    uses_at: dict[str, list[UseExponents]] = {}
    absorbed: set[str] = set()
    for tname, tm in measurement.tensors.items():
        tclass = measurement.classification.tensors[tname]
        for use, ue in zip(tclass.uses, tm.uses, strict=True):
            uses_at.setdefault(use.node, []).append(ue)
            absorbed.update(n for n in multiplier_nodes(graph, use) if n not in use.via)
    param_of = {node: name for name, node in graph.param_nodes.items()}
    state: dict[str, Exp] = {}
    results: dict[str, NodeExponents] = {}
    reductions: dict[str, sympy.Expr] = {}
    outputs: list[str] = []
    for node in graph.shapes.nodes:
        if node.kind == "param":
            # the raw parameter: size n^-b, step n^-(U - a); multipliers on its path to an
            # elementwise use are graph constants and shift it on the way (see _op)
            tm = measurement.tensors[param_of[node.name]]
            u = NEG_INF if tm.U is None else _clean(-(tm.U - tm.a))
            state[node.name] = Exp(_clean(-tm.b), u, tm.name, tm.name)
            continue
        if node.kind in ("input", "buffer", "constant"):
            state[node.name] = Exp(ZERO, NEG_INF)
            continue
        if node.kind == "output":
            outputs.extend(r.name for _, r in node.refs())
            continue
        inputs = [(pos, ref.name) for pos, ref in node.refs() if ref.name in state]
        if node.name in absorbed:
            exp = _max_of([state[r] for _, r in inputs])
        elif node.name in uses_at:
            exp = _weighted(graph, node, uses_at[node.name], state, kind)
        else:
            exp, k = _op(graph, node, [(p, state[r]) for p, r in inputs])
            if k is not None:
                reductions[node.name] = k
        state[node.name] = exp
        shape = graph.shape(node.name)
        if shape is None:
            continue
        own = {u.use.tensor for u in uses_at.get(node.name, ())}
        results[node.name] = NodeExponents(
            node=node.name, s=exp.s, u=exp.u, s_from=exp.s_from, u_from=exp.u_from,
            width_sized=any(is_infinite(d) for d in shape),
            own_s=exp.s_from in own, own_u=exp.u_from in own,
            module=node.module, source=node.source)
    return Propagation(measurement, results, tuple(dict.fromkeys(outputs)), reductions)


# --- ops ---------------------------------------------------------------------------------


def _weighted(graph: OpGraph, node: OpNode, uses: list[UseExponents], state: dict[str, Exp],
              kind: str) -> Exp:
    """A node that consumes parameters: contraction terms plus elementwise (bias, gain) terms."""
    del kind  # U already holds the optimizer's form (a + c or 2a + c)
    op = op_name(node.target)
    operands = {u.use.operand for u in uses}
    acts = [state[r.name] for pos, r in node.refs()
            if r.name in state and r.name not in operands and not _is_index(op, pos)]
    x = _max_of(acts) if acts else Exp(ZERO, NEG_INF)
    if op in NORMS:
        exp = Exp(ZERO, _u_norm(x), None, x.u_from)
        for u in uses:  # layer_norm(x, shape, weight, bias): the gain multiplies, the bias adds
            p = state[u.use.operand]
            exp = _mul(exp, p) if u.use.pos == "2" else _max_of([exp, p])
        return exp
    terms: list[Exp] = []
    contractions = [u for u in uses if u.use.kind == "contraction"]
    for u in contractions:
        x_in = Exp(ZERO, NEG_INF) if op in EMBEDDING else x
        tensor = u.use.tensor
        s = _clean(x_in.s + HALF * u.alpha_in - u.I)
        # W₀Δx: CLT for input/hidden weights, coherent (LLN) for output weights (theory.md §4)
        coherent = 1 if (u.alpha_in, u.alpha_out) == (1, 0) else HALF * u.alpha_in
        first = _clean(x_in.u + coherent - u.I)
        second = _clean(x_in.s + u.alpha_in - u.U) if u.U is not None else NEG_INF
        u_val, u_from = (first, x_in.u_from) if _gt(first, second) else (second, tensor)
        terms.append(Exp(s, u_val, tensor if _gt(s, x_in.s) else x_in.s_from, u_from))
    for u in uses:
        if u.use.kind == "contraction":
            continue
        p = state[u.use.operand]
        if op == "mul":
            terms.append(_mul(x, p))
        elif op in ("div", "true_divide"):
            terms.append(_mul(x, Exp(-p.s, _clean(p.u - 2 * p.s), p.s_from, p.u_from)))
        else:
            terms.append(p)
            if not contractions:
                terms.append(x)
    return _max_of(terms)


def _op(graph: OpGraph, node: OpNode, inputs: list[tuple[str, Exp]]
        ) -> tuple[Exp, sympy.Expr | None]:
    """Exponents of a weightless op. Returns ``(exp, k)`` with k set for sums over the width."""
    op = op_name(node.target)
    exps = [e for _, e in inputs]
    if op in ("add", "sub", "rsub") and any(
            isinstance(a, (int, float)) and a != 0 for a in node.args):
        exps.append(Exp(ZERO, NEG_INF))  # x + 1: the constant is a Θ(1) term
    if not exps:
        return Exp(ZERO, NEG_INF), None
    k = _constant_exponent(graph, node)
    if op in ("mul",):
        out = exps[0]
        for e in exps[1:]:
            out = _mul(out, e)
        return _shift(out, k), None
    if op in ("div", "true_divide"):
        out = exps[0]
        if len(exps) > 1:
            out = _mul(out, Exp(-exps[1].s, exps[1].u - 2 * exps[1].s, exps[1].s_from,
                                exps[1].u_from))
        return _shift(out, k), None
    if op in NORMS:
        x = exps[0]
        return Exp(ZERO, _u_norm(x), None, x.u_from), None
    if op in SOFTMAX:
        return Exp(ZERO, exps[0].u, None, exps[0].u_from), None
    if op == "scaled_dot_product_attention":
        return _sdpa(graph, node, exps), None
    if op in MATMUL and len(exps) >= 2:
        kappa = _contracted_alpha(graph, node)
        x, y = exps[0], exps[1]
        s = x.s + y.s + HALF * kappa
        u = _max(x.u + y.s, x.s + y.u) + kappa
        return Exp(_clean(s), _clean(u), x.s_from or y.s_from, x.u_from or y.u_from), None
    if op in ("pow",) and len(node.args) > 1 and isinstance(node.args[1], (int, float)):
        p = sympy.nsimplify(node.args[1])
        x = exps[0]
        return Exp(_clean(p * x.s), _clean(x.u + (p - 1) * x.s), x.s_from, x.u_from), None
    if op in ("rsqrt", "sqrt", "reciprocal"):
        p = {"rsqrt": -HALF, "sqrt": HALF, "reciprocal": sympy.Integer(-1)}[op]
        x = exps[0]
        return Exp(_clean(p * x.s), _clean(x.u + (p - 1) * x.s), x.s_from, x.u_from), None
    if op in ("sum",):
        growth = _reduced_alpha(graph, node)
        x = exps[0]
        if growth:
            return Exp(_clean(x.s + growth), _clean(x.u + growth), x.s_from, x.u_from), growth
        return x, None
    return _max_of(exps), None


def _sdpa(graph: OpGraph, node: OpNode, exps: list[Exp]) -> Exp:
    """Attention: logits ``scale·qᵀk`` over head dim ``d ∝ n^δ``, then an average of ``v``."""
    q, k, v = (exps + [exps[-1]] * 3)[:3]
    _, u_logits = logits_exponents(graph, node, q, k)
    u = _max(v.u, u_logits + v.s)
    u_from = v.u_from if _gt(v.u, u_logits + v.s) else (q.u_from or k.u_from)
    return Exp(_clean(v.s), _clean(u), v.s_from, u_from)


def logits_exponents(graph: OpGraph, node: OpNode, q: Exp, k: Exp) -> tuple[sympy.Expr,
                                                                           sympy.Expr]:
    """``(s, u)`` of the attention logits of an SDPA node (for the coordinate check)."""
    delta = _head_alpha(graph, node)
    sigma = _sdpa_scale_exponent(graph, node)
    return (_clean(q.s + k.s + HALF * delta + sigma),
            _clean(_max(q.u + k.s, q.s + k.u) + delta + sigma))


# --- helpers -----------------------------------------------------------------------------


def _max(a: sympy.Expr, b: sympy.Expr) -> sympy.Expr:
    return a if _gt(a, b) or a == b else b


def _gt(a: sympy.Expr, b: sympy.Expr) -> bool:
    return bool(_clean(a) > _clean(b))


def _clean(x: sympy.Expr) -> sympy.Expr:
    """NaN (∞ − ∞: a zero tensor normalised or divided) counts as no contribution."""
    return NEG_INF if x is sympy.nan or x == sympy.nan else x


def _max_of(exps: list[Exp]) -> Exp:
    if not exps:
        return Exp(ZERO, NEG_INF)
    s_best = max(exps, key=lambda e: _key(e.s))
    u_best = max(exps, key=lambda e: _key(e.u))
    return Exp(s_best.s, u_best.u, s_best.s_from, u_best.u_from)


def _key(x: sympy.Expr) -> float:
    x = _clean(x)
    return -math.inf if x == NEG_INF else (math.inf if x == sympy.oo else float(x))


def _mul(x: Exp, y: Exp) -> Exp:
    s = _clean(x.s + y.s)
    ux, uy = _clean(x.u + y.s), _clean(x.s + y.u)
    u, u_from = (ux, x.u_from) if _gt(ux, uy) or ux == uy else (uy, y.u_from)
    s_from = x.s_from if _key(x.s) >= _key(y.s) else y.s_from
    return Exp(s, u, s_from, u_from)


def _shift(x: Exp, k: sympy.Expr | None) -> Exp:
    if not k:
        return x
    return Exp(_clean(x.s + k), _clean(x.u + k), x.s_from, x.u_from)


def _u_norm(x: Exp) -> sympy.Expr:
    return ZERO if x.s == NEG_INF else _clean(x.u - x.s)


def _constant_exponent(graph: OpGraph, node: OpNode) -> sympy.Expr | None:
    """Width exponent of a numeric constant in a mul/div (``x * n**-0.5`` → -1/2)."""
    values = {}
    for w in graph.shapes.widths:
        factor = constant_factor(graph.at_width(node.name, w))
        if not factor:
            return None
        values[w] = factor
    fit = fit_power_law(values)
    return -fit.exponent if fit.exponent != 0 else None


def _is_index(op: str, pos: str) -> bool:
    return op in ("embedding", "embedding_bag", "_embedding_bag") and pos == "1"


def _contracted_alpha(graph: OpGraph, node: OpNode) -> int:
    left = node.args[0]
    shape = graph.shape(left.name) if isinstance(left, Ref) else None
    return int(bool(shape) and is_infinite(shape[-1]))


def _head_alpha(graph: OpGraph, node: OpNode) -> int:
    return _contracted_alpha(graph, node)


def _reduced_alpha(graph: OpGraph, node: OpNode) -> int:
    """1 if ``sum`` reduces over a dimension that grows with ``n`` (no 1/n: not a mean)."""
    src = node.args[0]
    shape = graph.shape(src.name) if isinstance(src, Ref) else None
    if not shape:
        return 0
    dims = node.args[1] if len(node.args) > 1 else None
    if dims is None:
        axes = range(len(shape))
    else:
        axes = [d % len(shape) for d in (dims if isinstance(dims, (list, tuple)) else [dims])
                if isinstance(d, int)]
    return int(any(is_infinite(shape[a]) for a in axes))


def _sdpa_scale_exponent(graph: OpGraph, node: OpNode) -> sympy.Expr:
    """Width exponent of the SDPA logit scale (default ``1/√head_dim``)."""
    values = {}
    q = node.args[0]
    for w in graph.shapes.widths:
        s = graph.at_width(node.name, w).kwargs.get("scale")
        if s is None:
            qshape = graph.shapes.capture.traces[w].nodes[graph.digraph.graph["index"][
                q.name]].shape
            s = qshape[-1] ** -0.5
        values[w] = float(s)
    return -fit_power_law(values).exponent
