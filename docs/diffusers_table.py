"""Lint every diffusers transformer class by name and write the results where they are read.

    python docs/diffusers_table.py [--jobs 2] [--only SD3Transformer2DModel ...]

For each class of ``diffusers.models.transformers`` this runs what a user runs, with no spec
written: ``tpcheck lint diffusers:ClassName`` at the class's default init and optimizer (one
global AdamW learning rate), then ``tpcheck convert`` and ``tpcheck lint --plan``, each in its
own process (a crash or a hang costs one row, never the table). It writes

* the table in ``docs/diffusers.md``, between the ``diffusers-table`` markers, and
* each class's status in ``tpcheck/specgen/verified.py``, which ``tpcheck targets --diffusers``
  shows for this diffusers version.

Nothing reaches the network (``HF_HUB_OFFLINE=1``); every model is built from its defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "diffusers.md"
VERIFIED = ROOT / "tpcheck" / "specgen" / "verified.py"
START, END = "<!-- diffusers-table:start -->", "<!-- diffusers-table:end -->"
TIMEOUT_S = 600

#: Runs in a fresh interpreter per class; prints one JSON line.
WORKER = r"""
import json, sys, time
from collections import Counter
name = sys.argv[1]
out = {"name": name}
start = time.perf_counter()
def rules(report):
    found = [f.rule for f in report.findings if f.severity in ("error", "warning")]
    return dict(Counter(found).most_common())
try:
    from tpcheck.errors import TpcheckError
    import diffusers
    from tpcheck.specgen import autospec
    from tpcheck.pipeline import lint
    from tpcheck import convert
    stage = "spec"
    spec = autospec(getattr(diffusers, name))
    out.update(widths=list(spec.widths), depth=spec.meta["depth"], scaled=spec.meta["scaled"],
               spec_s=time.perf_counter() - start)
    stage = "lint"
    report = lint(spec)
    out.update(lint=report.counts, lint_rules=rules(report),
               lint_s=time.perf_counter() - start - out["spec_s"])
    stage = "convert"
    mark = time.perf_counter()
    plan = convert(spec)
    after = lint(plan.spec(spec))
    out.update(plan=after.counts, plan_rules=rules(after), plan_s=time.perf_counter() - mark)
except TpcheckError as exc:
    out.update(stage=stage, error=exc.what)
except Exception as exc:
    out.update(stage=locals().get("stage", "import"), error=f"{type(exc).__name__}: {exc}")
