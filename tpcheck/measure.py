"""Measure: each tensor's exponents a, b, c (and weight decay, ε) across the traced widths.

* ``b`` from the init size (root-mean-square of the entries, so a gain initialised to 1 has
  size 1) that capture read from the init calls at every width, fitted as an exact law in
  ``n``; tensors whose init could not be read are sampled on the CPU at the smallest widths
  (averaged over ``seeds`` builds);
* ``c`` (and weight decay, ε) from the param group that holds the tensor in the spec's
  optimizer — whatever built the groups: plain AdamW, per-tensor groups, mup's MuAdamW;
* ``a`` per use, from width-dependent constants in the traced graph on the weight's path,
  on the activation entering the use, and on its output (mup's ``MuReadout`` divides its
  input by the width multiplier).

Then the abc-invariants of theory.md §3: ``I = a + b``; ``U = a + c`` (Adam) or ``2a + c`` (SGD),
and what μP expects of them for the use's (α_in, α_out).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy
import torch

from tpcheck.capture import Capture, build_model, optimizer_settings
from tpcheck.classify import Classification, Use
from tpcheck.errors import TpcheckError
from tpcheck.exponents import Fit, fit_power_law
from tpcheck.graph import OpGraph, constant_factor, is_bias
from tpcheck.inits import InitRead
from tpcheck.spec import ModelSpec
from tpcheck.widths import is_infinite

INF = sympy.oo


@dataclass(frozen=True)
class OptimizerInfo:
    """What kind of update rule the spec's optimizer applies."""

    name: str
    kind: str  # "adam" (sign-like updates, U = a + c) or "sgd" (U = 2a + c)
    decoupled_weight_decay: bool


@dataclass(frozen=True)
class UseExponents:
    """Invariants of one use of a tensor (a forward multiplier belongs to a use)."""

    use: Use
    alpha_in: int
    alpha_out: int
    a: sympy.Expr
    multiplier: Fit
    I: sympy.Expr
    U: sympy.Expr | None  # None: not trained

    @property
    def node(self) -> str:
        return self.use.node

    @property
    def role(self) -> str:
        return self.use.role

    @property
    def expected_I(self) -> sympy.Expr:
        return expected_init(self.alpha_in, self.alpha_out)

    def expected_U(self, kind: str) -> sympy.Expr:
        return expected_update(self.alpha_in, self.alpha_out, kind)

    @property
    def expected_e(self) -> sympy.Expr:
        """ε must scale like this tensor's gradient: ``n^-(a + α_out)`` (theory.md §5)."""
        return self.a + self.alpha_out


@dataclass(frozen=True)
class TensorMeasure:
    """Measured exponents of one parameter."""

    name: str
    init: Fit
    lr: Fit | None
    weight_decay: Fit | None
    eps: Fit | None
    uses: tuple[UseExponents, ...] = ()

    @property
    def b(self) -> sympy.Expr:
        return self.init.exponent

    @property
    def c(self) -> sympy.Expr | None:
        return self.lr.exponent if self.lr is not None else None

    @property
    def a(self) -> sympy.Expr:
        return self.uses[0].a if self.uses else sympy.Integer(0)

    @property
    def I(self) -> sympy.Expr:  # noqa: E743
        return self.uses[0].I if self.uses else self.b

    @property
    def U(self) -> sympy.Expr | None:
        return self.uses[0].U if self.uses else None

    @property
    def shrink(self) -> Fit | None:
        """The decoupled weight-decay shrink per step, lr·wd (None without weight decay)."""
        if self.lr is None or self.weight_decay is None:
            return None
        if all(v == 0 for v in self.weight_decay.values.values()):
            return None
        return fit_power_law({w: self.lr.values[w] * self.weight_decay.values[w]
                              for w in self.lr.values})


@dataclass(frozen=True)
class Measurement:
    """Exponents of every tensor, with the classification they refer to."""

    classification: Classification
    optimizer: OptimizerInfo
    tensors: dict[str, TensorMeasure]
    notes: tuple[str, ...] = field(default=())
    #: How each tensor's init size was known: "read", "probed" or "sampled".
    init_sources: dict[str, str] = field(default_factory=dict)


def expected_init(alpha_in: int, alpha_out: int) -> sympy.Expr:
    """Canonical μP ``I = α_in·(1 − α_out/2)`` (theory.md §3)."""
    return sympy.Integer(alpha_in) * (1 - sympy.Rational(alpha_out, 2))


