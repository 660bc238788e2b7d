"""Coord check: train each width a few steps, compare measured exponents with the static ones.

The static pipeline predicts, for every activation, the exponent ``s`` of its coordinate size at
init and ``u`` of its change after one step (docs/theory.md §4). This stage measures both on real
models, as the μP papers' "coordinate check" does (TP5 App. D.1): build each width, run one
fixed batch, record the mean ``|x_0|`` of every module output (and of the attention logits),
take ``steps`` optimizer steps on a fixed target, and after each step record
``mean |x_t − x_0|`` on the same batch. A log-log slope against ``n`` per seed gives the measured
``s`` and ``u`` with their spread over seeds, and each activation gets a verdict beside the
prediction. A disagreement is shown, never hidden: a static rule that is wrong, or an effect that
leading-order exponents do not see at these widths (a lower-order term with a much larger
constant, saturation of a normalised or softmaxed activation, a gradient that is still zero).

Exit codes of ``tpcheck coord``: 0 it ran (disagreements are in the report), 1 a width diverged
(NaN/inf; the width, seed and step are reported) or, with ``--fail-under RATE``, fewer than
RATE of the predicted activations agree, 2 bad input (too few widths, a factory or
forward that raises, a missing plot dependency).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Sequence
from typing import Any

from tpcheck.coord import judge
from tpcheck.coord.judge import TOLERANCE
from tpcheck.coord.record import train
from tpcheck.coord.report import CoordResult, Divergence, Prediction, Record, Slope
from tpcheck.errors import TpcheckError
from tpcheck.sizes import FAR_WIDTHS, node_sizes
from tpcheck.spec import ModelSpec

#: Fewer steps than this leave the tensors behind DiT's zero readout and adaLN-Zero gates
#: without a gradient for most of the run (each zero layer holds the gradient one step).
TRUSTED_STEPS = 3

__all__ = [
    "TOLERANCE",
    "TRUSTED_STEPS",
    "CoordResult",
    "Divergence",
    "Prediction",
    "Record",
    "Slope",
    "coord_check",
    "plan_spec",
]


def coord_check(spec: ModelSpec, *, widths: Sequence[int] | None = None, steps: int = 4,
                seeds: int = 3, lr: float | None = None, plan: Any = None,
                tolerance: float = TOLERANCE, static: bool = True,
                progress: Callable[[str], None] | None = None) -> CoordResult:
    """Measure ``s`` and ``u`` of every module output of ``spec`` and compare with the lint's.

    ``plan`` (a ``tpcheck.Plan``) checks the μP version of ``spec`` instead; ``lr``
    rescales every param group so that the optimizer's base LR is ``lr`` (per-tensor ratios,
    as μP sets them, are kept); ``static=False`` skips the prediction (measure only);
    ``progress`` hears each stage and each training run as it starts.
    """
    show = progress or (lambda message: None)
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
        show("static prediction (lint's propagation)")
        try:
            propagation = _static(spec)
        except TpcheckError as exc:  # the measurement stands on its own
            notes.append(f"no static prediction: {exc.what}")
    runs = {}
    for s in range(seeds):
        for w in widths:
            show(f"training width {w}, seed {s} ({len(runs) + 1}/{len(widths) * seeds})")
            runs[w, s] = train(spec, w, s, steps, lr)
    if len({runs[w, 0].parameters for w in widths}) == 1:
        raise TpcheckError(
            f"the model has {runs[widths[0], 0].parameters:,} parameters at every width "
            f"({'/'.join(map(str, widths))}): its size does not depend on the width.",
            where=spec.label,
            fix="make factory(width) build the model at hidden size `width` (the factory's "
                "argument is the width n; it is ignored now)")
    optimizer = runs[widths[0], 0].optimizer
    divergences = tuple(r.diverged for r in runs.values() if r.diverged)
    fitted = tuple(w for w in widths if not any(runs[w, s].diverged for s in range(seeds)))
    if len(fitted) < len(widths):
        notes.append("slopes are fitted on the widths that did not diverge: "
                     + "/".join(map(str, fitted)))
    verdict_step = max(r.all_moved for r in runs.values())
    never = sorted({name for r in runs.values() if not r.diverged for name in r.never_moved})
    if steps < TRUSTED_STEPS and (never or verdict_step == steps > 1):
        notes.append(f"use --steps ≥ {TRUSTED_STEPS}: in {steps} step(s) the gradient did not "
                     "reach every tensor with room to spare (zero-initialised readouts and "
                     "gates block it for the first steps), so update verdicts mean little")
    if never:
        notes.append(f"{len(never)} trainable tensors had a zero gradient in all {steps} steps "
                     f"(unused, or behind more zero-initialised layers than steps): "
                     + ", ".join(never[:4]) + (" ..." if len(never) > 4 else ""))
    sizes = None
    if propagation is not None and len(fitted) >= 3:
        sizes = node_sizes(propagation.measurement, sorted(set(fitted) | set(FAR_WIDTHS)))
    found = judge.records(runs, widths, fitted, seeds, steps, verdict_step, propagation, sizes,
                          tolerance)
    return CoordResult(spec.label, widths, steps, seeds, lr, optimizer, tolerance, verdict_step,
                       found, divergences, time.perf_counter() - start, tuple(notes))


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
