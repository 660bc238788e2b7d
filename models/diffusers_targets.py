"""Built-in targets for diffusers' own diffusion transformers, small configs at random init.

These are the implementations most people train, and they differ from the papers' code:
at random init diffusers zero-initialises nothing (not even adaLN-Zero modulations), and
DiT's timestep/class embedder is duplicated in every block (theory.md §7). Building from a
config downloads nothing; ``diffusers`` is imported only when a spec is built or called,
so tpcheck runs without it.

Width ``n = num_attention_heads × attention_head_dim`` with the head dim fixed at 16
(heads = n / 16), on an 8 × 8 × 4 latent with patch 2. ``inputs(n)`` returns the model's
forward keyword arguments, including ``return_dict=False`` so the output is a tuple.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from tpcheck.errors import TpcheckError
from tpcheck.spec import ModelSpec

from .specs import BASE_WIDTH, BATCH, FIXED_HEAD_DIM, WIDTHS, float_timesteps, latent

HEAD_DIM = 16
SAMPLE_SIZE = 8  # latent side
PATCH_SIZE = 2
IN_CHANNELS = 4
NUM_LAYERS = 2
NUM_CLASSES = 10
CAPTION_LENGTH = 8
CAPTION_CHANNELS = 32  # PixArt: T5-XXL's 4096 in the paper
JOINT_ATTENTION_DIM = 32  # SD3: 4096 in the paper
POOLED_PROJECTION_DIM = 24  # SD3: 2048 in the paper


def _require_diffusers() -> None:
    """Fail when the spec is built, with the fix, rather than inside the first trace."""
    try:
        import diffusers  # noqa: F401
    except ImportError as exc:
        raise TpcheckError(f"the diffusers targets need diffusers: {exc}",
                           fix="pip install 'tpcheck[diffusers]'") from exc


def _spec(name: str, model: Callable[[int], torch.nn.Module],
          inputs: Callable[[int], dict[str, Any]]) -> ModelSpec:
    """A diffusers target: fails now without diffusers, traces at the reference widths."""
    _require_diffusers()
    return ModelSpec(model, inputs, WIDTHS, base_width=BASE_WIDTH, name=name,
                     meta={"head_dim": FIXED_HEAD_DIM.meta, "library": "diffusers"})


def _sizes(n: int) -> dict[str, int]:
    """The size arguments every diffusers transformer below takes, at width n."""
    if n % HEAD_DIM:
        raise ValueError(f"width {n} is not divisible by the fixed head dim {HEAD_DIM}.")
    return {"num_attention_heads": n // HEAD_DIM, "attention_head_dim": HEAD_DIM,
            "in_channels": IN_CHANNELS, "num_layers": NUM_LAYERS, "sample_size": SAMPLE_SIZE,
            "patch_size": PATCH_SIZE}


def _generator() -> torch.Generator:
    """A fresh generator seeded with 0: the same inputs at every width."""
    return torch.Generator().manual_seed(0)


def _tokens(gen: torch.Generator, channels: int) -> torch.Tensor:
    """Text-encoder tokens, standard normal: (B, L, channels)."""
    return torch.randn(BATCH, CAPTION_LENGTH, channels, generator=gen)  # (B, L, channels)


def _int_timesteps(gen: torch.Generator) -> torch.Tensor:
    """Integer timesteps in [0, 1000), as diffusers' DiT and PixArt pipelines pass them."""
    return torch.randint(0, 1000, (BATCH,), generator=gen)  # (B,) long


# --------------------------------------------------------------------------- DiT

def dit_model(n: int) -> torch.nn.Module:
    """``DiTTransformer2DModel`` at width n (ada_norm_zero blocks, class-conditional)."""
    from diffusers import DiTTransformer2DModel

    model = DiTTransformer2DModel(**_sizes(n), num_embeds_ada_norm=NUM_CLASSES,
                                  norm_type="ada_norm_zero")
    # Label dropout (p = 0.1, hard-coded) would make the training-mode forward random; turn
    # it off as the reference spec does. The null-class row stays in every table.
    for module in model.modules():
        if type(module).__name__ == "LabelEmbedding":
            module.dropout_prob = 0.0
    return model


def dit_inputs(n: int) -> dict[str, Any]:
    gen = _generator()
    return {
        "hidden_states": latent(gen, IN_CHANNELS, SAMPLE_SIZE),  # (B, C, H, W)
        "timestep": _int_timesteps(gen),  # (B,) long
        "class_labels": torch.randint(0, NUM_CLASSES, (BATCH,), generator=gen),  # (B,) long
        "return_dict": False,
    }


def dit_spec() -> ModelSpec:
    """diffusers DiT, head dim fixed at 16, depth 2."""
    return _spec("diffusers-dit", dit_model, dit_inputs)


# --------------------------------------------------------------------------- PixArt-α

def pixart_model(n: int) -> torch.nn.Module:
    """``PixArtTransformer2DModel`` at width n (adaLN-single, cross-attention to captions)."""
    from diffusers import PixArtTransformer2DModel

    return PixArtTransformer2DModel(
        **_sizes(n), out_channels=2 * IN_CHANNELS, cross_attention_dim=n,
        norm_type="ada_norm_single", caption_channels=CAPTION_CHANNELS,
        use_additional_conditions=False)


def pixart_inputs(n: int) -> dict[str, Any]:
    gen = _generator()
    return {
        "hidden_states": latent(gen, IN_CHANNELS, SAMPLE_SIZE),  # (B, C, H, W)
        "encoder_hidden_states": _tokens(gen, CAPTION_CHANNELS),  # (B, L, C_text)
        "timestep": _int_timesteps(gen),  # (B,) long
        "added_cond_kwargs": {"resolution": None, "aspect_ratio": None},
        "return_dict": False,
    }


def pixart_spec() -> ModelSpec:
    """diffusers PixArt-α, head dim fixed at 16, depth 2, 8 caption tokens of 32 channels."""
    return _spec("diffusers-pixart", pixart_model, pixart_inputs)


# --------------------------------------------------------------------------- SD3 (MMDiT)

def sd3_model(n: int) -> torch.nn.Module:
    """``SD3Transformer2DModel`` at width n, with QK RMSNorm (SD3.5's ``qk_norm``)."""
    import inspect

    from diffusers import SD3Transformer2DModel

    extra: dict[str, Any] = {}
    if "qk_norm" in inspect.signature(SD3Transformer2DModel.__init__).parameters:
        extra["qk_norm"] = "rms_norm"  # older diffusers have no QK-norm option
    return SD3Transformer2DModel(
        **_sizes(n), out_channels=IN_CHANNELS, joint_attention_dim=JOINT_ATTENTION_DIM,
        caption_projection_dim=n, pooled_projection_dim=POOLED_PROJECTION_DIM,
        pos_embed_max_size=SAMPLE_SIZE // PATCH_SIZE, **extra)


def sd3_inputs(n: int) -> dict[str, Any]:
    gen = _generator()
    return {
        "hidden_states": latent(gen, IN_CHANNELS, SAMPLE_SIZE),  # (B, C, H, W)
        "encoder_hidden_states": _tokens(gen, JOINT_ATTENTION_DIM),  # (B, L, joint_dim)
        "pooled_projections": torch.randn(BATCH, POOLED_PROJECTION_DIM, generator=gen),
        "timestep": float_timesteps(gen),  # (B,) float
        "return_dict": False,
    }


def sd3_spec() -> ModelSpec:
    """diffusers SD3 MMDiT, head dim fixed at 16, 2 layers (the last one context-pre-only)."""
    return _spec("diffusers-sd3", sd3_model, sd3_inputs)