def expected_update(alpha_in: int, alpha_out: int, kind: str) -> sympy.Expr:
    """Canonical μP ``U = α_in`` (Adam) or ``α_in − α_out`` (SGD) (theory.md §3)."""
    return sympy.Integer(alpha_in if kind == "adam" else alpha_in - alpha_out)


def measure(spec: ModelSpec, classification: Classification, *, seeds: int = 2,
            sample: bool = False) -> Measurement:
    """Measure every tensor of ``classification``: init sizes as read by capture (sampled on
    the CPU at the smallest widths for the tensors whose init calls could not be read, or for
    every tensor with ``sample=True``), learning rate, weight decay and ε from the param
    groups captured at every width, and forward multipliers from the graph."""
    capture = classification.graph.shapes.capture
    widths = list(capture.widths)
    traces = capture.traces
    names = list(classification.tensors)
    unread = [name for name in names
              if sample or any(not traces[w].inits.get(name, _MISSING).known for w in widths)]
    sampled: _Samples | None = None
    if unread:
        at = widths if sample else sampling_widths(widths)
        with torch.random.fork_rng(devices=[]):  # the user's RNG stream is left as it was
            sampled = _sample(spec, at, seeds, set(unread))
    groups, info = _groups(spec, capture)
    graph = classification.graph
    kind = info.kind
    tensors = {}
    sources: dict[str, str] = {}
    for name, tclass in classification.tensors.items():
        if sampled is not None and name in sampled.mean_square:
            ms = sampled.mean_square[name]
            init = fit_power_law({w: v ** 0.5 for w, v in ms.items()},
                                 samples=sampled.count[name])
            sources[name] = "sampled"
        else:
            reads = {w: traces[w].inits[name] for w in widths}
            init = fit_power_law({w: float(r.mean_square or 0.0) ** 0.5 for w, r in reads.items()},
                                 samples=_entries(reads))
            sources[name] = _how(reads)
        g = groups.get(name)
        trained = tclass.trainable and g is not None and len(g) == len(widths)
        lr = wd = eps = None
        if trained:
            lr = fit_power_law({w: float(g[w].get("lr") or 0.0) for w in widths})
            wd = fit_power_law({w: float(g[w].get("weight_decay", 0.0) or 0.0) for w in widths})
            if isinstance(g[widths[0]].get("eps"), (int, float)):
                eps = fit_power_law({w: float(g[w]["eps"]) for w in widths})
        uses = tuple(_use_exponents(graph, u, init, lr, kind) for u in tclass.uses)
        tensors[name] = TensorMeasure(name, init, lr, wd, eps, uses)
    return Measurement(classification, info, tensors, init_sources=sources)


_MISSING = InitRead(None, "unreadable", "not recorded")


def sampling_widths(widths: list[int]) -> list[int]:
    """Where unreadable inits are sampled: every traced width but the largest (at least two).

    Sampling builds real weights; the largest width is where that costs most and is never
    built unless the user asks for it (``--sample``).
    """
    return widths[:-1] if len(widths) > 2 else widths


def _how(reads: dict[int, InitRead]) -> str:
    hows = {r.how for r in reads.values()}
    for how in ("sampled", "probed", "read"):
        if how in hows:
            return how
    return "read"


def _entries(reads: dict[int, InitRead]) -> dict[int, int] | None:
    """Entry counts where the reads carry a draw's sampling noise (real tensors sampled, or
    scaled by a factor taken from their own values): the noise widens the snapping."""
    if all(r.entries == 0 for r in reads.values()):
        return None
    exact = 10 ** 12  # a read with no draw noise: as good as infinitely many entries
    return {w: r.entries or exact for w, r in reads.items()}


@dataclass
class _Samples:
    """Per-width init statistics of the sampled tensors, from real CPU builds."""

    mean_square: dict[str, dict[int, float]]  # name -> width -> mean of squared entries
    count: dict[str, dict[int, int]]  # name -> width -> number of entries sampled


def _sample(spec: ModelSpec, widths: list[int], seeds: int, names: set[str]) -> _Samples:
    sq: dict[str, dict[int, float]] = {}
    count: dict[str, dict[int, int]] = {}
    for w in widths:
        for seed in range(seeds):
            torch.manual_seed(seed)
            model = build_model(spec, w, "cpu")
            with torch.no_grad():
                for name, p in model.named_parameters():
                    if name not in names:
                        continue
                    if p.is_meta:
                        raise TpcheckError(
                            f"parameter {name!r} is on the meta device after factory({w}).",
                            where=spec.label, fix="build real weights in the factory")
                    value = float(p.detach().double().pow(2).mean()) if p.numel() else 0.0
                    sq.setdefault(name, {}).setdefault(w, 0.0)
                    sq[name][w] += value / seeds
                    count.setdefault(name, {})[w] = p.numel() * seeds
            del model  # never two models alive at once
    return _Samples(sq, count)


