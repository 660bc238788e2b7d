"""``tpcheck convert``: a model's μP Plan (init, LR / weight-decay / ε multipliers, attention
scale), verified to lint clean, written before anything is printed."""

from __future__ import annotations

import argparse
from typing import Any

from tpcheck.cli.common import (
    EXIT_CLEAN,
    Output,
    parse_widths,
    positive_int,
    progress,
    quiet_argument,
    target_arguments,
    target_options,
)
from tpcheck.errors import TpcheckError


def register(sub: Any) -> None:
    p = sub.add_parser("convert", help="make a μP plan for a model (init, LR, wd, ε)",
                       description="Write the μP Plan of TARGET: which init, learning-rate, "
                                   "weight-decay and ε multipliers each tensor gets, and the "
                                   "attention scale. The plan is verified to lint clean.")
    p.add_argument("target", metavar="TARGET")
    p.add_argument("-o", "--output", default=None, metavar="PLAN.json",
                   help="write the plan JSON here (checked writable before the work starts; "
                        "written before the summary is printed)")
    p.add_argument("--style", choices=("init-lr", "multiplier"), default="init-lr",
                   help="init-lr: only init and optimizer groups change (default); "
                        "multiplier: readouts get a forward multiplier 1/m (mup's form)")
    p.add_argument("--base-width", type=positive_int, default=None,
                   help="width at which the μP model equals the original (default: the "
                        "spec's base width)")
    p.add_argument("--zero-readout", action="store_true",
                   help="zero-initialise output weights (Tensor Programs V, App. D.2)")
    p.add_argument("--width", type=positive_int, default=None,
                   help="show the changes at this width (default: the largest traced)")
    p.add_argument("--widths", type=parse_widths, default=None,
                   help="comma-separated widths to trace, e.g. 64,128,256")
    p.add_argument("--no-verify", action="store_true",
                   help="do not lint the converted model before writing the plan")
    quiet_argument(p)
    target_arguments(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tpcheck.conversion import convert
    from tpcheck.targets import load_target

    output = Output(args.output, "plan")
    show = progress(args)
    try:
        show(f"{args.target}: loading")
        spec = load_target(args.target, target_options(args))
        if args.widths:
            spec = spec.with_widths(args.widths)
        show(f"{args.target}: converting")
        plan = convert(spec, base_width=args.base_width, style=args.style,
                       zero_readout=args.zero_readout)
        verified = None
        if not args.no_verify:
            show(f"{args.target}: verifying the plan with lint")
            verified = _verify(plan, spec)
    finally:
        show.done()
    if output.path is not None:  # first: `convert -o plan.json | head` must still write it
        output.write(plan.to_text())
    width = args.width or max(spec.widths)
    lines = _summary(plan, spec, width)
    if verified is not None:
        lines.append(f"  verified: `tpcheck lint` of the converted model finds no errors "
                     f"({verified} warning(s))")
    if output.path is not None:
        lines.append(f"plan written to {args.output}: use it with `tpcheck lint {args.target} "
                     f"--plan {args.output}` or Plan.load(...).apply(model)")
    print("\n".join(lines))
    return EXIT_CLEAN


def _summary(plan: Any, spec: Any, width: int) -> list[str]:
    """The changes at ``width``, one row per group of tensors that change alike."""
    from tpcheck.conversion import changes, own_init_std
    from tpcheck.fold import fold

    own = own_init_std(spec, width)
    rows = list(changes(plan, width))

    def key(r: dict) -> tuple:
        return (r["role"], r["init"], f"{own.get(r['name'], 0.0):.2g}", f"{r['std']:.2g}",
                r["lr_mult"], r["wd_mult"], r["eps_mult"], r["forward_mult"])

    lines = [f"tpcheck convert · {plan.model} · style {plan.style} · base width "
             f"{plan.base_width} · changes at width {width}"]
    header = ("tensor", "role", f"init std at n={width} (own → μP)", "lr ×", "wd ×", "eps ×")
    table = []
    for label, members in fold(rows, lambda r: r["name"], key):
        r = members[0]
        if r["init"] == "keep":
            init = "kept"
        elif r["init"] == "zero":
            init = "zero"
        else:
            init = f"{own.get(r['name'], 0.0):.2g} → {r['std']:.2g}"
        fwd = f" (input × {r['forward_mult']:.3g})" if r["forward_mult"] is not None else ""
        table.append((label, r["role"], init + fwd, f"{r['lr_mult']:.4g}",
                      f"{r['wd_mult']:.4g}", f"{r['eps_mult']:.4g}"))
    widths = [max(len(str(row[i])) for row in [header, *table]) for i in range(len(header))]
    for row in [header, *table]:
        lines.append("  " + "  ".join(str(c).ljust(w)
                                      for c, w in zip(row, widths, strict=True)).rstrip())
    for att in plan.attention:
        lines.append(f"  attention {att.module}: logit scale {att.at(width):.4g} (= {att.scale};"
                     f" head dim {att.head_dim} grows)")
    lines.append(f"  (μP keeps the model's own init at the base width {plan.base_width} and "
                 "scales it with each tensor's fan multipliers; LR, wd and ε multiply the "
                 "optimizer's)")
    lines.extend(f"  warning: {note}" for note in plan.notes)
    return lines


def _verify(plan: Any, spec: Any) -> int:
    """The convert contract: the plan's model lints without errors, or no plan at all.
    Returns the number of warnings."""
    from tpcheck.pipeline import lint

    report = lint(plan.spec(spec))
    errors = [f for f in report.findings if f.severity == "error"]
    if errors:
        listed = "; ".join(f"{f.rule} {f.subject}: {f.message}" for f in errors[:3])
        raise TpcheckError(
            f"convert cannot make {plan.model} μP: with the plan applied, lint still finds "
            f"{len(errors)} error(s): {listed}" + (" ..." if len(errors) > 3 else ""),
            where=errors[0].source or plan.model,
            fix="fix these in the model's code (they are not init, LR, weight decay or ε "
                "choices a plan can make), or pass --no-verify to write the plan anyway")
    return report.counts["warning"]
