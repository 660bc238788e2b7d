"""Measure: each tensor's exponents a, b, c (and weight decay, ε) across the traced widths.

* ``b`` from the init size (root-mean-square of the entries, so a gain initialised to 1 has
  size 1) that capture read from the init calls at every width, fitted as an exact law in
  ``n``; tensors whose init could not be read are sampled on the CPU at the smallest widths
  (averaged over ``seeds`` builds);
* ``c`` (and weight decay, ε) from the param group that holds the tensor in the spec's
  optimizers — whatever built the groups: plain AdamW, per-tensor groups, mup's MuAdamW,
  Muon beside AdamW — and the optimizer's family (:mod:`tpcheck.optimizers`);
* ``a`` per use, from width-dependent constants in the traced graph on the weight's path,
  on the activation entering the use, and on its output (mup's ``MuReadout`` divides its
  input by the width multiplier). Constants on the way to attention logits belong to the
  logit scale (classify), not to a projection's multiplier.

Then the abc-invariants (docs/theory.md §3): ``I = a + b``; ``U`` by the optimizer family
(``a + c`` Adam-like, ``2a + c`` SGD, ``a + c + b`` Adafactor, ``a + c − φ`` Muon), and what μP
expects of them for the use's (α_in, α_out).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sympy
import torch

from tpcheck.capture import Capture, build_model, optimizer_settings
from tpcheck.classify import Classification, Use
from tpcheck.errors import TpcheckError
from tpcheck.exponents import Fit, fit_power_law
from tpcheck.graph import OpGraph, constant_factor, is_bias
from tpcheck.inits import InitRead
from tpcheck.optimizers import (
    OptimizerClass,
    classify_optimizer,
    expected_update,
    muon_adjustment,
    update_exponent,
)
from tpcheck.spec import ModelSpec
from tpcheck.widths import is_infinite, width_dims

INF = sympy.oo


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
    family: str | None = None  # the optimizer family that trains the tensor
    #: Width dims the use broadcasts the tensor over (a head-dim gain shared by n/d heads: 1);
    #: its gradient sums over them.
    broadcast: int = 0
    #: 1 if each input element feeds width-many outputs (the backward sums over them):
    #: ``alpha_out`` but for a grouped convolution, whose channels do not mix.
    alpha_back: int = 0

    @property
    def node(self) -> str:
        return self.use.node

    @property
    def role(self) -> str:
        return self.use.role

    @property
    def expected_I(self) -> sympy.Expr:
        return expected_init(self.alpha_in, self.alpha_out)

    @property
    def expected_U(self) -> sympy.Expr:
        return expected_update(self.family or "adam", self.alpha_in, self.alpha_out)


@dataclass(frozen=True)
class TensorMeasure:
    """Measured exponents of one parameter, and the optimizer group that trains it."""

    name: str
    init: Fit
    lr: Fit | None
    weight_decay: Fit | None
    eps: Fit | None
    uses: tuple[UseExponents, ...] = ()
    family: str | None = None  # None: no optimizer group holds it
    group: str | None = None  # "optimizer index.group index"
    optimizer: str | None = None  # the class name
    #: Muon's LR adjustment f ∝ n^φ (0 for every other family).
    phi: sympy.Expr = sympy.S.Zero

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
    optimizers: tuple[OptimizerClass, ...]
    tensors: dict[str, TensorMeasure]
    notes: tuple[str, ...] = field(default=())
    #: How each tensor's init size was known: "read", "probed" or "sampled".
    init_sources: dict[str, str] = field(default_factory=dict)
    #: Trainable tensors no param group of any optimizer holds: they never move.
    unoptimized: tuple[str, ...] = ()

    @property
    def families(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(o.family for o in self.optimizers))


def expected_init(alpha_in: int, alpha_out: int) -> sympy.Expr:
    """Canonical μP ``I = α_in·(1 − α_out/2)`` (docs/theory.md §3)."""
    return sympy.Integer(alpha_in) * (1 - sympy.Rational(alpha_out, 2))


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
    groups, optimizers = _groups(spec, capture)
    graph = classification.graph
    excluded = classification.attention_scale_nodes
    tensors = {}
    sources: dict[str, str] = {}
    unoptimized = []
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
        held = g is not None and len(g) == len(widths)
        if tclass.trainable and not held and tclass.role != "unused":
            unoptimized.append(name)
        settings = _Settings.of(g, widths, optimizers, capture, name) if (
            tclass.trainable and held) else None
        uses = tuple(_use_exponents(graph, u, init, settings, excluded) for u in tclass.uses)
        tensors[name] = TensorMeasure(
            name, init, settings.lr if settings else None,
            settings.weight_decay if settings else None, settings.eps if settings else None,
            uses, family=settings.family if settings else None,
            group=settings.group if settings else None,
            optimizer=settings.optimizer if settings else None,
            phi=settings.phi if settings else sympy.Integer(0))
    return Measurement(classification, optimizers, tensors, init_sources=sources,
                       unoptimized=tuple(unoptimized))


@dataclass(frozen=True)
class _Settings:
    """One tensor's optimizer settings across widths, fitted."""

    family: str
    optimizer: str
    group: str
    lr: Fit
    weight_decay: Fit
    eps: Fit | None
    phi: sympy.Expr

    @classmethod
    def of(cls, g: dict[int, dict], widths: list[int], optimizers: tuple[OptimizerClass, ...],
           capture: Capture, name: str) -> _Settings:
        first = g[widths[0]]
        opt = optimizers[int(first.get("_optimizer", 0))]
        # an Adafactor group with lr None takes a relative step, the same at every width
        lr = fit_power_law({w: _number(g[w].get("lr"), 1.0) for w in widths})
        wd = fit_power_law({w: _number(g[w].get("weight_decay"), 0.0) for w in widths})
        eps = None
        if opt.family == "adam" and all(_is_number(g[w].get("eps")) for w in widths):
            eps = fit_power_law({w: float(g[w]["eps"]) for w in widths})
        phi = sympy.Integer(0)
        if opt.family == "muon":
            shapes = {w: capture.traces[w].params[name].shape for w in widths}
            factors = {w: muon_adjustment(g[w].get("adjust_lr_fn"), s[0], s[1])
                       for w, s in shapes.items() if len(s) >= 2}
            if len(factors) == len(widths):
                phi = -fit_power_law(factors).exponent
        return cls(opt.family, opt.name, str(first.get("_group", "0.0")), lr, wd, eps, phi)


