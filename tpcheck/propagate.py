"""Propagate: static exponents of every activation at init (``s``), after one step (``u``),
and of the loss gradient with respect to it (``g``).

An activation whose coordinates have size ``Θ(n^s)`` at init changes by ``Θ(n^u)`` after one
optimizer step, and the gradient of the loss with respect to it has coordinates ``Θ(n^g)``.
The rules per op are docs/theory.md §4 and §8; the tensors'
invariants ``I``, ``U`` come from :mod:`tpcheck.measure`.

Three passes over the graph, in graph order:

1. forward: ``s`` of every node (and ``u`` for every update that does not need ``g``);
2. backward: ``g``, from 0 at the network's outputs back through every op;
3. forward again where a tensor's step depends on its gradient's size (SGD: the step *is* the
   gradient, ``ΔW x = Θ(n^{α_in + g_z + 2 s_x − U})``; Adam-like steps are normalised and do
   not care).

Constants that make up a use's forward multiplier are already part of that use's ``I`` and
``U``, so the nodes holding them pass exponents through unchanged. Each exponent remembers the
tensor whose term produced it, so a finding names the activation *and* the weight responsible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import sympy

from tpcheck.capture import OpNode, Ref
from tpcheck.exponents import fit_power_law
from tpcheck.graph import (
    EMBEDDING,
    MATMUL,
    NORMS,
    SOFTMAX,
    OpGraph,
    constant_factor,
    op_name,
)
from tpcheck.measure import Measurement, UseExponents, multiplier_nodes
from tpcheck.widths import is_infinite, width_dims

NEG_INF = -sympy.oo
ZERO = sympy.Integer(0)
HALF = sympy.Rational(1, 2)
#: Rounds of forward/backward for SGD steps (each round lets g pass one more zero factor).
_MAX_ROUNDS = 6
#: ``u_from`` of an update that grows because of an attention op's logit scale (not a tensor).
ATTENTION = "attention:"


@dataclass(frozen=True)
class Exp:
    """Exponents of one activation, with the tensor each came from (None: the inputs)."""

    s: sympy.Expr
    u: sympy.Expr
    s_from: str | None = None
    u_from: str | None = None


@dataclass(frozen=True)
class NodeExponents:
    """``s``, ``u`` and ``g`` of one graph node, and whether any of its dims grows with n."""

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
    g: sympy.Expr = NEG_INF  # the loss gradient's coordinate exponent (-∞: no gradient)
    g_from: str | None = None  # the tensor whose init amplified that gradient


@dataclass(frozen=True)
class Grad:
    """The loss gradient's exponent at a node, and the tensor whose init amplified it on its
    way back (None: none did), so a blow-up it causes in an SGD step names the cause."""

    g: sympy.Expr
    source: str | None = None


@dataclass(frozen=True)
class Propagation:
    """Exponents of every tensor-valued node, plus the nodes the graph returns."""

    measurement: Measurement
    nodes: dict[str, NodeExponents]
    outputs: tuple[str, ...]
    width_reductions: dict[str, sympy.Expr]  # node -> growth exponent of a sum over the width


@dataclass
class _Context:
    """What every pass reads: the graph, the uses at each node, the absorbed constants."""

    measurement: Measurement
    graph: OpGraph
    uses_at: dict[str, list[UseExponents]]
    absorbed: set[str]
    param_of: dict[str, str]

    @classmethod
    def of(cls, measurement: Measurement) -> _Context:
        graph = measurement.classification.graph
        excluded = measurement.classification.attention_scale_nodes
        uses_at: dict[str, list[UseExponents]] = {}
        absorbed: set[str] = set()
        for tname, tm in measurement.tensors.items():
            tclass = measurement.classification.tensors[tname]
            for use, ue in zip(tclass.uses, tm.uses, strict=True):
                uses_at.setdefault(use.node, []).append(ue)
                absorbed.update(n for n in multiplier_nodes(graph, use, excluded)
                                if n not in use.via)
        param_of = {node: name for name, node in graph.param_nodes.items()}
        return cls(measurement, graph, uses_at, absorbed, param_of)


def propagate(measurement: Measurement) -> Propagation:
    """Compute ``s``, ``u`` and ``g`` for every node of the measured model's graph."""
    ctx = _Context.of(measurement)
    state, reductions, outputs = _forward(ctx, None)
    g = _backward(ctx, state, outputs)
    if any(ue.family == "sgd" for uses in ctx.uses_at.values() for ue in uses):
        # An SGD step needs g, and g passes zero-initialised factors (adaLN-Zero gates) at
        # their size after a step: iterate to the fixed point (exponents only grow).
        for _ in range(_MAX_ROUNDS):
            state, reductions, outputs = _forward(ctx, g)
            again = _backward(ctx, state, outputs)
            if again == g:
                break
            g = again
    results: dict[str, NodeExponents] = {}
    for node in ctx.graph.shapes.nodes:
        shape = ctx.graph.shape(node.name)
        if node.kind != "call" or shape is None or node.name not in state:
            continue
        exp = state[node.name]
        own = {u.use.tensor for u in ctx.uses_at.get(node.name, ())}
        results[node.name] = NodeExponents(
            node=node.name, s=exp.s, u=exp.u, s_from=exp.s_from, u_from=exp.u_from,
            width_sized=any(is_infinite(d) for d in shape),
            own_s=exp.s_from in own,
            own_u=exp.u_from in own or exp.u_from == ATTENTION + node.name,
            module=node.module, source=node.source, g=g.get(node.name, _NO_GRAD).g,
            g_from=g.get(node.name, _NO_GRAD).source)
    return Propagation(measurement, results, outputs, reductions)


