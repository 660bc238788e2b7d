"""PixArt-α: a text-to-image DiT with adaLN-single and cross-attention, in one file.

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
token attends. Submodule names are the reference's.
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
class PixArtConfig:
    """Hyperparameters; the defaults are PixArt-XL/2 at 256 px (32 × 32 × 4 latent, T5-XXL).

    Exactly one of ``head_dim`` / ``num_heads`` is set. ``caption_channels`` is the text
    encoder's width (4096 for T5-XXL): a finite dim, so ``y_embedder.y_proj.fc1`` is
    input-like.
    """

    input_size: int = 32  # latent side H = W
    patch_size: int = 2
    in_channels: int = 4
    hidden_size: int = 1152  # the width n
    depth: int = 28
    head_dim: int | None = 72
    num_heads: int | None = None
    mlp_ratio: float = 4.0
    caption_channels: int = 4096
    caption_length: int = 120  # model_max_length: rows of the null caption
    caption_dropout_prob: float = 0.0  # PixArt trains with 0.1; 0 keeps the forward deterministic
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


def pixart_xl_2_config(**overrides: Any) -> PixArtConfig:
    """PixArt-XL/2: depth 28, width 1152, 16 heads of 72, patch 2, T5-XXL captions."""
    return PixArtConfig(**{"hidden_size": 1152, "depth": 28, "head_dim": 72, **overrides})


# --------------------------------------------------------------------------- embeddings

def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features [cos, sin] of (B,) float timesteps → (B, dim), as in DiT."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period)
                      * torch.arange(half, dtype=torch.float32, device=t.device) / half)  # (half,)
    args = t[:, None].float() * freqs[None]  # (B, half)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # (B, 2·half)
    return F.pad(emb, (0, dim % 2))  # (B, dim)


def sincos_pos_embed_2d(dim: int, grid_size: int, device: torch.device | None = None,
                        ) -> torch.Tensor:
    """Fixed 2-D sin-cos table (grid², dim): first half encodes the column, second the row.

    PixArt's ``lewei_scale`` / ``base_size`` rescale the grid for other resolutions; at the
    training resolution (this file's case) the grid is plain ``arange``.
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


class Mlp(nn.Module):
    """in → hidden → out with tanh-approximated GELU (timm Mlp layout)."""

    def __init__(self, in_features: int, hidden_features: int, out_features: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(hidden_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class TimestepEmbedder(nn.Module):
    """256 sinusoidal frequencies → Linear → SiLU → Linear."""

    def __init__(self, hidden_size: int, frequency_size: int = 256) -> None:
        super().__init__()
        self.frequency_size = frequency_size
        self.mlp = nn.Sequential(nn.Linear(frequency_size, hidden_size), nn.SiLU(),
                                 nn.Linear(hidden_size, hidden_size))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(timestep_embedding(t, self.frequency_size))  # (B,) → (B, n)


class CaptionEmbedder(nn.Module):
    """Text-encoder tokens (B, L, C_text) → (B, L, n); dropout swaps in a null caption."""

    def __init__(self, cfg: PixArtConfig) -> None:
        super().__init__()
        self.dropout_prob = cfg.caption_dropout_prob
        self.y_proj = Mlp(cfg.caption_channels, cfg.hidden_size, cfg.hidden_size)
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


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection (bias on)."""

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
        n = cfg.hidden_size
        self.norm1 = nn.LayerNorm(n, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(n, cfg.n_heads, cfg.d_head)
        self.cross_attn = MultiHeadCrossAttention(n, cfg.n_heads, cfg.d_head)
        self.norm2 = nn.LayerNorm(n, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(n, int(n * cfg.mlp_ratio), n)
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


class T2IFinalLayer(nn.Module):
    """LayerNorm, shift/scale = its (2, n) table + the timestep embedding, readout."""

    def __init__(self, hidden_size: int, patch_size: int, out_channels: int) -> None:
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden_size, patch_size * patch_size * out_channels)
        self.scale_shift_table = nn.Parameter(torch.randn(2, hidden_size) / hidden_size ** 0.5)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        shift, scale = (self.scale_shift_table[None] + t[:, None]).chunk(2, dim=1)  # 2 × (B, 1, n)
        return self.linear(t2i_modulate(self.norm_final(x), shift, scale))  # (B, T, p²·C_out)


# --------------------------------------------------------------------------- model

class PixArt(nn.Module):
    """Text-conditional PixArt-α: ``forward(x, t, caption)`` predicts noise (and variance)."""

    def __init__(self, cfg: PixArtConfig) -> None:
        super().__init__()
        self.cfg = cfg
        n, g = cfg.hidden_size, cfg.grid_size
        self.x_embedder = PatchEmbed(cfg.patch_size, cfg.in_channels, n)
        self.t_embedder = TimestepEmbedder(n)
        self.t_block = nn.Sequential(nn.SiLU(), nn.Linear(n, 6 * n))
        self.y_embedder = CaptionEmbedder(cfg)
        # A Parameter (not a buffer) so the reference checkpoints load; frozen: never trained.
        self.pos_embed = nn.Parameter(torch.zeros(1, g * g, n), requires_grad=False)
        self.blocks = nn.ModuleList(PixArtBlock(cfg) for _ in range(cfg.depth))
        self.final_layer = T2IFinalLayer(n, cfg.patch_size, cfg.out_channels)
        self.initialize_weights()

    @torch.no_grad()
    def initialize_weights(self) -> None:
        """PixArt's ``initialize_weights``; the scale_shift_tables keep their N(0, 1/n) init."""
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

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, p²·C) → (B, C, H, W), inverse of the patch embedding's token order."""
        p, g, c = self.cfg.patch_size, self.cfg.grid_size, self.cfg.out_channels
        x = x.reshape(x.shape[0], g, g, p, p, c)  # (B, h, w, p, q, C)
        x = torch.einsum("bhwpqc->bchpwq", x)  # (B, C, h, p, w, q)
        return x.reshape(x.shape[0], c, g * p, g * p)  # (B, C, H, W)

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


# --------------------------------------------------------------------------- specs

WIDTHS = (64, 128, 256)
BATCH = 2


def _spec(name: str, meta: dict[str, Any], depth: int, overrides: dict[str, Any]) -> ModelSpec:
    small = {"input_size": 8, "patch_size": 2, "in_channels": 4, "caption_channels": 32,
             "caption_length": 8, "depth": depth}

    def config(n: int) -> PixArtConfig:
        return PixArtConfig(**{**small, **overrides, "hidden_size": n})

    def factory(n: int) -> PixArt:
        return PixArt(config(n))

    def inputs(n: int) -> tuple[torch.Tensor, ...]:
        cfg = config(n)
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(BATCH, cfg.in_channels, cfg.input_size, cfg.input_size, generator=gen)
        t = torch.rand(BATCH, generator=gen) * 1000  # (B,) float timesteps
        caption = torch.randn(BATCH, cfg.caption_length, cfg.caption_channels, generator=gen)
        return x, t, caption

    return ModelSpec(factory, inputs, WIDTHS, base_width=64, name=name, meta=meta)


def pixart_spec(depth: int = 2, **overrides: Any) -> ModelSpec:
    """Small PixArt-α (8 × 8 × 4 latent, 8 caption tokens of 32), head dim fixed at 16."""
    overrides = {"head_dim": 16, "num_heads": None, **overrides}
    return _spec("pixart", {"head_dim": "fixed"}, depth, overrides)


def pixart_growing_head_dim_spec(depth: int = 2, **overrides: Any) -> ModelSpec:
    """Small PixArt-α with 4 heads at every width: the head dim n / 4 grows with n."""
    overrides = {"head_dim": None, "num_heads": 4, **overrides}
    return _spec("pixart-growing-head-dim", {"head_dim": "grows"}, depth, overrides)