def _number(value: Any, default: float) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value)
    return float(value) if _is_number(value) else default


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


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


def _groups(spec: ModelSpec, capture: Capture
            ) -> tuple[dict[str, dict[int, dict]], tuple[OptimizerClass, ...]]:
    """Each parameter's param-group settings per width, and the spec's optimizers' families."""
    out: dict[str, dict[int, dict]] = {}
    classes: tuple[type, ...] = ()
    for w, trace in capture.traces.items():
        groups, classes_w = trace.groups, trace.optimizers
        if groups is None or not classes_w:  # they could not be built on meta: the CPU
            groups, classes_w, _ = optimizer_settings(spec, build_model(spec, w, "cpu"), w,
                                                      strict=True)
            assert groups is not None  # strict: a failure raised
        classes = classes or classes_w
        for name, settings in groups.items():
            out.setdefault(name, {})[w] = settings
    per_optimizer: dict[int, list[dict]] = {}
    for by_width in out.values():
        for settings in by_width.values():
            per_optimizer.setdefault(int(settings.get("_optimizer", 0)), []).append(settings)
    optimizers = tuple(classify_optimizer(cls, per_optimizer.get(k, []))
                       for k, cls in enumerate(classes))
    return out, optimizers


def _use_exponents(graph: OpGraph, use: Use, init: Fit, settings: _Settings | None,
                   excluded: frozenset[str]) -> UseExponents:
    alpha_in = int(is_infinite(use.fan_in)) if use.kind == "contraction" else 0
    alpha_out = int(is_infinite(use.fan_out))
    multiplier = fit_power_law({w: abs(use_multiplier(graph, use, w, excluded))
                                for w in graph.shapes.widths})
    a = multiplier.exponent
    b = init.exponent
    U = None
    if settings is not None:
        U = update_exponent(settings.family, a, settings.lr.exponent, b, settings.phi)
    broadcast = 0
    if use.kind != "contraction":
        broadcast = max(0, width_dims(graph.shape(use.node))
                        - width_dims(graph.shapes.param_shapes[use.tensor]))
    per_input = use.fan_out if use.fan_out_per_input is None else use.fan_out_per_input
    return UseExponents(use, alpha_in, alpha_out, a, multiplier, a + b, U,
                        settings.family if settings else None, broadcast,
                        int(is_infinite(per_input)))


def use_multiplier(graph: OpGraph, use: Use, width: int,
                   excluded: frozenset[str] = frozenset()) -> float:
    """Product of the constants scaling this use at ``width``: weight path, input, output."""
    factor = 1.0
    for name in multiplier_nodes(graph, use, excluded):
        factor *= _constant_factor(graph, name, width) or 1.0
    return factor


def multiplier_nodes(graph: OpGraph, use: Use,
                     excluded: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """The graph nodes whose constants make up this use's forward multiplier.

    The weight's own path (``W * alpha`` before the op), the activation entering a
    contraction (``linear(x / m, W)``, mup's MuReadout) and the op's output
    (``linear(x, W) * alpha``), each as a chain of single-use ``mul``/``div`` by numbers.
    ``excluded`` nodes (an attention logit scale on a q or k projection's output) are not.
    """
    nodes = [name for name in use.via if _constant_factor(graph, name) is not None]
    if use.kind == "contraction":
        node = graph.node(use.node)
        for pos, ref in node.refs():
            if ref.name != use.operand and pos in ("0", "1", "2") and not is_bias(node, pos):
                nodes.extend(_chain_back(graph, ref.name))
        nodes.extend(_chain_forward(graph, use.node))
    return tuple(n for n in nodes if n not in excluded)


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
