"""Fit: log-log slopes of recorded sizes and updates against the width, per seed."""

from __future__ import annotations

import math
import statistics

import numpy as np

from tpcheck.coord.record import Run
from tpcheck.coord.report import Slope
from tpcheck.sizes import local_slope


def table(runs: dict[tuple[int, int], Run], name: str, what: str, widths: tuple[int, ...],
           seeds: int, steps: int) -> list[list[list[float]]]:
    """``[seed][t][width]`` values of one record; NaN after a run stopped (diverged)."""
    def value(w: int, s: int, t: int) -> float:
        got = getattr(runs[w, s], what)[name]
        return got[t] if t < len(got) else math.nan

    return [[[value(w, s, t) for w in widths] for t in range(steps + 1)] for s in range(seeds)]


def seed_mean(table: list[list[list[float]]], steps: range) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(statistics.fmean(seed[t][i] for seed in table)
                       for i in range(len(table[0][t]))) for t in steps)


def same(runs: dict[tuple[int, int], Run], a: str, b: str) -> bool:
    """Whether records ``a`` and ``b`` measured the same numbers in every run."""
    for run in runs.values():
        for table in (run.size, run.delta):
            xs, ys = table[a], table[b]
            if len(xs) != len(ys) or not all(
                    math.isclose(x, y, rel_tol=1e-5, abs_tol=1e-12) for x, y in zip(xs, ys,
                                                                                     strict=True)):
                return False
    return True


def slope(values: dict[int, float], widths: tuple[int, ...]) -> float:
    """Least-squares slope of log(value) against log(width); -inf if all zero, else NaN."""
    ys = [values[w] for w in widths]
    if len(widths) < 3 or any(not math.isfinite(y) for y in ys):
        return math.nan
    return local_slope(np.asarray(ys, dtype=float), widths)


def slope_over_seeds(per_seed: list[dict[int, float]], widths: tuple[int, ...]) -> Slope:
    slopes = [slope(v, widths) for v in per_seed]
    if any(math.isnan(s) for s in slopes):
        return Slope(math.nan, math.nan)
    if all(s == -math.inf for s in slopes):
        return Slope(-math.inf, 0.0)
    if any(s == -math.inf for s in slopes):  # zero for some seeds only: no clean slope
        return Slope(math.nan, math.nan)
    spread = statistics.stdev(slopes) if len(slopes) > 1 else 0.0
    return Slope(statistics.fmean(slopes), spread)
