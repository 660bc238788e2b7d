"""The μTransfer figures: held-out loss against log2 LR per width (TP5's Figure 1), and width.

``plot_curves``: one panel per parametrization, one line per width (darker = wider), the mean
over seeds with a band from the lowest to the highest seed, and a dot at each width's optimum
(the mean of the per-seed optima, placed on the mean curve). Both panels share the y axis, so
the reader can compare the best loss of SP and μP directly. Runs that diverged or collapsed
are drawn as crosses at the top edge, not left out silently.

``plot_widths``: held-out loss against width at the proxy's optimal LR (the transferred LR),
for SP and μP: μP's line should fall as the width grows ("wider is better"), and the
Optuna-transfer results at the target width.

matplotlib is imported only here (``tpcheck[transfer]``), through ``Figure`` (no pyplot: no
global state, no display needed).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tpcheck.errors import TpcheckError
from tpcheck.transfer.sweep import Sweep

LABELS = {"sp": "SP (one global AdamW LR)", "mup": "μP (tpcheck plan)"}


def _figure(size: tuple[float, float]) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise TpcheckError("the μTransfer plots need matplotlib, which is not installed.",
                           fix="pip install 'tpcheck[transfer]'") from exc
    return Figure(figsize=size, layout="constrained")


def _colours(count: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(0.85 - 0.75 * i / max(1, count - 1)) for i in range(count)]


def _ylim(sweep: Sweep) -> tuple[float, float]:
    """From just below the best loss to well above every width's optimum."""
    finite = [y for p in sweep.config.parametrizations for w in sweep.config.widths
              for y in sweep.mean_curve(p, w) if math.isfinite(y)]
    if not finite:
        return 0.0, 1.0
    low = min(finite)
    return low - 0.03 * abs(low), low + max(0.35 * abs(low), 1e-3)


def plot_curves(sweep: Sweep, path: str | Path, title: str = "") -> Path:
    """Write the loss-vs-log2(LR) figure of ``sweep`` to ``path`` (PNG) and return it."""
    params = sweep.config.parametrizations
    fig = _figure((5.2 * len(params), 4.2))
    axes = fig.subplots(1, len(params), sharey=True, squeeze=False)[0]
    colours = _colours(len(sweep.config.widths))
    xs = [math.log2(lr) for lr in sweep.config.lrs]
    low, high = _ylim(sweep)
    for ax, param in zip(axes, params, strict=True):
        for k, (colour, width) in enumerate(zip(colours, sweep.config.widths, strict=True)):
            # each width's failed runs on its own row just under the top edge
            _width_line(ax, sweep, param, width, xs, colour, high - (k + 1) * (high - low) / 40)
        shift, err = sweep.shift(param)
        ax.set_title(f"{LABELS.get(param, param)}\noptimum shift {shift:+.2f} ± {err:.2f} "
                     f"octaves", fontsize=10)
        ax.set_xlabel("log2 learning rate (base LR for μP)")
        ax.set_ylim(low, high)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("held-out flow-matching loss")
    axes[-1].legend(title="width", fontsize=8, loc="upper left")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=130)
    return Path(path)


def _width_line(ax: Any, sweep: Sweep, param: str, width: int, xs: list[float], colour: Any,
                top: float) -> None:
    seeds = range(sweep.config.seeds)
    mean = sweep.mean_curve(param, width)
    per_seed = [sweep.curve(param, width, s) for s in seeds]
    lows = [min(c[i] for c in per_seed) for i in range(len(xs))]
    highs = [max(c[i] for c in per_seed) for i in range(len(xs))]
    ax.plot(xs, mean, "-", color=colour, label=str(width), lw=1.6)
    ok = [i for i in range(len(xs)) if math.isfinite(lows[i]) and math.isfinite(highs[i])]
    ax.fill_between([xs[i] for i in ok], [lows[i] for i in ok], [highs[i] for i in ok],
                    color=colour, alpha=0.18, lw=0)
    failed = [xs[i] for i in range(len(xs)) if not math.isfinite(mean[i])]
    if failed:
        ax.plot(failed, [top] * len(failed), "x", color=colour, ms=6, mew=1.5)
    opt = sweep.optimum(param, width)
    if math.isfinite(opt.log2_lr):
        y = _interp(xs, mean, opt.log2_lr)
        ax.errorbar([opt.log2_lr], [y], xerr=[[opt.spread], [opt.spread]], fmt="o",
                    color=colour, ms=5, capsize=3, mec="black", mew=0.6, zorder=5)


