"""``tpcheck.assert_mup``: lint as an assertion, for a project's own test suite.

A failure is :class:`NotMuP`, an ``AssertionError`` whose message is the lint report's
findings exactly as ``tpcheck lint`` prints them (the pytest plugin shows that text alone,
without a traceback through tpcheck). No pytest import here: any test runner can use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tpcheck.config import Config
    from tpcheck.report import Report
    from tpcheck.spec import ModelSpec


class NotMuP(AssertionError):
    """A model lint finds errors in (or warnings, with ``strict=True``); ``report`` has them."""

    def __init__(self, report: Report, strict: bool = False) -> None:
        self.report = report
        self.strict = strict
        super().__init__(report.to_text(tensors=False))


def assert_mup(spec: ModelSpec | str, *, ignore: Sequence[str] = (),
               select: Sequence[str] | None = None, widths: Sequence[int] | None = None,
               plan: Any = None, strict: bool = False, config: Config | None = None,
               **lint_options: Any) -> Report:
    """Lint ``spec`` and raise :class:`NotMuP` if it has errors (with ``strict``, warnings too).

    ``spec`` is a :class:`~tpcheck.ModelSpec` or any target ``tpcheck lint`` accepts
    (``"dit"``, ``"mypkg.models:spec"``, ``"diffusers:SD3Transformer2DModel"``); ``plan`` (a
    :class:`~tpcheck.Plan` or a path to its JSON) lints the model with the plan applied;
    ``config`` (from :func:`tpcheck.config.load_config`) adds a project's widths, rule choice
    and per-tensor ignores, as the CLI does. Returns the report when the model passes.
    """
    from tpcheck.pipeline import lint
    from tpcheck.plan import Plan
    from tpcheck.targets import load_target

    if isinstance(spec, str):
        spec = load_target(spec)
    if isinstance(plan, str):
        plan = Plan.load(plan)
    if plan is not None:
        spec = plan.spec(spec)
    widths = widths or (config.widths if config else None)
    if widths:
        spec = spec.with_widths(widths)
    select = list(select) if select else (config.select if config else None)
    ignored = [*ignore, *(config.ignore if config else ())]
    ignores = config.per_tensor_ignores if config else ()
    report = lint(spec, select=select, ignore=ignored or None, ignores=ignores, **lint_options)
    if report.exit_code or (strict and report.counts["warning"]):
        raise NotMuP(report, strict)
    return report
