"""The human side of a generated spec: what was decided and why, in short lines.

These go to ``spec.meta["notes"]`` (the report shows them) and, shortened, into the generated
file's docstring.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable

from .depth import Cut
from .scaling import Axes, Scaled
from .source import Draft


def readable(expr: str, head_dim: int | None) -> str:
    """``n // HEAD_DIM // 3`` → ``n/128/3``; ``27 * n // 10`` → ``27n/10``."""
    if head_dim:
        expr = expr.replace("HEAD_DIM", str(head_dim))
    return expr.replace(" // ", "/").replace(" * ", "")


def law_notes(law: dict[str, Scaled], axes: Axes) -> list[str]:
    """One line per entry that follows the width (the width and heads arguments excepted)."""
    return [f"{name} = {readable(rule.expr, axes.head_dim)} ({rule.why})"
            for name, rule in law.items() if name not in (axes.width_arg, axes.heads_arg)]


def depth_note(cuts: list[Cut], candidates: list[str]) -> str:
    if not candidates:
        return "depth: as configured (no entry counts more than one block)"
    if not cuts:
        return ("depth: as configured (" + ", ".join(candidates) + " could not be reduced "
                "without losing a kind of block)")
    return ("depth: " + ", ".join(c.describe() for c in cuts)
            + " (the fewest blocks that keep every kind of block)")


def small_note(draft: Draft, axes: Axes, depth_entries: set[str]) -> str:
    """The integer entries below the width, all kept fixed: sizes from outside the
    transformer (latent and pooled channels, patch sizes), bottlenecks, counts."""
    skip = {axes.heads_arg, axes.head_dim_arg, axes.width_arg, *depth_entries, *draft.scaled}
    small = [f"{k}={v}" for k, v in draft.config.items() if k not in skip
             and isinstance(v, int) and not isinstance(v, bool) and 0 < v < axes.d0]
    if not small:
        return "no other integer entry"
    return (f"kept fixed, smaller than the width {axes.d0} of the config (sizes from outside, "
            "bottlenecks, counts): " + ", ".join(small))


def widths_note(widths: tuple[int, ...], axes: Axes, law: dict[str, Scaled],
                given: bool) -> str:
    shown = ", ".join(str(w) for w in widths)
    if given:
        return f"widths {shown} (given); base width {min(widths)}"
    heads = ""
    if axes.heads_arg and axes.head_dim:
        counts = [str(w // axes.head_dim) for w in widths]
        heads = f" ({', '.join(counts)} heads of {axes.head_dim})"
    return (f"widths {shown}{heads}: the smallest ×1, ×2, ×4 at which every size that follows n "
            f"is a whole number, each built on meta; base width {min(widths)}")


def inputs_note(draft: Draft) -> str:
    if draft.user_inputs is not None:
        return f"inputs: your {draft.user_inputs.name}(n)"
    parts = [f"{arg} {expr.comment}".strip() for arg, expr in draft.inputs.items()
             if arg != "return_dict"]
    return ("inputs: " + "; ".join(parts)
            + " (from the forward's signature and the config, run on meta)")


def wrap(lines: Iterable[str], width: int = 96) -> list[str]:
    out: list[str] = []
    for line in lines:
        out += textwrap.wrap(line, width=width) or [""]
    return out
