"""Which constructor arguments are the width, and how every other size follows it.

The width ``n`` is ``heads × head dim`` with the head dim fixed (or a width argument such as
``hidden_size`` where the class takes one). The other size entries are decided from the config
and then checked on the model:

* an entry that is a head count beside the main one follows the heads: a KV-head count keeps
  its ratio to them, a second attention's head count times its own head dim that equals the
  width grows with it;
* an int tuple that splits the head dim (RoPE axes) is rescaled only when the head dim changes;
* an entry at least as large as the width is built twice on meta, at its value and at twice
  it: if the axes it sizes are produced by one weight and read by another, it is an inner size
  of the network (an absolute FFN size) and scales with ``n`` at its ratio to the width;
  if it is only read or only produced, it comes from outside (text encoder, latent channels)
  and stays fixed;
* an entry equal to the width that is not an inner size is kept fixed unless the forward then
  fails: :func:`tpcheck.specgen.generate.autospec` runs it (SD3's ``caption_projection_dim``
  must equal the width; Stable Audio's ``global_states_input_dim`` only happens to).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from tpcheck.errors import TpcheckError

from .config import int_entries

#: Constructor arguments that commonly hold the width, most specific first.
WIDTH_NAMES = ("hidden_size", "dim", "d_model", "width", "embed_dim", "inner_dim", "model_dim")
HEADS_NAMES = ("num_attention_heads", "num_heads", "n_heads", "heads", "nheads", "n_head",
               "attention_heads")
HEAD_DIM_NAMES = ("attention_head_dim", "head_dim", "dim_head", "d_head", "head_size")


@dataclass(frozen=True)
class Axes:
    """How the class spells its width: the arguments and the config's own width ``d0``."""

    width_arg: str | None
    heads_arg: str | None
    head_dim_arg: str | None
    head_dim: int | None  # the fixed head dim (None: the class has no heads argument)
    config_head_dim: int | None
    d0: int  # the width of the given config

    def describe(self) -> str:
        if self.heads_arg and self.width_arg:
            return (f"width n = {self.width_arg}; {self.heads_arg} = n / {self.head_dim} "
                    f"(head dim kept at {self.head_dim})")
        if self.heads_arg:
            return (f"width n = {self.heads_arg} × {self.head_dim_arg} ({self.head_dim_arg} "
                    f"kept at {self.head_dim}; the width grows by adding heads)")
        return f"width n = {self.width_arg}"


@dataclass(frozen=True)
class Scaled:
    """An entry that follows the width: its expression in ``n`` and what ``n`` must divide by."""

    expr: str
    divisor: int
    why: str


