"""Widths: fit every dimension of every parameter and graph node as ``p·n + q`` in the width.

Each dimension is fitted through two traced widths with exact rationals and then checked on
every other width. Real models round hidden sizes (``8n/3`` to a multiple of 256, ``int(2·4n/3)``):
such a dimension is affine up to rounding and is fitted as its exact rational slope ``p·n``,
reproduced exactly at every traced width by ``k·round(p·n/k)`` (ceil, floor or nearest), checked
again at two larger widths built on the meta device (a cap such as ``min(n, 96)`` can look like
rounding on three widths but not beyond them), classified by its slope and shown as ``≈ 8n/3``.

A parameter dimension that is neither (a cap, a branch on the width) is an error naming the
dimension, with widths that do work for this model: computed by building it on meta along a
ladder of widths and finding where every dimension is affine.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import sympy
import torch

from tpcheck.capture import Capture, OpNode, Trace, build_model
from tpcheck.errors import TpcheckError
from tpcheck.symbols import ROUNDED, n

SymShape = tuple[sympy.Expr, ...]


@dataclass(frozen=True)
class Shapes:
    """The captured graph with every shape written in ``n``.

    ``nodes`` is the graph at the smallest width (structure is the same at every width);
    ``node_shapes[name]`` is ``None`` for nodes without a tensor output and holds ``None``
    entries for node dims that are not affine in ``n`` (only parameters must be affine).
    """

    capture: Capture
    nodes: tuple[OpNode, ...]
    param_shapes: dict[str, SymShape]
    node_shapes: dict[str, tuple[sympy.Expr | None, ...] | None]
    #: (parameter or node name, axis) of the dims that are affine only up to rounding.
    rounded: frozenset[tuple[str, int]] = frozenset()

    @property
    def widths(self) -> tuple[int, ...]:
        return self.capture.widths


def fit_dim(values: dict[int, int]) -> sympy.Expr | None:
    """The affine ``p·n + q`` through ``{width: size}``, or None if no line fits all points."""
    return _fit_affine(tuple(sorted(values.items())))


@functools.lru_cache(maxsize=8192)
def _fit_affine(points: tuple[tuple[int, int], ...]) -> sympy.Expr | None:
    (w0, s0), (w1, s1) = points[0], points[-1]
    p = sympy.Rational(s1 - s0, w1 - w0)
    q = sympy.Integer(s0) - p * w0
    if all(p * w + q == size for w, size in points):
        return sympy.expand(p * n + q)
    return None


@dataclass(frozen=True)
class Rounding:
    """``size = k · R(p·n / k)`` with ``R`` one of ceil, floor, round."""

    slope: sympy.Rational
    multiple: int
    mode: str

    def at(self, width: int) -> int:
        x = sympy.Rational(self.slope * width, self.multiple)
        r = {"ceil": sympy.ceiling, "floor": sympy.floor}.get(self.mode)
        value = r(x) if r else sympy.floor(x + sympy.Rational(1, 2))
        return int(value) * self.multiple


@functools.lru_cache(maxsize=4096)
def fit_rounded(points: tuple[tuple[int, int], ...]) -> Rounding | None:
    """The rounding law behind sizes that are affine in ``n`` only up to rounding, if any.

    Slopes are rationals with small denominators near the end-to-end slope; multiples are the
    divisors of the sizes' gcd, largest first. The law must reproduce every size exactly.
    """
    (w0, s0), (w1, s1) = points[0], points[-1]
    if s1 <= s0:
        return None
    raw = (s1 - s0) / (w1 - w0)
    g = math.gcd(*[size for _, size in points])
    slopes = sorted({sympy.Rational(raw).limit_denominator(d) for d in range(1, 17)},
                    key=lambda r: (abs(float(r) - raw), r.q))
    multiples = sorted((k for k in range(1, g + 1) if g % k == 0), reverse=True)
    for p in slopes:
        if p <= 0:
            continue
        for k in multiples:
            for mode in ("ceil", "floor", "round"):
                law = Rounding(p, k, mode)
                if all(law.at(w) == size for w, size in points):
                    return law
    return None


def fit(capture: Capture) -> Shapes:
    """Fit every parameter and node dimension of ``capture`` in ``n``."""
    widths = capture.widths
    base = capture.traces[widths[0]]
    _check_same_params(capture)
    _check_same_structure(capture)
    rounded: set[tuple[str, int]] = set()
    pending: dict[tuple[str, int], Rounding] = {}

    param_shapes: dict[str, SymShape] = {}
    failed: list[tuple[str, int, dict[int, int]]] = []
    for name, info in base.params.items():
        dims = []
        for axis in range(len(info.shape)):
            values = {w: capture.traces[w].params[name].shape[axis] for w in widths}
            points = tuple(sorted(values.items()))
            expr = _fit_affine(points)
            if expr is None:
                law = fit_rounded(points)
                if law is None:
                    failed.append((name, axis, values))
                    dims.append(sympy.Integer(0))
                    continue
                pending[(name, axis)] = law
                expr = law.slope * n
            dims.append(expr)
        param_shapes[name] = tuple(dims)
    if pending:
        failed += _verify_beyond(capture, pending)
        rounded.update(pending)
    if failed:
        raise _not_affine(capture, failed)
    if param_shapes and not any(is_infinite(d) for shape in param_shapes.values() for d in shape):
        sizes = {w: sum(math.prod(p.shape) for p in capture.traces[w].params.values())
                 for w in widths}
        raise TpcheckError(
            "no parameter dimension grows with the width: the model is the same at every traced "
            "width (" + ", ".join(f"n={w}: {s:,} parameters" for w, s in sizes.items()) + ").",
            where=capture.spec.label,
            fix="make factory(width) build the model at hidden size `width` (the factory's "
                "argument is the width n; it is ignored now)")

    node_shapes: dict[str, tuple[sympy.Expr | None, ...] | None] = {}
    for i, node in enumerate(base.nodes):
        if node.shape is None:
            node_shapes[node.name] = None
            continue
        per_width = [capture.traces[w].nodes[i].shape for w in widths]
        if any(s is None or len(s) != len(node.shape) for s in per_width):
            node_shapes[node.name] = None
            continue
        dims_: list[sympy.Expr | None] = []
        for axis in range(len(node.shape)):
            points = tuple((w, s[axis]) for w, s in zip(widths, per_width, strict=True))
            expr = _fit_affine(points)
            if expr is None:
                law = fit_rounded(points)
                if law is not None:
                    expr = law.slope * n
                    rounded.add((node.name, axis))
            dims_.append(expr)
        node_shapes[node.name] = tuple(dims_)
    return Shapes(capture=capture, nodes=base.nodes, param_shapes=param_shapes,
                  node_shapes=node_shapes, rounded=frozenset(rounded))


def _verify_beyond(capture: Capture, pending: dict[tuple[str, int], Rounding]
                   ) -> list[tuple[str, int, dict[int, int]]]:
    """Rounding laws must hold beyond the traced widths too (a cap would not)."""
    top = max(capture.widths)
    extra = {}
    for w in (2 * top, 4 * top):
        shapes = _param_shapes_at(capture.spec, w)
        if shapes is not None:
            extra[w] = shapes
    failed = []
    for (name, axis), law in pending.items():
        for w, shapes in extra.items():
            size = shapes.get(name, (None,) * (axis + 1))[axis]
            if size != law.at(w):
                values = {t: capture.traces[t].params[name].shape[axis] for t in capture.widths}
                values[w] = size
                failed.append((name, axis, values))
                break
    return failed


def _param_shapes_at(spec: Any, width: int) -> dict[str, tuple[int, ...]] | None:
    """Parameter shapes of the spec's model at ``width``, built on meta (None: it fails)."""
    try:
        with torch.random.fork_rng(devices=[]):
            model = build_model(spec, width, "meta")
    except TpcheckError:
        return None
    return {name: tuple(p.shape) for name, p in model.named_parameters()}


