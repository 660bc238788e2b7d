"""``autospec``: a :class:`~tpcheck.spec.ModelSpec` for a model class, with no spec to write.

The steps, each checked on the model rather than taken from a per-class list:

1. the config: the constructor's defaults, overridden by ``config`` (a config.json or a dict);
2. the width: ``heads × head dim`` with the head dim fixed, or the width argument
   (:mod:`.scaling`); a size the class cannot be built without (``None`` by default) is filled;
3. the depth: the fewest blocks that keep every kind of block (:mod:`.depth`);
4. the other sizes: each entry at least as large as the width is probed on meta; an inner size
   scales with ``n``, an outside size stays fixed (:mod:`.scaling`);
5. the inputs: inferred from the forward's signature and run (:mod:`.inputs`); an entry equal to
   the width that is not an inner size stays fixed unless the forward then fails;
6. the widths: three (×1, ×2, ×4) at which every scaled entry is a whole number, each built.

The result's ``meta["spec_source"]`` is the text of an equivalent spec file (the spec *is* that
text, executed) and ``meta["notes"]`` says what was decided and why.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from torch import nn

from tpcheck.errors import TpcheckError
from tpcheck.spec import ModelSpec
from tpcheck.widths import fit_dim, fit_rounded

from . import config as cfg
from . import depth, inputs, probe, scaling
from . import notes as explain
from .scaling import Axes, Scaled
from .source import Draft, UserInputs, load

#: Values given to sizes the class cannot be built without (``None`` defaults).
_FILL = {"in_channels": 4, "patch_size": 2, "sample_size": 32}
_FILL_OTHER = 64


def autospec(model: Callable[..., nn.Module], *, config: str | Path | dict[str, Any] | None = None,
             inputs: Callable[[int], Any] | None = None, width_arg: str | None = None,
             heads_arg: str | None = None, head_dim: int | None = None,
             widths: Sequence[int] | None = None, name: str | None = None) -> ModelSpec:
    """The spec of ``model`` (a class, or a function taking its config as keywords).

    ``config``: a config.json path or a dict of constructor arguments (default: the class's
    own defaults); ``inputs``: your own ``inputs(width)`` (default: inferred from the forward);
    ``width_arg`` / ``heads_arg``: the constructor arguments of the width and the head count
    (default: guessed); ``head_dim``: the head dim kept fixed (default: the config's);
    ``widths``: the traced widths (default: chosen so that every size divides).
    """
    target = cfg.describe_target(model, label=name)
    entries, notes = _config(target, config)
    axes = scaling.find_axes(entries, set(cfg.constructor(model).parameters),
                             width_arg=width_arg, heads_arg=heads_arg, head_dim=head_dim,
                             label=target.label)
    law, rewritten = scaling.base_law(axes, entries)
    user = _user_inputs(inputs)
    draft = Draft(target=target, config={**entries, **rewritten}, scaled={},
                  head_dim=axes.head_dim if axes.heads_arg else None,
                  defaults=cfg.defaults(model)[0], user_inputs=user)
    draft = _with_law(draft, law)
    trial = scaling.smallest_width(law, draft.head_dim)
    draft, filled = _fill_missing(draft, trial)
    draft, cuts = depth.reduce(draft, trial)
    law, pending, size_notes = _probe_sizes(draft, axes, law, {c.entry for c in cuts}, trial)
    draft = _with_law(draft, {**law, **pending})
    test = scaling.smallest_width(law, draft.head_dim)
    test = test if test != axes.d0 else 2 * test
    draft = _runnable(draft, test)
    law, pending, outside_notes = _outside_sizes(draft, axes, law, pending)
    law, equal_notes = _settle_equal(draft, law, pending, test)
    draft = _with_law(draft, law)
    chosen = tuple(widths) if widths else _choose_widths(draft, law)
    _check_forward(draft, min(chosen))
    depth_note = explain.depth_note(cuts, depth.candidates(entries))
    small = explain.small_note(draft, axes, set(depth.candidates(entries)))
    notes = [*notes, axes.describe(), *filled, *explain.law_notes(law, axes), *size_notes,
             *outside_notes, *equal_notes, small, depth_note,
             explain.widths_note(chosen, axes, law, bool(widths)), explain.inputs_note(draft)]
    summary = tuple(explain.wrap([axes.describe() + ".", depth_note + "."]))
    final = replace(draft, widths=chosen, base_width=min(chosen), summary=summary)
    loaded = load(final)
    spec = loaded.namespace["spec"]
    meta = {"spec_source": loaded.source, "notes": notes,
            "head_dim": "fixed" if axes.heads_arg else "none",
            "library": target.library or "user",
            # the same decisions, structured (docs/diffusers_table.py reads them)
            "scaled": {k: explain.readable(v.expr, axes.head_dim) for k, v in law.items()},
            "depth": {c.entry: [c.full, c.kept] for c in cuts}}
    return replace(spec, meta=meta)


def _config(target: cfg.ClassTarget, config: str | Path | dict[str, Any] | None
            ) -> tuple[dict[str, Any], list[str]]:
    values, required = cfg.defaults(target.obj)
    notes: list[str] = []
    if isinstance(config, (str, Path)):
        given, notes = cfg.read_json(config, target)
        notes.insert(0, f"config: {config} over {target.name}'s defaults")
    elif isinstance(config, dict):
        given, notes = cfg.accept(config, target, "config")
    elif config is None:
        given = {}
        notes.append(f"config: {target.name}'s own defaults (no --config)")
    else:
        raise TpcheckError(f"config must be a path or a dict, not {type(config).__name__}.")
    values.update(given)
    missing = [name for name in required if name not in values]
    if missing:
        raise TpcheckError(f"{target.name} needs {', '.join(missing)}, which have no default.",
                           where=target.label,
                           fix="pass --config with a config.json that sets them")
    return values, notes


def _user_inputs(fn: Callable[[int], Any] | None) -> UserInputs | None:
    if fn is None:
        return None
    if not callable(fn):
        raise TpcheckError(f"inputs must be a function width -> inputs, not {fn!r}.")
    described = cfg.describe_target(fn)
    return UserInputs(fn, described.name, described.import_line)


def _with_law(draft: Draft, law: dict[str, Scaled]) -> Draft:
    """``draft`` with ``law``'s entries following the width (the config keeps their values
    at the given width, for the notes and for entries the search turns back to fixed)."""
    return replace(draft, scaled={k: s.expr for k, s in law.items()})


def _fill_missing(draft: Draft, width: int) -> tuple[Draft, list[str]]:
    """Give a value to ``None`` sizes the class cannot be built without (Latte's
    ``in_channels``, ``patch_size``, ``caption_channels``), one at a time, until it builds."""
    if not isinstance(_try(draft, width), Exception):
        return draft, []
    params = cfg.constructor(draft.target.obj).parameters
    nones = [k for k, v in draft.config.items() if v is None and k in params]
    plain_int = [k for k in nones if _annotation(params[k]) == "int"]
    optional = sorted((k for k in nones if k not in plain_int and _is_size_name(k)),
                      key=lambda k: (k not in _FILL, list(params).index(k)))
    notes = []
    draft = draft.with_config(**{k: _FILL.get(k, _FILL_OTHER) for k in plain_int})
    notes += [f"{k}: None in the defaults, set to {_FILL.get(k, _FILL_OTHER)} (the class "
              "cannot be built without it)" for k in plain_int]
    for key in [None, *optional]:
        if key is not None:
            draft = draft.with_config(**{key: _FILL.get(key, _FILL_OTHER)})
            notes.append(f"{key}: None in the defaults, set to {_FILL.get(key, _FILL_OTHER)} "
                         "(the class cannot be built without it)")
        built = _try(draft, width)
        if not isinstance(built, Exception):
            return draft, notes
    raise TpcheckError(f"{draft.target.label} cannot be built at width {width} from its "
                       f"defaults: {type(built).__name__}: {built}", where=draft.target.label,
                       fix="pass --config with a configuration the class can be built with")


def _annotation(param: inspect.Parameter) -> str:
    ann = param.annotation
    return ann.replace(" ", "") if isinstance(ann, str) else getattr(ann, "__name__", str(ann))


def _is_size_name(name: str) -> bool:
    return name in _FILL or "channels" in name or name.endswith("_dim")


def _try(draft: Draft, width: int) -> nn.Module | Exception:
    try:
        return probe.try_build(load(draft).factory, width)
    except TpcheckError as exc:
        return exc


def _probe_sizes(draft: Draft, axes: Axes, law: dict[str, Scaled], depth_entries: set[str],
                 width: int) -> tuple[dict[str, Scaled], dict[str, Scaled], list[str]]:
    """Entries at least as large as the width, by how the model uses the axes they size.

    Returns the law with the inner sizes added, the entries equal to the width whose fate the
    forward decides (pending, scaled for now), and notes on the ones kept fixed.
    """
    base = _try(draft, width)
    if isinstance(base, Exception):
        raise TpcheckError(f"{draft.target.label} cannot be built at width {width}: {base}",
                           where=draft.target.label, fix="pass --config")
    law = dict(law)
    pending: dict[str, Scaled] = {}
    notes = []
    skip = {axes.head_dim_arg, *depth_entries, *law}
    for name, value in cfg.int_entries(draft.config).items():
        if name in skip or value < axes.d0:
            continue
        changed = _try(draft.with_config(**{name: 2 * value}), width)
        used = set() if isinstance(changed, Exception) else probe.usage(base, changed)
        if not used - {"vector"} and value != axes.d0:
            continue
        if scaling.is_inner(used):
            law[name] = scaling.ratio_rule(name, value, axes.d0, "an inner size: produced by "
                                           "one weight and read by another")
        elif value == axes.d0:
            pending[name] = scaling.ratio_rule(name, value, axes.d0, "")
        else:
            side = "read" if "in" in used else "produced" if "out" in used else "used"
            notes.append(f"{name} = {value} kept fixed (only {side} by the model's weights: a "
                         "size from outside the transformer)")
    return law, pending, notes


def _runnable(draft: Draft, width: int) -> Draft:
    """Inputs that run: the user's (checked) or inferred."""
    if draft.user_inputs is None:
        return inputs.infer(draft, width)
    loaded = load(draft)
    error = probe.runs(loaded.factory, loaded.inputs, width)
    if error is not None:
        raise TpcheckError(f"the forward of {draft.target.name} with your inputs({width}) "
                           f"failed: {error}", where=draft.target.label,
                           fix="make inputs(n) match the model built at width n (sizes that "
                               "follow the width must use n)")
    return draft


