"""``tpcheck explain`` (a rule's documentation) and ``tpcheck targets`` (what can be linted
by name)."""

from __future__ import annotations

import argparse
from typing import Any

from tpcheck.cli.common import EXIT_CLEAN


def register(sub: Any) -> None:
    explain = sub.add_parser("explain", help="print a rule's documentation")
    explain.add_argument("rule", nargs="?", help="rule code (TP101) or name (sp-readout); "
                                                  "none: the list of rules")
    explain.add_argument("--all", action="store_true", help="every rule, as Markdown")
    explain.set_defaults(run=run_explain)

    targets = sub.add_parser("targets", help="list the built-in targets")
    targets.add_argument("--diffusers", action="store_true",
                         help="list every transformer class of the installed diffusers and "
                              "whether tpcheck can lint it by name (diffusers:ClassName)")
    targets.set_defaults(run=run_targets)


def run_explain(args: argparse.Namespace) -> int:
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


def run_targets(args: argparse.Namespace) -> int:
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
