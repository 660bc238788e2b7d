"""Widths: fit every dimension of every parameter and graph node as ``p·n + q`` in the width.

Each dimension is fitted through two traced widths with exact rationals and then checked on
every other width: a dimension that is not affine in ``n`` (capped at ``min(n, 1024)``,
rounded to a multiple of 256, quadratic) is an error naming it and the widths, since any
role derived from it would be a guess (theory.md §7).
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy

from tpcheck.capture import Capture, OpNode, Trace
from tpcheck.errors import TpcheckError
from tpcheck.symbols import n

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

    @property
    def widths(self) -> tuple[int, ...]:
        return self.capture.widths


def fit_dim(values: dict[int, int]) -> sympy.Expr | None:
    """The affine ``p·n + q`` through ``{width: size}``, or None if no line fits all points."""
    widths = sorted(values)
    w0, w1 = widths[0], widths[-1]
    p = sympy.Rational(values[w1] - values[w0], w1 - w0)
    q = sympy.Integer(values[w0]) - p * w0
    expr = sympy.expand(p * n + q)
    if all(expr.subs(n, w) == values[w] for w in widths):
        return expr
    return None


def fit(capture: Capture) -> Shapes:
    """Fit every parameter and node dimension of ``capture`` in ``n``."""
    widths = capture.widths
    base = capture.traces[widths[0]]
    _check_same_params(capture)
    _check_same_structure(capture)
    label = capture.spec.label

    param_shapes: dict[str, SymShape] = {}
    for name, info in base.params.items():
        dims = []
        for axis in range(len(info.shape)):
            values = {w: capture.traces[w].params[name].shape[axis] for w in widths}
            expr = fit_dim(values)
            if expr is None:
                sizes = ", ".join(f"n={w}: {s}" for w, s in values.items())
                raise TpcheckError(
                    f"dimension {axis} of parameter {name!r} is not affine in the width "
                    f"({sizes}).",
                    where=label,
                    fix="trace at widths where every dim is p·n + q (a dim capped at min(n, C) or "
                        "rounded to a multiple needs widths on one side of the cap/rounding), "
                        "e.g. --widths " + ",".join(str(w) for w in _suggest(widths)),
                )
            dims.append(expr)
        param_shapes[name] = tuple(dims)

    node_shapes: dict[str, tuple[sympy.Expr | None, ...] | None] = {}
    for i, node in enumerate(base.nodes):
        if node.shape is None:
            node_shapes[node.name] = None
            continue
        per_width = [capture.traces[w].nodes[i].shape for w in widths]
        if any(s is None or len(s) != len(node.shape) for s in per_width):
            node_shapes[node.name] = None
            continue
        node_shapes[node.name] = tuple(
            fit_dim({w: s[axis] for w, s in zip(widths, per_width, strict=True)})
            for axis in range(len(node.shape)))
    return Shapes(capture=capture, nodes=base.nodes, param_shapes=param_shapes,
                  node_shapes=node_shapes)


def _suggest(widths: tuple[int, ...]) -> list[int]:
    return [max(widths) * 2 ** k for k in range(len(widths))] if widths else []


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
                raise TpcheckError(
                    f"the traced graph differs between widths {widths[0]} and {w}: node "
                    f"{a.name!r} is {a.target} at n={widths[0]} but {b.name!r} is {b.target} "
                    f"at n={w}.",
                    where=f"{capture.spec.label}, {a.source or a.module or 'unknown source'}",
                    fix="the forward must run the same ops at every width (no branch on the "
                        "width or on head counts)",
                )
        if len(base.nodes) != len(other.nodes):
            raise TpcheckError(
                f"the traced graph has {len(base.nodes)} nodes at n={widths[0]} but "
                f"{len(other.nodes)} at n={w}.",
                where=capture.spec.label,
                fix="the forward must run the same ops at every width")


def _short(names: list[str], k: int = 6) -> str:
    return ", ".join(names[:k]) + (f" and {len(names) - k} more" if len(names) > k else "")


def is_infinite(dim: sympy.Expr | None) -> bool:
    """A dimension is infinite iff it grows with ``n`` (theory.md §2)."""
    return dim is not None and sympy.diff(dim, n) != 0


def describe(shape: SymShape | tuple[sympy.Expr | None, ...]) -> list[str]:
    """A shape as strings (the JSON report's form)."""
    return ["?" if d is None else str(d) for d in shape]