def _outside_sizes(draft: Draft, axes: Axes, law: dict[str, Scaled],
                   pending: dict[str, Scaled]
                   ) -> tuple[dict[str, Scaled], dict[str, Scaled], list[str]]:
    """Entries that size a forward input come from outside the transformer: fixed, even when
    the model also processes them internally (Mochi pools its 4096-wide T5 tokens with weights
    4096 → 4096, which alone looks like an inner size)."""
    read: dict[str, str] = {}
    for arg, expr in draft.inputs.items():
        for key in re.findall(r'cfg\["([^"]+)"\]', expr.code):
            read.setdefault(key, arg)
    keep = {axes.width_arg, axes.heads_arg}
    notes = [f"{key} = {draft.config[key]} kept fixed (it sizes the forward's {arg}: a size "
             "from outside the transformer)"
             for key, arg in read.items() if (key in law or key in pending) and key not in keep]
    law = {k: v for k, v in law.items() if k not in read or k in keep}
    pending = {k: v for k, v in pending.items() if k not in read}
    return law, pending, notes


def _check_forward(draft: Draft, width: int) -> None:
    """The final spec's forward runs at its smallest width (every decision together)."""
    loaded = load(draft)
    error = probe.runs(loaded.factory, loaded.inputs, width)
    if error is not None:
        raise TpcheckError(f"the spec generated for {draft.target.label} does not run at width "
                           f"{width}: {error}", where=draft.target.label,
                           fix="pass --config (sizes the class cannot be built with), or "
                               "--inputs module:fn with the forward's example inputs")


