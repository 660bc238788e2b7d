"""``tpcheck coord``: train each width a few steps and compare the measured activation and
update sizes with lint's prediction; ``--fail-under`` turns the agreement into a CI gate."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tpcheck.cli.common import (
    EXIT_FINDINGS,
    Output,
    parse_widths,
    positive_float,
    positive_int,
    progress,
    quiet_argument,
    rate,
    target_arguments,
    target_options,
)

#: Default of ``--tolerance`` (tpcheck.coord.judge.TOLERANCE, repeated so --help stays cheap;
#: a test keeps the two equal).
TOLERANCE = 0.25


def register(sub: Any) -> None:
    p = sub.add_parser("coord", help="coordinate check: measure activation and update sizes "
                                     "across widths and compare them with lint's prediction",
                       description="Train TARGET a few steps at each width and compare the "
                                   "measured size and update exponents of every activation "
                                   "with lint's static prediction. Exit 0: it ran; 1: a width "
                                   "diverged, or the agreement is under --fail-under; 2: bad "
                                   "input.")
    p.add_argument("target", metavar="TARGET",
                   help="built-in name (dit, uvit, pixart, mmdit, ...), diffusers:Class, "
                        "package.module:attr or path/to/file.py:attr")
    p.add_argument("--plan", default=None, metavar="PLAN.json",
                   help="check TARGET converted by this plan (tpcheck convert) instead")
    p.add_argument("--widths", type=parse_widths, default=None,
                   help="comma-separated widths (≥ 3; default: the spec's), "
                        "e.g. 64,96,128,192,256")
    p.add_argument("--steps", type=positive_int, default=4,
                   help="optimizer steps (default 4; fewer than 3 leave tensors behind zero "
                        "readouts without a gradient)")
    p.add_argument("--seeds", type=positive_int, default=3, help="seeds per width (default 3)")
    p.add_argument("--lr", type=positive_float, default=None,
                   help="base learning rate (every param group rescaled; default: the "
                        "spec's optimizer as it is)")
    p.add_argument("--tolerance", type=positive_float, default=TOLERANCE,
                   help=f"largest |measured − predicted| size slope that agrees, and the "
                        f"band around 0 that counts as Θ(1) (default {TOLERANCE})")
    p.add_argument("--fail-under", type=rate, default=None, metavar="RATE",
                   help="exit 1 when fewer than RATE of the predicted activations agree "
                        "(0.95 or 95%%): the coord check as a CI gate")
    p.add_argument("-o", "--output", default=None, metavar="PNG",
                   help="write the coord-check plot here (needs tpcheck[plots])")
    p.add_argument("--format", choices=("text", "json"), default="text")
    quiet_argument(p)
    target_arguments(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """0 it ran, 1 a width diverged or the agreement is under --fail-under, 2 bad input."""
    from tpcheck.targets import load_target

    output = Output(args.output, "plot")  # fail before minutes of training, not after
    if output.path is not None:
        from tpcheck.coord.plot import require_matplotlib

        require_matplotlib()
    plan = None
    if args.plan:
        from tpcheck.plan import Plan

        plan = Plan.load(args.plan)
    show = progress(args)
    try:
        show(f"{args.target}: loading")
        spec = load_target(args.target, target_options(args))
        from tpcheck.coord import coord_check

        result = coord_check(spec, widths=args.widths, steps=args.steps, seeds=args.seeds,
                             lr=args.lr, plan=plan, tolerance=args.tolerance,
                             progress=lambda m: show(f"{args.target}: {m}"))
    finally:
        show.done()
    if output.path is not None:
        from tpcheck.coord.plot import plot

        plot(result, str(output.path))
    if args.format == "json":
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(result.to_text())
        if output.path is not None:
            print(f"plot: {args.output}")
    code = result.exit_code
    if result.divergences:
        print(f"tpcheck: {len(result.divergences)} run(s) diverged", file=sys.stderr)
    if args.fail_under is not None:
        agreement = result.agreement_rate
        if agreement is None:
            print("tpcheck: --fail-under: no activation was both predicted and measured, so "
                  "there is no agreement to gate on", file=sys.stderr)
            code = EXIT_FINDINGS
        elif agreement < args.fail_under:
            print(f"tpcheck: agreement {100 * agreement:.1f}% is under --fail-under "
                  f"{100 * args.fail_under:.1f}%", file=sys.stderr)
            code = EXIT_FINDINGS
    return code