# --- forward ---------------------------------------------------------------------------------


def _forward(ctx: _Context, g: dict[str, Grad] | None
             ) -> tuple[dict[str, Exp], dict[str, sympy.Expr], tuple[str, ...]]:
    state: dict[str, Exp] = {}
    reductions: dict[str, sympy.Expr] = {}
    outputs: list[str] = []
    tensors = ctx.measurement.tensors
    for node in ctx.graph.shapes.nodes:
        if node.kind == "param":
            # the raw parameter: size n^-b, step n^-(U - a); multipliers on its path to an
            # elementwise use are graph constants and shift it on the way (see _op)
            tm = tensors[ctx.param_of[node.name]]
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
        if node.name in ctx.absorbed:
            exp = _max_of([state[r] for _, r in inputs])
        elif node.name in ctx.uses_at:
            gz = None if g is None else g.get(node.name, _NO_GRAD)
            exp = _weighted(ctx.graph, node, ctx.uses_at[node.name], state, gz)
        else:
            exp, k = _op(ctx.graph, node, [(p, state[r]) for p, r in inputs])
            if k is not None:
                reductions[node.name] = k
        state[node.name] = exp
    return state, reductions, tuple(dict.fromkeys(outputs))


def _weighted(graph: OpGraph, node: OpNode, uses: list[UseExponents], state: dict[str, Exp],
              grad: Grad | None) -> Exp:
    """A node that consumes parameters: contraction terms plus elementwise (bias, gain) terms.

    ``gz`` is the loss gradient's exponent at this node (None before the backward pass: an
    SGD step's size is not known yet and counts as no step).
    """
    op = op_name(node.target)
    gz = None if grad is None else grad.g
    operands = {u.use.operand for u in uses}
    acts = [state[r.name] for pos, r in node.refs()
            if r.name in state and r.name not in operands and not _is_index(op, pos)]
    x = _max_of(acts) if acts else Exp(ZERO, NEG_INF)
    if op in NORMS:
        exp = Exp(ZERO, _u_norm(x), None, x.u_from)
        for u in uses:  # layer_norm(x, shape, weight, bias): the gain multiplies, the bias adds
            p = _param_step(state[u.use.operand], u, ZERO if u.use.pos == "2" else None, gz)
            exp = _mul(exp, p) if u.use.pos == "2" else _max_of([exp, p])
        return exp
    terms: list[Exp] = []
    contractions = [u for u in uses if u.use.kind == "contraction"]
    for u in contractions:
        x_in = Exp(ZERO, NEG_INF) if op in EMBEDDING else x
        tensor = u.use.tensor
        s = _clean(x_in.s + HALF * u.alpha_in - u.I)
        # W₀Δx: CLT for input/hidden weights, coherent (LLN) for output weights
        coherent = 1 if (u.alpha_in, u.alpha_out) == (1, 0) else HALF * u.alpha_in
        first = _clean(x_in.u + coherent - u.I)
        second = _step_term(u, x_in.s, gz)
        # blame the weight when its own exponents are off μP; else what made its input or its
        # gradient too large (an SGD step carries the gradient, amplified by an init upstream)
        if _gt(first, second):
            u_val = first
            u_from = tensor if _gt(u.expected_I, u.I) or x_in.u_from is None else x_in.u_from
        else:
            u_val = second
            u_from = tensor
            if u.U is not None and u.U == u.expected_U:
                if u.family == "sgd" and grad is not None and grad.source is not None:
                    u_from = grad.source
                elif _gt(x_in.s, ZERO) and x_in.s_from is not None:
                    u_from = x_in.s_from
        terms.append(Exp(s, u_val, tensor if _gt(s, x_in.s) else x_in.s_from, u_from))
    for u in uses:
        if u.use.kind == "contraction":
            continue
        if op == "mul":
            terms.append(_mul(x, _param_step(state[u.use.operand], u, x.s, gz)))
        elif op in ("div", "true_divide"):
            p = state[u.use.operand]
            terms.append(_mul(x, Exp(-p.s, _clean(p.u - 2 * p.s), p.s_from, p.u_from)))
        else:
            terms.append(_param_step(state[u.use.operand], u, None, gz))
            if not contractions:
                terms.append(x)
    return _max_of(terms)