def _not_affine(capture: Capture, failed: list[tuple[str, int, dict[int, int]]]
                ) -> TpcheckError:
    name, axis, values = failed[0]
    sizes = ", ".join(f"n={w}: {s}" for w, s in sorted(values.items()))
    more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
    suggestion = suggest_widths(capture)
    fix = ("trace at widths on one side of the cap or branch, where every dimension is p·n + q"
           + (f": --widths {','.join(map(str, suggestion))} works for this model"
              if suggestion else " (no such widths were found between "
              f"{_ladder(capture.widths)[0]} and {_ladder(capture.widths)[-1]})"))
    return TpcheckError(
        f"dimension {axis} of parameter {name!r} is not affine in the width, even up to "
        f"rounding ({sizes}){more}.", where=capture.spec.label, fix=fix)


def suggest_widths(capture: Capture) -> tuple[int, ...] | None:
    """Three widths where every parameter dimension of this model is affine (or rounded).

    The model is built on meta along a ladder of widths (multiples of the traced widths'
    gcd, ratio about √2); the longest run of consecutive ladder widths on which every
    dimension fits wins, and its three largest widths are suggested.
    """
    ladder = _ladder(capture.widths)
    shapes = {w: s for w in ladder if (s := _param_shapes_at(capture.spec, w)) is not None}
    usable = sorted(shapes)
    best: list[int] = []
    start = 0
    while start < len(usable):
        end = start + 1
        while end < len(usable) and _all_fit({w: shapes[w] for w in usable[start:end + 1]}):
            end += 1
        run = usable[start:end]
        if len(run) >= 3 and len(run) >= len(best):
            best = run
        start = end if end > start + 1 else start + 1
    return tuple(best[-3:]) if len(best) >= 3 else None


