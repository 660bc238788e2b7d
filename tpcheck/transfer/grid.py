"""The learning-rate grid and where a loss curve has its minimum, in octaves (log2 LR).

The grid is uniform in log2 LR (half-octave steps by default), because μP and SP differ by
powers of the width: a shift of the optimum reads directly as octaves.

The optimum of one curve is the vertex of the parabola through the lowest grid point and its
two neighbours, in log2 LR, clamped to that bracket. That resolves the optimum finer than the
grid spacing without assuming anything about the curve far from its minimum. A minimum at
either end of the grid is reported as such (``at_edge``): the true optimum may lie outside, and
the study says so rather than report a number it did not measure. A diverged run counts as an
infinitely bad loss.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from tpcheck.errors import TpcheckError


def lr_grid(low: float, high: float, step: float = 0.5) -> tuple[float, ...]:
    """Learning rates ``2^low, 2^(low + step), …, 2^high`` (exponents, in octaves), sorted."""
    if not (math.isfinite(low) and math.isfinite(high)) or high < low:
        raise TpcheckError(f"LR grid 2^{low} … 2^{high} is empty or not finite.",
                           fix="give the exponents low:high with low ≤ high, e.g. -12:-4")
    if step <= 0:
        raise TpcheckError(f"LR grid step {step} octaves must be positive.")
    count = round((high - low) / step)
    if abs(low + count * step - high) > 1e-9:
        raise TpcheckError(f"LR grid 2^{low} … 2^{high} is not a whole number of "
                           f"{step}-octave steps.", fix="make high − low a multiple of the step")
    return tuple(2.0 ** (low + i * step) for i in range(count + 1))


def parse_grid(text: str) -> tuple[float, ...]:
    """``"-12:-4"`` (half octaves) or ``"-12:-4:0.25"`` → the grid; the CLI's ``--lr-grid``."""
    parts = text.split(":")
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        numbers = []
    if len(numbers) not in (2, 3):
        raise TpcheckError(f"--lr-grid {text!r} is not LOW:HIGH[:STEP] in log2 LR.",
                           fix="e.g. --lr-grid -12:-4 (2^-12 … 2^-4 in half octaves)")
    return lr_grid(*numbers)


@dataclass(frozen=True)
class Optimum:
    """Where one loss curve is lowest: log2 LR, the loss there, and whether it is a grid end."""

    log2_lr: float
    loss: float
    at_edge: bool

    @property
    def lr(self) -> float:
        return 2.0 ** self.log2_lr


def optimum(lrs: Sequence[float], losses: Sequence[float]) -> Optimum | None:
    """The parabolic minimum of ``losses`` over ``lrs``; None if every run diverged."""
    if len(lrs) != len(losses) or not lrs:
        raise ValueError("one loss per learning rate is needed")
    xs = [math.log2(lr) for lr in lrs]
    ys = [y if math.isfinite(y) else math.inf for y in losses]
    best = min(range(len(ys)), key=ys.__getitem__)
    if not math.isfinite(ys[best]):
        return None
    if best in (0, len(ys) - 1) or not (math.isfinite(ys[best - 1])
                                        and math.isfinite(ys[best + 1])):
        return Optimum(xs[best], ys[best], best in (0, len(ys) - 1))
    (x0, y0), (x1, y1), (x2, y2) = ((xs[i], ys[i]) for i in (best - 1, best, best + 1))
    denom = (x0 - x1) * (x0 - x2) * (x1 - x2)
    a = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / denom
    b = (x2 * x2 * (y0 - y1) + x1 * x1 * (y2 - y0) + x0 * x0 * (y1 - y2)) / denom
    if a <= 0:  # flat or concave triple: the lowest point is the best estimate
        return Optimum(x1, y1, False)
    vertex = min(max(-b / (2 * a), x0), x2)
    c = y1 - a * x1 * x1 - b * x1
    return Optimum(vertex, a * vertex * vertex + b * vertex + c, False)


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value); NaN for none."""
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0