def _settle_equal(draft: Draft, law: dict[str, Scaled], pending: dict[str, Scaled],
                  width: int) -> tuple[dict[str, Scaled], list[str]]:
    """Each entry equal to the width: fixed if the forward still runs with it fixed."""
    law = dict(law)
    undecided = dict(pending)
    notes = []
    for name, rule in pending.items():
        del undecided[name]
        loaded = load(_with_law(draft, {**law, **undecided}))
        if probe.runs(loaded.factory, loaded.inputs, width) is None:
            notes.append(f"{name} = {draft.config[name]} kept fixed (equal to the width in the "
                         "config, but the forward runs with it fixed)")
        else:
            law[name] = replace(rule, why="equal to the width in the config; the forward fails "
                                          "unless it follows n")
    return law, notes


def _choose_widths(draft: Draft, law: dict[str, Scaled]) -> tuple[int, ...]:
    """Three widths at which the model builds and every parameter size is affine in ``n``
    (up to rounding, as tpcheck's widths stage fits it): ×1, ×2, ×4 of the smallest width where
    every scaled entry is whole, else ×1, ×2, ×3 (below a cap such as Lumina's
    ``min(n, 1024)``), else the same from twice that width."""
    factory = load(draft).factory
    first = scaling.smallest_width(law, draft.head_dim)
    problem = "no width tried"
    for _ in range(4):
        for chosen in ((first, 2 * first, 4 * first), (first, 2 * first, 3 * first)):
            found = _param_shapes(factory, chosen)
            if isinstance(found, str):
                problem = found
                continue
            bad = _not_affine(found)
            if bad is None:
                return chosen
            problem = f"{bad} is not affine in n at widths {chosen}"
        first *= 2
    raise TpcheckError(f"no three widths found for {draft.target.label}: {problem}.",
                       where=draft.target.label,
                       fix="pass --widths with three widths at which every size is affine in n")


def _param_shapes(factory: Callable[[int], nn.Module], widths: tuple[int, ...]
                  ) -> dict[int, probe.Shapes] | str:
    out = {}
    for w in widths:
        built = probe.try_build(factory, w)
        if isinstance(built, Exception):
            return f"building at width {w} raised {type(built).__name__}: {built}"
        out[w] = probe.shapes(built)
    return out


def _not_affine(shapes: dict[int, probe.Shapes]) -> str | None:
    """The first parameter axis whose sizes follow no affine (or rounded affine) law."""
    widths = sorted(shapes)
    names = set.intersection(*(set(s) for s in shapes.values()))
    if any(set(s) != names for s in shapes.values()):
        return "the set of parameters"
    for name in sorted(names):
        for axis in range(len(shapes[widths[0]][name])):
            points = tuple((w, shapes[w][name][axis]) for w in widths)
            if fit_dim(dict(points)) is None and fit_rounded(points) is None:
                return f"{name}[{axis}] ({', '.join(str(p[1]) for p in points)})"
    return None