def _ladder(widths: tuple[int, ...]) -> list[int]:
    g = math.gcd(*widths)
    steps = sorted({2 ** i for i in range(16)} | {3 * 2 ** i for i in range(15)})
    return [k * g for k in steps if k * g <= 16 * max(widths)]


def _all_fit(shapes: dict[int, dict[str, tuple[int, ...]]]) -> bool:
    widths = sorted(shapes)
    names = set(shapes[widths[0]])
    if any(set(shapes[w]) != names for w in widths):
        return False
    for name in names:
        dims = {len(shapes[w][name]) for w in widths}
        if len(dims) != 1:
            return False
        for axis in range(dims.pop()):
            points = tuple((w, shapes[w][name][axis]) for w in widths)
            if _fit_affine(points) is None and (len(points) < 3 or fit_rounded(points) is None):
                return False
    return True


def _check_same_params(capture: Capture) -> None:
    widths = capture.widths
    names = {w: set(capture.traces[w].params) for w in widths}
    base = names[widths[0]]
    for w in widths[1:]:
        if names[w] != base:
            only_base = sorted(base - names[w])
            only_w = sorted(names[w] - base)
            parts = []
            if only_base:
                parts.append(f"only at n={widths[0]}: {_short(only_base)}")
            if only_w:
                parts.append(f"only at n={w}: {_short(only_w)}")
            raise TpcheckError(
                "parameter names differ across widths (" + "; ".join(parts) + ").",
                where=capture.spec.label,
                fix="build the same modules at every width: depth, block types and optional "
                    "layers must not depend on the width",
            )


def _check_same_structure(capture: Capture) -> None:
    widths = capture.widths
    base: Trace = capture.traces[widths[0]]
    for w in widths[1:]:
        other = capture.traces[w]
        for a, b in zip(base.nodes, other.nodes, strict=False):
            if (a.kind, a.target) != (b.kind, b.target):
                source = next((x.source for x in (b, a) if x.source), None)
                raise TpcheckError(
                    f"the traced graph differs between widths {widths[0]} and {w}: node "
                    f"{a.name!r} is {a.target} at n={widths[0]} but {b.name!r} is {b.target} "
                    f"at n={w}.",
                    where=f"{capture.spec.label}, {source or a.module or 'unknown source'}",
                    fix="the forward must run the same ops at every width: no branch on the "
                        "width, and no Python control flow on tensor values (such as "
                        "`if x.sum() > 0`), which takes different paths at different widths")
        if len(base.nodes) != len(other.nodes):
            raise TpcheckError(
                f"the traced graph has {len(base.nodes)} nodes at n={widths[0]} but "
                f"{len(other.nodes)} at n={w}.",
                where=capture.spec.label,
                fix="the forward must run the same ops at every width: no branch on the width "
                    "or on tensor values")


def _short(names: list[str], k: int = 6) -> str:
    return ", ".join(names[:k]) + (f" and {len(names) - k} more" if len(names) > k else "")


@functools.lru_cache(maxsize=65536)
def is_infinite(dim: sympy.Expr | None) -> bool:
    """A dimension is infinite iff it grows with ``n`` (docs/theory.md §2)."""
    return dim is not None and sympy.diff(dim, n) != 0


def width_dims(shape: tuple[sympy.Expr | None, ...] | None) -> int:
    """How many dims of ``shape`` grow with ``n``: what an op that repeats a smaller operand
    over the width (a broadcast) sums its gradient over, the difference of two such counts."""
    return sum(map(is_infinite, shape or ()))


def describe(shape: SymShape | tuple[sympy.Expr | None, ...],
             rounded: tuple[int, ...] = ()) -> list[str]:
    """A shape as strings (the JSON report's form); ``rounded`` axes are written ``≈…``."""
    return ["?" if d is None else (ROUNDED if axis in rounded else "") + str(d)
            for axis, d in enumerate(shape)]