def _groups(spec: ModelSpec, capture: Capture) -> tuple[dict[str, dict[int, dict]],
                                                         OptimizerInfo]:
    """Each parameter's param-group settings per width, and what kind of optimizer it is."""
    out: dict[str, dict[int, dict]] = {}
    info: OptimizerInfo | None = None
    for w, trace in capture.traces.items():
        groups, cls = trace.groups, trace.optimizer
        if groups is None or cls is None:  # it could not be built on meta: try the CPU
            groups, cls, _ = optimizer_settings(spec, build_model(spec, w, "cpu"), w,
                                                strict=True)
        info = info or optimizer_info(cls, list(groups.values()))
        for name, settings in groups.items():
            out.setdefault(name, {})[w] = settings
    assert info is not None  # a Capture has at least three widths
    return out, info


def optimizer_info(cls: type, groups: list[dict]) -> OptimizerInfo:
    """Adam-like (sign-like updates) or SGD-like, and whether weight decay is decoupled."""
    name = cls.__name__
    if issubclass(cls, torch.optim.SGD):
        return OptimizerInfo(name, "sgd", True)
    decoupled = issubclass(cls, torch.optim.AdamW) or any(
        g.get("decoupled_weight_decay", False) for g in groups)
    return OptimizerInfo(name, "adam", decoupled)


def _use_exponents(graph: OpGraph, use: Use, init: Fit, lr: Fit | None,
                   kind: str) -> UseExponents:
    alpha_in = int(is_infinite(use.fan_in)) if use.kind == "contraction" else 0
    alpha_out = int(is_infinite(use.fan_out))
    multiplier = fit_power_law({w: abs(use_multiplier(graph, use, w))
                                for w in graph.shapes.widths})
    a = multiplier.exponent
    b = init.exponent
    I = a + b
    U = None
    if lr is not None:
        c = lr.exponent
        U = (a + c) if kind == "adam" else (2 * a + c)
    return UseExponents(use, alpha_in, alpha_out, a, multiplier, I, U)


def use_multiplier(graph: OpGraph, use: Use, width: int) -> float:
    """Product of the constants scaling this use at ``width``: weight path, input, output."""
    factor = 1.0
    for name in multiplier_nodes(graph, use):
        factor *= _constant_factor(graph, name, width) or 1.0
    return factor


def multiplier_nodes(graph: OpGraph, use: Use) -> tuple[str, ...]:
    """The graph nodes whose constants make up this use's forward multiplier.

    The weight's own path (``W * alpha`` before the op), the activation entering a
    contraction (``linear(x / m, W)``, mup's MuReadout) and the op's output
    (``linear(x, W) * alpha``), each as a chain of single-use ``mul``/``div`` by numbers.
    """
    nodes = [name for name in use.via if _constant_factor(graph, name) is not None]
    if use.kind == "contraction":
        node = graph.node(use.node)
        for pos, ref in node.refs():
            if ref.name != use.operand and pos in ("0", "1", "2") and not is_bias(node, pos):
                nodes.extend(_chain_back(graph, ref.name))
        nodes.extend(_chain_forward(graph, use.node))
    return tuple(nodes)



def _constant_factor(graph: OpGraph, name: str, width: int | None = None) -> float | None:
    """:func:`constant_factor` of node ``name`` (at ``width``: constants vary with n)."""
    return constant_factor(graph.node(name) if width is None else graph.at_width(name, width))


def _chain_back(graph: OpGraph, name: str) -> list[str]:
    """Constant scalings applied to an activation just before it enters a weight."""
    chain = []
    current = name
    while _constant_factor(graph, current) is not None and len(graph.users(current)) == 1:
        chain.append(current)
        producers = graph.producers(current)
        if len(producers) != 1:
            break
        current = producers[0]
    return chain


def _chain_forward(graph: OpGraph, name: str) -> list[str]:
    """Constant scalings applied to a use's output right after it (``linear(x) * alpha``)."""
    chain = []
    current = name
    while True:
        users = graph.users(current)
        if len(users) != 1 or _constant_factor(graph, users[0][0]) is None:
            return chain
        current = users[0][0]
        chain.append(current)
