"""Power-law exponents measured across widths, snapped to exact rationals within a tolerance.

Every measured quantity (init size, learning rate, weight decay, ε, forward multiplier) is
fitted as ``C · n^(-k)`` by least squares in log-log space. ``k`` is snapped to the nearest
multiple of 1/2 within :data:`SNAP_HALF` or of 1/4 within :data:`SNAP_QUARTER`; otherwise it
is kept as an unsnapped rational, and the fit's worst log residual tells whether the values
are a power law at all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import sympy

#: Snapping tolerances on the exponent (random-init noise at n = 64 moves a slope by ~0.05).
SNAP_HALF = 0.15
SNAP_QUARTER = 0.06
#: Largest log-residual (natural log) for values to count as a power law (~15 %).
POWER_LAW_TOLERANCE = 0.15


@dataclass(frozen=True)
class Fit:
    """``values[w] ≈ C · w^(-exponent)``; ``exponent`` is ``oo`` when every value is zero."""

    exponent: sympy.Expr
    raw: float
    residual: float
    snapped: bool
    values: dict[int, float]

    @property
    def power_law(self) -> bool:
        return self.residual <= POWER_LAW_TOLERANCE

    def at(self, width: int) -> float:
        return self.values[width]

    def predict(self, widths: Sequence[float]) -> list[float]:
        """The fitted law (unsnapped exponent, geometric-mean constant) at other widths.

        All-zero values stay zero; values that are zero at some widths only are no power law
        and give their mean everywhere.
        """
        vals = list(self.values.values())
        if math.isinf(self.raw):
            return [0.0 for _ in widths]
        if math.isnan(self.raw):
            return [sum(vals) / len(vals) for _ in widths]
        log_c = sum(math.log(v) + self.raw * math.log(w) for w, v in self.values.items()) / len(
            vals)
        return [math.exp(log_c - self.raw * math.log(w)) for w in widths]


def fit_power_law(values: dict[int, float], samples: dict[int, int] | None = None) -> Fit:
    """Fit ``values`` (width → positive value) as a power law of the width.

    ``samples[w]`` is the number of random entries behind a root-mean-square at width ``w``
    (init sizes). Their sampling noise (relative standard error ≈ 1/√(2N) for Gaussian
    entries) widens the snapping band, and within that band the width-independent exponent 0
    is preferred: a 4-entry bias must not read as ``n^(1/4)`` by chance.
    """
    widths = sorted(values)
    vals = {w: abs(float(values[w])) for w in widths}
    if all(v == 0.0 for v in vals.values()):
        return Fit(sympy.oo, math.inf, 0.0, True, vals)
    if any(v == 0.0 for v in vals.values()) or any(math.isnan(v) for v in vals.values()):
        return Fit(sympy.nan, math.nan, math.inf, False, vals)
    xs = [math.log(w) for w in widths]
    ys = [math.log(vals[w]) for w in widths]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    intercept = my - slope * mx
    residual = max(abs(y - (intercept + slope * x)) for x, y in zip(xs, ys, strict=True))
    raw = -slope
    noise = 0.0
    if samples:
        errors = [(1.0 / (2.0 * max(samples[w], 1))) ** 0.5 for w in widths]
        noise = (sum(((x - mx) * e) ** 2 for x, e in zip(xs, errors, strict=True)) ** 0.5) / sxx
        residual = max(0.0, residual - 3 * max(errors))
    if noise and abs(raw) <= 3 * noise:
        return Fit(sympy.Integer(0), raw, residual, True, vals)
    exponent, snapped = snap(raw)
    return Fit(exponent, raw, residual, snapped, vals)


def snap(raw: float) -> tuple[sympy.Expr, bool]:
    """The exact rational for a measured exponent, and whether it was within tolerance."""
    half = round(raw * 2) / 2
    if abs(raw - half) <= SNAP_HALF:
        return sympy.Rational(round(raw * 2), 2), True
    quarter = round(raw * 4) / 4
    if abs(raw - quarter) <= SNAP_QUARTER:
        return sympy.Rational(round(raw * 4), 4), True
    return sympy.Rational(raw).limit_denominator(100), False


def as_json(x: sympy.Expr) -> float | str | int:
    """An exponent for JSON: an int or float (halves and quarters are exact), "inf" for ∞."""
    if x is sympy.oo or x == sympy.oo:
        return "inf"
    if x is sympy.nan or x != x:
        return "nan"
    if isinstance(x, sympy.Integer):
        return int(x)
    return float(x)
