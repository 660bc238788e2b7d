"""The lint pipeline, stage after stage: spec → capture → widths → graph → classify →
measure → propagate → check → suppress → report. Each stage only reads the previous stage's
output.

Every stage runs inside :func:`tpcheck.errors.stage`: the user's mistakes are already
:class:`~tpcheck.errors.TpcheckError`\\ s naming their source line, and anything else that
escapes is a bug in tpcheck, reported as one (exit 2, never a bare traceback).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tpcheck import capture as capture_stage
from tpcheck import check as check_stage
from tpcheck import classify as classify_stage
from tpcheck import graph as graph_stage
from tpcheck import measure as measure_stage
from tpcheck import propagate as propagate_stage
from tpcheck import suppress as suppress_stage
from tpcheck import widths as widths_stage
from tpcheck.classify import Classification
from tpcheck.errors import stage
from tpcheck.report import Report
from tpcheck.rules import selected
from tpcheck.spec import ModelSpec

Progress = Callable[[str], None]


def analyze(spec: ModelSpec, *, device: str = "auto", tracer: str = "record",
            progress: Progress | None = None) -> Classification:
    """Trace ``spec`` at every width and classify every parameter (no real weights needed)."""
    target = spec.label
    with stage("capture", target):
        captured = capture_stage.capture(spec, device=device, tracer=tracer, progress=progress)
    with stage("widths", target):
        shapes = widths_stage.fit(captured)
    with stage("graph", target):
        graph = graph_stage.build(shapes)
    with stage("classify", target):
        return classify_stage.classify(graph)


def classify_only(spec: ModelSpec, *, device: str = "auto", tracer: str = "record",
                  progress: Progress | None = None) -> Report:
    """The tensors table alone: roles and fans, no measurement (``tpcheck lint --roles-only``)."""
    start = time.perf_counter()
    classification = analyze(spec, device=device, tracer=tracer, progress=progress)
    with stage("report", spec.label):
        return Report.from_classification(classification, seconds=time.perf_counter() - start)


def lint(spec: ModelSpec, *, select: list[str] | None = None, ignore: list[str] | None = None,
         ignores: tuple[suppress_stage.Ignore, ...] = (), device: str = "auto",
         tracer: str = "record", sample: bool = False, seeds: int = 2,
         progress: Progress | None = None) -> Report:
    """Run every stage on ``spec`` and return the report (the user's model object is never
    touched: tpcheck builds its own, on the meta device where it can)."""
    start = time.perf_counter()
    rules = selected(select, ignore)
    classification = analyze(spec, device=device, tracer=tracer, progress=progress)
    target = spec.label
    if progress:
        progress("measuring and checking")
    with stage("measure", target):
        measurement = measure_stage.measure(spec, classification, seeds=seeds, sample=sample)
    with stage("propagate", target):
        propagation = propagate_stage.propagate(measurement)
    with stage("check", target):
        findings = check_stage.check(propagation, rules)
    with stage("suppress", target):
        kept = suppress_stage.suppress(findings, ignores, _lines(classification), rules)
    with stage("report", target):
        return Report.from_propagation(propagation, list(kept.findings),
                                       suppressed=kept.suppressed,
                                       seconds=time.perf_counter() - start)


def _lines(classification: Classification) -> dict[str, str | None]:
    """Every ``file:line`` where the model defines a parameter (its name) or runs an op."""
    lines: dict[str, str | None] = {}
    for t in classification.tensors.values():  # a Linear's weight and bias: the weight
        if t.defined_at:
            lines.setdefault(t.defined_at, t.name)
    for node in classification.graph.shapes.nodes:
        if node.source:
            lines.setdefault(node.source, None)
    return lines
