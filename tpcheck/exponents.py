"""Exponents of quantities measured across widths: exact laws where the values are exact,
power laws snapped within a tolerance where they are samples.

Values computed from the model's own Python (init sizes read from init calls, learning rates,
weight decay and ε from the optimizer's param groups, forward multipliers from graph
constants) are exact up to float rounding. They are fitted as an exact expression in ``n`` —
``c·n^k`` or ``c·n^k·g(n)`` with ``g`` an affine ``p·n + q`` or its inverse or square root —
verified at every width to 1e-9. The exponent is then the asymptotic one (n → ∞), not a
finite-width slope: xavier on a 4096 → n projection has variance 2/(n + 4096), flat at
n ≤ 256 yet shrinking like n^-1, and ``from_width`` says from where that shows (4096).

Sampled values (init sizes of tensors whose init calls could not be read) are fitted as
``C · n^(-k)`` by least squares in log-log space; ``k`` is snapped to the nearest multiple of
1/2 within :data:`SNAP_HALF` or of 1/4 within :data:`SNAP_QUARTER`, else kept unsnapped, and
the worst log residual tells whether the values are a power law at all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import sympy

from tpcheck.symbols import n as _N

#: Snapping tolerances on the exponent (random-init noise at n = 64 moves a slope by ~0.05).
SNAP_HALF = 0.15
SNAP_QUARTER = 0.06
#: Largest log-residual (natural log) for values to count as a power law (~15 %).
POWER_LAW_TOLERANCE = 0.15
#: Relative error within which an exact law must reproduce every value: a power law to float32
#: rounding (tables computed in float32 are exact to ~1e-7), a two-term law to 1e-9 (it has one
#: more parameter to fit noise with).
EXACT_POWER = 1e-6
EXACT = 1e-9
#: A two-term law whose terms cross beyond this width is a fit of rounding noise, not a law.
_MAX_CROSSOVER = 1e7


@dataclass(frozen=True)
class Fit:
    """``values[w] ≈ C · w^(-exponent)``; ``exponent`` is ``oo`` when every value is zero."""

    exponent: sympy.Expr
    raw: float
    residual: float
    snapped: bool
    values: dict[int, float]
    #: The exact expression in ``n`` the values follow (None: a least-squares power law).
    law: sympy.Expr | None = None
    #: Where the law's leading term overtakes the other (``2/(n + 4096)``: 4096); None if
    #: the leading exponent already shows at every width.
    from_width: int | None = None

    @property
    def power_law(self) -> bool:
        return self.law is not None or self.residual <= POWER_LAW_TOLERANCE

    def at(self, width: int) -> float:
        return self.values[width]

    def expression(self) -> sympy.Expr | None:
        """The values as an expression in ``n``: the exact law, else the least-squares power
        law (None where the values are no power law: zero at some widths only)."""
        if self.law is not None:
            return self.law
        if math.isinf(self.raw) or math.isnan(self.raw):
            return None
        log_c = sum(math.log(v) + self.raw * math.log(w) for w, v in self.values.items()) / len(
            self.values)
        return sympy.Float(math.exp(log_c), 12) * _N ** sympy.Float(-self.raw, 12)

    def predict(self, widths: Sequence[float]) -> list[float]:
        """The fitted law (unsnapped exponent, geometric-mean constant) at other widths.

        All-zero values stay zero; values that are zero at some widths only are no power law
        and give their mean everywhere.
        """
        vals = list(self.values.values())
        if self.law is not None:
            f = sympy.lambdify(_N, self.law, "math")
            return [float(f(w)) for w in widths]
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
        return Fit(sympy.oo, math.inf, 0.0, True, vals, law=sympy.Integer(0))
    if any(v == 0.0 for v in vals.values()) or any(math.isnan(v) for v in vals.values()):
        return Fit(sympy.nan, math.nan, math.inf, False, vals)
    if samples is None:
        exact = exact_law(vals)
        if exact is not None:
            return exact
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


def exact_law(values: dict[int, float]) -> Fit | None:
    """The exact law in ``n`` behind exact positive values, or None if no simple one fits.

    Tried in order: ``c·n^k`` (k rational, denominator ≤ 12), then ``c·n^k·g(n)`` with
    k a multiple of 1/2 in [-3, 3] and g ∈ {p·n + q, 1/(p·n + q), √(p·n + q), 1/√(p·n + q)}.
    A law must reproduce every value to :data:`EXACT`; with three widths that is one check
    beyond the two points that fix it.
    """
    widths = sorted(values)
    if len(widths) < 3 or any(v <= 0 or not math.isfinite(v) for v in values.values()):
        return None
    w0, w1 = widths[0], widths[-1]
    slope = math.log(values[w1] / values[w0]) / math.log(w1 / w0)
    k = sympy.Rational(slope).limit_denominator(12)
    if abs(float(k) - slope) < 1e-6:
        c = values[w0] / w0 ** float(k)
        if all(_close(c * w ** float(k), values[w], EXACT_POWER) for w in widths):
            return _law(values, sympy.Float(c, 12) * _N ** k, -k, None)
    for twice in range(-6, 7):
        k = sympy.Rational(twice, 2)
        for power in (1, -1, sympy.Rational(1, 2), sympy.Rational(-1, 2)):
            # values = n^k · (p·n + q)^power  ⇔  (values / n^k)^(1/power) = p·n + q
            h = {w: (values[w] / w ** float(k)) ** (1.0 / float(power)) for w in widths}
            p = (h[w1] - h[w0]) / (w1 - w0)
            q = h[w0] - p * w0
            if p == 0 or abs(q) <= 1e-12 * abs(h[w0]) or not all(
                    _close((p * w + q) ** float(power) * w ** float(k), values[w])
                    for w in widths):
                continue
            if p * w0 + q <= 0 or abs(q / p) > _MAX_CROSSOVER:
                continue
            law = _N ** k * (sympy.Float(p, 12) * _N + sympy.Float(q, 12)) ** power
            crossover = abs(q / p)
            return _law(values, law, -(k + power), round(crossover) if crossover > 1 else None)
    return None


def _law(values: dict[int, float], law: sympy.Expr, exponent: sympy.Expr,
         from_width: int | None) -> Fit:
    widths = sorted(values)
    raw = -math.log(values[widths[-1]] / values[widths[0]]) / math.log(widths[-1] / widths[0])
    return Fit(sympy.nsimplify(exponent), raw, 0.0, True, dict(values), law=law,
               from_width=from_width)


def _close(a: float, b: float, tolerance: float = EXACT) -> bool:
    return abs(a - b) <= tolerance * max(abs(a), abs(b))


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
    """An exponent for JSON: an int or float (halves and quarters are exact), "inf" / "-inf"
    for ±∞ (JSON has no infinities)."""
    if x is sympy.oo or x == sympy.oo:
        return "inf"
    if x == -sympy.oo:
        return "-inf"
    if x is sympy.nan or x != x:
        return "nan"
    if isinstance(x, sympy.Integer):
        return int(x)
    return float(x)
