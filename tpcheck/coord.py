"""Coord check: train each width a few steps, compare measured exponents with the static ones.

The static pipeline predicts, for every activation, the exponent ``s`` of its coordinate size at
init and ``u`` of its change after one step (theory.md §4). This stage measures both on real
models, as the μP papers' "coordinate check" does (TP5 App. D.1): build each width, run one
fixed batch, record the mean ``|x_0|`` of every module output (and of the attention logits),
take ``steps`` optimizer steps on a fixed target, and after each step record
``mean |x_t − x_0|`` on the same batch. A log-log slope against ``n`` per seed gives the measured
``s`` and ``u`` with their spread over seeds, and each activation gets a verdict beside the
prediction. A disagreement is shown, never hidden: a static rule that is wrong, or an effect that
leading-order exponents do not see at these widths (a lower-order term with a much larger
constant, saturation of a normalised or softmaxed activation, a gradient that is still zero).

Exit codes of ``tpcheck coord``: 0 it ran (disagreements are in the report), 1 a width diverged
(NaN/inf; the width, seed and step are reported), 2 bad input (too few widths, a factory or
forward that raises, a missing plot dependency).
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import sympy
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from tpcheck import __version__
from tpcheck.capture import build_model, example_inputs
from tpcheck.errors import TpcheckError
from tpcheck.fold import fold
from tpcheck.sizes import FAR_WIDTHS, Sizes, crossover_width, local_slope, node_sizes
from tpcheck.spec import ModelSpec
from tpcheck.symbols import n as N

#: Largest |measured slope − predicted exponent| that still agrees. Slopes over 64..256 move by
#: ~0.05 with the seed and by ~0.1 where a few steps leave the linear regime.
TOLERANCE = 0.25
VERDICTS = ("disagree", "agree", "not measured", "not predicted")  # by precedence
OUTPUT = "(output)"  # record name of the model's own output
_CONTAINERS = (nn.ModuleList, nn.ModuleDict, nn.Sequential, nn.ParameterList, nn.ParameterDict,
               nn.Identity, nn.modules.dropout._DropoutNd)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Slope:
    """``d log(value) / d log(n)``: mean and standard deviation over seeds.

    ``-inf`` when the value is exactly zero at every width (a zero-initialised output, an
    activation nothing trainable feeds); NaN when it cannot be fitted (zero at some widths
    only, or too few widths left after a divergence).
    """

    mean: float
    spread: float

    def to_json(self) -> dict[str, Any]:
        return {"mean": _num(self.mean), "spread": _num(self.spread)}

    def __str__(self) -> str:
        if math.isnan(self.mean):
            return "?"
        if self.mean == -math.inf:
            return "zero"
        return f"{self.mean:+.2f}±{self.spread:.2f}"


@dataclass(frozen=True)
class Prediction:
    """The static exponents of the graph node that computes a recorded activation.

    ``s`` and ``u`` are the leading exponents (n → ∞). ``s_here`` is the slope the init
    constants predict over the measured widths (:mod:`tpcheck.sizes`): where a growing term
    still sits below a Θ(1) one, it differs from ``s``, and ``s_from`` is the width from which
    the measured slope would come within the tolerance of ``s``.
    """

    node: str | None  # None: no node of the exported graph maps to this activation
    s: sympy.Expr | None = None
    u: sympy.Expr | None = None
    why: str | None = None  # why there is no prediction
    s_here: float | None = None
    s_from: int | None = None


@dataclass(frozen=True)
class Record:
    """One recorded activation at every width: sizes, updates, slopes, prediction, verdict.

    ``size[t][i]`` is mean ``|x_t|`` at ``widths[i]`` after ``t`` steps (t = 0..steps) and
    ``update[t-1][i]`` is mean ``|x_t − x_0|`` (t = 1..steps), both averaged over seeds (NaN
    once a run diverged). ``update_slopes[t-1]`` is the slope after ``t`` steps; the verdict on
    ``u`` uses the result's ``verdict_step``.
    """

    name: str
    kind: str  # "module", "logits" or "output"
    module_type: str
    shape: tuple[int, ...]  # at the smallest width
    size: tuple[tuple[float, ...], ...]
    update: tuple[tuple[float, ...], ...]
    size_slope: Slope
    update_slopes: tuple[Slope, ...]
    prediction: Prediction
    size_verdict: str
    update_verdict: str
    #: Class and constructor arguments (``Linear(in_features=256, out_features=64, ...)``):
    #: rows fold over blocks only when this matches, never a Sequential's different layers.
    signature: str = ""
    #: Enclosing modules whose output is this one's, value for value (``blocks.0.attn`` for
    #: ``blocks.0.attn.proj``): recorded once, so a wrapper does not count twice.
    aliases: tuple[str, ...] = ()

    @property
    def verdict(self) -> str:
        """One verdict per activation: a single disagreement (size or update) counts."""
        both = (self.size_verdict, self.update_verdict)
        return next(v for v in VERDICTS if v in both)

    def to_json(self) -> dict[str, Any]:
        p = self.prediction
        return {
            "name": self.name, "kind": self.kind, "module_type": self.module_type,
            "signature": self.signature,
            "shape": list(self.shape),
            "size": [[_num(v) for v in row] for row in self.size],
            "update": [[_num(v) for v in row] for row in self.update],
            "slopes": {"size": self.size_slope.to_json(),
                       "update": [s.to_json() for s in self.update_slopes]},
            "predicted": {"node": p.node, "s": _exp(p.s), "s_here": _num(p.s_here),
                          "s_from_width": p.s_from, "u": _exp(p.u), "why": p.why},
            "verdict": self.verdict,
            "size_verdict": self.size_verdict, "update_verdict": self.update_verdict,
            "aliases": list(self.aliases),
        }


@dataclass(frozen=True)
class Divergence:
    """A run that produced NaN/inf: at which width, seed and step, first seen where."""

    width: int
    seed: int
    step: int  # optimizer steps taken before the non-finite forward (0: at init)
    where: str  # the first record (or "loss") that was not finite

    def __str__(self) -> str:
        return (f"width {self.width} diverged at step {self.step} (seed {self.seed}): "
                f"{self.where} is NaN/inf")


@dataclass(frozen=True)
class CoordResult:
    """Everything one coord check measured and concluded about one model.

    ``verdict_step`` is the step whose update slopes are judged: the first step after which
    every trainable tensor has moved. The static ``u`` describes a step in which every weight
    moves, but a zero-initialised readout or gate blocks the gradient of everything upstream
    of it at step 1 (TP5 App. D.2): DiT's zero readout and adaLN-Zero gates need 3 steps.
    """

    model: str
    widths: tuple[int, ...]
    steps: int
    seeds: int
    lr: float | None
    optimizer: str
    tolerance: float
    verdict_step: int
    records: tuple[Record, ...]
    divergences: tuple[Divergence, ...] = ()
    seconds: float = 0.0
    notes: tuple[str, ...] = field(default=())

    @property
    def counts(self) -> dict[str, int]:
        c = Counter(r.verdict for r in self.records)
        return {v: c.get(v, 0) for v in VERDICTS}

    @property
    def agreement_rate(self) -> float | None:
        """agree / (agree + disagree): the share of predicted activations that agree."""
        c = self.counts
        judged = c["agree"] + c["disagree"]
        return c["agree"] / judged if judged else None

    @property
    def exit_code(self) -> int:
        return 1 if self.divergences else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "tpcheck": __version__, "check": "coord", "model": self.model,
            "widths": list(self.widths), "steps": self.steps, "seeds": self.seeds,
            "lr": self.lr, "optimizer": self.optimizer, "tolerance": self.tolerance,
            "verdict_step": self.verdict_step, "records": [r.to_json() for r in self.records],
            "divergences": [vars(d) for d in self.divergences],
            "summary": {"records": len(self.records), **{
                v.replace(" ", "_"): k for v, k in self.counts.items()},
                "agreement_rate": self.agreement_rate},
            "seconds": round(self.seconds, 2), "notes": list(self.notes),
        }

    def to_text(self) -> str:
        """The agreement table, repeated blocks folded into one row, then the summary line."""
        lr = "spec's" if self.lr is None else f"{self.lr:g}"
        lines = [f"tpcheck coord {self.model}: widths {'/'.join(map(str, self.widths))}, "
                 f"{self.steps} steps, {self.seeds} seeds, {self.optimizer} lr {lr} "
                 f"({self.seconds:.1f} s)"]
        lines += [f"  note: {note}" for note in self.notes]
        lines += [f"  DIVERGED: {d}" for d in self.divergences]
        at, last = self.verdict_step, self.steps
        shown = (at, last) if last != at else (at,)  # the judged step, then the last one
        header = ("activation", "type", "s (n→∞)", "s here", "s meas", "u (n→∞)",
                  *(f"u meas t={t}" for t in shown), "verdict")
        rows = [header]
        for label, members in fold(self.records, lambda r: r.name, _fold_key):
            first = members[0]
            p = first.prediction
            rows.append((label, first.module_type, _pretty(p.s), _here(p, self.tolerance),
                         _folded(members, "size", 0), _pretty(p.u),
                         *(_folded(members, "update", t - 1) for t in shown), first.verdict))
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        lines.append("")
        for row in rows:
            lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        lines.append("")
        wrapped = sum(len(r.aliases) for r in self.records)
        if wrapped:
            lines.append(f"{wrapped} wrapper outputs equal to an inner module's output are shown "
                         "once (JSON: aliases).")
        if any(r.prediction.s_from for r in self.records):
            lines.append("s here: the init-size slope the static analysis predicts over these "
                         "widths, constants included; (s from n≈W): the width where s shows.")
        lines.append(self._summary())
        return "\n".join(lines)

    def _summary(self) -> str:
        c = self.counts
        rate = self.agreement_rate
        head = "agreement: n/a" if rate is None else f"agreement: {100 * rate:.1f}%"
        return (f"{head} ({c['agree']} agree, {c['disagree']} disagree; {c['not predicted']} not "
                f"predicted, {c['not measured']} not measured; {len(self.records)} activations, "
                f"tolerance ±{self.tolerance:g})")


def _fold_key(r: Record) -> tuple:
    p = r.prediction
    return (r.kind, r.signature, str(p.s), str(p.u), r.verdict)


def _folded(members: list[Record], what: str, step: int) -> str:
    """Mean slope over the folded rows (blocks), with the largest seed spread among them."""
    slopes = [m.size_slope if what == "size" else m.update_slopes[step] for m in members]
    means = [s.mean for s in slopes]
    if any(math.isnan(v) for v in means):
        return "?"
    if all(v == -math.inf for v in means):
        return "zero"
    if any(v == -math.inf for v in means):
        return "zero/" + str(Slope(statistics.fmean(v for v in means if v > -math.inf), 0.0))
    spread = max(max(s.spread for s in slopes), max(means) - statistics.fmean(means))
    return str(Slope(statistics.fmean(means), spread))


# --------------------------------------------------------------------------- the stage


def coord_check(spec: ModelSpec, *, widths: Sequence[int] | None = None, steps: int = 4,
                seeds: int = 3, lr: float | None = None, plan: Any = None,
                tolerance: float = TOLERANCE, static: bool = True) -> CoordResult:
    """Measure ``s`` and ``u`` of every module output of ``spec`` and compare with the lint's.

    ``plan`` (a ``tpcheck.convert.Plan``) checks the μP version of ``spec`` instead; ``lr``
    rescales every param group so that the optimizer's base LR is ``lr`` (per-tensor ratios,
    as μP sets them, are kept); ``static=False`` skips the prediction (measure only).
    """
    start = time.perf_counter()
    if plan is not None:
        spec = plan_spec(plan, spec)
    widths = tuple(sorted({int(w) for w in (widths or spec.widths)}))
    if len(widths) < 3:
        raise TpcheckError(
            f"a coord check needs at least 3 distinct widths to fit a slope and its spread; "
            f"got {list(widths)}.", where=spec.label,
            fix="pass e.g. --widths 64,96,128,192,256 (five widths make slopes reliable)")
    if steps < 1 or seeds < 1:
        raise TpcheckError(f"steps and seeds must be at least 1; got steps={steps}, "
                           f"seeds={seeds}.", where=spec.label)
    notes: list[str] = []
    propagation = None
    if static:
        try:
            propagation = _static(spec)
        except TpcheckError as exc:  # the measurement stands on its own
            notes.append(f"no static prediction: {exc.what}")
    runs = {(w, s): _train(spec, w, s, steps, lr) for s in range(seeds) for w in widths}
    optimizer = runs[widths[0], 0].optimizer
    divergences = tuple(r.diverged for r in runs.values() if r.diverged)
    fitted = tuple(w for w in widths if not any(runs[w, s].diverged for s in range(seeds)))
    if len(fitted) < len(widths):
        notes.append("slopes are fitted on the widths that did not diverge: "
                     + "/".join(map(str, fitted)))
    verdict_step = max(r.all_moved for r in runs.values())
    never = sorted({name for r in runs.values() if not r.diverged for name in r.never_moved})
    if never:
        notes.append(f"{len(never)} trainable tensors had a zero gradient in all {steps} steps "
                     f"(unused, or behind more zero-initialised layers than steps): "
                     + ", ".join(never[:4]) + (" ..." if len(never) > 4 else ""))
    sizes = None
    if propagation is not None and len(fitted) >= 3:
        sizes = node_sizes(propagation.measurement, sorted(set(fitted) | set(FAR_WIDTHS)))
    records = _records(runs, widths, fitted, seeds, steps, verdict_step, propagation, sizes,
                       tolerance)
    return CoordResult(spec.label, widths, steps, seeds, lr, optimizer, tolerance, verdict_step,
                       records, divergences, time.perf_counter() - start, tuple(notes))


def plan_spec(plan: Any, spec: ModelSpec) -> ModelSpec:
    """The μP ModelSpec of ``plan``; a plan loaded from JSON may need the target's spec."""
    build = plan.spec
    try:
        wants_spec = bool(inspect.signature(build).parameters)
    except (TypeError, ValueError):
        wants_spec = False
    out = build(spec) if wants_spec else build()
    if not isinstance(out, ModelSpec):
        raise TpcheckError(f"plan.spec() returned {type(out).__name__}, not a ModelSpec.")
    return out


