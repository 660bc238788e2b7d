"""The lint pipeline, stage after stage: spec → capture → widths → graph → classify →
measure → propagate → check → report. Each stage only reads the previous stage's output."""

from __future__ import annotations

import time

from tpcheck import capture as capture_stage
from tpcheck import check as check_stage
from tpcheck import classify as classify_stage
from tpcheck import graph as graph_stage
from tpcheck import measure as measure_stage
from tpcheck import propagate as propagate_stage
from tpcheck import widths as widths_stage
from tpcheck.classify import Classification
from tpcheck.report import Report
from tpcheck.rules import selected
from tpcheck.spec import ModelSpec


def analyze(spec: ModelSpec, *, device: str = "auto", tracer: str = "record") -> Classification:
    """Trace ``spec`` at every width and classify every parameter (no real weights needed)."""
    captured = capture_stage.capture(spec, device=device, tracer=tracer)
    shapes = widths_stage.fit(captured)
    return classify_stage.classify(graph_stage.build(shapes))


def classify_only(spec: ModelSpec, *, device: str = "auto", tracer: str = "record") -> Report:
    """The tensors table alone: roles and fans, no measurement (``tpcheck lint --roles-only``)."""
    start = time.perf_counter()
    classification = analyze(spec, device=device, tracer=tracer)
    return Report.from_classification(classification, seconds=time.perf_counter() - start)


def lint(spec: ModelSpec, *, select: list[str] | None = None, ignore: list[str] | None = None,
         ignores: tuple[check_stage.Ignore, ...] = (), device: str = "auto",
         tracer: str = "record", sample: bool = False, seeds: int = 2) -> Report:
    """Run every stage on ``spec`` and return the report (the user's model object is never
    touched: tpcheck builds its own, on the meta device where it can)."""
    start = time.perf_counter()
    classification = analyze(spec, device=device, tracer=tracer)
    measurement = measure_stage.measure(spec, classification, seeds=seeds, sample=sample)
    propagation = propagate_stage.propagate(measurement)
    findings = check_stage.check(propagation, selected(select, ignore), ignores)
    return Report.from_propagation(propagation, findings,
                                   seconds=time.perf_counter() - start)