def _step_term(u: UseExponents, s_x: sympy.Expr, gz: sympy.Expr | None) -> sympy.Expr:
    """Exponent of ``ΔW x`` for a contraction, by the optimizer family that trains ``W``."""
    if u.U is None:
        return NEG_INF
    if u.family == "sgd":
        if gz is None:
            return NEG_INF
        return _clean(u.alpha_in + gz + 2 * s_x - u.U)
    if u.family == "muon":
        return _clean(s_x + sympy.Rational(u.alpha_in - u.alpha_out, 2) - u.U)
    return _clean(s_x + u.alpha_in - u.U)


def _param_step(p: Exp, u: UseExponents, s_other: sympy.Expr | None,
                gz: sympy.Expr | None) -> Exp:
    """The state of a parameter used elementwise, its step by the optimizer family.

    Adam-like: the step is ``n^-(U - a)`` whatever the gradient. SGD: the step is the gradient,
    ``∂L/∂b = Θ(n^g)`` for a bias and ``Θ(n^{g + s_x})`` for a gain on ``x``, times ``n`` per
    width dim the tensor is broadcast over (see :func:`gradient_exponent`).
    """
    if u.family != "sgd" or u.U is None:
        return p
    if gz is None:
        return Exp(p.s, NEG_INF, p.s_from, p.u_from)
    grad = gz + (s_other if s_other is not None else ZERO) + u.broadcast
    return Exp(p.s, _clean(grad - (u.U - u.a)), p.s_from, p.u_from)


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
    if op in ("cos", "sin"):  # of a phase (a sin-cos table): Θ(1) values, as tpcheck.sizes has
        return Exp(ZERO, exps[0].u, None, exps[0].u_from), None
    if op == "exp":  # e^x = 1 + x + …: Θ(1) where x vanishes (frequencies e^(−c·k/n))
        x = exps[0]
        return Exp(_max(x.s, ZERO), x.u, x.s_from if _gt(x.s, ZERO) else None,
                   x.u_from), None
    if op == "scaled_dot_product_attention":
        return _sdpa(graph, node, exps), None
    if op in MATMUL and len(exps) >= 2:
        kappa = _contracted_alpha(graph, node)
        x, y = exps[0], exps[1]
        s = x.s + y.s + HALF * kappa
        u = _max(x.u + y.s, x.s + y.u) + kappa
        return Exp(_clean(s), _clean(u), x.s_from or y.s_from, x.u_from or y.u_from), None
    power = _power(node, op)
    if power is not None:
        x = exps[0]
        return Exp(_clean(power * x.s), _clean(x.u + (power - 1) * x.s), x.s_from,
                   x.u_from), None
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
    if _gt(v.u, u_logits + v.s):
        u_from = v.u_from
    elif _gt(u_logits + v.s, ZERO) and not _gt(q.u, ZERO) and not _gt(k.u, ZERO):
        u_from = ATTENTION + node.name  # q and k move Θ(1): the logit scale makes it grow
    else:
        u_from = q.u_from or k.u_from
    return Exp(_clean(v.s), _clean(u), v.s_from, u_from)


