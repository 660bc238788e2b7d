"""The coord-check plot of the μP papers (TP5 App. D.1): activation size against width, per step.

Top row: mean ``|x_t|`` after ``t`` steps (t = 0 is init); bottom row: mean ``|x_t − x_0|``, the
change on the same batch. Log-log axes, so a line's slope is the measured exponent: flat lines
are what μP promises, rising lines blow up with width. Repeated blocks are averaged into one
line (``blocks.{0..27}.attn.qkv``), so a 28-block model stays readable; the legend gives each
line's update slope at the judged step and marks the lines whose verdict is a disagreement.
matplotlib is imported only here, and only when a plot is asked for (``tpcheck[plots]``).
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from tpcheck.coord.report import CoordResult
from tpcheck.errors import TpcheckError
from tpcheck.fold import fold


def require_matplotlib() -> Any:
    """matplotlib, or a TpcheckError (CLI exit 2) that says how to install it."""
    try:
        import matplotlib
    except ImportError as exc:
        raise TpcheckError("the coord-check plot needs matplotlib, which is not installed.",
                           fix="pip install 'tpcheck[plots]'") from exc
    return matplotlib


def plot(result: CoordResult, path: str | Path) -> Path:
    """Write ``result`` as a PNG at ``path`` and return the path."""
    require_matplotlib()
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    lines = _lines(result)
    steps = result.steps
    fig = Figure(figsize=(3.0 * (steps + 1) + 4.2, 6.6), layout="constrained")
    grid = fig.add_gridspec(2, steps + 2, width_ratios=[1] * (steps + 1) + [1.45])
    colours = _colours(lines)
    for t in range(steps + 1):
        ax = fig.add_subplot(grid[0, t])
        _panel(ax, result, lines, colours, "size", t)
        ax.set_title(f"t = {t}" + (" (init)" if t == 0 else ""), fontsize=10)
        if t == 0:
            ax.set_ylabel("mean |x_t|")
        if t:
            ax = fig.add_subplot(grid[1, t])
            _panel(ax, result, lines, colours, "update", t - 1)
            if t == 1:
                ax.set_ylabel("mean |x_t − x_0|")
    _notes(fig.add_subplot(grid[1, 0]), result)
    legend_ax = fig.add_subplot(grid[:, steps + 1])
    legend_ax.axis("off")
    handles = [legend_ax.plot([], [], **_style(line, colours[i]))[0]
               for i, line in enumerate(lines)]
    legend_ax.legend(handles, [line["label"] for line in lines], loc="upper left", fontsize=7,
                     frameon=False, title=f"update slope at t = {result.verdict_step} (judged)",
                     title_fontsize=8,
                     borderaxespad=0.0)
    rate = result.agreement_rate
    agreement = "" if rate is None else f" — static vs measured: {100 * rate:.0f}% agree"
    fig.suptitle(f"coord check: {result.model}, {result.optimizer}, lr "
                 f"{'spec' if result.lr is None else f'{result.lr:g}'}, "
                 f"{result.seeds} seeds{agreement}", fontsize=11)
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path


def _lines(result: CoordResult) -> list[dict[str, Any]]:
    """One line per folded activation: its values averaged over the repeated blocks."""
    lines = []
    for label, members in fold(result.records, lambda r: r.name,
                               lambda r: (r.kind, r.signature)):
        last = [m.update_slopes[result.verdict_step - 1].mean for m in members]
        finite = [v for v in last if math.isfinite(v)]
        slope = f"{statistics.fmean(finite):+.2f}" if finite else "zero"
        wrong = [what for what in ("size", "update")
                 if any(getattr(m, f"{what}_verdict") == "disagree" for m in members)]
        bad = bool(wrong)
        lines.append({
            "label": f"{label} [{members[0].module_type}]  {slope}"
                     + (f"  ✗ {', '.join(wrong)}" if bad else ""),
            "size": _average([m.size for m in members]),
            "update": _average([m.update for m in members]),
            "kind": members[0].kind, "bad": bad,
        })
    return lines


def _average(tables: list[tuple[tuple[float, ...], ...]]) -> list[list[float]]:
    return [[statistics.fmean(t[row][col] for t in tables) for col in range(len(tables[0][row]))]
            for row in range(len(tables[0]))]


def _panel(ax: Any, result: CoordResult, lines: list[dict[str, Any]], colours: list[Any],
           what: str, row: int) -> None:
    shown: list[float] = []
    for line, colour in zip(lines, colours, strict=True):
        ys = line[what][row]
        pts = [(w, y) for w, y in zip(result.widths, ys, strict=True)
               if math.isfinite(y) and y > 0]  # zero (and diverged) points cannot be on a log axis
        if pts:
            ax.plot(*zip(*pts, strict=True), **_style(line, colour))
            shown += [y for _, y in pts]
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    if shown and max(shown) < 10 * min(shown):  # at least a decade: a flat line must look flat
        mid = math.sqrt(min(shown) * max(shown))
        ax.set_ylim(min(min(shown), mid / 10 ** 0.5), max(max(shown), mid * 10 ** 0.5))
    ax.set_xticks(result.widths, [str(w) for w in result.widths], fontsize=7)
    ax.minorticks_off()
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlabel("width n", fontsize=8)
    ax.grid(True, which="major", alpha=0.3)
    if what == "update":
        ax.set_title(f"Δ after {row + 1} step{'s' if row else ''}", fontsize=9)


def _style(line: dict[str, Any], colour: Any) -> dict[str, Any]:
    dashed = line["kind"] == "logits"
    return {"color": colour, "linewidth": 2.4 if line["kind"] == "output" else 1.2,
            "linestyle": "--" if dashed else "-", "marker": "x" if line["bad"] else "o",
            "markersize": 3.5}


def _colours(lines: list[dict[str, Any]]) -> list[Any]:
    """tab20 for the modules, in order; black for the model output, which must stand out."""
    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    out, i = [], 0
    for line in lines:
        if line["kind"] == "output":
            out.append("black")
        else:
            out.append(cmap(i % 20))
            i += 1
    return out


def _notes(ax: Any, result: CoordResult) -> None:
    """The bottom-left cell: how to read the figure, and any divergence."""
    ax.axis("off")
    text = ["How to read:",
            "top: mean |x_t| per module output,",
            "bottom: mean |x_t − x_0| (same batch).",
            "Slope on these log-log axes = exponent:",
            "flat = width-independent (μP),",
            "rising = blows up with width (SP).",
            "One line per module kind, averaged",
            "over repeated blocks; dashed: attention",
            "logits; thick: model output; x markers",
            "and ✗ in the legend: the static prediction",
            "of the size or the update disagrees.",
            "A line missing from a Δ panel did not",
            "move at all (zero has no log scale)."]
    text += [f"DIVERGED: width {d.width}, step {d.step}" for d in result.divergences[:3]]
    ax.text(0.0, 1.0, "\n".join(text), va="top", ha="left", fontsize=7.5,
            transform=ax.transAxes)
