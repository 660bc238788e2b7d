"""A plan made at reduced depth, extended to every block of the full-depth model.

``autospec`` traces one block of each kind (a 57-block Flux as 1 + 1), so the plan that
``tpcheck convert`` writes names the tensors of those blocks only. Every other block of the
model being trained has the same kind as one traced block and gets its rules: the kind is
recognised by the block's parameter names and their shapes at the model's width (SD3's last,
context-pre-only block has no ``to_add_out`` and a 2n-wide ``norm1_context``, so it maps to
the traced last block, the others to the first).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING, cast

import torch

from tpcheck.errors import TpcheckError
from tpcheck.symbols import ROUNDED, n, parse

if TYPE_CHECKING:
    from tpcheck.plan import Plan, TensorRule

#: ``list.7.rest``: the first index in a parameter name is its block in a ModuleList.
_BLOCK = re.compile(r"^(?P<list>.+?)\.(?P<index>\d+)\.(?P<rest>.+)$")

Block = tuple[str, int]


def extend_plan(plan: Plan, model: torch.nn.Module) -> Plan:
    """``plan`` with a rule for every parameter of ``model`` (a deeper model of the same
    architecture): every block of the model takes the rules of the traced block of its kind
    (the same index where that block is of the same kind). Returns ``plan`` itself when its
    names and shapes already are the model's."""
    from tpcheck.plan import unwrap

    params = {name: tuple(p.shape) for name, p in unwrap(model).named_parameters()}
    outside = {k: v for k, v in plan.tensors.items() if _block_of(k) is None}
    width = replace(plan, tensors=outside or plan.tensors).infer_width(model)
    lacking = [name for name in params if _block_of(name) is None and name not in plan.tensors]
    if lacking:
        raise TpcheckError(f"the model has {len(lacking)} parameter(s) outside any block that "
                           f"the plan lacks: {lacking[:5]}", where=plan.model,
                           fix="convert the architecture you train (same config apart from "
                               "depth and width)")
    traced = _blocks(plan.tensors)
    wanted = _blocks(params)
    mapping = {block: _same_kind(block, shapes, traced, plan, width)
               for block, shapes in wanted.items()}
    if all(block == rep for block, rep in mapping.items()) and set(params) == set(plan.tensors):
        return plan
    tensors = {}
    own_init = getattr(plan, "source_init", None)  # the source's init laws, where plans have them
    source_init = {k: v for k, v in (own_init or {}).items() if _block_of(k) is None}
    for name in params:
        block = _block_of(name)
        if block is None:
            tensors[name] = plan.tensors[name]
            continue
        rep = mapping[block]
        old = f"{rep[0]}.{rep[1]}." + name[len(f"{block[0]}.{block[1]}."):]
        tensors[name] = replace(plan.tensors[old], name=name)
        if own_init and old in own_init:
            source_init[name] = own_init[old]
    attention = [rule for rule in plan.attention if _block_of(rule.module + ".") is None]
    for rule in plan.attention:
        for block, rep in mapping.items():
            prefix = f"{rep[0]}.{rep[1]}."
            if rule.module.startswith(prefix):
                module = f"{block[0]}.{block[1]}." + rule.module[len(prefix):]
                attention.append(replace(rule, module=module))
    extra = {"source_init": source_init} if own_init is not None else {}
    return replace(plan, tensors=tensors, attention=tuple(dict.fromkeys(attention)), **extra)


def _block_of(name: str) -> Block | None:
    match = _BLOCK.match(name)
    return (match["list"], int(match["index"])) if match else None


def _blocks(names: dict) -> dict[Block, dict[str, object]]:
    """Parameters grouped by block: ``{(list, index): {rest of the name: value}}``."""
    out: dict[Block, dict[str, object]] = {}
    for name, value in names.items():
        match = _BLOCK.match(name)
        if match:
            out.setdefault((match["list"], int(match["index"])), {})[match["rest"]] = value
    return out


def _same_kind(block: Block, shapes: dict[str, object], traced: dict[Block, dict[str, object]],
               plan: Plan, width: int) -> Block:
    """The traced block with the same parameter names and shapes at ``width`` (``block``'s own
    index first)."""
    lst, _ = block
    order = sorted(traced.items(), key=lambda item: (item[0] != block, item[0]))
    for candidate, rules in order:
        if candidate[0] != lst or set(rules) != set(shapes):
            continue
        if all(_fits(rules[rest], shapes[rest], width) for rest in rules):
            return candidate
    raise TpcheckError(f"block {lst}.{block[1]} of the model matches no block of the plan "
                       "(by parameter names and shapes).", where=plan.model,
                       fix="convert the architecture you train: the same config apart from "
                           "depth (and width)")


def _fits(rule: object, shape: object, width: int) -> bool:
    """Whether a rule's shape law gives ``shape`` at ``width``."""
    rule = cast("TensorRule", rule)
    if not isinstance(shape, tuple) or len(rule.shape) != len(shape):
        return False
    for text, size in zip(rule.shape, shape, strict=True):
        if text.startswith(ROUNDED):
            continue  # rounded to a multiple: the size does not pin the law exactly
        if parse(text).subs(n, width) != size:
            return False
    return True
