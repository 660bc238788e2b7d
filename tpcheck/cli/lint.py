"""``tpcheck lint``: every target of the run into one report (text, JSON or SARIF), the
worst target's exit code."""

from __future__ import annotations

import argparse
from typing import Any

from tpcheck.cli.common import (
    Output,
    parse_widths,
    progress,
    quiet_argument,
    split,
    target_arguments,
    target_options,
)
from tpcheck.errors import TpcheckError


def register(sub: Any) -> None:
    p = sub.add_parser("lint", help="check a model's parametrization against μP",
                       description="Trace each TARGET at several widths, classify every weight "
                                   "and report every departure from μP. Exit 0: no errors; "
                                   "1: errors found; 2: the input could not be used.")
    p.add_argument("targets", nargs="*", metavar="TARGET",
                   help="built-in name (dit, uvit, pixart, mmdit, ...), diffusers:Class, "
                        "package.module:attr or path/to/file.py:attr; default: the "
                        "[tool.tpcheck] targets")
    p.add_argument("--format", choices=("text", "json", "sarif"), default=None,
                   help="text (default), json (docs/report.schema.json) or sarif (SARIF "
                        "2.1.0, for code scanning); one document for all targets")
    p.add_argument("-o", "--output", default=None, metavar="FILE",
                   help="write the report here (checked writable before tracing starts)")
    p.add_argument("--widths", type=parse_widths, default=None,
                   help="comma-separated widths to trace, e.g. 64,128,256")
    p.add_argument("--select", action="append", default=None, metavar="RULE",
                   help="only these rules (code, prefix or name); repeatable or comma-separated")
    p.add_argument("--ignore", action="append", default=None, metavar="RULE",
                   help="skip these rules; repeatable or comma-separated")
    p.add_argument("--plan", default=None, metavar="PLAN.json",
                   help="lint the model with this μP plan applied (from `tpcheck convert`)")
    p.add_argument("--roles-only", action="store_true",
                   help="only trace and classify: the tensor table, no measurement or rules")
    p.add_argument("--no-tensors", action="store_true",
                   help="text format: print findings only, not the tensor table")
    p.add_argument("--device", choices=("auto", "meta", "cpu"), default="auto",
                   help="where to build models for tracing (default: meta, else cpu)")
    p.add_argument("--tracer", choices=("record", "export"), default="record",
                   help="record: run the forward eagerly and record every torch call "
                        "(default); export: torch.export, as a second opinion")
    p.add_argument("--sample", action="store_true",
                   help="sample every init on real CPU weights at every width instead of "
                        "reading it from the init calls (slow; a cross-check)")
    p.add_argument("--pyproject", default=None, metavar="PATH",
                   help="pyproject.toml to read [tool.tpcheck] from (default: the nearest)")
    quiet_argument(p)
    target_arguments(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tpcheck.config import load_config
    from tpcheck.rules import selected

    config = load_config(args.pyproject)
    targets = args.targets or list(config.targets)
    if not targets:
        raise TpcheckError("no TARGET given and no [tool.tpcheck] targets configured.",
                           fix="run e.g. `tpcheck lint dit`, or set targets = [...] under "
                               "[tool.tpcheck] in pyproject.toml")
    fmt = args.format or config.format or "text"
    output = Output(args.output, "report")
    select = split(args.select) or config.select or None
    ignore = (split(args.ignore) or []) + list(config.ignore)
    selected(select, ignore)  # an unknown code is bad input: say so before tracing
    widths = args.widths or config.widths
    plan = _load_plan(args.plan)
    options = target_options(args, widths)
    _check_class_options(targets, options)
    show = progress(args)
    reports = []
    try:
        for i, target in enumerate(targets):
            prefix = f"{target} ({i + 1}/{len(targets)}): " if len(targets) > 1 else f"{target}: "
            show(prefix + "loading")
            reports.append(_lint_one(target, args, options, widths, plan, select, ignore,
                                     config, lambda m, p=prefix: show(p + m),
                                     strict=len(targets) == 1))
    finally:
        show.done()
    from tpcheck.runreport import RunReport

    run_report = RunReport(tuple(reports))
    text = run_report.render(fmt, tensors=not args.no_tensors)
    if output.path is not None:
        output.write(text + "\n")
        c = run_report.counts
        print(f"tpcheck: {fmt} report written to {args.output} ({c['error']} error(s), "
              f"{c['warning']} warning(s))")
    else:
        print(text)
    return run_report.exit_code


def _check_class_options(targets: list[str], options: Any) -> None:
    """Several targets: model-class options are for the class targets among them, so at least
    one must be one (a single target is checked when it loads)."""
    from tpcheck.models import registry
    from tpcheck.targets import refuse_class_options

    if len(targets) > 1 and all(t in registry.BUILTINS for t in targets):
        refuse_class_options(options, "every TARGET here is a built-in")


def _load_plan(path: str | None) -> Any:
    if not path:
        return None
    from tpcheck.plan import Plan

    return Plan.load(path)


def _lint_one(target: str, args: argparse.Namespace, options: Any, widths: Any, plan: Any,
              select: Any, ignore: Any, config: Any, show: Any, strict: bool) -> Any:
    from tpcheck.pipeline import classify_only, lint
    from tpcheck.targets import load_target

    spec = load_target(target, options, strict=strict)
    if widths:
        spec = spec.with_widths(widths)
    if plan is not None:
        spec = plan.spec(spec)
    if args.roles_only:
        return classify_only(spec, device=args.device, tracer=args.tracer, progress=show)
    return lint(spec, select=select, ignore=ignore, ignores=config.per_tensor_ignores,
                device=args.device, tracer=args.tracer, sample=args.sample, progress=show)
