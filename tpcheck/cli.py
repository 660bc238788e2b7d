"""The ``tpcheck`` command line: ``lint`` and ``explain``.

Exit codes (the CI contract): 0 no errors (warnings allowed), 1 errors found, 2 the target
could not be loaded, traced or measured — always with a message saying what, where and how
to fix it, never a traceback from inside torch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from tpcheck import __version__
from tpcheck.errors import InternalError, TpcheckError

EXIT_CLEAN, EXIT_FINDINGS, EXIT_TOOL_ERROR = 0, 1, 2
#: Default of ``coord --tolerance`` (tpcheck.coord.judge.TOLERANCE, kept here so --help is cheap).
COORD_TOLERANCE = 0.25


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_TOOL_ERROR
    try:
        return args.run(args)
    except TpcheckError as exc:
        print(f"tpcheck: error: {exc.render()}", file=sys.stderr)
        return EXIT_TOOL_ERROR
    except KeyboardInterrupt:
        print("tpcheck: interrupted (Ctrl-C): nothing was written, no verdict", file=sys.stderr)
        return EXIT_TOOL_ERROR
    except BrokenPipeError:  # `tpcheck explain --all | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_CLEAN
    except Exception as exc:  # a bug in tpcheck: one message and exit 2, never a traceback
        if os.environ.get("TPCHECK_DEBUG"):
            raise
        error = InternalError.during(args.command, exc)
        print(f"tpcheck: error: {error.render()}", file=sys.stderr)
        return EXIT_TOOL_ERROR


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tpcheck", description="μP parametrization checker for "
                                "diffusion transformers.")
    p.add_argument("--version", action="version", version=f"tpcheck {__version__}")
    sub = p.add_subparsers(dest="command")

    lint = sub.add_parser("lint", help="check a model's parametrization against μP")
    lint.add_argument("targets", nargs="*", metavar="TARGET",
                      help="built-in name (dit, uvit, pixart, mmdit, ...), package.module:attr "
                           "or path/to/file.py:attr; default: [tool.tpcheck] targets")
    lint.add_argument("--format", choices=("text", "json", "sarif"), default=None)
    lint.add_argument("--widths", type=parse_widths, default=None,
                      help="comma-separated widths to trace, e.g. 64,128,256")
    lint.add_argument("--select", action="append", default=None, metavar="RULE",
                      help="only these rules (code, prefix or name); repeatable or comma-separated")
    lint.add_argument("--ignore", action="append", default=None, metavar="RULE",
                      help="skip these rules; repeatable or comma-separated")
    lint.add_argument("--roles-only", action="store_true",
                      help="only trace and classify: the tensor table, no measurement or rules")
    lint.add_argument("--no-tensors", action="store_true",
                      help="text format: print findings only, not the tensor table")
    lint.add_argument("--device", choices=("auto", "meta", "cpu"), default="auto",
                      help="where to build models for tracing (default: meta, else cpu)")
    lint.add_argument("--tracer", choices=("record", "export"), default="record",
                      help="record: run the forward eagerly and record every torch call "
                           "(default); export: torch.export, as a second opinion")
    lint.add_argument("--sample", action="store_true",
                      help="sample every init on real CPU weights at every width instead of "
                           "reading it from the init calls (slow; a cross-check)")
    lint.add_argument("--pyproject", default=None, metavar="PATH",
                      help="pyproject.toml to read [tool.tpcheck] from (default: the nearest)")
    lint.add_argument("-o", "--output", default=None, help="write the report to this file")
    lint.add_argument("--plan", default=None,
                      help="lint the model with this μP plan applied (from `tpcheck convert`)")
    _target_arguments(lint)
    lint.set_defaults(run=_run_lint)

    convert = sub.add_parser("convert", help="make a μP plan for a model (init, LR, wd, ε)")
    convert.add_argument("target", metavar="TARGET")
    convert.add_argument("-o", "--output", default=None, help="write the plan JSON here")
    convert.add_argument("--style", choices=("init-lr", "multiplier"), default="init-lr",
                         help="init-lr: only init and optimizer groups change (default); "
                              "multiplier: readouts get a forward multiplier 1/m (mup's form)")
    convert.add_argument("--base-width", type=int, default=None,
                         help="width at which the μP model equals the original (default: the "
                              "spec's base width)")
    convert.add_argument("--zero-readout", action="store_true",
                         help="zero-initialise output weights (TP5 App. D.2)")
    convert.add_argument("--width", type=int, default=None,
                         help="show the changes at this width (default: the largest traced)")
    convert.add_argument("--widths", type=parse_widths, default=None)
    convert.add_argument("--no-verify", action="store_true",
                         help="do not lint the converted model before writing the plan")
    _target_arguments(convert)
    convert.set_defaults(run=_run_convert)

    coord_parser = sub.add_parser(
        "coord", help="coordinate check: measure activation and update sizes across widths "
                      "and compare them with lint's static prediction")
    _coord_arguments(coord_parser)
    _target_arguments(coord_parser)
    coord_parser.set_defaults(run=_run_coord)

    explain = sub.add_parser("explain", help="print a rule's documentation")
    explain.add_argument("rule", nargs="?", help="rule code (TP101) or name (sp-readout)")
    explain.add_argument("--all", action="store_true", help="every rule, as Markdown")
    explain.set_defaults(run=_run_explain)

    targets = sub.add_parser("targets", help="list the built-in targets")
    targets.add_argument("--diffusers", action="store_true",
                         help="list every transformer class of the installed diffusers and "
                              "whether tpcheck can lint it by name (diffusers:ClassName)")
    targets.set_defaults(run=_run_targets)
    return p


def _target_arguments(parser: argparse.ArgumentParser) -> None:
    """How a model class becomes a spec (``diffusers:SD3Transformer2DModel``, ``f.py:MyDiT``)."""
    group = parser.add_argument_group("model-class targets (diffusers:Class, module:Class)")
    group.add_argument("--config", default=None, metavar="CONFIG.json",
                       help="the class's config.json as save_pretrained writes it (default: "
                            "the class's own defaults, with less depth)")
    group.add_argument("--width-arg", default=None, metavar="NAME",
                       help="constructor argument that holds the width (default: guessed from "
                            "hidden_size, dim, d_model, width, embed_dim, inner_dim)")
    group.add_argument("--heads-arg", default=None, metavar="NAME",
                       help="constructor argument that holds the number of heads")
    group.add_argument("--head-dim", type=_positive_int, default=None, metavar="N",
                       help="head dimension kept fixed as the width grows (default: the "
                            "config's)")
    group.add_argument("--inputs", default=None, metavar="MODULE:FN",
                       help="function width -> example forward inputs (module:fn or file.py:fn)")


def _target_options(args: argparse.Namespace) -> Any:
    from tpcheck.targets import TargetOptions

    return TargetOptions(config=args.config, width_arg=args.width_arg, heads_arg=args.heads_arg,
                         head_dim=args.head_dim, inputs=args.inputs)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def parse_widths(text: str) -> tuple[int, ...]:
    """``--widths 64,128,256`` → (64, 128, 256); the argparse type of every subcommand."""
    try:
        return tuple(int(w) for w in text.replace(" ", "").split(",") if w)
    except ValueError:
        raise argparse.ArgumentTypeError(f"widths must be integers separated by commas, "
                                         f"got {text!r}") from None


def _split(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def _run_lint(args: argparse.Namespace) -> int:
    from tpcheck.config import load_config
    from tpcheck.pipeline import classify_only, lint
    from tpcheck.targets import load_target

    config = load_config(args.pyproject)
    targets = args.targets or list(config.targets)
    if not targets:
        raise TpcheckError("no TARGET given and no [tool.tpcheck] targets configured.",
                           fix="run e.g. `tpcheck lint dit`, or set targets = [...] under "
                               "[tool.tpcheck] in pyproject.toml")
    fmt = args.format or config.format or "text"
    select = _split(args.select) or config.select or None
    ignore = (_split(args.ignore) or []) + list(config.ignore)
    widths = args.widths or config.widths
    worst = EXIT_CLEAN
    outputs = []
    plan = None
    if args.plan:
        from tpcheck.plan import Plan

        plan = Plan.load(args.plan)
    options = _target_options(args)
    for target in targets:
        spec = load_target(target, options)
        if widths:
            spec = spec.with_widths(widths)
        if plan is not None:
            spec = plan.spec(spec)
        if args.roles_only:
            report = classify_only(spec, device=args.device, tracer=args.tracer)
        else:
            report = lint(spec, select=select, ignore=ignore, ignores=config.per_tensor_ignores,
                          device=args.device, tracer=args.tracer, sample=args.sample)
        outputs.append(report.render(fmt, tensors=not args.no_tensors))
        worst = max(worst, report.exit_code)
    text = "\n\n".join(outputs)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    else:
        print(text)
    return worst


def _run_convert(args: argparse.Namespace) -> int:
    from tpcheck.conversion import changes, convert, own_init_std
    from tpcheck.fold import fold
    from tpcheck.targets import load_target

    spec = load_target(args.target, _target_options(args))
    if args.widths:
        spec = spec.with_widths(args.widths)
    plan = convert(spec, base_width=args.base_width, style=args.style,
                   zero_readout=args.zero_readout)
    width = args.width or max(spec.widths)
    own = own_init_std(spec, width)
    rows = list(changes(plan, width))

    def key(r: dict) -> tuple:
        return (r["role"], r["init"], f"{own.get(r['name'], 0.0):.2g}", f"{r['std']:.2g}",
                r["lr_mult"], r["wd_mult"], r["eps_mult"], r["forward_mult"])

    print(f"tpcheck convert · {plan.model} · style {plan.style} · base width {plan.base_width}"
          f" · changes at width {width}")
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
        print("  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    for att in plan.attention:
        print(f"  attention {att.module}: logit scale {att.at(width):.4g} (= {att.scale}; head "
              f"dim {att.head_dim} grows)")
    print(f"  (μP keeps the model's own init at the base width {plan.base_width} and scales it "
          "with each tensor's fan multipliers; LR, wd and ε multiply the optimizer's)")
    for note in plan.notes:
        print(f"  warning: {note}")
    if not args.no_verify:
        _verify(plan, spec)
    if args.output:
        plan.save(args.output)
        print(f"plan written to {args.output}: use it with `tpcheck lint {args.target} --plan "
              f"{args.output}` or Plan.load(...).apply(model)")
    return EXIT_CLEAN


def _coord_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``tpcheck coord`` arguments."""
    parser.add_argument("target", metavar="TARGET",
                        help="built-in name (dit, uvit, pixart, mmdit, ...), package.module:attr "
                             "or path/to/file.py:attr")
    parser.add_argument("--plan", default=None, metavar="PLAN.json",
                        help="check TARGET converted by this plan (tpcheck convert) instead")
    parser.add_argument("--widths", type=parse_widths, default=None,
                        help="comma-separated widths (≥ 3; default: the spec's), "
                             "e.g. 64,96,128,192,256")
    parser.add_argument("--steps", type=int, default=4, help="optimizer steps (default 4)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per width (default 3)")
    parser.add_argument("--lr", type=float, default=None,
                        help="base learning rate (every param group rescaled; default: the "
                             "spec's optimizer as it is)")
    parser.add_argument("--tolerance", type=float, default=COORD_TOLERANCE,
                        help=f"largest |measured − predicted| size slope that agrees, and the "
                             f"band around 0 that counts as Θ(1) (default {COORD_TOLERANCE})")
    parser.add_argument("-o", "--output", default=None, metavar="PNG",
                        help="write the coord-check plot here (needs tpcheck[plots])")
    parser.add_argument("--format", choices=("text", "json"), default="text")


