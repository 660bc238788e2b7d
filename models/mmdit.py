"""MMDiT: Stable Diffusion 3's two-stream joint-attention transformer.

Architecture follows Esser et al., *Scaling Rectified Flow Transformers for High-Resolution
Image Synthesis* (ICML 2024, arXiv 2403.03206, §4 and Fig. 2) with the module layout of
diffusers' ``SD3Transformer2DModel`` / ``JointTransformerBlock``, rewritten from scratch:

- image stream: patch-embed conv plus a fixed 2-D sin-cos position embedding (SD3 builds a
  larger table and centre-crops it; at the training resolution that is this table);
- text stream: ``context_embedder`` projects the text encoders' tokens (4096 channels:
  T5-XXL and padded CLIP) to the width;
- conditioning ``c`` = timestep MLP(256 sinusoidal frequencies) + pooled-text MLP (2048
  channels: CLIP-L ⊕ CLIP-G pooled);
- each block modulates both streams with adaLN-Zero (SiLU → n → 6n) and runs *one*
  attention over the concatenated [context; image] tokens with separate q/k/v/out weights
  per stream and RMSNorm on q and k over the head dim (SD3.5's ``qk_norm="rms_norm"``);
- the last block's context stream is "pre-only": it only feeds keys/values to the image
  stream (adaLN-continuous n → 2n, no attention output, no MLP);
- final adaLN-continuous (SiLU → n → 2n; (scale, shift) order as diffusers) and readout.

Init: PyTorch defaults everywhere (kaiming-uniform Linear/conv, RMSNorm gain 1), as in the
SD3 reference code and diffusers at random init: nothing is zero-initialised, not even
the adaLN-Zero modulations (docs/theory.md §7). Only the frozen position table is filled.
The image stream's patch embedding, sin-cos table and unpatchify, the timestep sinusoid, the
MLP and ``modulate`` are the ones the reference models share (``common.py``); the joint
attention, the two streams and diffusers' adaLN layers are MMDiT's own, here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tpcheck.spec import ModelSpec

from . import common, specs


@dataclass
class MMDiTConfig(common.LatentConfig):
    """Hyperparameters; the defaults are SD3-medium-like (1024 px: 128 × 128 × 16 latent).

    The latent, patch, width, depth, head and MLP fields come first and are
    ``common.LatentConfig``'s; the five below differ from its DiT-XL/2 defaults and are
    redeclared, which keeps their place (patch 2, ``num_heads=None`` and MLP ratio 4 are
    inherited). ``joint_dim`` (text tokens) and ``pooled_dim`` (pooled text vector) are the
    text encoders' widths: finite dims. No ``learn_sigma``: C_out = C (a velocity).
    """

    input_size: int = 128  # latent side H = W
    in_channels: int = 16
    hidden_size: int = 1536  # the width n
    depth: int = 24
    head_dim: int | None = 64
    joint_dim: int = 4096
    pooled_dim: int = 2048

    def __post_init__(self) -> None:
        super().__post_init__()  # heads, patch grid, sin-cos width
        if self.depth < 1:
            raise ValueError(f"depth must be at least 1 (the last block is context-pre-only); "
                             f"got {self.depth}.")


def sd3_medium_config(**overrides: Any) -> MMDiTConfig:
    """SD3-medium-like: depth 24, width 1536 = 24 heads × 64, patch 2, 16 latent channels."""
    return MMDiTConfig(**{"hidden_size": 1536, "depth": 24, "head_dim": 64, "patch_size": 2,
                          "in_channels": 16, "joint_dim": 4096, "pooled_dim": 2048,
                          **overrides})


# --------------------------------------------------------------------------- embeddings
# The patch embedding, the sin-cos position table and the timestep sinusoid are common.py's.

class MlpEmbedder(nn.Module):
    """in → n → n with SiLU: the timestep and the pooled-text embedders."""

    def __init__(self, in_features: int, hidden_size: int) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(in_features, hidden_size)
        self.act = nn.SiLU()
        self.linear_2 = nn.Linear(hidden_size, hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(x)))


class TimeTextEmbed(nn.Module):
    """c = MLP(sinusoid(t)) + MLP(pooled text): the vector every adaLN reads."""

    def __init__(self, cfg: MMDiTConfig, frequency_size: int = 256) -> None:
        super().__init__()
        self.frequency_size = frequency_size
        self.timestep_embedder = MlpEmbedder(frequency_size, cfg.hidden_size)
        self.text_embedder = MlpEmbedder(cfg.pooled_dim, cfg.hidden_size)

    def forward(self, t: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        t_emb = self.timestep_embedder(common.timestep_embedding(t, self.frequency_size))  # (B, n)
        return t_emb + self.text_embedder(pooled)  # (B, n)


# --------------------------------------------------------------------------- blocks

class AdaLayerNorm(nn.Module):
    """LayerNorm (no affine) with k per-sample n-vectors regressed from c by SiLU → Linear.

    diffusers' two adaLN layers below differ only in k (6 with gates, 2 without) and in what
    they return, so the layer they both are is written once.
    """

    def __init__(self, hidden_size: int, vectors: int) -> None:
        super().__init__()
        self.vectors = vectors
        self.silu = nn.SiLU()
        self.linear = nn.Linear(hidden_size, vectors * hidden_size)
        self.norm = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)

    def regress(self, c: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.linear(self.silu(c)).chunk(self.vectors, dim=1)  # k × (B, n)


class AdaLayerNormZero(AdaLayerNorm):
    """adaLN-Zero: c → 6n; returns the modulated attention input and the other 5 vectors."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__(hidden_size, 6)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, ...]:
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.regress(c)
        x = common.modulate(self.norm(x), shift_msa, scale_msa)  # (B, L, n)
        return x, gate_msa, shift_mlp, scale_mlp, gate_mlp


