"""``tpcheck coord`` beside the ``mup`` package's coord-check helper on the same model.

    python benchmarks/bench_coord.py              # depth-4 DiT, widths 64..256, 4 steps, 3 seeds
    python benchmarks/bench_coord.py --threads 1  # both sides on one intra-op thread

Both sides train the SP reference DiT (``tpcheck.models.dit.dit_spec(depth=4)``: 8 × 8 × 4
latent, head dim 16, batch 2) with AdamW at one global LR on one fixed batch and record the
mean |x| of every module output, then draw the plot:

* tpcheck: ``coord_check(spec, widths, steps, seeds, lr)`` + ``coord.plot.plot`` — the static
  prediction (export at the spec's 3 widths, measure, propagate), 5 forwards and 4 steps per
  (width, seed) with hooks, ``mean |x_t − x_0|`` and the attention logits, slopes, verdicts;
  also timed without the static part (``static=False``), the like-for-like row;
* mup: ``mup.coord_check.get_coord_data(models, loader, optimizer="adamw", lr, mup=False,
  nsteps, nseeds, dict_in_out=True)`` + ``plot_coord_data`` — 4 forwards and 4 steps per
  (width, seed) with hooks on every module, ``mean |x_t|`` only (the loss is computed inside
  a wrapper module, since mup's helper feeds ``model(**batch)``).

Each row runs ``--repeat`` times, each in a fresh process (``_measure.measure``, torch
preloaded), with the same thread count; the table gives the median run (and the fastest), and
how many cores other processes kept busy during it: with 2 intra-op threads on 2 cores a busy
neighbour can slow a row several-fold. The ratio is mup / tpcheck (> 1: tpcheck is faster).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _measure

WIDTHS = (64, 96, 128, 192, 256)
DEPTH, STEPS, SEEDS, LR = 4, 4, 3, 1e-3
BUDGET_S = 60.0  # the acceptance: under 60 s on 2 cores


def run_tpcheck(widths: tuple[int, ...], depth: int, steps: int, seeds: int, lr: float,
                static: bool, threads: int | None) -> dict[str, Any]:
    """The coord check as ``tpcheck coord dit -o coord.png`` runs it (plus the plot)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    from tpcheck.models.dit import dit_spec

    from tpcheck.coord import coord_check
    from tpcheck.coord.plot import plot

    start = time.perf_counter()
    result = coord_check(dit_spec(depth=depth), widths=widths, steps=steps, seeds=seeds, lr=lr,
                         static=static)
    check_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        plot(result, os.path.join(tmp, "coord.png"))
    return {"check_s": round(check_s, 2), "plot_s": round(time.perf_counter() - start - check_s,
                                                           2),
            "activations": len(result.records), "agreement": result.agreement_rate,
            "threads": torch.get_num_threads()}


def run_mup(widths: tuple[int, ...], depth: int, steps: int, seeds: int, lr: float,
            threads: int | None) -> dict[str, Any]:
    """The same check with ``mup.coord_check.get_coord_data`` and ``plot_coord_data``."""
    import matplotlib

    matplotlib.use("Agg")
    import torch
    import torch.nn.functional as F

    if threads:
        torch.set_num_threads(threads)
    from mup.coord_check import get_coord_data, plot_coord_data
    from tpcheck.models.dit import dit_spec

    spec = dit_spec(depth=depth)

    class WithLoss(torch.nn.Module):
        """mup's helper calls ``model(**batch)`` and reads ``outputs["loss"]``."""

        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, x, t, y, target):  # the batch's keys
            return {"loss": F.mse_loss(self.model(x, t, y), target)}

    x, t, y = spec.inputs(widths[0])
    with torch.no_grad():
        target = torch.randn_like(spec.factory(widths[0])(x, t, y))
    batch = {"x": x, "t": t, "y": y, "target": target}
    models = {w: (lambda w=w: WithLoss(spec.factory(w))) for w in widths}
    start = time.perf_counter()
    df = get_coord_data(models, [batch], optimizer="adamw", lr=lr, mup=False, nsteps=steps,
                        nseeds=seeds, dict_in_out=True, output_name="loss", cuda=False,
                        show_progress=False)
    check_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        plot_coord_data(df, save_to=os.path.join(tmp, "coord.png"))
    import matplotlib.pyplot as plt

    plt.close("all")
    return {"check_s": round(check_s, 2), "plot_s": round(time.perf_counter() - start - check_s,
                                                           2),
            "rows": len(df), "modules": int(df["module"].nunique()),
            "threads": torch.get_num_threads()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads in both children (default: torch's)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per row (median reported)")
    args = parser.parse_args()
    ws = "/".join(map(str, WIDTHS))
    print(f"$ {_measure.command_line()}")
    print(f"machine: {_measure.machine()}")
    print(f"DiT (SP reference), depth {DEPTH}, widths {ws}, {STEPS} steps, {SEEDS} seeds, "
          f"AdamW lr {LR:g}\n", flush=True)
    common = (WIDTHS, DEPTH, STEPS, SEEDS, LR)
    plans = [
        ("tpcheck coord (static + dynamic + plot)", run_tpcheck, (*common, True, args.threads),
         ("torch", "tpcheck")),
        ("tpcheck coord, dynamic only (+ plot)", run_tpcheck, (*common, False, args.threads),
         ("torch", "tpcheck")),
        ("mup get_coord_data + plot_coord_data", run_mup, (*common, args.threads),
         ("torch", "tpcheck", "mup")),
    ]
    rows = []
    for what, fn, fn_args, preload in plans:
        runs = [_measure.measure(fn, *fn_args, preload=preload, timeout=600)
                for _ in range(args.repeat)]
        rows.append((what, runs))
    print("| what | wall median (s) | fastest (s) | check (s) | plot (s) | peak RSS (MB) | "
          "others busy | details |")
    print("|---|---|---|---|---|---|---|---|")
    medians = []
    for what, runs in rows:
        bad = [r for r in runs if not r.ok]
        if bad:
            print(f"| {what} | failed | | | | | | {bad[0].error.strip().splitlines()[-1]} |")
            return 1
        runs = sorted(runs, key=lambda r: r.seconds)
        res = runs[len(runs) // 2]
        medians.append(res)
        v = dict(res.value)
        details = ", ".join(f"{k} {v[k]}" for k in v if k not in ("check_s", "plot_s"))
        print(f"| {what} | {res.seconds:.1f} | {runs[0].seconds:.1f} | {v['check_s']} | "
              f"{v['plot_s']} | {res.peak_rss_mb:,.0f} | "
              f"{res.extra.get('other_busy_cores', '?')} | {details} |")
    full, dynamic, mup = medians
    print(f"\nratio mup / tpcheck, wall: {mup.seconds / full.seconds:.2f}× (tpcheck full check), "
          f"{mup.seconds / dynamic.seconds:.2f}× (tpcheck dynamic only)")
    print(f"ratio mup / tpcheck, training + recording only (no static part, no plot): "
          f"{mup.value['check_s'] / dynamic.value['check_s']:.2f}×")
    verdict = "under" if full.seconds < BUDGET_S else "OVER"
    print(f"tpcheck coord full check: {full.seconds:.1f} s, {verdict} the {BUDGET_S:.0f} s budget")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