def _run_coord(args: argparse.Namespace) -> int:
    """``tpcheck coord``: 0 it ran, 1 a width diverged, 2 (TpcheckError) bad input."""
    from tpcheck.targets import load_target

    if args.output:  # fail before minutes of training, not after
        from tpcheck.coord.plot import require_matplotlib

        require_matplotlib()
    spec = load_target(args.target, _target_options(args))
    plan = None
    if args.plan:
        try:
            from tpcheck.plan import Plan
        except ImportError as exc:
            raise TpcheckError(f"--plan needs tpcheck.plan, which cannot be imported: {exc}",
                               fix="update tpcheck, or check a μP ModelSpec as TARGET") from exc
        plan = Plan.load(args.plan)
    from tpcheck.coord import coord_check

    result = coord_check(spec, widths=args.widths, steps=args.steps, seeds=args.seeds,
                         lr=args.lr, plan=plan, tolerance=args.tolerance)
    if args.output:
        from tpcheck.coord.plot import plot

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


def _verify(plan: Any, spec: Any) -> None:
    """The convert contract: the plan's model lints without errors, or no plan at all."""
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
    print(f"  verified: `tpcheck lint` of the converted model finds no errors "
          f"({report.counts['warning']} warning(s))")


def _run_explain(args: argparse.Namespace) -> int:
    from tpcheck.rules import catalogue, get, render_docs

    if args.all:
        print("\n".join(render_docs(r) for r in catalogue()))
        return EXIT_CLEAN
    if not args.rule:
        for r in catalogue():
            print(f"{r.code}  {r.name:<36} {r.severity:<8} {r.scope}")
        return EXIT_CLEAN
    print(render_docs(get(args.rule)))
    return EXIT_CLEAN


def _run_targets(args: argparse.Namespace) -> int:
    if args.diffusers:
        from tpcheck.specgen import diffusers_classes

        for entry in diffusers_classes():
            print(f"diffusers:{entry.name:<44} {entry.status}")
        return EXIT_CLEAN
    from tpcheck.models.registry import BUILTINS

    for name, entry in BUILTINS.items():
        extra = f"  [needs tpcheck[{entry.extra}]]" if entry.extra else ""
        print(f"{name:<26} {entry.description}{extra}")
    return EXIT_CLEAN


if __name__ == "__main__":
    sys.exit(main())
