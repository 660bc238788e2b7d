"""PixArt-α: a text-to-image DiT with adaLN-single and cross-attention.

Architecture and initialisation follow Chen et al., *PixArt-α: Fast Training of Diffusion
Transformer for Photorealistic Text-to-Image Synthesis* (ICLR 2024, arXiv 2310.00426) and
the semantics of the reference implementation (PixArt-alpha/PixArt-alpha,
``diffusion/model/nets/PixArt.py``), rewritten from scratch:

- DiT's patch embedding, fixed 2-D sin-cos position embedding and timestep MLP;
- *adaLN-single* (§2.3 of the paper): one shared ``t_block`` (SiLU, n → 6n) regresses the
  six modulation vectors once; every block adds its own learned ``scale_shift_table``
  (6 × n, init N(0, 1/n)) elementwise instead of owning an n → 6n MLP;
- each block: modulated self-attention, *un-normalised* cross-attention from image tokens
  to caption tokens (projected by ``y_embedder``, an MLP from the text encoder's
  channels), modulated MLP;
- ``T2IFinalLayer``: LayerNorm, shift/scale from its own (2 × n) table plus the timestep
  embedding, readout n → p²·C_out.

The caption mask of the reference (padding tokens of T5) is not modelled: every caption
token attends. Submodule names are the reference's. What PixArt shares with DiT (patch
embedding, sin-cos table, timestep MLP, attention, MLP, readout, latent frame) is in
``common.py``; this file keeps what is PixArt's own.
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
class PixArtConfig(common.LatentConfig):
    """Hyperparameters; the defaults are PixArt-XL/2 at 256 px (32 × 32 × 4 latent, T5-XXL).

    The latent, patch, width, depth, head and MLP fields come first and are
    ``common.LatentConfig``'s: PixArt-XL/2 keeps DiT-XL/2's sizes, its defaults.
    ``caption_channels`` is the text encoder's width (4096 for T5-XXL): a finite dim, so
    ``y_embedder.y_proj.fc1`` is input-like.
    """

    caption_channels: int = 4096
    caption_length: int = 120  # model_max_length: rows of the null caption
    caption_dropout_prob: float = 0.0  # PixArt trains with 0.1; 0 keeps the forward deterministic
    learn_sigma: bool = True  # predict the variance too: C_out = 2C


def pixart_xl_2_config(**overrides: Any) -> PixArtConfig:
    """PixArt-XL/2: depth 28, width 1152, 16 heads of 72, patch 2, T5-XXL captions."""
    return PixArtConfig(**{"hidden_size": 1152, "depth": 28, "head_dim": 72, **overrides})


# --------------------------------------------------------------------------- embeddings
# DiT's patch embedding, sin-cos position table and timestep MLP are common.py's.

class CaptionEmbedder(nn.Module):
    """Text-encoder tokens (B, L, C_text) → (B, L, n); dropout swaps in a null caption."""

    def __init__(self, cfg: PixArtConfig) -> None:
        super().__init__()
        self.dropout_prob = cfg.caption_dropout_prob
        self.y_proj = common.Mlp(cfg.caption_channels, cfg.hidden_size, cfg.hidden_size,
                                 approximate="tanh")
        # The null caption of the reference: random, fixed (a buffer, never trained).
        self.register_buffer("y_embedding", torch.randn(cfg.caption_length, cfg.caption_channels)
                             / cfg.caption_channels ** 0.5)

    def forward(self, caption: torch.Tensor) -> torch.Tensor:
        if self.training and self.dropout_prob > 0:  # classifier-free guidance training
            drop = torch.rand(caption.shape[0], device=caption.device) < self.dropout_prob
            caption = torch.where(drop[:, None, None], self.y_embedding, caption)
        return self.y_proj(caption)  # (B, L, n)


# --------------------------------------------------------------------------- blocks

def t2i_modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN with (B, 1, n) shift/scale broadcast over the tokens."""
    return x * (1 + scale) + shift


