"""DiT: a class-conditional diffusion transformer with adaLN-Zero blocks.

Architecture and initialisation follow Peebles & Xie, *Scalable Diffusion Models with
Transformers* (ICCV 2023, arXiv 2212.09748) and the semantics of the reference
implementation (facebookresearch/DiT, ``models.py``), rewritten from scratch:

- the noisy latent (B, C, H, W) is cut into p × p patches by a strided conv and a frozen
  2-D sin-cos position embedding is added;
- the condition ``c`` is the sum of a timestep embedding (256 sinusoidal frequencies →
  MLP) and a class embedding (a table with one extra "null" row for classifier-free
  guidance);
- every block regresses shift / scale / gate vectors from ``c`` (adaLN-Zero, §3.2 of the
  paper) and wraps self-attention and an MLP in gated residuals;
- the final layer is adaLN-modulated too, then a linear readout to p²·C_out and
  "unpatchify" back to an image.

The init is the paper's, which is *standard* parametrization: tpcheck's job is to point
out what μP would change (docs/theory.md §2, §7). Submodule names are the reference's, so a
DiT checkpoint's state-dict keys load into this class. The pieces the reference models
share (patch embedding, sin-cos tables, timestep MLP, attention, MLP, readout, the latent
frame) are in ``common.py``; this file keeps what is DiT's own, in the order of the paper's
architecture figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tpcheck.spec import ModelSpec

from . import common, specs

# Re-exported: tests and callers take the position table from the model that uses it.
from .common import sincos_pos_embed_2d as sincos_pos_embed_2d


@dataclass
class DiTConfig(common.LatentConfig):
    """Hyperparameters; the defaults are DiT-XL/2 at 256 px (a 32 × 32 × 4 latent).

    The latent, patch, width, depth, head and MLP fields come first and are
    ``common.LatentConfig``'s, whose defaults are these XL/2 values; it also checks them and
    derives ``n_heads``, ``d_head``, ``grid_size`` and ``out_channels``.
    """

    num_classes: int = 1000
    class_dropout_prob: float = 0.0  # DiT trains with 0.1; 0 keeps the forward deterministic
    learn_sigma: bool = True  # predict the variance too: C_out = 2C


def dit_xl_2_config(**overrides: Any) -> DiTConfig:
    """DiT-XL/2 (Table 1 of the paper): depth 28, width 1152, 16 heads of 72, patch 2."""
    return DiTConfig(**{"hidden_size": 1152, "depth": 28, "head_dim": 72, "patch_size": 2,
                        **overrides})


DIT_XL_2 = dit_xl_2_config()


# --------------------------------------------------------------------------- embeddings
# The patch embedding, the sin-cos position table and the timestep MLP are common.py's.

class LabelEmbedder(nn.Module):
    """Class table with a null row (index ``num_classes``) that label dropout switches to."""

    def __init__(self, num_classes: int, hidden_size: int, dropout_prob: float) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.dropout_prob = dropout_prob
        self.embedding_table = nn.Embedding(num_classes + 1, hidden_size)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if self.training and self.dropout_prob > 0:  # classifier-free guidance training
            drop = torch.rand(y.shape[0], device=y.device) < self.dropout_prob
            y = torch.where(drop, torch.full_like(y, self.num_classes), y)
        return self.embedding_table(y)  # (B,) → (B, n)


# --------------------------------------------------------------------------- blocks

class DiTBlock(nn.Module):
    """adaLN-Zero block: c → (shift, scale, gate) × {attention, MLP}; gates start at zero."""

    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        n = cfg.hidden_size
        self.norm1 = nn.LayerNorm(n, elementwise_affine=False, eps=1e-6)
        self.attn = common.Attention(n, cfg.n_heads, cfg.d_head)
        self.norm2 = nn.LayerNorm(n, elementwise_affine=False, eps=1e-6)
        self.mlp = common.Mlp(n, int(n * cfg.mlp_ratio), approximate="tanh")
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(n, 6 * n))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = (
            self.adaLN_modulation(c).chunk(6, dim=1))  # 6 × (B, n)
        x = x + gate_msa[:, None] * self.attn(common.modulate(self.norm1(x), shift_msa, scale_msa))
        x = x + gate_mlp[:, None] * self.mlp(common.modulate(self.norm2(x), shift_mlp, scale_mlp))
        return x  # (B, T, n)


class FinalLayer(common.NormReadout):
    """adaLN (shift, scale) of ``norm_final``, then the readout n → p²·C_out."""

    def __init__(self, hidden_size: int, patch_size: int, out_channels: int) -> None:
        super().__init__(hidden_size, patch_size, out_channels)  # norm_final, linear
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)  # 2 × (B, n)
        return self.linear(common.modulate(self.norm_final(x), shift, scale))  # (B, T, p²·C_out)


# --------------------------------------------------------------------------- model

class DiT(common.LatentTransformer):
    """Class-conditional DiT: ``forward(x, t, y)`` predicts noise (and variance) for x.

    The patch embedding ``x_embedder``, the frozen sin-cos ``pos_embed`` and ``unpatchify``
    are the frame's (``common.LatentTransformer``); the rest is DiT's own.
    """

    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__(cfg)  # self.cfg, x_embedder, pos_embed
        n = cfg.hidden_size
        self.t_embedder = common.TimestepEmbedder(n)
        self.y_embedder = LabelEmbedder(cfg.num_classes, n, cfg.class_dropout_prob)
        self.blocks = nn.ModuleList(DiTBlock(cfg) for _ in range(cfg.depth))
        self.final_layer = FinalLayer(n, cfg.patch_size, cfg.out_channels)
        self.initialize_weights()

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) latent, t (B,) float timesteps, y (B,) long class labels."""
        x = self.x_embedder(x) + self.pos_embed  # (B, T, n)
        c = self.t_embedder(t) + self.y_embedder(y)  # (B, n)
        for block in self.blocks:
            x = block(x, c)  # (B, T, n)
        x = self.final_layer(x, c)  # (B, T, p²·C_out)
        return self.unpatchify(x)  # (B, C_out, H, W)

    @torch.no_grad()
    def initialize_weights(self) -> None:
        """DiT's ``initialize_weights``: every group below is one statement of the reference."""
        # Every Linear xavier-uniform with zero bias (overridden for some groups below), the
        # fixed 2-D sin-cos position table, the patch conv xavier-uniform as if it were a
        # Linear: three groups PixArt-α repeats (common.LatentTransformer.init_like_dit_).
        self.init_like_dit_()
        # Class embedding table: N(0, 0.02²).
        nn.init.normal_(self.y_embedder.embedding_table.weight, std=0.02)
        # Timestep MLP: N(0, 0.02²) on both Linear weights (biases stay zero).
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)
        # adaLN-Zero: modulation weights and biases zero, so every block starts as identity.
        for block in self.blocks:
            nn.init.zeros_(block.adaLN_modulation[-1].weight)
            nn.init.zeros_(block.adaLN_modulation[-1].bias)
        # Final layer: zero modulation and zero readout, so the initial prediction is 0.
        nn.init.zeros_(self.final_layer.adaLN_modulation[-1].weight)
        nn.init.zeros_(self.final_layer.adaLN_modulation[-1].bias)
        nn.init.zeros_(self.final_layer.linear.weight)
        nn.init.zeros_(self.final_layer.linear.bias)


# --------------------------------------------------------------------------- specs

#: The built-in targets' DiT: an 8 × 8 × 4 latent, patch 2, 10 classes.
SMALL = specs.SmallTarget("dit", DiTConfig, DiT, specs.class_conditional_inputs,
                          {"input_size": 8, "patch_size": 2, "in_channels": 4, "num_classes": 10})


def dit_spec(depth: int = 2, **overrides: Any) -> ModelSpec:
    """Small DiT on an 8 × 8 × 4 latent, head dim fixed at 16 (heads = n / 16)."""
    return SMALL.spec(specs.FIXED_HEAD_DIM, depth, overrides)


def dit_growing_head_dim_spec(depth: int = 2, **overrides: Any) -> ModelSpec:
    """Small DiT with 4 heads at every width: the head dim n / 4 grows with n."""
    return SMALL.spec(specs.GROWING_HEAD_DIM, depth, overrides)
