"""Depth: the fewest blocks that keep every kind of block the full-depth model has.

μP is about width; each block kind's tensors get the same role and the same rules at every
depth, so one block of each kind is enough to lint (a 57-block Flux becomes 1 + 1). Depth
entries are found by name (``num_layers``, ``depth``, ``num_single_layers``, ...) and verified
by building: fewer blocks, same shapes. The kinds are compared by :func:`probe.block_kinds`
(module tree, parameter shapes, flags), so a last block that differs (SD3's context-pre-only
block) keeps the depth at 2. A list of layer indices (SD3.5's ``dual_attention_layers``) is
re-chosen at the reduced depth so that both its members and non-members are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations, product
from typing import Any

from torch import nn

from tpcheck.errors import TpcheckError

from . import probe
from .config import int_entries
from .source import Draft, load

_DEPTH_WORDS = ("layer", "depth", "block")
_NOT_DEPTH_WORDS = ("every", "interval", "index", "idx", "_id", "size", "dim")
#: Largest reduced depth searched per entry, and largest depth whose index subsets are tried.
MAX_DEPTH = 8
_MAX_SUBSET_DEPTH = 5


@dataclass(frozen=True)
class Cut:
    """One depth entry reduced: ``full`` blocks in the config, ``kept`` traced."""

    entry: str
    full: int
    kept: int
    lists: dict[str, tuple[int, ...]]

    def describe(self) -> str:
        text = f"{self.entry} {self.full} → {self.kept}"
        for name, value in self.lists.items():
            text += f" ({name} → {list(value)})"
        return text


def candidates(config: dict[str, Any]) -> list[str]:
    """Integer entries whose names say they count blocks."""
    out = []
    for name, value in int_entries(config).items():
        low = name.lower()
        if value >= 2 and any(w in low for w in _DEPTH_WORDS) and not any(
                w in low for w in _NOT_DEPTH_WORDS):
            out.append(name)
    return out


def index_lists(config: dict[str, Any], depth: int) -> list[str]:
    """Entries that list layer indices below ``depth`` (which blocks get a feature)."""
    out = []
    for name, value in config.items():
        if (isinstance(value, (list, tuple)) and value
                and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
                and list(value) == sorted(set(value)) and value[-1] < depth
                and len(value) < depth):
            out.append(name)
    return out


def reduce(draft: Draft, width: int) -> tuple[Draft, list[Cut]]:
    """``draft`` with every depth entry at the fewest blocks that keep all block kinds."""
    full = _build(draft, width)
    if isinstance(full, Exception):
        raise TpcheckError(
            f"{draft.target.label} cannot be built at width {width} on the meta device: "
            f"{type(full).__name__}: {full}", where=draft.target.label,
            fix="pass --config with a complete configuration (or check --head-dim)")
    kinds = probe.block_kinds(full)
    cuts = []
    for entry in candidates(draft.config):
        found = _smallest(draft, entry, width, kinds, probe.block_count(full))
        if found is not None:
            draft, cut = found
            cuts.append(cut)
    return draft, cuts


def _smallest(draft: Draft, entry: str, width: int, kinds: frozenset,
              full_blocks: int) -> tuple[Draft, Cut] | None:
    value = draft.config[entry]
    lists = index_lists(draft.config, value)
    for depth in range(1, min(value, MAX_DEPTH + 1)):
        for choice in _choices(lists, depth):
            candidate = draft.with_config(**{entry: depth}, **choice)
            model = _build(candidate, width)
            if isinstance(model, Exception):
                continue
            if probe.block_count(model) >= full_blocks:
                return None  # not a depth: the number of blocks does not follow it
            if probe.block_kinds(model) == kinds:
                return candidate, Cut(entry, value, depth, choice)
    return None


def _choices(lists: list[str], depth: int) -> list[dict[str, tuple[int, ...]]]:
    """Index lists re-chosen below ``depth``: every subset, smallest first (or, deeper than
    :data:`_MAX_SUBSET_DEPTH`, none)."""
    if not lists:
        return [{}]
    if depth > _MAX_SUBSET_DEPTH:
        return []
    subsets = [c for k in range(depth + 1) for c in combinations(range(depth), k)]
    return [dict(zip(lists, pick, strict=True)) for pick in product(subsets, repeat=len(lists))]


def _build(draft: Draft, width: int) -> nn.Module | Exception:
    try:
        factory = load(draft).factory
    except TpcheckError as exc:
        return exc
    return probe.try_build(factory, width)