def logits_exponents(graph: OpGraph, node: OpNode, q: Exp, k: Exp) -> tuple[sympy.Expr,
                                                                           sympy.Expr]:
    """``(s, u)`` of the attention logits of an SDPA node (for the coordinate check)."""
    delta = _head_alpha(graph, node)
    sigma = _sdpa_scale_exponent(graph, node)
    return (_clean(q.s + k.s + HALF * delta + sigma),
            _clean(_max(q.u + k.s, q.s + k.u) + delta + sigma))


# --- backward --------------------------------------------------------------------------------


_NO_GRAD = Grad(NEG_INF)


def _backward(ctx: _Context, state: dict[str, Exp], outputs: tuple[str, ...]
              ) -> dict[str, Grad]:
    """``g`` of every node: 0 at the outputs (a finite loss of the network's output), then back
    through every op (docs/theory.md §8.2: ``z = W x``: the larger of ``g_z + α_out/2 − I``
    and the step's coherent term, :func:`_through_weight`;
    ``x ⊙ y``: ``g_x = g_z + s_y``; a norm: ``g_x = g_z − s_x``; ``c·x``: ``g_x = g_z + k``;
    everything that moves or sums values: ``g_x = g_z``)."""
    graph = ctx.graph
    g: dict[str, Grad] = {name: Grad(ZERO) for name in outputs}
    for node in reversed(graph.shapes.nodes):
        here = g.get(node.name)
        if node.kind != "call" or here is None or here.g == NEG_INF:
            continue
        for ref, value, blame in _gradients_of_inputs(ctx, node, here.g, state):
            if ref in g and not _gt(value, g[ref].g):
                continue
            g[ref] = Grad(value, blame or here.source)
    return g


def _gradients_of_inputs(ctx: _Context, node: OpNode, gz: sympy.Expr, state: dict[str, Exp]
                         ) -> list[tuple[str, sympy.Expr, str | None]]:
    """``(input, g_input, blame)`` for each input of ``node``; ``blame`` is a tensor whose
    init, larger than μP's, amplifies the gradient here (else None: inherited)."""
    graph = ctx.graph
    op = op_name(node.target)
    refs = [(pos, r.name) for pos, r in node.refs() if r.name in state]
    if node.name in ctx.absorbed:
        return [(r, gz, None) for _, r in refs]
    uses = ctx.uses_at.get(node.name)
    if uses:
        operands = {u.use.operand for u in uses}
        out = []
        for pos, r in refs:
            if r in operands or _is_index(op, pos):
                continue
            if op in NORMS:
                gain = next((u for u in uses if u.use.pos == "2"), None)
                s_gain = _moved(state[gain.use.operand]) if gain else ZERO
                out.append((r, _clean(gz + s_gain - _finite(state[r].s)), None))
                continue
            contractions = [u for u in uses if u.use.kind == "contraction"]
            if contractions:  # z = W x (+ b): the bias adds nothing to x's gradient
                terms = [_through_weight(u, gz, state[r]) for u in contractions]
            elif op == "mul":  # x ⊙ γ
                terms = [(_clean(gz + _moved(state[u.use.operand])),
                          u.use.tensor if _gt(state[u.use.operand].s, ZERO) else None)
                         for u in uses]
            else:  # x + β and other elementwise uses
                terms = [(gz, None)]
            value, blame = max(terms, key=lambda t: _key(t[0]))
            out.append((r, value, blame))
        return out
    if op in ("mul",) and len(refs) >= 2:
        (_, a), (_, b) = refs[0], refs[1]
        return [(a, _clean(gz + _moved(state[b]) + _spread(graph, a, node)),
                 _amplifier(state[b])),
                (b, _clean(gz + _moved(state[a]) + _spread(graph, b, node)),
                 _amplifier(state[a]))]
    if op in ("div", "true_divide") and len(refs) >= 2:
        (_, a), (_, b) = refs[0], refs[1]
        sb = _finite(state[b].s)
        return [(a, _clean(gz - sb), None), (b, _clean(gz + state[a].s - 2 * sb), None)]
    k = _constant_exponent(graph, node)
    if op in ("mul", "div", "true_divide") and k:
        return [(r, _clean(gz + k), None) for _, r in refs]
    if op in NORMS:
        return [(r, _clean(gz - _finite(state[r].s)), None) for _, r in refs[:1]]
    if op in MATMUL and len(refs) >= 2:
        (_, a), (_, b) = refs[0], refs[1]
        out_dim = graph.shape(b)
        rows = graph.shape(a)
        beta = int(bool(out_dim) and is_infinite(out_dim[-1]))
        gamma = int(bool(rows) and len(rows) >= 2 and is_infinite(rows[-2]))
        return [(a, _clean(gz + state[b].s + HALF * beta), _amplifier(state[b])),
                (b, _clean(gz + state[a].s + HALF * gamma), _amplifier(state[a]))]
    if op == "scaled_dot_product_attention" and len(refs) >= 3:
        (_, q), (_, k_), (_, v) = refs[0], refs[1], refs[2]
        delta = _head_alpha(graph, node)
        sigma = _sdpa_scale_exponent(graph, node)
        # ∂L/∂logit = Σ over the head dim of g_z · v: coherent once trained (g_z aligned with
        # v), as the forward's q·k is (docs/theory.md §4, §8.2)
        logits = _clean(gz + state[v].s + delta)
        # a logit scale larger than 1/d (TP301) amplifies q's and k's gradients: its blame
        blame = ATTENTION + node.name if _gt(sigma + delta, ZERO) else None
        return [(q, _clean(logits + sigma + state[k_].s), blame),
                (k_, _clean(logits + sigma + state[q].s), blame), (v, gz, None)]
    power = _power(node, op)
    if power is not None and refs:
        r = refs[0][1]
        return [(r, _clean(gz + (power - 1) * state[r].s), None)]
    if op in EMBEDDING:
        return []
    if op in _AVERAGES:  # each entry gets 1/n of a mean over a width dim
        return [(r, _clean(gz - _reduced_alpha(graph, node)), None) for _, r in refs[:1]]
    if op in _BROADCASTING:
        return [(r, _clean(gz + _spread(graph, r, node)), None) for _, r in refs]
    return [(r, gz, None) for _, r in refs]  # activations, moves, sums, softmax: g passes