def _static(spec: ModelSpec) -> Any:
    """The lint pipeline up to propagation, at the spec's own widths."""
    from tpcheck.measure import measure
    from tpcheck.pipeline import analyze
    from tpcheck.propagate import propagate

    return propagate(measure(spec, analyze(spec), seeds=2))


# --------------------------------------------------------------------------- measuring


@dataclass
class _Run:
    """What one (width, seed) run recorded, per record name, at t = 0..steps."""

    optimizer: str
    size: dict[str, list[float]] = field(default_factory=dict)
    delta: dict[str, list[float]] = field(default_factory=dict)
    kind: dict[str, str] = field(default_factory=dict)
    module_type: dict[str, str] = field(default_factory=dict)
    signature: dict[str, str] = field(default_factory=dict)  # module path -> class(args)
    shape: dict[str, tuple[int, ...]] = field(default_factory=dict)
    calls: Counter = field(default_factory=Counter)  # module path -> calls per forward
    diverged: Divergence | None = None
    #: The step after which every trainable tensor that ever got a gradient has moved.
    all_moved: int = 1
    #: Trainable tensors whose gradient stayed zero in every step (unused, or behind more
    #: zero-initialised layers than there were steps).
    never_moved: tuple[str, ...] = ()


class _Recorder(TorchFunctionMode):
    """Forward hooks on every non-container module, plus an SDPA interceptor for the logits.

    Hooks sit on the real model (no tracing): what is recorded is what training computes.
    The attention logits exist only inside ``F.scaled_dot_product_attention``, so the call is
    intercepted (a TorchFunctionMode, active during the forward only) to record
    ``scale · q kᵀ`` before the real op runs; a module stack names them after the innermost
    module that called SDPA (``blocks.0.attn.logits``).
    """

    def __init__(self, model: nn.Module, run: _Run) -> None:
        super().__init__()
        self.run, self.step = run, 0
        self.first: dict[str, torch.Tensor] = {}
        self.stack: list[str] = []
        self.seen: Counter = Counter()  # calls per path in the current forward
        self.bad: str | None = None
        self.handles = []
        for path, module in model.named_modules():
            if not path:
                continue
            self.handles.append(module.register_forward_pre_hook(self._enter(path)))
            self.handles.append(module.register_forward_hook(self._leave(path, module)))

    def _enter(self, path: str) -> Any:
        def hook(module: nn.Module, args: Any) -> None:
            self.stack.append(path)
        return hook

    def _leave(self, path: str, module: nn.Module) -> Any:
        recorded = not isinstance(module, _CONTAINERS)
        kind = type(module).__name__
        self.run.signature[path] = f"{kind}({module.extra_repr()})"

        def hook(module: nn.Module, args: Any, out: Any) -> None:
            self.stack.pop()
            if recorded:
                self.record(self._call_name(path), out, "module", kind)
        return hook

    def _call_name(self, path: str) -> str:
        self.seen[path] += 1
        k = self.seen[path]
        self.run.calls[path] = max(self.run.calls[path], k)
        return path if k == 1 else f"{path}@{k}"

    def __torch_function__(self, func: Any, types: Any, args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            self.record(self._call_name((self.stack[-1] + "." if self.stack else "") + "logits"),
                        _logits(*args, **kwargs), "logits", "attention logits")
        return func(*args, **kwargs)

    def forward(self, model: nn.Module, args: tuple, kwargs: dict) -> Any:
        self.seen.clear()
        self.stack.clear()
        with self:
            out = model(*args, **kwargs)
        self.record(OUTPUT, out, "output", type(model).__name__)
        return out

    def record(self, name: str, out: Any, kind: str, module_type: str) -> None:
        for suffix, x in _tensors(out):
            if x.is_floating_point():
                self._stat(name + suffix, x.detach(), kind, module_type)

    def _stat(self, name: str, x: torch.Tensor, kind: str, module_type: str) -> None:
        run = self.run
        x = x.float()
        if self.step == 0:
            self.first[name] = x.clone()
            run.kind[name], run.module_type[name], run.shape[name] = kind, module_type, tuple(
                x.shape)
            run.size[name], run.delta[name] = [], []
        x0 = self.first.get(name)
        if x0 is None or x0.shape != x.shape:  # a record that appeared after init: skip it
            return
        size = float(x.abs().mean())
        delta = float((x - x0).abs().mean()) if self.step else 0.0
        run.size[name].append(size)
        run.delta[name].append(delta)
        if self.bad is None and not (math.isfinite(size) and math.isfinite(delta)):
            self.bad = name

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def _logits(query: torch.Tensor, key: torch.Tensor, *args: Any, scale: float | None = None,
            **kwargs: Any) -> torch.Tensor:
    """``scale · q kᵀ`` as SDPA computes it (mask and dropout aside), key heads repeated for GQA."""
    if scale is None and len(args) > 4:  # (value, attn_mask, dropout_p, is_causal, scale)
        scale = args[4]
    with torch.no_grad():
        q, k = query.detach(), key.detach()
        if k.dim() >= 3 and q.dim() >= 3 and k.shape[-3] != q.shape[-3] and k.shape[-3]:
            k = k.repeat_interleave(q.shape[-3] // k.shape[-3], dim=-3)
        s = q.shape[-1] ** -0.5 if scale is None else scale
        return (q @ k.transpose(-2, -1)) * s


def _tensors(out: Any, prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor in a module's output, named ``[i]`` / ``[key]`` inside tuples and dicts."""
    if isinstance(out, torch.Tensor):
        yield prefix, out
    elif isinstance(out, (tuple, list)):
        for i, item in enumerate(out):
            yield from _tensors(item, f"{prefix}[{i}]")
    elif isinstance(out, dict):  # includes diffusers' ModelOutput
        for key, item in out.items():
            yield from _tensors(item, f"{prefix}[{key}]")


def _train(spec: ModelSpec, width: int, seed: int, steps: int, lr: float | None) -> _Run:
    """Build ``width`` with ``seed``; record a fixed batch at init and after every step.

    Eval mode throughout (dropout off): ``x_t − x_0`` must come from the weights alone. The
    loss is the mean squared error of every floating output against a fixed random target
    of its shape, drawn from ``seed`` only, so the target is the same at every width.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(spec, width, "cpu")
        args, kwargs = example_inputs(spec, width, "cpu")
        opt = _optimizer(spec, model, width, lr)
        run = _Run(optimizer=type(opt).__name__)
        model.eval()
        recorder = _Recorder(model, run)
        gen = torch.Generator().manual_seed(10_000 + seed)
        targets: list[torch.Tensor] | None = None
        names = {id(p): name for name, p in model.named_parameters()}
        waiting = {names.get(id(p), "?"): p for g in opt.param_groups for p in g["params"]
                   if p.requires_grad}
        step = 0
        try:
            for step in range(steps + 1):
                recorder.step = step
                out = recorder.forward(model, args, kwargs)
                outs = [x for _, x in _tensors(out) if x.is_floating_point() and x.requires_grad]
                if recorder.bad:
                    run.diverged = Divergence(width, seed, step, recorder.bad)
                    break
                if step == steps:
                    break
                if targets is None:
                    targets = [torch.randn(x.shape, generator=gen) for x in outs]
                loss = sum((F.mse_loss(x.float(), t) for x, t in zip(outs, targets, strict=True)),
                           torch.zeros(()))
                if not torch.isfinite(loss):
                    run.diverged = Divergence(width, seed, step, "loss")
                    break
                opt.zero_grad(set_to_none=True)
                loss.backward()
                moved = [k for k, p in waiting.items() if p.grad is not None and bool(p.grad.any())]
                for k in moved:  # trainable tensors whose gradient had been zero so far
                    del waiting[k]
                    run.all_moved = step + 1
                opt.step()
        except TpcheckError:
            raise
        except Exception as exc:  # the user's model: report with the width and step
            raise TpcheckError(
                f"training raised {type(exc).__name__} at width {width}, step {step}: {exc}",
                where=spec.label,
                fix="make factory(width), inputs(width) and optimizer(model) train on the CPU; "
                    "the model's output must depend on trainable parameters") from exc
        finally:
            recorder.remove()
        run.never_moved = tuple(waiting)
    return run


def _optimizer(spec: ModelSpec, model: nn.Module, width: int,
               lr: float | None) -> torch.optim.Optimizer:
    """The spec's optimizer; with ``lr``, every group scaled by ``lr / base LR``."""
    opt = spec.build_optimizer(model, width)
    if lr is not None:
        base = float(opt.defaults.get("lr") or 0.0)
        for group in opt.param_groups:  # keep μP's per-tensor ratios, move the base LR
            group["lr"] = group["lr"] * lr / base if base else lr
    return opt


# --------------------------------------------------------------------------- fitting


def _records(runs: dict[tuple[int, int], _Run], widths: tuple[int, ...], fitted: tuple[int, ...],
             seeds: int, steps: int, verdict_step: int, propagation: Any, sizes: Sizes | None,
             tolerance: float) -> tuple[Record, ...]:
    """Fit, predict and judge every activation recorded in all runs, in recording order."""
    ref = runs[widths[0], 0]
    names = [name for name in ref.size
             if all(name in runs[w, s].size for w in widths for s in range(seeds))]
    aliases: dict[str, list[str]] = {}
    for name in names:  # children are recorded before the module that wraps them
        path = _split_element(name)[0]
        twin = next((c for c in aliases if ref.kind[name] == "module" and ref.kind[c] == "module"
                     and c.startswith(path + ".") and _same(runs, c, name)), None)
        if twin is None:
            aliases[name] = []
        else:
            aliases[twin].append(name)
    out = []
    for name in aliases:
        # table[seed][t][width]: mean |x_t| ("size") or mean |x_t − x_0| ("delta")
        size, delta = (_table(runs, name, what, widths, seeds, steps) for what in ("size",
                                                                                  "delta"))
        size_slope = _slope_over_seeds([dict(zip(widths, size[s][0], strict=True))
                                        for s in range(seeds)], fitted)
        update_slopes = tuple(_slope_over_seeds([dict(zip(widths, delta[s][t], strict=True))
                                                 for s in range(seeds)], fitted)
                              for t in range(1, steps + 1))
        pred = _at_these_widths(_prediction(propagation, ref, name, widths[0]), ref.kind[name],
                                sizes, fitted, tolerance)
        out.append(Record(
            name, ref.kind[name], ref.module_type[name], ref.shape[name],
            size=_seed_mean(size, range(steps + 1)), update=_seed_mean(delta, range(1, steps + 1)),
            size_slope=size_slope, update_slopes=update_slopes, prediction=pred,
            signature=ref.signature.get(_split_element(name)[0], ref.module_type[name]),
            size_verdict=_size_verdict(pred, size_slope, tolerance),
            update_verdict=_update_verdict(pred.u, update_slopes[verdict_step - 1], tolerance,
                                           pred.node),
            aliases=tuple(aliases[name])))
    return tuple(out)


def _table(runs: dict[tuple[int, int], _Run], name: str, what: str, widths: tuple[int, ...],
           seeds: int, steps: int) -> list[list[list[float]]]:
    """``[seed][t][width]`` values of one record; NaN after a run stopped (diverged)."""
    def value(w: int, s: int, t: int) -> float:
        got = getattr(runs[w, s], what)[name]
        return got[t] if t < len(got) else math.nan

    return [[[value(w, s, t) for w in widths] for t in range(steps + 1)] for s in range(seeds)]


def _seed_mean(table: list[list[list[float]]], steps: range) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(statistics.fmean(seed[t][i] for seed in table)
                       for i in range(len(table[0][t]))) for t in steps)


def _same(runs: dict[tuple[int, int], _Run], a: str, b: str) -> bool:
    """Whether records ``a`` and ``b`` measured the same numbers in every run."""
    for run in runs.values():
        for table in (run.size, run.delta):
            xs, ys = table[a], table[b]
            if len(xs) != len(ys) or not all(
                    math.isclose(x, y, rel_tol=1e-5, abs_tol=1e-12) for x, y in zip(xs, ys,
                                                                                     strict=True)):
                return False
    return True


def _slope(values: dict[int, float], widths: tuple[int, ...]) -> float:
    """Least-squares slope of log(value) against log(width); -inf if all zero, else NaN."""
    ys = [values[w] for w in widths]
    if len(widths) < 3 or any(not math.isfinite(y) for y in ys):
        return math.nan
    return local_slope(np.asarray(ys, dtype=float), widths)


def _slope_over_seeds(per_seed: list[dict[int, float]], widths: tuple[int, ...]) -> Slope:
    slopes = [_slope(v, widths) for v in per_seed]
    if any(math.isnan(s) for s in slopes):
        return Slope(math.nan, math.nan)
    if all(s == -math.inf for s in slopes):
        return Slope(-math.inf, 0.0)
    if any(s == -math.inf for s in slopes):  # zero for some seeds only: no clean slope
        return Slope(math.nan, math.nan)
    spread = statistics.stdev(slopes) if len(slopes) > 1 else 0.0
    return Slope(statistics.fmean(slopes), spread)


def _size_verdict(pred: Prediction, slope: Slope, tolerance: float) -> str:
    """The init size: the measured slope within ``tolerance`` of the slope the static analysis
    predicts over the measured widths (``s_here``, or ``s`` where constants are unknown)."""
    early = _undecided(pred.s, slope, pred.node)
    if early:
        return early
    target = pred.s_here if pred.s_here is not None and math.isfinite(pred.s_here) else float(
        pred.s)
    return "agree" if abs(slope.mean - target) <= tolerance else "disagree"


def _update_verdict(pred: sympy.Expr | None, slope: Slope, tolerance: float,
                    node: str | None) -> str:
    """The update: the same regime as ``u`` — Θ(1) (|slope| ≤ tolerance), grows, or shrinks.

    ``u`` is a one-step, leading-order exponent; after the few steps a coord check takes, at
    widths where lower-order terms still compete, the slope of a growing update lands anywhere
    above the tolerance, so the verdict is on the regime; the JSON keeps both numbers.
    """
    early = _undecided(pred, slope, node)
    if early:
        return early
    return "agree" if _regime(slope.mean, tolerance) == _regime(float(pred), 0.0) else "disagree"


def _regime(exponent: float, tolerance: float) -> str:
    """``grows``, ``shrinks`` or ``Θ(1)``: where an exponent sits against ±tolerance."""
    if exponent > tolerance:
        return "grows"
    return "shrinks" if exponent < -tolerance else "Θ(1)"


def _undecided(pred: sympy.Expr | None, slope: Slope, node: str | None) -> str | None:
    """The verdict where there is nothing to compare, else None.

    A prediction of −∞ (exactly zero: a zero init, nothing trainable upstream) agrees with a
    measurement that is exactly zero; against anything else it says nothing quantitative.
    """
    if node is None or pred is None or pred is sympy.nan or pred == sympy.oo:
        return "not predicted"
    if pred == -sympy.oo:
        return "agree" if slope.mean == -math.inf else "not predicted"
    if math.isnan(slope.mean):
        return "not measured"
    if slope.mean == -math.inf:  # a size was predicted, the activation stayed exactly zero
        return "disagree"
    return None


# --------------------------------------------------------------------------- prediction


def _prediction(propagation: Any, run: _Run, name: str, width: int) -> Prediction:
    """The static (s, u) of the graph node that computes record ``name``.

    A module's output is the last node, in graph order, inside that module (its own ops or
    its submodules') with the recorded shape; logits are the k-th SDPA call of the module.
    """
    if propagation is None:
        return Prediction(None, why="no static analysis")
    path, element = _split_element(name)
    kind = run.kind[name]
    if kind == "module" and run.calls[path.partition("@")[0]] > 1:
        return Prediction(None, why="module called several times per forward: the graph does "
                                    "not say which node ends which call")
    nodes = propagation.nodes
    graph = propagation.measurement.classification.graph
    if kind == "output":
        index = int(element[1:-1]) if element[1:-1].isdigit() else 0
        outs = [o for o in propagation.outputs if o in nodes]
        node = outs[index] if index < len(outs) else None
    elif kind == "logits":
        return _logits_prediction(propagation, name)
    else:
        inside = [k for k, ne in nodes.items()
                  if ne.module == path or ne.module.startswith(path + ".")]
        matches = [k for k in inside if _shape_at(graph, k, width) == run.shape[name]]
        node = matches[-1] if matches else None
        shapes = [run.shape[k] for k in run.shape if _split_element(k)[0] == path]
        if shapes.count(run.shape[name]) > 1:
            # several outputs of one shape (adaLN's shift/scale/gate chunks): the graph does
            # not say which is which, but if every node leaving the module predicts the same,
            # the prediction does not depend on it
            leaving = [k for k in matches if any(
                not (nodes[v].module == path or nodes[v].module.startswith(path + "."))
                for v, _ in graph.users(k) if v in nodes) or k in propagation.outputs]
            if len({(nodes[k].s, nodes[k].u) for k in leaving}) != 1:
                return Prediction(None, why="several outputs of the same shape")
            node = leaving[-1]
    if node is None:
        return Prediction(None, why="no graph node with this module and shape")
    return Prediction(node, nodes[node].s, nodes[node].u)


def _at_these_widths(pred: Prediction, kind: str, sizes: Sizes | None, widths: tuple[int, ...],
                     tolerance: float) -> Prediction:
    """Add the finite-width slope of the init size, and the width where ``s`` takes over."""
    if sizes is None or pred.node is None or pred.s is None:
        return pred
    table = sizes.logits if kind == "logits" else sizes.nodes
    values = table.get(pred.node)
    if values is None:
        return pred
    here = local_slope(values[[sizes.widths.index(w) for w in widths]], widths)
    s_from = None
    if pred.s.is_finite and abs(here - float(pred.s)) > tolerance:
        s_from = crossover_width(values, sizes.widths, float(pred.s), tolerance)
    return replace(pred, s_here=here, s_from=s_from)


def _logits_prediction(propagation: Any, name: str) -> Prediction:
    from tpcheck.propagate import Exp, logits_exponents

    path, _, call = name.partition("@")
    module = path.removesuffix("logits").removesuffix(".")
    k = int(call) if call else 1
    graph = propagation.measurement.classification.graph
    sdpa = [nm for nm, ne in propagation.nodes.items()
            if ne.module == module and graph.node(nm).target.startswith(
                "aten.scaled_dot_product_attention")]
    if len(sdpa) < k:
        return Prediction(None, why="no SDPA node in this module")
    node = graph.node(sdpa[k - 1])
    q, key = (propagation.nodes[node.args[i].name] for i in (0, 1))
    s, u = logits_exponents(graph, node, Exp(q.s, q.u), Exp(key.s, key.u))
    return Prediction(node.name, s, u)


def _split_element(name: str) -> tuple[str, str]:
    """``blocks.0[1]`` → (``blocks.0``, ``[1]``)."""
    cut = name.find("[")
    return (name, "") if cut < 0 else (name[:cut], name[cut:])


def _shape_at(graph: Any, node: str, width: int) -> tuple[int, ...] | None:
    shape = graph.shape(node)
    if shape is None or any(d is None for d in shape):
        return None
    return tuple(int(d.subs(N, width)) for d in shape)


# --------------------------------------------------------------------------- helpers


def _num(x: float | None) -> float | str | None:
    """A float for JSON: None or NaN → null, ±∞ → "inf" / "-inf"."""
    if x is None or math.isnan(x):
        return None
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def _exp(x: sympy.Expr | None) -> float | int | str | None:
    if x is None:
        return None
    if x is sympy.nan:
        return "nan"
    if x == sympy.oo or x == -sympy.oo:
        return "inf" if x == sympy.oo else "-inf"
    return int(x) if isinstance(x, sympy.Integer) else float(x)


def _here(p: Prediction, tolerance: float) -> str:
    """``s_here`` for the table, with the width where the leading exponent takes over."""
    if p.s_here is None or math.isnan(p.s_here):
        return "—"
    if p.s_here == -math.inf:
        return "zero"
    text = f"{p.s_here:+.2f}"
    if p.s_from:
        text += f" (s from n≈{_short(p.s_from)})"
    elif p.s is not None and p.s.is_finite and abs(p.s_here - float(p.s)) > tolerance:
        text += f" (s beyond n≈{_short(FAR_WIDTHS[-1])})"
    return text


def _short(width: int) -> str:
    return f"{width / 1000:.0f}k" if width >= 10_000 else f"{width:,}"


def _pretty(x: sympy.Expr | None) -> str:
    if x is None:
        return "—"
    if x == -sympy.oo:
        return "zero"
    return str(x).replace("oo", "∞")


# --------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``tpcheck coord`` arguments (the subcommand is wired in :mod:`tpcheck.cli`)."""
    parser.add_argument("target", metavar="TARGET",
                        help="built-in name (dit, uvit, pixart, mmdit, ...), package.module:attr "
                             "or path/to/file.py:attr")
    parser.add_argument("--plan", default=None, metavar="PLAN.json",
                        help="check TARGET converted by this plan (tpcheck convert) instead")
    from tpcheck.cli import parse_widths  # the one --widths parser of every subcommand

    parser.add_argument("--widths", type=parse_widths, default=None,
                        help="comma-separated widths (≥ 3; default: the spec's), "
                             "e.g. 64,96,128,192,256")
    parser.add_argument("--steps", type=int, default=4, help="optimizer steps (default 4)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per width (default 3)")
    parser.add_argument("--lr", type=float, default=None,
                        help="base learning rate (every param group rescaled; default: the "
                             "spec's optimizer as it is)")
    parser.add_argument("--tolerance", type=float, default=TOLERANCE,
                        help=f"largest |measured − predicted| size slope that agrees, and the "
                             f"band around 0 that counts as Θ(1) (default {TOLERANCE})")
    parser.add_argument("-o", "--output", default=None, metavar="PNG",
                        help="write the coord-check plot here (needs tpcheck[plots])")
    parser.add_argument("--format", choices=("text", "json"), default="text")


def run(args: argparse.Namespace) -> int:
    """``tpcheck coord``: 0 it ran, 1 a width diverged, 2 (TpcheckError) bad input."""
    from tpcheck.spec import load_target

    if args.output:  # fail before minutes of training, not after
        from tpcheck.coordplot import require_matplotlib

        require_matplotlib()
    spec = load_target(args.target)
    plan = None
    if args.plan:
        try:
            from tpcheck.convert import Plan
        except ImportError as exc:
            raise TpcheckError(f"--plan needs tpcheck.convert, which cannot be imported: {exc}",
                               fix="update tpcheck, or check a μP ModelSpec as TARGET") from exc
        plan = Plan.load(args.plan)
    result = coord_check(spec, widths=args.widths, steps=args.steps, seeds=args.seeds,
                         lr=args.lr, plan=plan, tolerance=args.tolerance)
    if args.output:
        from tpcheck.coordplot import plot

        plot(result, args.output)
    if args.format == "json":
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(result.to_text())
        if args.output:
            print(f"plot: {args.output}")
    if result.divergences:
        print(f"tpcheck: {len(result.divergences)} run(s) diverged", file=sys.stderr)
    return result.exit_code
