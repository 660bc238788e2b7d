"""Example forward inputs, inferred from the forward's signature and the config, then run.

Each forward argument is recognised by its name (``hidden_states``, ``encoder_hidden_states``,
``pooled_projections``, ``timestep``, ``guidance``, ``img_ids``, masks, class labels, ...) and
sized from the config entries that say where it comes from (``in_channels``,
``joint_attention_dim``, ``caption_channels``, ``pooled_projection_dim``, ...). What the
signature cannot say (is the latent 4-D, 5-D with channels or frames first, or a sequence of
patches? which text entry sizes the text tokens?) is settled by running the candidates, in a
likely-first order, on the meta device: the first that runs is the spec's. Everything is small
(2 samples, 16 latent tokens, 8 text tokens) and seeded.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from itertools import islice, product
from typing import Any

from tpcheck.errors import TpcheckError

from . import probe
from .source import Draft, InputExpr, load

#: Most input combinations run per spec on meta, and (the first ones) on the CPU.
MAX_TRIES = 48
CPU_TRIES = 4
TEXT_TOKENS = 8
_LATENT_NAMES = ("hidden_states", "x", "sample", "latents", "latent", "z", "img")
_CHANNEL_KEYS = ("in_channels", "in_dim", "in_visual_dim", "io_channels", "in_chans",
                 "input_dims", "latent_channels", "channels", "input_size")
_TEXT_NAMES = ("encoder_hidden_states", "context", "cap_feats", "text_states", "text")
_TEXT_KEYS = ("caption_channels", "joint_attention_dim", "text_embed_dim", "text_dim",
              "cap_feat_dim", "context_in_dim", "text_in_dim", "cross_attention_input_dim",
              "text_hidden_dim", "encoder_hidden_size", "in_text_dim", "context_dim",
              "cond_token_dim", "dit_text_dim", "condition_dim", "cross_attention_dim")
_FRAME_KEYS = ("video_length", "sample_frames", "num_frames")
_TEXT_LENGTH_KEYS = ("max_text_seq_length", "max_sequence_length", "text_len",
                     "max_text_len", "text_seq_len", "max_text_length")
_POOLED_NAMES = ("pooled_projections", "pooled_embeds", "pooled_text_emb", "pooled")
_POOLED_KEYS = ("pooled_projection_dim", "text_emb_dim", "pooled_dim", "in_text_dim2",
                "global_cond_dim")
_GLOBAL_NAMES = ("global_hidden_states", "global_states", "global_cond")
_GLOBAL_KEYS = ("global_states_input_dim", "global_cond_dim")
_LABEL_NAMES = ("class_labels", "y", "labels", "class_label")
_LABEL_KEYS = ("num_embeds_ada_norm", "num_classes", "n_classes", "class_num", "num_class")
_TIME_NAMES = ("t", "time", "timesteps", "timestep")
#: Recognised arguments and the config entries that size them (for the error when none is set).
_SIZED_BY = {**dict.fromkeys(_TEXT_NAMES, _TEXT_KEYS),
             **dict.fromkeys(_POOLED_NAMES, _POOLED_KEYS),
             **dict.fromkeys(_GLOBAL_NAMES, _GLOBAL_KEYS),
             **dict.fromkeys(_LABEL_NAMES, _LABEL_KEYS)}
_SIZE_CONDITIONS = ("original_size", "target_size", "crop_coords")
_MASK_WORDS = ("encoder", "text", "cap", "context")
_OMIT = None  # an optional argument left out


@dataclass(frozen=True)
class Grid:
    """The latent's sizes: patch sizes from the config, a few patches per side."""

    layout: str  # image, video, video-frames-first, tokens, audio
    channels_key: str
    side: int
    frames: int
    text: int = TEXT_TOKENS
    tokens: int = 16

    def describe(self) -> str:
        return f"{self.layout} latent, {self.frames} frames, {self.text} text tokens"

    def latent(self) -> InputExpr:
        c = entry(self.channels_key)
        shape, what = {
            "image": (f"BATCH, {c}, {self.side}, {self.side}", "(B, C, H, W) latent"),
            "video": (f"BATCH, {c}, {self.frames}, {self.side}, {self.side}",
                      "(B, C, F, H, W) latent"),
            "video-frames-first": (f"BATCH, {self.frames}, {c}, {self.side}, {self.side}",
                                   "(B, F, C, H, W) latent"),
            "tokens": (f"BATCH, {self.tokens}, {c}", "(B, tokens, C): patchified latent"),
            "audio": (f"BATCH, {c}, {self.tokens}", "(B, C, T) latent"),
        }[self.layout]
        return InputExpr(f"torch.randn({shape}, generator=gen)", what)