class MultiHeadCrossAttention(nn.Module):
    """Image tokens (queries) attend to caption tokens (keys/values), per sample."""

    def __init__(self, hidden_size: int, num_heads: int, head_dim: int) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, head_dim
        self.scale: float | None = None  # None: SDPA's 1/√head_dim (a converter may set 1/d)
        self.q_linear = nn.Linear(hidden_size, hidden_size)
        self.kv_linear = nn.Linear(hidden_size, 2 * hidden_size)
        self.proj = nn.Linear(hidden_size, hidden_size)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        B, T, n = x.shape
        L = cond.shape[1]
        q = self.q_linear(x).reshape(B, T, self.num_heads, self.head_dim).transpose(1, 2)
        kv = self.kv_linear(cond).reshape(B, L, 2, self.num_heads, self.head_dim)
        k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)  # (B, h, L, d) each
        out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)  # (B, h, T, d)
        return self.proj(out.transpose(1, 2).reshape(B, T, n))  # (B, T, n)


class PixArtBlock(nn.Module):
    """adaLN-single block: the shared t6 plus this block's table give shift/scale/gate."""

    def __init__(self, cfg: PixArtConfig) -> None:
        super().__init__()
        n, h, d = cfg.hidden_size, cfg.n_heads, cfg.d_head  # both attentions split n alike
        self.norm1 = nn.LayerNorm(n, elementwise_affine=False, eps=1e-6)
        self.attn = common.Attention(n, h, d)
        self.cross_attn = MultiHeadCrossAttention(n, h, d)
        self.norm2 = nn.LayerNorm(n, elementwise_affine=False, eps=1e-6)
        self.mlp = common.Mlp(n, int(n * cfg.mlp_ratio), approximate="tanh")
        self.scale_shift_table = nn.Parameter(torch.randn(6, n) / n ** 0.5)  # (6, n)

    def forward(self, x: torch.Tensor, y: torch.Tensor, t6: torch.Tensor) -> torch.Tensor:
        """x (B, T, n) image tokens, y (B, L, n) caption tokens, t6 (B, 6n) from t_block."""
        B = x.shape[0]
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = (
            self.scale_shift_table[None] + t6.reshape(B, 6, -1)).chunk(6, dim=1)  # 6 × (B, 1, n)
        x = x + gate_msa * self.attn(t2i_modulate(self.norm1(x), shift_msa, scale_msa))
        x = x + self.cross_attn(x, y)
        x = x + gate_mlp * self.mlp(t2i_modulate(self.norm2(x), shift_mlp, scale_mlp))
        return x  # (B, T, n)


class T2IFinalLayer(common.NormReadout):
    """``norm_final`` with shift/scale = its (2, n) table + the timestep embedding, readout."""

    def __init__(self, hidden_size: int, patch_size: int, out_channels: int) -> None:
        super().__init__(hidden_size, patch_size, out_channels)  # norm_final, linear
        self.scale_shift_table = nn.Parameter(torch.randn(2, hidden_size) / hidden_size ** 0.5)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        shift, scale = (self.scale_shift_table[None] + t[:, None]).chunk(2, dim=1)  # 2 × (B, 1, n)
        return self.linear(t2i_modulate(self.norm_final(x), shift, scale))  # (B, T, p²·C_out)


# --------------------------------------------------------------------------- model

