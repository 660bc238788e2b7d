"""DiT: a class-conditional diffusion transformer with adaLN-Zero blocks, in one file.

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
out what μP would change (theory.md §2, §7). Submodule names are the reference's, so a
DiT checkpoint's state-dict keys load into this class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tpcheck.spec import ModelSpec


@dataclass
class DiTConfig:
    """Hyperparameters; the defaults are DiT-XL/2 at 256 px (a 32 × 32 × 4 latent).

    Exactly one of ``head_dim`` / ``num_heads`` is set: a fixed head dim means the width
    grows by adding heads (the seed paper's μP scheme), a fixed head count means the head
    dim grows with the width (then μP needs a 1/d attention scale, theory.md §4).
    """

    input_size: int = 32  # latent side H = W
    patch_size: int = 2
    in_channels: int = 4
    hidden_size: int = 1152  # the width n
    depth: int = 28
    head_dim: int | None = 72
    num_heads: int | None = None
    mlp_ratio: float = 4.0
    num_classes: int = 1000
    class_dropout_prob: float = 0.0  # DiT trains with 0.1; 0 keeps the forward deterministic
    learn_sigma: bool = True  # predict the variance too: C_out = 2C

    def __post_init__(self) -> None:
        split_heads(self.hidden_size, self.head_dim, self.num_heads)  # validates
        if self.input_size % self.patch_size:
            raise ValueError(f"input_size {self.input_size} is not divisible by patch_size "
                             f"{self.patch_size}.")
        if self.hidden_size % 4:
            raise ValueError(f"hidden_size {self.hidden_size} must be divisible by 4 for the "
                             "2-D sin-cos position embedding.")

    @property
    def n_heads(self) -> int:
        return split_heads(self.hidden_size, self.head_dim, self.num_heads)[0]

    @property
    def d_head(self) -> int:
        return split_heads(self.hidden_size, self.head_dim, self.num_heads)[1]

    @property
    def out_channels(self) -> int:
        return 2 * self.in_channels if self.learn_sigma else self.in_channels

    @property
    def grid_size(self) -> int:
        return self.input_size // self.patch_size


def split_heads(hidden_size: int, head_dim: int | None, num_heads: int | None) -> tuple[int, int]:
    """(heads, head_dim) from a width and exactly one of head_dim / num_heads."""
    if (head_dim is None) == (num_heads is None):
        raise ValueError("set exactly one of head_dim (width grows by adding heads) and "
                         f"num_heads (head dim grows with width); got head_dim={head_dim}, "
                         f"num_heads={num_heads}.")
    fixed = head_dim if head_dim is not None else num_heads
    if fixed <= 0 or hidden_size % fixed:
        what = "head_dim" if head_dim is not None else "num_heads"
        raise ValueError(f"hidden_size {hidden_size} is not divisible by {what}={fixed}; "
                         "choose widths that are multiples of it.")
    other = hidden_size // fixed
    return (other, fixed) if head_dim is not None else (fixed, other)


def dit_xl_2_config(**overrides: Any) -> DiTConfig:
    """DiT-XL/2 (Table 1 of the paper): depth 28, width 1152, 16 heads of 72, patch 2."""
    return DiTConfig(**{"hidden_size": 1152, "depth": 28, "head_dim": 72, "patch_size": 2,
                        **overrides})


DIT_XL_2 = dit_xl_2_config()


# --------------------------------------------------------------------------- embeddings

def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features [cos, sin] of (B,) float timesteps → (B, dim), as in DiT / ADM."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period)
                      * torch.arange(half, dtype=torch.float32, device=t.device) / half)  # (half,)
    args = t[:, None].float() * freqs[None]  # (B, half)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # (B, 2·half)
    return F.pad(emb, (0, dim % 2))  # (B, dim)


def sincos_pos_embed_2d(dim: int, grid_size: int, device: torch.device | None = None,
                        ) -> torch.Tensor:
    """Fixed 2-D sin-cos position table (grid², dim), MAE / DiT layout.

    The first half of the channels encodes the column, the second half the row; tokens
    are in row-major order. Computed with torch ops so it also builds on the meta device.
    """
    coords = torch.arange(grid_size, dtype=torch.float64, device=device)
    rows, cols = torch.meshgrid(coords, coords, indexing="ij")  # (g, g) each
    return torch.cat([_sincos_1d(dim // 2, cols.reshape(-1)),
                      _sincos_1d(dim // 2, rows.reshape(-1))], dim=1).float()  # (g², dim)


def _sincos_1d(dim: int, pos: torch.Tensor) -> torch.Tensor:
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64, device=pos.device)
                            / (dim / 2.0))  # (dim/2,)
    out = pos[:, None] * omega[None]  # (M, dim/2)
    return torch.cat([torch.sin(out), torch.cos(out)], dim=1)  # (M, dim)


class PatchEmbed(nn.Module):
    """Image → tokens: a p × p conv with stride p, flattened over the grid."""

    def __init__(self, patch_size: int, in_channels: int, hidden_size: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, hidden_size, patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, C, H, W) → (B, T, n)


class TimestepEmbedder(nn.Module):
    """256 sinusoidal frequencies → Linear → SiLU → Linear (the first layer is input-like)."""

    def __init__(self, hidden_size: int, frequency_size: int = 256) -> None:
        super().__init__()
        self.frequency_size = frequency_size
        self.mlp = nn.Sequential(nn.Linear(frequency_size, hidden_size), nn.SiLU(),
                                 nn.Linear(hidden_size, hidden_size))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(timestep_embedding(t, self.frequency_size))  # (B,) → (B, n)


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

def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: per-sample affine of normalised tokens; shift/scale (B, n) broadcast over T."""
    return x * (1 + scale[:, None]) + shift[:, None]


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection (timm layout, qkv bias on)."""

    def __init__(self, hidden_size: int, num_heads: int, head_dim: int) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, head_dim
        self.scale: float | None = None  # None: SDPA's 1/√head_dim (a converter may set 1/d)
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.proj = nn.Linear(hidden_size, hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, n = x.shape
        qkv = self.qkv(x).reshape(B, T, 3, self.num_heads, self.head_dim)  # (B, T, 3, h, d)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (B, h, T, d) each
        out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)  # (B, h, T, d)
        return self.proj(out.transpose(1, 2).reshape(B, T, n))  # (B, T, n)


class Mlp(nn.Module):
    """n → 4n → n with tanh-approximated GELU, as DiT."""

    def __init__(self, hidden_size: int, mlp_hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(hidden_size, mlp_hidden)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(mlp_hidden, hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class DiTBlock(nn.Module):
    """adaLN-Zero block: c → (shift, scale, gate) × {attention, MLP}; gates start at zero."""

    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        n = cfg.hidden_size
        self.norm1 = nn.LayerNorm(n, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(n, cfg.n_heads, cfg.d_head)
        self.norm2 = nn.LayerNorm(n, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(n, int(n * cfg.mlp_ratio))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(n, 6 * n))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = (
            self.adaLN_modulation(c).chunk(6, dim=1))  # 6 × (B, n)
        x = x + gate_msa[:, None] * self.attn(modulate(self.norm1(x), shift_msa, scale_msa))
        x = x + gate_mlp[:, None] * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))
        return x  # (B, T, n)


class FinalLayer(nn.Module):
    """adaLN (shift, scale) then the readout n → p²·C_out."""

    def __init__(self, hidden_size: int, patch_size: int, out_channels: int) -> None:
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden_size, patch_size * patch_size * out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)  # 2 × (B, n)
        return self.linear(modulate(self.norm_final(x), shift, scale))  # (B, T, p²·C_out)


# --------------------------------------------------------------------------- model

class DiT(nn.Module):
    """Class-conditional DiT: ``forward(x, t, y)`` predicts noise (and variance) for x."""

    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        n, g = cfg.hidden_size, cfg.grid_size
        self.x_embedder = PatchEmbed(cfg.patch_size, cfg.in_channels, n)
        self.t_embedder = TimestepEmbedder(n)
        self.y_embedder = LabelEmbedder(cfg.num_classes, n, cfg.class_dropout_prob)
        # A Parameter (not a buffer) so the reference checkpoints load; frozen: never trained.
        self.pos_embed = nn.Parameter(torch.zeros(1, g * g, n), requires_grad=False)
        self.blocks = nn.ModuleList(DiTBlock(cfg) for _ in range(cfg.depth))
        self.final_layer = FinalLayer(n, cfg.patch_size, cfg.out_channels)
        self.initialize_weights()

    @torch.no_grad()
    def initialize_weights(self) -> None:
        """DiT's ``initialize_weights``: every group below is one statement of the reference."""
        cfg = self.cfg
        # Every Linear: xavier-uniform weight, zero bias (overridden for some groups below).
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        # Position embedding: the fixed 2-D sin-cos table.
        self.pos_embed.copy_(sincos_pos_embed_2d(cfg.hidden_size, cfg.grid_size,
                                                 device=self.pos_embed.device)[None])
        # Patch embedding: xavier-uniform as if the conv were a Linear on its (out, -1) view.
        w = self.x_embedder.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.x_embedder.proj.bias)
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

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, p²·C) → (B, C, H, W), inverse of the patch embedding's token order."""
        p, g, c = self.cfg.patch_size, self.cfg.grid_size, self.cfg.out_channels
        x = x.reshape(x.shape[0], g, g, p, p, c)  # (B, h, w, p, q, C)
        x = torch.einsum("bhwpqc->bchpwq", x)  # (B, C, h, p, w, q)
        return x.reshape(x.shape[0], c, g * p, g * p)  # (B, C, H, W)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) latent, t (B,) float timesteps, y (B,) long class labels."""
        x = self.x_embedder(x) + self.pos_embed  # (B, T, n)
        c = self.t_embedder(t) + self.y_embedder(y)  # (B, n)
        for block in self.blocks:
            x = block(x, c)  # (B, T, n)
        x = self.final_layer(x, c)  # (B, T, p²·C_out)
        return self.unpatchify(x)  # (B, C_out, H, W)