#: Reductions that divide by the count: RMSNorm's ``x.pow(2).mean(-1)`` written out.
_AVERAGES = frozenset({"mean", "var", "std"})
#: Ops whose output may repeat an input over dims it does not have (its gradient sums there).
_BROADCASTING = frozenset({"add", "sub", "rsub", "expand", "expand_as", "repeat",
                           "broadcast_to"})


def _spread(graph: OpGraph, ref: str, node: OpNode) -> int:
    """Width dims ``node``'s output repeats ``ref`` over (a per-token router weight times a
    width-sized expert output: 1). The gradient sums over them, coherently once trained, as
    for a parameter broadcast over the width (:func:`gradient_exponent`)."""
    return max(0, width_dims(graph.shape(node.name)) - width_dims(graph.shape(ref)))


def _amplifier(y: Exp) -> str | None:
    """The tensor behind a factor that is larger than Θ(1) (it amplifies what it multiplies)."""
    return y.s_from if _gt(y.s, ZERO) else None


def gradient_exponent(propagation: Propagation, ue: UseExponents) -> sympy.Expr:
    """Exponent of the loss gradient's entries with respect to a tensor, at one of its uses:
    ``g_z + s_x − a`` for ``z = W x`` (the same backward exponent SGD's step carries), ``g_z``
    for a bias, ``g_z + s_x`` for a gain on ``x``. What Adam's ε must stay below.

    A tensor broadcast over width dims (a head-dim RMSNorm gain shared by ``n/d`` heads) sums
    its gradient over them. Once training has correlated the summed terms, the sum is
    coherent: ``+1`` per such dim, as for a scalar multiplier on a width-many activation,
    whose gradient is Θ(1) in μP (docs/theory.md §8.6)."""
    graph = propagation.measurement.classification.graph
    nodes = propagation.nodes
    out = nodes.get(ue.node)
    if out is None or out.g == NEG_INF:
        return NEG_INF
    node = graph.node(ue.node)
    op = op_name(node.target)
    others = [r.name for pos, r in node.refs() if r.name != ue.use.operand
              and r.name in nodes and not _is_index(op, pos)]
    # ε matters all through training, when x is x₀ + Δx: a μP readout's output, n^-½ at
    # init, is Θ(1) once trained, and so is the gradient of a weight that reads it
    s_x = _max_list([_max(nodes[r].s, nodes[r].u) for r in others]) if others else ZERO
    if ue.use.kind == "contraction":
        return _clean(out.g + (ZERO if op in EMBEDDING else s_x) - ue.a)
    if op == "mul" or (op in NORMS and ue.use.pos == "2"):
        return _clean(out.g + (ZERO if op in NORMS else s_x) + ue.broadcast)
    return _clean(out.g + ue.broadcast)


