"""U-ViT: a ViT backbone for diffusion where everything is a token.

Architecture and initialisation follow Bao et al., *All are Worth Words: A ViT Backbone
for Diffusion Models* (CVPR 2023, arXiv 2209.12152) and the semantics of the reference
implementation (baofff/U-ViT, ``libs/uvit.py``), rewritten from scratch:

- time and class are *tokens*: the sinusoidal timestep embedding (width n, no MLP: the
  ImageNet configs set ``mlp_time_embed=False``) and a class-embedding row are prepended
  to the patch tokens, and a learned position embedding covers all 2 + T tokens;
- pre-norm transformer blocks with *long skips*: the outputs of the first depth/2 blocks
  are concatenated to the inputs of the last depth/2 blocks, which fuse them with
  ``skip_linear`` (2n → n), like a U-Net;
- final LayerNorm, a linear readout to p²·C, the extra tokens dropped, unpatchify, and a
  3 × 3 conv on the image.

Init (the reference's ``_init_weights``): ``trunc_normal(std=0.02)`` on every Linear
weight, zero biases, LayerNorm (1, 0), position embedding ``trunc_normal(0.02)``, convs at
PyTorch's default. A fixed 0.02 std for every Linear is standard, not μP (docs/theory.md §7).
Submodule names are the reference's. The patch embedding, the timestep sinusoid, attention
and MLP are the ones the reference models share (``common.py``); the token layout and the
long skips are U-ViT's own, here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tpcheck.spec import ModelSpec

from . import common, specs


@dataclass
class UViTConfig(common.HeadSplit):
    """Hyperparameters; the defaults are U-ViT-L/2 for ImageNet 256 (32 × 32 × 4 latent,
    the reference's ``configs/imagenet256_uvit.py``).

    ``depth`` counts in_blocks + out_blocks (the mid block is extra): U-ViT-L has depth 20,
    i.e. 10 + 1 + 10 = 21 blocks. ``num_classes`` includes the null class used for
    classifier-free guidance (1001 on ImageNet; the label dropout itself lives in the
    training loop, not the model). ``conv=False`` gives U-ViT-H/2's head (no final conv).
    Exactly one of ``head_dim`` / ``num_heads`` is set (``common.HeadSplit`` derives
    ``n_heads`` and ``d_head``). The fields keep the reference's names (``img_size``), and
    the position embedding is learned: the checks are U-ViT's own.
    """

    img_size: int = 32  # latent side H = W
    patch_size: int = 2
    in_channels: int = 4
    hidden_size: int = 1024  # the width n (embed_dim in the reference)
    depth: int = 20
    head_dim: int | None = 64
    num_heads: int | None = None
    mlp_ratio: float = 4.0
    qkv_bias: bool = False
    num_classes: int = 1001
    conv: bool = True  # the final 3 × 3 conv

    def __post_init__(self) -> None:
        common.split_heads(self.hidden_size, self.head_dim, self.num_heads)  # validates
        if self.depth % 2:
            raise ValueError(f"depth {self.depth} must be even: it is split into depth/2 "
                             "in-blocks and depth/2 out-blocks around the mid block.")
        common.check_patch_grid("img_size", self.img_size, self.patch_size)

    @property
    def grid_size(self) -> int:
        return self.img_size // self.patch_size


def uvit_large_config(**overrides: Any) -> UViTConfig:
    """U-ViT-L/2 (ImageNet 256 latent): width 1024, 16 heads of 64, 21 blocks."""
    return UViTConfig(**{"hidden_size": 1024, "depth": 20, "head_dim": 64, **overrides})


# --------------------------------------------------------------------------- blocks
# The patch embedding, the ADM timestep sinusoid and the (qkv-bias-optional) attention are
# common.py's; U-ViT's MLP is that Mlp with the exact GELU (timm's default).

class Block(nn.Module):
    """Pre-norm transformer block; an out-block first fuses its long skip with 2n → n."""

    def __init__(self, cfg: UViTConfig, skip: bool = False) -> None:
        super().__init__()
        n = cfg.hidden_size
        self.skip_linear = nn.Linear(2 * n, n) if skip else None
        self.norm1 = nn.LayerNorm(n)
        self.attn = common.Attention(n, cfg.n_heads, cfg.d_head, cfg.qkv_bias)
        self.norm2 = nn.LayerNorm(n)
        self.mlp = common.Mlp(n, int(n * cfg.mlp_ratio), approximate="none")

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if self.skip_linear is not None:
            x = self.skip_linear(torch.cat([x, skip], dim=-1))  # (B, L, 2n) → (B, L, n)
        x = x + self.attn(self.norm1(x))
        x = x + self.mlp(self.norm2(x))
        return x  # (B, L, n)


# --------------------------------------------------------------------------- model

class UViT(nn.Module):
    """Class-conditional U-ViT: ``forward(x, t, y)`` predicts the noise added to x."""

    extras = 2  # the time token and the class token

    def __init__(self, cfg: UViTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        n, g = cfg.hidden_size, cfg.grid_size
        self.patch_embed = common.PatchEmbed(cfg.patch_size, cfg.in_channels, n)
        self.label_emb = nn.Embedding(cfg.num_classes, n)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.extras + g * g, n))  # learned
        self.in_blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth // 2))
        self.mid_block = Block(cfg)
        self.out_blocks = nn.ModuleList(Block(cfg, skip=True) for _ in range(cfg.depth // 2))
        self.norm = nn.LayerNorm(n)
        self.decoder_pred = nn.Linear(n, cfg.patch_size ** 2 * cfg.in_channels)
        self.final_layer = (nn.Conv2d(cfg.in_channels, cfg.in_channels, 3, padding=1)
                            if cfg.conv else nn.Identity())
        self.initialize_weights()

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, p²·C) → (B, C, H, W), inverse of the patch embedding's token order."""
        return common.unpatchify(x, self.cfg.patch_size, self.cfg.grid_size, self.cfg.in_channels)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) latent, t (B,) float timesteps, y (B,) long class labels."""
        x = self.patch_embed(x)  # (B, T, n)
        time_token = common.timestep_embedding(t, self.cfg.hidden_size)[:, None]  # (B, 1, n)
        label_token = self.label_emb(y)[:, None]  # (B, 1, n)
        x = torch.cat([label_token, time_token, x], dim=1) + self.pos_embed  # (B, 2 + T, n)
        skips = []
        for block in self.in_blocks:
            x = block(x)
            skips.append(x)
        x = self.mid_block(x)
        for block in self.out_blocks:
            x = block(x, skips.pop())  # the deepest in-block pairs with the first out-block
        x = self.decoder_pred(self.norm(x))  # (B, 2 + T, p²·C)
        x = self.unpatchify(x[:, self.extras:])  # (B, C, H, W)
        return self.final_layer(x)  # (B, C, H, W)

    @torch.no_grad()
    def initialize_weights(self) -> None:
        """U-ViT's init: ``trunc_normal_(pos_embed, .02)`` then ``apply(_init_weights)``."""
        # Position embedding (time, class and patch tokens): truncated N(0, 0.02²).
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for module in self.modules():
            # Every Linear (qkv, proj, fc1, fc2, skip_linear, decoder_pred): truncated
            # N(0, 0.02²) whatever its fan-in, zero bias.
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            # Every LayerNorm: gain 1, bias 0.
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        # Patch-embed conv, final conv and the class table keep PyTorch's defaults
        # (kaiming-uniform(a=√5) for convs, N(0, 1) for nn.Embedding).


# --------------------------------------------------------------------------- specs

#: The built-in targets' U-ViT: an 8 × 8 × 4 latent, patch 2, 10 classes.
SMALL = specs.SmallTarget("uvit", UViTConfig, UViT, specs.class_conditional_inputs,
                          {"img_size": 8, "patch_size": 2, "in_channels": 4, "num_classes": 10})


def uvit_spec(depth: int = 4, **overrides: Any) -> ModelSpec:
    """Small U-ViT (2 in-, 1 mid-, 2 out-blocks), head dim fixed at 16 (heads = n / 16).

    Depth 4 because the skip linears exist only in the out-blocks: docs/theory.md §7 asks for
    depth ≥ 4 when modules depend on depth.
    """
    return SMALL.spec(specs.FIXED_HEAD_DIM, depth, overrides)


def uvit_growing_head_dim_spec(depth: int = 4, **overrides: Any) -> ModelSpec:
    """Small U-ViT with 4 heads at every width: the head dim n / 4 grows with n."""
    return SMALL.spec(specs.GROWING_HEAD_DIM, depth, overrides)