class AdaLayerNormContinuous(AdaLayerNorm):
    """adaLN-continuous: c → 2n in (scale, shift) order (diffusers'); no gates."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__(hidden_size, 2)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        scale, shift = self.regress(c)  # 2 × (B, n)
        return common.modulate(self.norm(x), shift, scale)  # (B, L, n)


class JointAttention(nn.Module):
    """One SDPA over [context; image] tokens, q/k/v/out weights and QK RMSNorms per stream."""

    def __init__(self, hidden_size: int, num_heads: int, head_dim: int,
                 context_pre_only: bool) -> None:
        super().__init__()
        n = hidden_size
        self.num_heads, self.head_dim = num_heads, head_dim
        self.scale: float | None = None  # None: SDPA's 1/√head_dim (a converter may set 1/d)
        self.to_q, self.to_k, self.to_v = nn.Linear(n, n), nn.Linear(n, n), nn.Linear(n, n)
        self.add_q_proj, self.add_k_proj, self.add_v_proj = (
            nn.Linear(n, n), nn.Linear(n, n), nn.Linear(n, n))
        # RMSNorm over the head dim: the gain has head_dim entries, shared by all heads.
        self.norm_q = nn.RMSNorm(head_dim, eps=1e-6)
        self.norm_k = nn.RMSNorm(head_dim, eps=1e-6)
        self.norm_added_q = nn.RMSNorm(head_dim, eps=1e-6)
        self.norm_added_k = nn.RMSNorm(head_dim, eps=1e-6)
        self.to_out = nn.Linear(n, n)
        self.to_add_out = None if context_pre_only else nn.Linear(n, n)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        B, L, _ = x.shape
        return x.reshape(B, L, self.num_heads, self.head_dim).transpose(1, 2)  # (B, h, L, d)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor,
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, T, n = x.shape
        Lc = ctx.shape[1]
        q = torch.cat([self.norm_added_q(self._heads(self.add_q_proj(ctx))),
                       self.norm_q(self._heads(self.to_q(x)))], dim=2)  # (B, h, Lc + T, d)
        k = torch.cat([self.norm_added_k(self._heads(self.add_k_proj(ctx))),
                       self.norm_k(self._heads(self.to_k(x)))], dim=2)  # (B, h, Lc + T, d)
        v = torch.cat([self._heads(self.add_v_proj(ctx)),
                       self._heads(self.to_v(x))], dim=2)  # (B, h, Lc + T, d)
        out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)  # (B, h, Lc + T, d)
        out = out.transpose(1, 2).reshape(B, Lc + T, n)  # (B, Lc + T, n)
        x_out = self.to_out(out[:, Lc:])  # (B, T, n)
        ctx_out = None if self.to_add_out is None else self.to_add_out(out[:, :Lc])  # (B, Lc, n)
        return x_out, ctx_out


class FeedForward(common.Mlp):
    """n → 4n → n with tanh-approximated GELU (diffusers' "gelu-approximate")."""

    def __init__(self, hidden_size: int, mlp_hidden: int) -> None:
        super().__init__(hidden_size, mlp_hidden, approximate="tanh")


class JointTransformerBlock(nn.Module):
    """Two streams, one attention; a pre-only context stream just feeds keys and values."""

    def __init__(self, cfg: MMDiTConfig, context_pre_only: bool) -> None:
        super().__init__()
        n, mlp_hidden = cfg.hidden_size, int(cfg.hidden_size * cfg.mlp_ratio)
        self.context_pre_only = context_pre_only
        self.norm1 = AdaLayerNormZero(n)
        self.norm1_context = AdaLayerNormContinuous(n) if context_pre_only else AdaLayerNormZero(n)
        self.attn = JointAttention(n, cfg.n_heads, cfg.d_head, context_pre_only)
        self.norm2 = nn.LayerNorm(n, elementwise_affine=False, eps=1e-6)
        self.ff = FeedForward(n, mlp_hidden)
        if not context_pre_only:
            self.norm2_context = nn.LayerNorm(n, elementwise_affine=False, eps=1e-6)
            self.ff_context = FeedForward(n, mlp_hidden)

    def forward(self, ctx: torch.Tensor, x: torch.Tensor, c: torch.Tensor,
                ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """ctx (B, Lc, n) text tokens, x (B, T, n) image tokens, c (B, n) conditioning."""
        x_in, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.norm1(x, c)
        if self.context_pre_only:
            ctx_in = self.norm1_context(ctx, c)
        else:
            ctx_in, c_gate_msa, c_shift_mlp, c_scale_mlp, c_gate_mlp = self.norm1_context(ctx, c)
        attn_x, attn_ctx = self.attn(x_in, ctx_in)
        x = x + gate_msa[:, None] * attn_x
        x = x + gate_mlp[:, None] * self.ff(common.modulate(self.norm2(x), shift_mlp, scale_mlp))
        if self.context_pre_only:
            return None, x
        ctx = ctx + c_gate_msa[:, None] * attn_ctx
        ctx = ctx + c_gate_mlp[:, None] * self.ff_context(
            common.modulate(self.norm2_context(ctx), c_shift_mlp, c_scale_mlp))
        return ctx, x  # (B, Lc, n), (B, T, n)


# --------------------------------------------------------------------------- model

class MMDiT(common.LatentTransformer):
    """SD3-style MMDiT: ``forward(x, t, context, pooled)`` predicts the flow velocity.

    The image stream enters and leaves through ``common.LatentTransformer`` (``x_embedder``,
    the frozen sin-cos ``pos_embed``, ``unpatchify``); the text stream, the conditioning
    vector and the joint blocks are MMDiT's own.
    """

    def __init__(self, cfg: MMDiTConfig) -> None:
        super().__init__(cfg)  # self.cfg, x_embedder, pos_embed
        n = cfg.hidden_size
        self.time_text_embed = TimeTextEmbed(cfg)
        self.context_embedder = nn.Linear(cfg.joint_dim, n)
        self.transformer_blocks = nn.ModuleList(
            JointTransformerBlock(cfg, context_pre_only=(i == cfg.depth - 1))
            for i in range(cfg.depth))
        self.norm_out = AdaLayerNormContinuous(n)
        self.proj_out = nn.Linear(n, cfg.patch_size ** 2 * cfg.out_channels)
        self.initialize_weights()

    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor,
                pooled: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) latent, t (B,) float timesteps, context (B, L, joint_dim) text
        tokens, pooled (B, pooled_dim) pooled text."""
        x = self.x_embedder(x) + self.pos_embed  # (B, T, n)
        c = self.time_text_embed(t, pooled)  # (B, n)
        ctx = self.context_embedder(context)  # (B, L, n)
        for block in self.transformer_blocks:
            ctx, x = block(ctx, x, c)
        x = self.proj_out(self.norm_out(x, c))  # (B, T, p²·C)
        return self.unpatchify(x)  # (B, C, H, W)

    @torch.no_grad()
    def initialize_weights(self) -> None:
        """Fill the frozen position table; every trainable tensor keeps PyTorch's default."""
        # Position embedding: the fixed 2-D sin-cos table.
        self.fill_pos_embed_()
        # Linear / conv: kaiming-uniform(a=√5) weights, U(±1/√fan_in) biases (nn defaults).
        # QK RMSNorm gains: ones. adaLN modulations and readout: *not* zeroed (diffusers).


# --------------------------------------------------------------------------- specs

CONTEXT_LENGTH = 8


def _small(context_length: int) -> specs.SmallTarget[MMDiTConfig]:
    """The built-in targets' MMDiT: 8 × 8 × 4 latent, patch 2, text 32 wide, pooled 24."""

    def inputs(cfg: MMDiTConfig, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
        x = specs.latent(gen, cfg.in_channels, cfg.input_size)  # (B, C, H, W)
        t = specs.float_timesteps(gen)  # (B,) float
        context = torch.randn(specs.BATCH, context_length, cfg.joint_dim,
                              generator=gen)  # (B, L, joint_dim) text tokens
        pooled = torch.randn(specs.BATCH, cfg.pooled_dim, generator=gen)  # (B, pooled_dim)
        return x, t, context, pooled

    return specs.SmallTarget("mmdit", MMDiTConfig, MMDiT, inputs,
                             {"input_size": 8, "patch_size": 2, "in_channels": 4,
                              "joint_dim": 32, "pooled_dim": 24})


def mmdit_spec(depth: int = 2, context_length: int = CONTEXT_LENGTH,
               **overrides: Any) -> ModelSpec:
    """Small MMDiT (8 × 8 × 4 latent, 8 text tokens of 32, pooled 24), head dim fixed at 16.

    Depth 2: one full joint block and the context-pre-only last block. ``overrides`` are
    ``MMDiTConfig`` fields; ``context_length`` is the number of text tokens fed.
    """
    return _small(context_length).spec(specs.FIXED_HEAD_DIM, depth, overrides)


def mmdit_growing_head_dim_spec(depth: int = 2, **overrides: Any) -> ModelSpec:
    """Small MMDiT with 4 heads at every width: the head dim n / 4 (and the QK-norm gains)
    grow with n."""
    return _small(CONTEXT_LENGTH).spec(specs.GROWING_HEAD_DIM, depth, overrides)