def _through_weight(u: UseExponents, gz: sympy.Expr, x: Exp) -> tuple[sympy.Expr, str | None]:
    """``(g_x, blame)`` for ``z = W x``: ``(W₀ + ΔW)ᵀ g_z`` sums over the fan-out.

    The init ``W₀`` sums independent terms (CLT): ``g_z + α_out/2 − I``. The step ``ΔW`` is
    aligned with the gradient, so its sum is coherent (LLN): ``g_z + α_out − U`` for a
    normalised (Adam-like) step, ``2 g_z + s_x + α_out − U`` for an SGD step (the step is
    ``g_z xᵀ``), ``g_z + (α_out − α_in)/2 − U`` for Muon's (spectral norm ``n^-U``). After
    the first step the larger of the two is the gradient (docs/theory.md §8.2). They agree
    for μP's hidden and output weights; an input weight's coherent term is larger (``g_z + 1``
    against ``g_z + ½``): what a fixed-size conditioning vector feeding width-sized layers (a
    512-wide time embedding under adaLN) receives. A weight that is zero at init has only the
    second term. ``blame``: the weight, when its init or its LR is larger than μP's and that
    term wins; for an SGD step, else the tensor that made ``x`` larger than Θ(1).
    """
    s_x = x.s
    fan_back = u.alpha_back  # α_out, but 0 for a grouped conv whose channels do not mix
    clt = NEG_INF if u.I == sympy.oo else _clean(gz + HALF * fan_back - u.I)
    if u.U is None:
        coherent = NEG_INF
    elif u.family == "sgd":
        coherent = _clean(2 * gz + s_x + fan_back - u.U)
    elif u.family == "muon":  # spectral norm n^-U, aligned with g: σ·‖g‖₂ over √fan_in entries
        coherent = _clean(gz + sympy.Rational(fan_back - u.alpha_in, 2) - u.U)
    else:
        coherent = _clean(gz + fan_back - u.U)
    if _gt(coherent, clt):
        if u.U is not None and _gt(u.expected_U, u.U):
            return coherent, u.use.tensor
        return coherent, (x.s_from if u.family == "sgd" and _gt(s_x, ZERO) else None)
    return clt, (u.use.tensor if _gt(u.expected_I, u.I) else None)


def _moved(x: Exp) -> sympy.Expr:
    """A factor's size for the gradient through it: zero at init → its size after a step."""
    return x.u if x.s == NEG_INF else x.s


def _finite(s: sympy.Expr) -> sympy.Expr:
    """A size to divide by: a zero input (−∞) normalises to nothing, not to +∞."""
    return ZERO if s == NEG_INF else s


# --- helpers ---------------------------------------------------------------------------------


def _power(node: OpNode, op: str) -> sympy.Expr | None:
    """The exponent ``p`` of an op computing ``x^p`` (pow, rsqrt, sqrt, reciprocal)."""
    if op == "pow" and len(node.args) > 1 and isinstance(node.args[1], (int, float)):
        return sympy.nsimplify(node.args[1])
    return {"rsqrt": -HALF, "sqrt": HALF, "reciprocal": sympy.Integer(-1)}.get(op)


def _max(a: sympy.Expr, b: sympy.Expr) -> sympy.Expr:
    return a if _gt(a, b) or a == b else b


def _max_list(values: list[sympy.Expr]) -> sympy.Expr:
    out = NEG_INF
    for v in values:
        out = _max(out, v)
    return out


def _gt(a: sympy.Expr, b: sympy.Expr) -> bool:
    return _key(a) > _key(b)


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
