"""Full lint of the DiT-XL/2-shaped model, beside capture + classify of the same spec.

    python benchmarks/bench_lint.py                 # depth 28, widths 288/576/1152
    python benchmarks/bench_lint.py --small         # depth 28, widths 144/288/576

``tpcheck.lint(spec)`` (``tpcheck.pipeline.lint``) = analyze (export on the meta device at
every width, fit, classify) + measure (real CPU instantiations at every width, ``seeds=2``
builds each, to read init sizes and optimizer param groups) + propagate + check.
``analyze`` alone is the capture-only part. Both run in fresh processes
(``_measure.measure``); the table gives lint / analyze for time and peak RSS.

The spec is the one of ``bench_capture.py`` (``dit_xl_2_spec``): the real DiT classes,
head_dim 72 fixed, 4 × 32 × 32 latent, patch 2, 1000 classes, batch 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _measure
from bench_capture import dit_xl_2_spec, imports_only  # imports neither torch nor tpcheck

FULL_WIDTHS = (288, 576, 1152)
SMALL_WIDTHS = (144, 288, 576)
DEPTH = 28
TIMEOUT_S = 400.0


def run_analyze(widths: tuple[int, ...], depth: int) -> dict[str, Any]:
    """Capture + classify only (what ``tpcheck lint --roles-only`` does)."""
    from collections import Counter

    import tpcheck

    classification = tpcheck.analyze(dit_xl_2_spec(widths, depth), device="auto")
    return {"tensors": len(classification.tensors),
            "roles": dict(Counter(t.role for t in classification.tensors.values()))}


def run_lint(widths: tuple[int, ...], depth: int) -> dict[str, Any]:
    """The whole pipeline, as ``tpcheck lint`` runs it (default device, seeds=2)."""
    from collections import Counter

    import tpcheck

    report = tpcheck.lint(dit_xl_2_spec(widths, depth))
    by_rule = Counter(f"{f.rule} ({f.severity})" for f in report.findings)
    return {"tensors": len(report.tensors),
            "roles": dict(Counter(t.role for t in report.tensors)),
            "findings": len(report.findings),
            "by_rule": dict(sorted(by_rule.items())),
            "exit_code": report.exit_code,
            "traced_on": report.traced_on}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true",
                        help=f"widths {'/'.join(map(str, SMALL_WIDTHS))} instead of "
                             f"{'/'.join(map(str, FULL_WIDTHS))} (depth stays {DEPTH})")
    args = parser.parse_args()
    widths = SMALL_WIDTHS if args.small else FULL_WIDTHS
    ws = "/".join(map(str, widths))

    print(f"$ {_measure.command_line()}")
    print(f"machine: {_measure.machine()}")
    floor = _measure.measure(imports_only)
    print(f"floor (fresh child after import torch, tpcheck's pipeline, mup): peak RSS "
          f"{floor.peak_rss_mb:,.0f} MB\n")
    print(f"DiT-XL/2-shaped, depth {DEPTH}, widths {ws}", flush=True)
    cap = _measure.measure(run_analyze, widths, DEPTH, timeout=TIMEOUT_S)
    _measure.show("analyze (capture + classify)", cap)
    full = _measure.measure(run_lint, widths, DEPTH, timeout=TIMEOUT_S)
    _measure.show("lint (analyze + measure + propagate + check)", full)

    print(f"\n$ {_measure.command_line()}")
    print(f"machine: {_measure.machine()}; 'others' = cores kept busy by other processes "
          "while the row ran (0 = quiet machine)\n")
    print("| what | depth | widths | wall (s) | peak RSS (MB) | others |")
    print("|---|---|---|---|---|---|")
    for what, res in (("tpcheck analyze (capture + classify)", cap),
                      ("tpcheck lint (full)", full)):
        if res.ok:
            print(f"| {what} | {DEPTH} | {ws} | {res.seconds:.1f} | {res.peak_rss_mb:,.0f} | "
                  f"{res.extra.get('other_busy_cores', '?')} |")
        else:
            print(f"| {what} | {DEPTH} | {ws} | failed | failed | — |")
    if cap.ok and full.ok:
        print(f"\nlint / analyze: time {full.seconds / cap.seconds:.1f}×, peak RSS "
              f"{full.peak_rss_kib / cap.peak_rss_kib:.1f}×")
        return 0
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