def find_axes(config: dict[str, Any], names: set[str], *, width_arg: str | None,
              heads_arg: str | None, head_dim: int | None, label: str) -> Axes:
    """The width, heads and head-dim arguments (given, else guessed from common names)."""
    ints = int_entries(config)
    for given, what in ((width_arg, "--width-arg"), (heads_arg, "--heads-arg")):
        if given is not None and given not in names:
            raise TpcheckError(f"{what} {given!r} is not a constructor argument of {label}.",
                               where=label, fix=f"name one of: {', '.join(sorted(names))}")
        if given is not None and given not in ints:
            raise TpcheckError(f"{what} {given!r} has no integer value in the config "
                               f"({config.get(given)!r}).", where=label,
                               fix="give it a value with --config, or name another argument")
    heads = heads_arg or _first(HEADS_NAMES, ints)
    hd_arg = _first(HEAD_DIM_NAMES, ints)
    width = width_arg or _first(WIDTH_NAMES, ints)
    if heads and hd_arg and width_arg is None and (
            width is None or ints[width] != ints[heads] * ints[hd_arg]):
        width = None  # diffusers' convention: the width is heads × head dim
    if width is None and not (heads and hd_arg):
        raise TpcheckError(
            f"cannot tell which constructor argument of {label} is the width.", where=label,
            fix="name it with --width-arg (e.g. --width-arg hidden_size) and the head count "
                "with --heads-arg; guessed names: " + ", ".join(WIDTH_NAMES))
    if width is not None:
        d0 = ints[width]
        if heads is None:
            return Axes(width, None, None, None, None, d0)
        config_hd = ints[hd_arg] if hd_arg and ints[hd_arg] * ints[heads] == d0 else (
            d0 // ints[heads] if ints[heads] and d0 % ints[heads] == 0 else None)
        if config_hd is None:
            raise TpcheckError(f"{width}={d0} is not divisible by {heads}={ints[heads]}.",
                               where=label, fix="pass --head-dim N, or fix the config")
        hd_kept = hd_arg if hd_arg and ints[hd_arg] == config_hd else None
        return Axes(width, heads, hd_kept, head_dim or config_hd, config_hd, d0)
    config_hd = ints[str(hd_arg)]
    return Axes(None, heads, hd_arg, head_dim or config_hd, config_hd,
                ints[str(heads)] * config_hd)


def _first(candidates: tuple[str, ...], ints: dict[str, int]) -> str | None:
    return next((name for name in candidates if ints.get(name, 0) > 0), None)


def base_law(axes: Axes, config: dict[str, Any]) -> tuple[dict[str, Scaled], dict[str, Any]]:
    """The entries that follow the width before any probing, and fixed entries to rewrite.

    Returns ``(scaled, fixed)``: ``fixed`` carries the head dim and RoPE axes rewritten for a
    head dim other than the config's.
    """
    scaled: dict[str, Scaled] = {}
    fixed: dict[str, Any] = {}
    hd = axes.head_dim
    if axes.width_arg:
        scaled[axes.width_arg] = Scaled("n", 1, "the width argument")
    if axes.heads_arg and hd:
        scaled[axes.heads_arg] = Scaled("n // HEAD_DIM", hd, f"heads of {hd}")
    if axes.head_dim_arg and hd:
        fixed[axes.head_dim_arg] = hd
    ints = int_entries(config)
    h0 = ints.get(axes.heads_arg or "", 0)
    for name, value in ints.items():
        if name in (axes.width_arg, axes.heads_arg) or "head" not in name or value <= 0:
            continue
        if _is_head_dim(name):
            continue
        rule = _secondary_heads(name, value, h0, ints, axes)
        if rule is not None:
            scaled[name] = rule
    if hd and axes.config_head_dim and hd != axes.config_head_dim:
        fixed.update(_rope_axes(config, axes))
    return scaled, fixed


def _is_head_dim(name: str) -> bool:
    return "head_dim" in name or "dim_head" in name or name.endswith("head_size")


def _secondary_heads(name: str, value: int, h0: int, ints: dict[str, int], axes: Axes
                     ) -> Scaled | None:
    """A second head count: a KV-head count, or the heads of another attention whose inner
    size (heads × its own head dim) is the width."""
    for other, dim in ints.items():
        if _is_head_dim(other) and other != axes.head_dim_arg and value * dim == axes.d0:
            return Scaled(f"n // {dim}", dim, f"heads of {dim} ({other}) spanning the width")
    if ("kv" in name or "key_value" in name) and h0 and h0 % value == 0 and axes.head_dim:
        ratio = h0 // value
        expr = "n // HEAD_DIM" + (f" // {ratio}" if ratio > 1 else "")
        return Scaled(expr, axes.head_dim * ratio, f"one per {ratio} query heads")
    return None


def _rope_axes(config: dict[str, Any], axes: Axes) -> dict[str, Any]:
    """RoPE axis sizes rescaled to a new head dim (each stays even: rotations act on pairs)."""
    out = {}
    old, new = axes.config_head_dim or 1, axes.head_dim or 1
    for name, value in config.items():
        if not (isinstance(value, (tuple, list)) and len(value) >= 2 and all(
                isinstance(v, int) and not isinstance(v, bool) for v in value)):
            continue
        if sum(value) not in (old, old // 2):
            continue
        resized = [Fraction(v * new, old) for v in value]
        if any(r.denominator != 1 or r % 2 for r in resized):
            raise TpcheckError(
                f"{name}={list(value)} splits the head dim {old} into RoPE axes, and cannot be "
                f"rescaled to head dim {new} in even sizes.",
                fix=f"pass a --head-dim that keeps {name} even, or give {name} in --config")
        out[name] = type(value)(int(r) for r in resized)
    return out


def ratio_rule(name: str, value: int, d0: int, why: str) -> Scaled:
    """``value = r · d0`` scaled to ``r · n`` (``n`` a multiple of r's denominator)."""
    r = Fraction(value, d0)
    if r == 1:
        expr = "n"
    elif r.denominator == 1:
        expr = f"{r.numerator} * n"
    else:
        expr = f"{r.numerator} * n // {r.denominator}"
    return Scaled(expr, r.denominator, why)


def is_inner(used: set[str]) -> bool:
    """An entry whose axes are produced by one weight and read by another: an inner size."""
    return "in" in used and "out" in used


def unit(scaled: dict[str, Scaled]) -> int:
    """The smallest width at which every scaled entry is a whole number."""
    return math.lcm(1, *(s.divisor for s in scaled.values()))


def smallest_width(scaled: dict[str, Scaled], head_dim: int | None = None,
                   floor: int = 64) -> int:
    """The smallest traced width: the first multiple of :func:`unit` that is at least ``floor``
    and holds two heads (one head takes other paths in some attention code: diffusers skips
    repeating the attention mask per head when there is a single head)."""
    u = unit(scaled)
    floor = max(floor, 2 * head_dim) if head_dim else floor
    return u * math.ceil(floor / u)