def _interp(xs: list[float], ys: list[float], x: float) -> float:
    for i in range(len(xs) - 1):
        (x0, y0), (x1, y1) = (xs[i], ys[i]), (xs[i + 1], ys[i + 1])
        if x0 <= x <= x1 and math.isfinite(y0) and math.isfinite(y1):
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    finite = [y for y in ys if math.isfinite(y)]
    return min(finite) if finite else math.nan


def plot_widths(sweep: Sweep, path: str | Path, transfer: Any = None) -> Path:
    """Held-out loss against width at the proxy's optimal LR, SP and μP (and the transfer).

    A width where every seed failed at that LR is a cross on the top edge; the error bars
    are the standard deviation over the seeds that finished.
    """
    fig = _figure((6.4, 5.4))
    ax = fig.subplots()
    widths = sweep.config.widths
    finite = [m for p in sweep.config.parametrizations for w in widths
              if math.isfinite(m := sweep.at_lr(p, w, 2.0 ** sweep.optimum(p, widths[0])
                                                .log2_lr)[0])]
    stars = [(row.label, row.mean, row.sd) for row in (transfer.rows if transfer else [])
             if row.width == widths[-1] and math.isfinite(row.mean)]
    oracle = _sp_best(sweep)
    if oracle is not None:
        stars.append(oracle)
    values = finite + [m for _, m, _ in stars]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    top = high + 0.12 * (high - low or 1.0)
    for param, marker, colour in (("sp", "s", "tab:blue"), ("mup", "o", "tab:orange")):
        if param not in sweep.config.parametrizations:
            continue
        lr = 2.0 ** sweep.optimum(param, widths[0]).log2_lr
        if not math.isfinite(lr):
            continue
        stats = [sweep.at_lr(param, w, lr) for w in widths]
        label = f"{LABELS.get(param, param)} at the proxy's LR 2^{math.log2(lr):.1f}"
        ax.errorbar(widths, [m for m, _ in stats], yerr=[s for _, s in stats], marker=marker,
                    capsize=3, color=colour, label=label)
        dead = [w for w, (m, _) in zip(widths, stats, strict=True) if not math.isfinite(m)]
        if dead:
            ax.plot(dead, [top] * len(dead), "x", color=colour, ms=8, mew=2,
                    label=f"{NAMES.get(param, param)} at that LR: every seed collapsed")
    for (label, mean, sd), colour in zip(stars, ("tab:green", "tab:red", "tab:purple",
                                                 "tab:brown", "tab:gray"), strict=False):
        ax.errorbar([widths[-1] * 1.05], [mean], yerr=[sd], fmt="*", ms=10, capsize=3,
                    color=colour, label=label)
    ax.set_xscale("log", base=2)
    ax.set_xticks(widths, [str(w) for w in widths])
    ax.set_ylim(low - 0.05 * (high - low or 1.0), top + 0.05 * (high - low or 1.0))
    ax.set_xlabel("width n")
    ax.set_ylabel("held-out flow-matching loss")
    ax.grid(alpha=0.3)
    fig.legend(loc="outside lower center", fontsize=7, ncols=2)
    fig.savefig(path, dpi=130)
    return Path(path)


NAMES = {"sp": "SP", "mup": "μP"}


def _sp_best(sweep: Sweep) -> tuple[str, float, float] | None:
    """SP at the widest width at its own best grid LR (what a full-width sweep buys)."""
    oracle = sweep.sp_oracle()
    if oracle is None:
        return None
    width, lr = oracle
    mean, sd = sweep.at_lr("sp", width, lr)
    return f"SP n={width} at the best LR of its own sweep (2^{math.log2(lr):.1f})", mean, sd