# --------------------------------------------------------------------------- specs

WIDTHS = (64, 128, 256)
BATCH = 2


def _spec(name: str, meta: dict[str, Any], depth: int, overrides: dict[str, Any]) -> ModelSpec:
    small = {"input_size": 8, "patch_size": 2, "in_channels": 4, "num_classes": 10, "depth": depth}

    def config(n: int) -> DiTConfig:
        return DiTConfig(**{**small, **overrides, "hidden_size": n})

    def factory(n: int) -> DiT:
        return DiT(config(n))

    def inputs(n: int) -> tuple[torch.Tensor, ...]:
        cfg = config(n)
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(BATCH, cfg.in_channels, cfg.input_size, cfg.input_size, generator=gen)
        t = torch.rand(BATCH, generator=gen) * 1000  # (B,) float timesteps
        y = torch.randint(0, cfg.num_classes, (BATCH,), generator=gen)  # (B,) long labels
        return x, t, y

    return ModelSpec(factory, inputs, WIDTHS, base_width=64, name=name, meta=meta)


def dit_spec(depth: int = 2, **overrides: Any) -> ModelSpec:
    """Small DiT on an 8 × 8 × 4 latent, head dim fixed at 16 (heads = n / 16)."""
    overrides = {"head_dim": 16, "num_heads": None, **overrides}
    return _spec("dit", {"head_dim": "fixed"}, depth, overrides)


def dit_growing_head_dim_spec(depth: int = 2, **overrides: Any) -> ModelSpec:
    """Small DiT with 4 heads at every width: the head dim n / 4 grows with n."""
    overrides = {"head_dim": None, "num_heads": 4, **overrides}
    return _spec("dit-growing-head-dim", {"head_dim": "grows"}, depth, overrides)