class PixArt(common.LatentTransformer):
    """Text-conditional PixArt-α: ``forward(x, t, caption)`` predicts noise (and variance).

    As in DiT, ``x_embedder``, the frozen sin-cos ``pos_embed`` and ``unpatchify`` come from
    ``common.LatentTransformer``; PixArt adds the caption embedder and adaLN-single's shared
    ``t_block`` (SiLU, n → 6n), which every block's table is added to.
    """

    def __init__(self, cfg: PixArtConfig) -> None:
        super().__init__(cfg)  # self.cfg, x_embedder, pos_embed
        n = cfg.hidden_size
        self.t_embedder = common.TimestepEmbedder(n)
        self.t_block = nn.Sequential(nn.SiLU(), nn.Linear(n, 6 * n))
        self.y_embedder = CaptionEmbedder(cfg)
        self.blocks = nn.ModuleList(PixArtBlock(cfg) for _ in range(cfg.depth))
        self.final_layer = T2IFinalLayer(n, cfg.patch_size, cfg.out_channels)
        self.initialize_weights()

    def forward(self, x: torch.Tensor, t: torch.Tensor, caption: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) latent, t (B,) float timesteps, caption (B, L, caption_channels)."""
        x = self.x_embedder(x) + self.pos_embed  # (B, T, n)
        t = self.t_embedder(t)  # (B, n)
        t6 = self.t_block(t)  # (B, 6n): shared by every block
        y = self.y_embedder(caption)  # (B, L, n)
        for block in self.blocks:
            x = block(x, y, t6)  # (B, T, n)
        x = self.final_layer(x, t)  # (B, T, p²·C_out)
        return self.unpatchify(x)  # (B, C_out, H, W)

    @torch.no_grad()
    def initialize_weights(self) -> None:
        """PixArt's ``initialize_weights``; the scale_shift_tables keep their N(0, 1/n) init."""
        # DiT's first three groups, word for word: every Linear xavier-uniform with zero bias
        # (overridden for some groups below), the fixed 2-D sin-cos position table, the patch
        # conv xavier-uniform as if it were a Linear (common.LatentTransformer.init_like_dit_).
        self.init_like_dit_()
        # Timestep MLP and the shared adaLN-single t_block: N(0, 0.02²) weights.
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)
        nn.init.normal_(self.t_block[1].weight, std=0.02)
        # Cross-attention output: zero weight and bias, so captions enter gradually.
        for block in self.blocks:
            nn.init.zeros_(block.cross_attn.proj.weight)
            nn.init.zeros_(block.cross_attn.proj.bias)
        # Caption projection MLP: N(0, 0.02²) weights.
        nn.init.normal_(self.y_embedder.y_proj.fc1.weight, std=0.02)
        nn.init.normal_(self.y_embedder.y_proj.fc2.weight, std=0.02)
        # Readout: zero weight and bias, so the initial prediction is 0.
        nn.init.zeros_(self.final_layer.linear.weight)
        nn.init.zeros_(self.final_layer.linear.bias)


# --------------------------------------------------------------------------- specs

def _inputs(cfg: PixArtConfig, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    """``(x, t, caption)``: a latent, float timesteps and text-encoder tokens."""
    x = specs.latent(gen, cfg.in_channels, cfg.input_size)  # (B, C, H, W)
    t = specs.float_timesteps(gen)  # (B,) float
    caption = torch.randn(specs.BATCH, cfg.caption_length, cfg.caption_channels,
                          generator=gen)  # (B, L, caption_channels)
    return x, t, caption


#: The built-in targets' PixArt-α: an 8 × 8 × 4 latent, patch 2, 8 caption tokens of 32.
SMALL = specs.SmallTarget("pixart", PixArtConfig, PixArt, _inputs,
                          {"input_size": 8, "patch_size": 2, "in_channels": 4,
                           "caption_channels": 32, "caption_length": 8})


def pixart_spec(depth: int = 2, **overrides: Any) -> ModelSpec:
    """Small PixArt-α (8 × 8 × 4 latent, 8 caption tokens of 32), head dim fixed at 16."""
    return SMALL.spec(specs.FIXED_HEAD_DIM, depth, overrides)


def pixart_growing_head_dim_spec(depth: int = 2, **overrides: Any) -> ModelSpec:
    """Small PixArt-α with 4 heads at every width: the head dim n / 4 grows with n."""
    return SMALL.spec(specs.GROWING_HEAD_DIM, depth, overrides)
