"""Full lint at realistic widths, side by side with the alternatives, in one run.

    python benchmarks/bench_lint.py            # DiT-XL/2 (3 rows) + SD3-shaped (1 row)
    python benchmarks/bench_lint.py --rows dit

Rows (every one in its own fresh process, after ``import torch``; ``_measure.measure``):

* DiT-XL/2-shaped (depth 28, patch 2, 4 × 32 × 32 latent, head_dim 72, 1000 classes), widths
  288 / 576 / 1152:
  - ``tpcheck.lint(spec)``: the default pipeline — the recording tracer on the meta device,
    inits read from the init calls, optimizer groups from the meta model;
  - the previous pipeline, in this same version: ``tpcheck.lint(spec, tracer="export",
    sample=True)`` — ``torch.export`` per width and init sizes sampled from real CPU weights
    at every width (2 seeds), which is what tpcheck did before the recorder;
  - mup's ``set_base_shapes(target, base, delta=delta)`` on the same model, which needs base,
    delta and target instantiated for real (what a mup user runs to get the infinite dims).
* SD3-shaped MMDiT (depth 24, head_dim 64, 16 × 128 × 128 latent, 333 text tokens of 4096,
  pooled 2048), widths 1536 / 3072 / 4608 (18.2 B parameters at the largest): ``tpcheck.lint``
  on meta. Neither alternative fits in this machine's memory at these widths.

The acceptance targets are printed beside the numbers (met / MISSED).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _measure
from bench_capture import (
    DIT_WIDTHS,
    SD3_WIDTHS,
    alternative,
    dit_xl_2_spec,
    imports_only,
    sd3_spec,
)

TIMEOUT_S = 600.0
ROWS = ("dit", "sd3")
#: The issue's acceptance targets.
DIT_TARGET_S, DIT_TARGET_MB, DIT_SPEEDUP = 5.0, 600.0, 2.5
SD3_TARGET_S, SD3_TARGET_MB = 15.0, 1024.0


def run_lint(kind: str, previous: bool = False) -> dict[str, Any]:
    """``tpcheck.lint`` as ``tpcheck lint`` runs it; ``previous``: export + sampled inits."""
    from collections import Counter

    import tpcheck

    spec = dit_xl_2_spec() if kind == "dit" else sd3_spec()
    options = {"tracer": "export", "sample": True} if previous else {}
    report = tpcheck.lint(spec, **options)
    by_rule = Counter(f"{f.rule}" for f in report.findings if f.severity == "error")
    return {"tensors": len(report.tensors), "findings": len(report.findings),
            "errors by rule": dict(sorted(by_rule.items())), "traced_on": report.traced_on,
            "verdicts": sorted((f.rule, f.tensor or "", f.found, f.expected)
                               for f in report.findings)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS))
    args = parser.parse_args()
    print(f"$ {_measure.command_line()}")
    floor = _measure.measure(imports_only)
    print(f"machine: {_measure.machine()}; " + ", ".join(f"{k} {v}"
                                                          for k, v in floor.value.items()))
    print(f"floor (fresh child after import torch, tpcheck, mup): peak RSS "
          f"{floor.peak_rss_mb:,.0f} MB\n", flush=True)
    table: list[str] = []
    verdicts: list[str] = []

    def row(what: str, widths: tuple[int, ...], res: _measure.Result,
            ours: _measure.Result | None) -> None:
        ws = "/".join(map(str, widths))
        if not res.ok:
            table.append(f"| {what} | {ws} | failed | — | — | — | — |")
            return
        ratio = mem = "1 (ours)"
        if ours is not None and ours.ok:
            ratio = f"{res.seconds / ours.seconds:.1f}×"
            mem = f"{res.peak_rss_kib / ours.peak_rss_kib:.1f}×"
        table.append(f"| {what} | {ws} | {res.seconds:.1f} | {res.peak_rss_mb:,.0f} | {ratio} | "
                     f"{mem} | {res.extra.get('other_busy_cores', '?')} |")

    if "dit" in args.rows:
        print(f"DiT-XL/2-shaped, depth 28, widths {DIT_WIDTHS}", flush=True)
        ours = _measure.measure(run_lint, "dit", timeout=TIMEOUT_S)
        _measure.show("tpcheck lint (recorder, inits read, meta)", _short(ours))
        old = _measure.measure(run_lint, "dit", True, timeout=TIMEOUT_S)
        _measure.show("previous pipeline (export, sampled inits)", _short(old))
        mup = _measure.measure(alternative, "dit", DIT_WIDTHS, timeout=TIMEOUT_S)
        _measure.show("mup set_base_shapes (CPU, real weights)", mup)
        row("DiT-XL/2: tpcheck lint", DIT_WIDTHS, ours, None)
        row("DiT-XL/2: previous tpcheck lint (export + sampled inits)", DIT_WIDTHS, old, ours)
        row("DiT-XL/2: mup set_base_shapes", DIT_WIDTHS, mup, ours)
        if ours.ok:
            speedup = mup.seconds / ours.seconds if mup.ok else float("nan")
            verdicts.append(
                f"DiT-XL/2 lint {ours.seconds:.1f} s (≤ {DIT_TARGET_S:.0f} s: "
                f"{_met(ours.seconds <= DIT_TARGET_S)}), {ours.peak_rss_mb:,.0f} MB "
                f"(≤ {DIT_TARGET_MB:.0f} MB: {_met(ours.peak_rss_mb <= DIT_TARGET_MB)}), "
                f"{speedup:.1f}× faster than mup (≥ {DIT_SPEEDUP}×: "
                f"{_met(speedup >= DIT_SPEEDUP)})")
        if ours.ok and old.ok:
            same = ours.value["verdicts"] == old.value["verdicts"]
            verdicts.append(f"same findings as the previous pipeline: {same}")
    if "sd3" in args.rows:
        print(f"\nSD3-shaped MMDiT, depth 24, widths {SD3_WIDTHS}", flush=True)
        sd3 = _measure.measure(run_lint, "sd3", timeout=TIMEOUT_S)
        _measure.show("tpcheck lint (recorder, inits read, meta)", _short(sd3))
        row("SD3-shaped: tpcheck lint", SD3_WIDTHS, sd3, None)
        if sd3.ok:
            verdicts.append(
                f"SD3-shaped lint {sd3.seconds:.1f} s (≤ {SD3_TARGET_S:.0f} s: "
                f"{_met(sd3.seconds <= SD3_TARGET_S)}), {sd3.peak_rss_mb:,.0f} MB "
                f"(≤ {SD3_TARGET_MB:.0f} MB: {_met(sd3.peak_rss_mb <= SD3_TARGET_MB)})")

    print(f"\n$ {_measure.command_line()}")
    print(f"machine: {_measure.machine()}; floor {floor.peak_rss_mb:,.0f} MB peak RSS (every "
          "row includes it); 'others' = cores other processes kept busy (0 = quiet machine)\n")
    print("| what | widths | wall (s) | peak RSS (MB) | time / ours | RSS / ours | others |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(table))
    print()
    print("\n".join(verdicts))
    return 0 if all("MISSED" not in v and "False" not in v for v in verdicts) else 1


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _short(res: _measure.Result) -> _measure.Result:
    """The row without its long list of verdicts (kept for the comparison)."""
    if not res.ok or res.value is None:
        return res
    from dataclasses import replace

    return replace(res, value={k: v for k, v in res.value.items() if k != "verdicts"})


if __name__ == "__main__":
    raise SystemExit(main())