out["seconds"] = time.perf_counter() - start
print(json.dumps(out))
"""


def run_one(name: str) -> dict[str, Any]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    started = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-c", WORKER, name], capture_output=True,
                              text=True, timeout=TIMEOUT_S, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"name": name, "stage": "timeout",
                "error": f"no result within {TIMEOUT_S} s", "seconds": TIMEOUT_S}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if lines:
        return json.loads(lines[-1])
    tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return {"name": name, "stage": "crash", "error": tail[:300],
            "seconds": time.perf_counter() - started}


def _counts(counts: dict[str, int], rules: dict[str, int]) -> str:
    """``30 errors, 1 warning (TP602 ×15, TP201 ×13, TP101 ×1)``: the most frequent rules."""
    def plural(k: int, word: str) -> str:
        return f"{k} {word}" + ("" if k == 1 else "s")

    text = f"{plural(counts['error'], 'error')}, {plural(counts['warning'], 'warning')}"
    if rules:
        text += " (" + ", ".join(f"{r} ×{k}" for r, k in list(rules.items())[:3]) + ")"
    return text


def _depth(result: dict[str, Any]) -> str:
    depth = result.get("depth") or {}
    if not depth:
        return "as configured"
    full = "+".join(str(v[0]) for v in depth.values())
    kept = "+".join(str(v[1]) for v in depth.values())
    return f"{full} → {kept}"


def status(result: dict[str, Any]) -> str:
    """The short status ``tpcheck targets --diffusers`` prints."""
    if "error" in result:
        if result.get("stage") in ("convert",):
            return (f"supported (lint: {result['lint']['error']} errors); convert fails: "
                    f"{_short(result['error'])}")
        return f"not supported: {result['stage']}: {_short(result['error'])}"
    plan = result["plan"]
    verdict = f"converted plan: {plan['error']} errors, {plan['warning']} warnings"
    return f"supported (lint: {result['lint']['error']} errors; {verdict})"


def _short(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= 160 else first[:157] + "..."


def table(results: list[dict[str, Any]], version: str) -> str:
    rows = ["| class | traced widths · depth | `lint` (default init, one AdamW LR) | "
            "`convert` → `lint --plan` | time |", "|---|---|---|---|---|"]
    for r in results:
        seconds = f"{r['seconds']:.0f} s"
        if "lint" not in r:
            reason = _short(r.get("error", "")).replace("|", "\\|")
            rows.append(f"| `{r['name']}` | — | not supported ({r.get('stage')}): {reason} | — "
                        f"| {seconds} |")
            continue
        widths = "/".join(str(w) for w in r["widths"])
        lint = _counts(r["lint"], r["lint_rules"])
        plan = _counts(r["plan"], r["plan_rules"]) if "plan" in r else (
            "fails: " + _short(r.get("error", "")).replace("|", "\\|"))
        rows.append(f"| `{r['name']}` | {widths} · {_depth(r)} | {lint} | {plan} | {seconds} |")
    supported = sum("plan" in r and r["plan"]["error"] == 0 for r in results)
    head = (f"diffusers {version}: {supported} of {len(results)} transformer classes lint by "
            "name, and the plan each converts to lints with zero errors. Time is the whole loop "
            "(spec, lint, convert, lint --plan) in a fresh process, imports included.")
    return head + "\n\n" + "\n".join(rows)


def write_table(text: str) -> None:
    doc = DOC.read_text(encoding="utf-8")
    if START not in doc or END not in doc:
        raise SystemExit(f"{DOC} has no {START} ... {END} markers")
    before, rest = doc.split(START, 1)
    _, after = rest.split(END, 1)
    DOC.write_text(f"{before}{START}\n{text}\n{END}{after}", encoding="utf-8")


def write_verified(results: list[dict[str, Any]], version: str) -> None:
    lines = ['"""What ``tpcheck lint diffusers:ClassName`` gave for each class: written by',
             '``docs/diffusers_table.py`` (do not edit by hand), read by :mod:`.catalogue`."""',
             "", f"DIFFUSERS_VERSION = {json.dumps(version)}", "RESULTS: dict[str, str] = {"]
    for r in sorted(results, key=lambda r: r["name"]):
        parts = textwrap.wrap(status(r), width=80, drop_whitespace=False)
        lines.append(f"    {json.dumps(r['name'])}: (")
        lines += [f"        {json.dumps(p, ensure_ascii=False)}" for p in parts]
        lines.append("    ),")
    lines.append("}")
    VERIFIED.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1, help="classes run at once (default 1)")
    parser.add_argument("--only", nargs="*", default=None, help="these classes only (the "
                        "table and statuses are then not written)")
    parser.add_argument("--save", default=None, metavar="JSON",
                        help="also write the raw results here")
    parser.add_argument("--load", default=None, metavar="JSON",
                        help="write the table and statuses from saved results, running nothing")
    args = parser.parse_args(argv)
    os.environ["HF_HUB_OFFLINE"] = "1"
    import diffusers

    from tpcheck.specgen.catalogue import class_names

    if args.load:
        results = json.loads(Path(args.load).read_text(encoding="utf-8"))
    else:
        names = args.only or class_names()
        with ThreadPoolExecutor(max(1, args.jobs)) as pool:
            results = []
            for result in pool.map(run_one, names):
                results.append(result)
                print(f"{result['name']}: {status(result)} ({result['seconds']:.0f} s)",
                      flush=True)
    if args.save:
        Path(args.save).write_text(json.dumps(results, indent=1), encoding="utf-8")
    if args.only:
        return 0
    write_table(table(results, diffusers.__version__))
    write_verified(results, diffusers.__version__)
    counts = Counter(status(r).split(" ")[0] for r in results)
    print(f"wrote {DOC.relative_to(ROOT)} and {VERIFIED.relative_to(ROOT)}: {dict(counts)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
