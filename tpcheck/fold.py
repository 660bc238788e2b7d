"""Fold repeated blocks: ``blocks.0.attn.qkv.weight`` … ``blocks.27.attn.qkv.weight`` → one row.

A 28-block model has thousands of tensors and findings; rows that differ only in the integer
components of their names (and agree on everything shown) are printed once as
``blocks.{0..27}.attn.qkv.weight``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable
from typing import TypeVar

T = TypeVar("T")
_INDEX = re.compile(r"(?<=\.)\d+(?=\.|$)|^\d+(?=\.)")


def pattern(name: str) -> tuple[str, tuple[int, ...]]:
    """``blocks.3.mlp.fc1`` → (``blocks.{}.mlp.fc1``, (3,))."""
    indices = tuple(int(m.group()) for m in _INDEX.finditer(name))
    return _INDEX.sub("{}", name), indices


def fold(items: Iterable[T], name: Callable[[T], str], key: Callable[[T], Hashable]
         ) -> list[tuple[str, list[T]]]:
    """Group items whose names differ only in block indices and whose ``key`` is equal.

    Returns ``(folded name, members)`` in order of first appearance.
    """
    groups: dict[tuple[str, Hashable], list[T]] = {}
    for item in items:
        pat, _ = pattern(name(item))
        groups.setdefault((pat, key(item)), []).append(item)
    out = []
    for (pat, _), members in groups.items():
        if len(members) == 1:
            out.append((name(members[0]), members))
            continue
        indices = [pattern(name(m))[1] for m in members]
        parts = []
        for axis in range(len(indices[0])):
            parts.append(_ranges(sorted({ix[axis] for ix in indices})))
        label = pat
        for part in parts:
            label = label.replace("{}", part, 1)
        out.append((label, members))
    return out


def _ranges(values: list[int]) -> str:
    if len(values) == 1:
        return str(values[0])
    if values == list(range(values[0], values[-1] + 1)):
        return f"{{{values[0]}..{values[-1]}}}"
    return "{" + ",".join(map(str, values)) + "}"