def infer(draft: Draft, width: int) -> Draft:
    """``draft`` with inputs that run its forward at ``width``; exit 2 if none is found.

    Every combination is run on meta first (free); if none runs there, the most likely few
    are run again on the CPU with real weights, as capture falls back for a forward that needs
    values (:data:`CPU_TRIES`).
    """
    loaded = load(draft)
    try:
        model = probe.build(loaded.factory, width)
    except Exception as exc:
        raise TpcheckError(f"{draft.target.label} cannot be built at width {width}: "
                           f"{type(exc).__name__}: {exc}", where=draft.target.label,
                           fix="pass --config with a complete configuration") from exc
    config = {**draft.config, **loaded.config_at(width)}  # defaults included (guidance_embeds)
    tried = list(islice(combinations(draft, config, type(model)), MAX_TRIES))
    first_error = None
    for inputs in tried:
        candidate = replace(draft, inputs=inputs)
        error = probe.forward_error(loaded.factory, load(candidate).inputs, width, model=model)
        if error is None:
            return candidate
        first_error = first_error or (inputs, error)
    cpu_model = None
    for inputs in tried[:CPU_TRIES]:
        candidate = replace(draft, inputs=inputs)
        if cpu_model is None:
            cpu_model = probe.cpu_model(loaded.factory, width, model)
            if isinstance(cpu_model, str):
                break
        error = probe.forward_error(loaded.factory, load(candidate).inputs, width,
                                    model=cpu_model, device="cpu")
        if error is None:
            return candidate
    shown = ", ".join(first_error[0]) if first_error else "none"
    raise TpcheckError(
        f"cannot infer example inputs for {draft.target.name}.forward: no combination of the "
        f"arguments it takes ran; the first ({shown}) failed with "
        f"{first_error[1] if first_error else 'no candidates'}",
        where=draft.target.label,
        fix="pass --inputs module:fn (or file.py:fn), a function width -> the forward's "
            "arguments (a tuple, or a dict of keyword arguments)")


