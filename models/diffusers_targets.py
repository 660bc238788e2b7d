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


# --------------------------------------------------------------------------- Flux

FLUX_AXES_DIMS_ROPE = (4, 6, 6)  # RoPE over (text/frame, row, column); sums to the head dim 16
LATENT_TOKENS = (SAMPLE_SIZE // PATCH_SIZE) ** 2  # 16 tokens of the 8 × 8 latent in 2 × 2 patches


def flux_model(n: int) -> torch.nn.Module:
    """``FluxTransformer2DModel`` at width n: one double-stream and one single-stream block,
    on the 8 × 8 × 4 latent packed into 2 × 2 patches (the pipeline packs; patch_size is 1)."""
    from diffusers import FluxTransformer2DModel

    heads = _sizes(n)["num_attention_heads"]
    return FluxTransformer2DModel(
        patch_size=1, in_channels=IN_CHANNELS * PATCH_SIZE**2, num_layers=1, num_single_layers=1,
        attention_head_dim=HEAD_DIM, num_attention_heads=heads,
        joint_attention_dim=JOINT_ATTENTION_DIM, pooled_projection_dim=POOLED_PROJECTION_DIM,
        guidance_embeds=False, axes_dims_rope=FLUX_AXES_DIMS_ROPE)


def flux_inputs(n: int) -> dict[str, Any]:
    gen = _generator()
    side = SAMPLE_SIZE // PATCH_SIZE
    rows, cols = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    img_ids = torch.stack([torch.zeros_like(rows), rows, cols], dim=-1).reshape(-1, 3).float()
    return {
        # (B, tokens, C·p²): the latent packed into patches, as FluxPipeline passes it
        "hidden_states": torch.randn(BATCH, LATENT_TOKENS, IN_CHANNELS * PATCH_SIZE**2,
                                     generator=gen),
        "encoder_hidden_states": _tokens(gen, JOINT_ATTENTION_DIM),  # (B, L, joint_dim)
        "pooled_projections": torch.randn(BATCH, POOLED_PROJECTION_DIM, generator=gen),
        "timestep": torch.rand(BATCH, generator=gen),  # (B,) in [0, 1]: Flux scales by 1000
        "img_ids": img_ids,  # (tokens, 3): (0, row, column) of each patch
        "txt_ids": torch.zeros(CAPTION_LENGTH, 3),  # (L, 3)
        "return_dict": False,
    }


def flux_spec() -> ModelSpec:
    """diffusers Flux.1, head dim fixed at 16, one double- and one single-stream block."""
    return _spec("diffusers-flux", flux_model, flux_inputs)


# --------------------------------------------------------------------------- Lumina-Image 2.0

LUMINA_AXES_DIM_ROPE = (4, 6, 6)
FFN_MULTIPLE_OF = 16  # the FFN size 4n is rounded up to a multiple of this (256 in the paper)


def lumina2_model(n: int) -> torch.nn.Module:
    """``Lumina2TransformerBlock``s at width n: one noise and one context refiner, two main
    layers, grouped-query attention with half as many KV heads (at least one)."""
    from diffusers import Lumina2Transformer2DModel

    heads = _sizes(n)["num_attention_heads"]
    return Lumina2Transformer2DModel(
        sample_size=SAMPLE_SIZE, patch_size=PATCH_SIZE, in_channels=IN_CHANNELS, hidden_size=n,
        num_layers=NUM_LAYERS, num_refiner_layers=1, num_attention_heads=heads,
        num_kv_heads=max(heads // 2, 1), multiple_of=FFN_MULTIPLE_OF,
        axes_dim_rope=LUMINA_AXES_DIM_ROPE, axes_lens=(300, 512, 512),
        cap_feat_dim=CAPTION_CHANNELS)


def _caption_mask() -> torch.Tensor:
    """(B, L) bool: the second caption is padded after 5 tokens (the forward drops padding)."""
    mask = torch.ones(BATCH, CAPTION_LENGTH, dtype=torch.bool)
    mask[1, 5:] = False
    return mask


def lumina2_inputs(n: int) -> dict[str, Any]:
    gen = _generator()
    return {
        "hidden_states": latent(gen, IN_CHANNELS, SAMPLE_SIZE),  # (B, C, H, W)
        "timestep": torch.rand(BATCH, generator=gen),  # (B,) in [0, 1]
        "encoder_hidden_states": _tokens(gen, CAPTION_CHANNELS),  # (B, L, cap_feat_dim)
        "encoder_attention_mask": _caption_mask(),  # (B, L) bool
        "return_dict": False,
    }


def lumina2_spec() -> ModelSpec:
    """diffusers Lumina-Image 2.0, head dim fixed at 16, GQA with n/32 KV heads."""
    return _spec("diffusers-lumina2", lumina2_model, lumina2_inputs)


# --------------------------------------------------------------------------- Mochi

MOCHI_TEXT_DIM = 32  # T5-XXL's 4096 in the release
MOCHI_POOLED_DIM = 32  # the caption stream's width: 1536 in the release, fixed here
MOCHI_TIME_DIM = 32  # sinusoidal timestep features (256 in the release)
FRAMES = 2


def mochi_model(n: int) -> torch.nn.Module:
    """``MochiTransformer3DModel`` at width n: two asymmetric blocks (the last one's caption
    stream is pre-only), with the caption stream at a fixed width."""
    from diffusers import MochiTransformer3DModel

    heads = _sizes(n)["num_attention_heads"]
    return MochiTransformer3DModel(
        patch_size=PATCH_SIZE, num_attention_heads=heads, attention_head_dim=HEAD_DIM,
        num_layers=NUM_LAYERS, pooled_projection_dim=MOCHI_POOLED_DIM, in_channels=IN_CHANNELS,
        text_embed_dim=MOCHI_TEXT_DIM, time_embed_dim=MOCHI_TIME_DIM,
        max_sequence_length=CAPTION_LENGTH)


def mochi_inputs(n: int) -> dict[str, Any]:
    gen = _generator()
    video = torch.randn(BATCH, IN_CHANNELS, FRAMES, SAMPLE_SIZE, SAMPLE_SIZE, generator=gen)
    return {
        "hidden_states": video,  # (B, C, F, H, W)
        "encoder_hidden_states": _tokens(gen, MOCHI_TEXT_DIM),  # (B, L, text_embed_dim)
        "timestep": _int_timesteps(gen),  # (B,) long
        "encoder_attention_mask": _caption_mask(),  # (B, L) bool
        "return_dict": False,
    }


def mochi_spec() -> ModelSpec:
    """diffusers Mochi 1, head dim fixed at 16, 2 frames of the 8 × 8 × 4 latent."""
    return _spec("diffusers-mochi", mochi_model, mochi_inputs)


# --------------------------------------------------------------------------- HiDream-I1

HIDREAM_T5_DIM = 32  # T5's 4096
HIDREAM_LLAMA_DIM = 16  # Llama-3.1's 4096
HIDREAM_LLAMA_LAYERS = 2  # Llama hidden states given (one per block here: 48 in the release)
HIDREAM_POOLED_DIM = 24  # CLIP's pooled 2048
HIDREAM_AXES_DIMS_ROPE = (8, 4, 4)


def hidream_model(n: int) -> torch.nn.Module:
    """``HiDreamImageTransformer2DModel`` at width n: one double- and one single-stream block,
    each with a mixture of 4 routed experts (2 active) and a shared expert."""
    from diffusers import HiDreamImageTransformer2DModel

    heads = _sizes(n)["num_attention_heads"]
    return HiDreamImageTransformer2DModel(
        patch_size=PATCH_SIZE, in_channels=IN_CHANNELS, num_layers=1, num_single_layers=1,
        attention_head_dim=HEAD_DIM, num_attention_heads=heads,
        caption_channels=[HIDREAM_T5_DIM, HIDREAM_LLAMA_DIM], text_emb_dim=HIDREAM_POOLED_DIM,
        num_routed_experts=4, num_activated_experts=2, axes_dims_rope=HIDREAM_AXES_DIMS_ROPE,
        max_resolution=(2 * SAMPLE_SIZE, 2 * SAMPLE_SIZE),
        llama_layers=list(range(HIDREAM_LLAMA_LAYERS)))


def hidream_inputs(n: int) -> dict[str, Any]:
    gen = _generator()
    llama = torch.randn(HIDREAM_LLAMA_LAYERS, BATCH, CAPTION_LENGTH, HIDREAM_LLAMA_DIM,
                        generator=gen)
    return {
        "hidden_states": latent(gen, IN_CHANNELS, SAMPLE_SIZE),  # (B, C, H, W)
        "timesteps": _int_timesteps(gen),  # (B,) long
        "encoder_hidden_states_t5": _tokens(gen, HIDREAM_T5_DIM),  # (B, L, t5_dim)
        "encoder_hidden_states_llama3": llama,  # (layers, B, L, llama_dim)
        "pooled_embeds": torch.randn(BATCH, HIDREAM_POOLED_DIM, generator=gen),  # (B, pooled)
        "return_dict": False,
    }


def hidream_spec() -> ModelSpec:
    """diffusers HiDream-I1, head dim fixed at 16, mixture-of-experts FFNs."""
    return _spec("diffusers-hidream", hidream_model, hidream_inputs)


# --------------------------------------------------------------------------- AuraFlow

def auraflow_model(n: int) -> torch.nn.Module:
    """``AuraFlowTransformer2DModel`` at width n: one joint (MMDiT) and one single-stream
    block; the caption projection is as wide as the model, as in the release."""
    from diffusers import AuraFlowTransformer2DModel

    heads = _sizes(n)["num_attention_heads"]
    return AuraFlowTransformer2DModel(
        sample_size=SAMPLE_SIZE, patch_size=PATCH_SIZE, in_channels=IN_CHANNELS,
        num_mmdit_layers=1, num_single_dit_layers=1, attention_head_dim=HEAD_DIM,
        num_attention_heads=heads, joint_attention_dim=JOINT_ATTENTION_DIM,
        caption_projection_dim=n, out_channels=IN_CHANNELS,
        pos_embed_max_size=(2 * SAMPLE_SIZE // PATCH_SIZE) ** 2)


def auraflow_inputs(n: int) -> dict[str, Any]:
    gen = _generator()
    return {
        "hidden_states": latent(gen, IN_CHANNELS, SAMPLE_SIZE),  # (B, C, H, W)
        "encoder_hidden_states": _tokens(gen, JOINT_ATTENTION_DIM),  # (B, L, joint_dim)
        "timestep": _int_timesteps(gen),  # (B,) long
        "return_dict": False,
    }


def auraflow_spec() -> ModelSpec:
    """diffusers AuraFlow, head dim fixed at 16, a learned 16 × 16 position table."""
    return _spec("diffusers-auraflow", auraflow_model, auraflow_inputs)