def forward_parameters(obj: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    """The forward's parameters, without ``self``, ``*args`` and ``**kwargs``."""
    forward = getattr(obj, "forward", None)
    if forward is None:
        raise TpcheckError(f"{obj!r} has no forward method.", fix="pass a torch.nn.Module class")
    params = inspect.signature(forward).parameters
    return {k: p for k, p in params.items() if k != "self"
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def unrecognised(obj: Callable[..., Any]) -> list[str]:
    """Required forward arguments no rule here can build (a quick check, without the config's
    values: names only)."""
    params = forward_parameters(obj)
    out = []
    for name, param in params.items():
        if param.default is not inspect.Parameter.empty and name != "return_dict":
            continue
        if _is_latent(name, params) or name == "return_dict":
            continue
        low = name.lower()
        known = (low in _TIME_NAMES or "timestep" in low or low in _TEXT_NAMES
                 or low in _POOLED_NAMES or low.startswith("pooled") or low in _GLOBAL_NAMES
                 or low in ("guidance", "img_ids", "txt_ids", "img_shapes", "added_cond_kwargs")
                 or low in _LABEL_NAMES or low in _SIZE_CONDITIONS
                 or ("mask" in low and any(w in low for w in _MASK_WORDS)))
        if not known:
            out.append(name)
    return out


def combinations(draft: Draft, config: dict[str, Any], model_cls: type
                 ) -> Iterator[dict[str, InputExpr]]:
    """Every input dict to try, most likely first (``model_cls``: the class the target builds,
    whose forward is read: the target itself may be a factory function)."""
    params = forward_parameters(model_cls)
    options: list[tuple[str, list[InputExpr | None]]] = []
    grids = _grids(draft, config, params, model_cls.__name__)
    for name, param in params.items():
        required = param.default is inspect.Parameter.empty
        if name == "return_dict":
            options.append((name, [InputExpr("False")]))
            continue
        found = _argument(name, required, config, params)
        if found is None:
            if required and not _is_latent(name, params):
                known = _SIZED_BY.get(name.lower())
                why = (f"the config sets none of {', '.join(known)}, which would size it"
                       if known else "its name says nothing tpcheck can size from the config")
                raise TpcheckError(
                    f"cannot infer the forward argument {name!r} of {draft.target.name}: "
                    f"{why}.", where=draft.target.label,
                    fix=f"pass --inputs module:fn, a function width -> the forward's "
                        f"arguments including {name!r}" + (" (or set one of those entries "
                                                            "with --config)" if known else ""))
            continue
        options.append((name, found))
    names = [name for name, _ in options]
    for grid in grids:
        for choice in product(*(alternatives for _, alternatives in options)):
            chosen = dict(zip(names, choice, strict=True))
            yield _assemble(params, grid, chosen, config)


def _assemble(params: dict[str, inspect.Parameter], grid: Grid,
              chosen: dict[str, InputExpr | None], config: dict[str, Any]
              ) -> dict[str, InputExpr]:
    """The inputs in the forward's order, with the grid's latent and token counts filled in."""
    out: dict[str, InputExpr] = {}
    for name in params:
        if _is_latent(name, params):
            out[name] = grid.latent()
        elif name in chosen and chosen[name] is not None:
            out[name] = _fill(chosen[name], grid)
        elif name in ("num_frames", "height", "width") and grid.layout == "tokens" and {
                "num_frames", "height", "width"} <= set(params):
            sizes = {"num_frames": 1, "height": 4, "width": 4}
            out[name] = InputExpr(str(sizes[name]), "latent grid in patches")
    return out


def _fill(expr: InputExpr, grid: Grid) -> InputExpr:
    code = expr.code.replace("{T}", str(grid.tokens)).replace("{L}", str(grid.text))
    return InputExpr(code, expr.comment)


def _is_latent(name: str, params: dict[str, inspect.Parameter]) -> bool:
    first = next(iter(params), None)
    return name in _LATENT_NAMES and (name == first or name == "hidden_states")


def _grids(draft: Draft, config: dict[str, Any], params: dict[str, inspect.Parameter],
           name: str) -> list[Grid]:
    key = next((k for k in _CHANNEL_KEYS if _int(config.get(k))), None)
    if key is None:
        raise TpcheckError(
            f"cannot infer the latent's channels for {draft.target.name}: the config has none "
            f"of {', '.join(_CHANNEL_KEYS)}.", where=draft.target.label,
            fix="pass --inputs module:fn, a function width -> the forward's arguments")
    patch = config.get("patch_size")
    if isinstance(patch, (tuple, list)):
        p, pt = int(patch[-1]), int(patch[0]) if len(patch) == 3 else 1
    else:
        p, pt = (patch if _int(patch) else 1), 1
    if _int(config.get("patch_size_t")):
        pt = config["patch_size_t"]
    side = 4 * p
    lengths = [TEXT_TOKENS] + [config[k] for k in _TEXT_LENGTH_KEYS
                               if _int(config.get(k)) and config[k] != TEXT_TOKENS]
    frames = [2 * pt] + [config[k] for k in _FRAME_KEYS
                         if _int(config.get(k)) and config[k] % pt == 0]
    if "img_ids" in params or "img_shapes" in params or {"height", "width"} <= set(params):
        order = ["tokens", "image", "video"]
    elif "1D" in name or "Audio" in name or "io_channels" in config:
        order = ["audio", "tokens"]
    elif "3D" in name:
        order = ["video", "video-frames-first", "tokens"]
    else:
        order = ["image", "tokens", "video", "video-frames-first", "audio"]
    video = ("video", "video-frames-first")
    return [Grid(layout, key, side, f, length) for length in lengths for f in frames
            for layout in order if f == frames[0] or layout in video]


def _argument(name: str, required: bool, config: dict[str, Any],
              params: dict[str, inspect.Parameter]) -> list[InputExpr | None] | None:
    """The candidate values of one argument (``None`` in the list: leave it out), or None if
    the argument is not recognised (an optional one is then left out)."""
    low = name.lower()
    if low in _TIME_NAMES or ("timestep" in low and required):
        return [InputExpr("torch.rand(BATCH, generator=gen) * 1000", "(B,) diffusion time")]
    if low in _TEXT_NAMES:
        return _text(config, required)
    if low in _POOLED_NAMES or low.startswith("pooled"):
        return _sized(config, _POOLED_KEYS, "BATCH, {key}", "(B, D) pooled text", required)
    if low in _GLOBAL_NAMES:
        found = [InputExpr(f"torch.randn({shape.format(key=entry(k))}, generator=gen)", what)
                 for k in _GLOBAL_KEYS if _int(config.get(k))
                 for shape, what in (("BATCH, 1, {key}", "(B, 1, D) global condition"),
                                     ("BATCH, {key}", "(B, D) global condition"))]
        return (found or None) if required else [*found, _OMIT]
    if low == "guidance":
        if required or config.get("guidance_embeds") is True:
            return [InputExpr("torch.full((BATCH,), 3.5)", "(B,) guidance scale")]
        return None
    if low in _LABEL_NAMES:
        key = next((k for k in _LABEL_KEYS if _int(config.get(k))), None)
        if key is None:
            return None
        expr = InputExpr(f"torch.randint(0, {entry(key)}, (BATCH,), generator=gen)",
                         "(B,) class labels")
        return [expr] if required else [expr, _OMIT]
    if low in ("img_ids", "txt_ids"):
        axes = _rope_axes(config)
        rows = "{T}" if low == "img_ids" else "{L}"
        return [InputExpr(f"torch.zeros({rows}, {axes})", "positions (zeros suffice to trace)")]
    if "mask" in low and required and any(w in low for w in _MASK_WORDS):
        return [InputExpr("torch.ones(BATCH, {L}, dtype=torch.bool)",
                          "(B, L) text mask")]
    if low in _SIZE_CONDITIONS:
        return [InputExpr("torch.full((BATCH, 2), 512.0)", "(B, 2) image size condition")]
    if low == "img_shapes":
        return [InputExpr("[[(1, 4, 4)]] * BATCH", "latent grid per sample (frames, h, w)")]
    if low == "added_cond_kwargs":
        return [InputExpr('{"resolution": torch.full((BATCH, 2), 512.0), '
                          '"aspect_ratio": torch.ones(BATCH, 1)}', "PixArt's size conditions")]
    return None


def _text(config: dict[str, Any], required: bool) -> list[InputExpr | None] | None:
    found: list[InputExpr | None] = [
        InputExpr(f"torch.randn(BATCH, {{L}}, {entry(key)}, generator=gen)",
                  f"(B, L, {key}) text tokens")
        for key in _TEXT_KEYS if _int(config.get(key))]
    if not found:
        return None
    return found if required else [*found, _OMIT]


def _sized(config: dict[str, Any], keys: tuple[str, ...], shape: str, what: str,
           required: bool) -> list[InputExpr | None] | None:
    found: list[InputExpr | None] = [
        InputExpr(f"torch.randn({shape.format(key=entry(k))}, generator=gen)", what)
        for k in keys if _int(config.get(k))]
    if not found:
        return None
    return found if required else [*found, _OMIT]


def _rope_axes(config: dict[str, Any]) -> int:
    for name, value in config.items():
        if ("axes" in name or "rope" in name) and isinstance(value, (tuple, list)) and value:
            return len(value)
    return 3


def entry(key: str) -> str:
    """The generated code that reads config entry ``key`` at width n."""
    return f'cfg["{key}"]'


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
