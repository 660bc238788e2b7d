"""What the reference models have in common, each piece written once.

DiT, U-ViT, PixArt-α and MMDiT come from one ViT lineage: they split the width into heads
under the same two schemes, cut the latent into patches with the same strided conv, embed
timesteps with the same ADM sinusoid and (all but U-ViT) add the same fixed 2-D sin-cos
position table and fold the readout back into a latent the same way. That common logic lives
here, so a fix reaches every model at once. What makes a model itself (adaLN-Zero, long
skips, adaLN-single, joint attention) stays in its own file, which uses these pieces and still
reads top to bottom like the paper's figure.

Every piece keeps the submodule names of the reference implementations (``proj``, ``qkv``,
``fc1``, ``mlp.0``, ``x_embedder``, ...), so the models' state-dict keys are the references'.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# --------------------------------------------------------------------------- config


def split_heads(hidden_size: int, head_dim: int | None, num_heads: int | None) -> tuple[int, int]:
    """(heads, head_dim) from a width and exactly one of head_dim / num_heads.

    The two schemes are what μP tells apart: a fixed head dim grows the width by adding heads,
    a fixed head count grows the head dim (then attention needs 1/d, docs/theory.md §4).
    """
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


def check_patch_grid(side_name: str, side: int, patch_size: int) -> None:
    """Reject a latent side that the p × p patches do not tile (``side_name`` is the field's)."""
    if side % patch_size:
        raise ValueError(f"{side_name} {side} is not divisible by patch_size {patch_size}.")


class HeadSplit:
    """``n_heads`` and ``d_head`` of a config with ``hidden_size``, ``head_dim``, ``num_heads``.

    A mixin rather than a field-holding base, so that U-ViT's config, whose fields have the
    reference's own names, can have it too.
    """

    hidden_size: int
    head_dim: int | None
    num_heads: int | None

    @property
    def n_heads(self) -> int:
        return split_heads(self.hidden_size, self.head_dim, self.num_heads)[0]

    @property
    def d_head(self) -> int:
        return split_heads(self.hidden_size, self.head_dim, self.num_heads)[1]


@dataclass
class LatentConfig(HeadSplit):
    """The fields DiT, PixArt-α and MMDiT configs start with, and what follows from them.

    The defaults are the XL/2 size DiT introduced and PixArt-α kept (256 px: a 32 × 32 × 4
    latent); a config for another size redeclares the fields it changes, which keeps their
    place. Exactly one of ``head_dim`` / ``num_heads`` is set: a fixed head dim means the
    width grows by adding heads (the seed paper's μP scheme), a fixed head count means the
    head dim grows with the width (then μP needs a 1/d attention scale, docs/theory.md §4).
    """

    input_size: int = 32  # latent side H = W
    patch_size: int = 2
    in_channels: int = 4
    hidden_size: int = 1152  # the width n
    depth: int = 28
    head_dim: int | None = 72
    num_heads: int | None = None
    mlp_ratio: float = 4.0

    # Not a field here: a model that also predicts the variance (DiT, PixArt-α) declares
    # ``learn_sigma`` as its config's last field, and then C_out = 2C.
    learn_sigma = False

    def __post_init__(self) -> None:
        split_heads(self.hidden_size, self.head_dim, self.num_heads)  # validates
        check_patch_grid("input_size", self.input_size, self.patch_size)
        if self.hidden_size % 4:
            raise ValueError(f"hidden_size {self.hidden_size} must be divisible by 4 for the "
                             "2-D sin-cos position embedding.")

    @property
    def grid_size(self) -> int:
        return self.input_size // self.patch_size

    @property
    def out_channels(self) -> int:
        return 2 * self.in_channels if self.learn_sigma else self.in_channels


# --------------------------------------------------------------------------- embeddings


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features [cos, sin] of (B,) float timesteps → (B, dim), as in ADM.

    DiT, U-ViT and PixArt use it as is; for MMDiT it is diffusers'
    ``Timesteps(flip_sin_to_cos=True, downscale_freq_shift=0)``.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period)
                      * torch.arange(half, dtype=torch.float32, device=t.device) / half)  # (half,)
    args = t[:, None].float() * freqs[None]  # (B, half)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # (B, 2·half)
    return F.pad(emb, (0, dim % 2))  # (B, dim)


def sincos_pos_embed_2d(dim: int, grid_size: int, device: torch.device | None = None,
                        ) -> torch.Tensor:
    """Fixed 2-D sin-cos position table (grid², dim), MAE / DiT layout.

    The first half of the channels encodes the column, the second half the row; tokens are
    in row-major order. PixArt's ``lewei_scale`` and SD3's centre crop reduce to this table
    at the training resolution. Computed with torch ops so it also builds on the meta device.
    """
    coords = torch.arange(grid_size, dtype=torch.float64, device=device)
    rows, cols = torch.meshgrid(coords, coords, indexing="ij")  # (g, g) each
    return torch.cat([_sincos_1d(dim // 2, cols.reshape(-1)),
                      _sincos_1d(dim // 2, rows.reshape(-1))], dim=1).float()  # (g², dim)


def _sincos_1d(dim: int, pos: torch.Tensor) -> torch.Tensor:
    """One axis of the table: [sin, cos] of positions (M,) at dim/2 frequencies → (M, dim)."""
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
    """256 sinusoidal frequencies → Linear → SiLU → Linear (the first layer is input-like).

    DiT's and PixArt's ``t_embedder``; the ``mlp`` Sequential keeps their keys ``mlp.0`` and
    ``mlp.2``.
    """

    def __init__(self, hidden_size: int, frequency_size: int = 256) -> None:
        super().__init__()
        self.frequency_size = frequency_size
        self.mlp = nn.Sequential(nn.Linear(frequency_size, hidden_size), nn.SiLU(),
                                 nn.Linear(hidden_size, hidden_size))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(timestep_embedding(t, self.frequency_size))  # (B,) → (B, n)


# --------------------------------------------------------------------------- blocks


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: per-sample affine of normalised tokens; shift/scale (B, n) broadcast over T."""
    return x * (1 + scale[:, None]) + shift[:, None]  # (B, T, n)


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection (timm layout).

    The qkv bias is on as in DiT and PixArt-α; U-ViT's ImageNet configs turn it off.
    ``scale`` is an attribute rather than a constant so that a converter (or mup) can set the
    μP 1/d; None keeps SDPA's 1/√head_dim.
    """

    def __init__(self, hidden_size: int, num_heads: int, head_dim: int,
                 qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, head_dim
        self.scale: float | None = None
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size, bias=qkv_bias)
        self.proj = nn.Linear(hidden_size, hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, n = x.shape
        qkv = self.qkv(x).reshape(B, T, 3, self.num_heads, self.head_dim)  # (B, T, 3, h, d)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (B, h, T, d) each
        out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)  # (B, h, T, d)
        return self.proj(out.transpose(1, 2).reshape(B, T, n))  # (B, T, n)


class Mlp(nn.Module):
    """in → hidden → out (default: in) with GELU (timm Mlp layout: ``fc1``, ``act``, ``fc2``).

    ``approximate`` has no default because the models differ: DiT, PixArt and MMDiT use the
    tanh approximation, U-ViT the exact GELU.
    """

    def __init__(self, in_features: int, hidden_features: int, out_features: int | None = None,
                 *, approximate: str) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU(approximate=approximate)
        self.fc2 = nn.Linear(hidden_features, out_features or in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))  # (..., in) → (..., out)


class NormReadout(nn.Module):
    """LayerNorm (no affine) then the readout n → p²·C_out: the head of DiT and PixArt-α.

    Their final layers differ only in where its shift and scale come from (an adaLN MLP, a
    learned table); each adds that part after this one.
    """

    def __init__(self, hidden_size: int, patch_size: int, out_channels: int) -> None:
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden_size, patch_size * patch_size * out_channels)


# --------------------------------------------------------------------------- model frame


def unpatchify(x: torch.Tensor, patch_size: int, grid_size: int, channels: int) -> torch.Tensor:
    """(B, T, p²·C) → (B, C, H, W), inverse of :class:`PatchEmbed`'s row-major token order."""
    p, g, c = patch_size, grid_size, channels
    x = x.reshape(x.shape[0], g, g, p, p, c)  # (B, h, w, p, q, C)
    x = torch.einsum("bhwpqc->bchpwq", x)  # (B, C, h, p, w, q)
    return x.reshape(x.shape[0], c, g * p, g * p)  # (B, C, H, W)


class LatentTransformer(nn.Module):
    """The frame DiT, PixArt-α and MMDiT share around their blocks: latent in, latent out.

    It owns both ends: ``x_embedder`` cuts the latent into tokens, to which the model adds
    ``pos_embed``, the fixed 2-D sin-cos table (a frozen Parameter rather than a buffer, so
    the reference checkpoints load); :meth:`unpatchify` folds the readout's tokens back into
    a latent. A subclass adds its conditioning, blocks and readout in its paper's order.
    """

    def __init__(self, cfg: LatentConfig) -> None:
        super().__init__()
        self.cfg = cfg
        n, g = cfg.hidden_size, cfg.grid_size
        self.x_embedder = PatchEmbed(cfg.patch_size, cfg.in_channels, n)
        self.pos_embed = nn.Parameter(torch.zeros(1, g * g, n), requires_grad=False)  # (1, T, n)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, p²·C_out) → (B, C_out, H, W), inverse of the patch embedding's token order."""
        return unpatchify(x, self.cfg.patch_size, self.cfg.grid_size, self.cfg.out_channels)

    def fill_pos_embed_(self) -> None:
        """Initialise the position embedding: copy in the fixed 2-D sin-cos table."""
        table = sincos_pos_embed_2d(self.cfg.hidden_size, self.cfg.grid_size,
                                    device=self.pos_embed.device)  # (T, n)
        self.pos_embed.copy_(table[None])  # (1, T, n)

    def init_like_dit_(self) -> None:
        """DiT's first three init groups, which PixArt-α's init repeats statement for statement."""
        # Every Linear: xavier-uniform weight, zero bias (the model overrides some groups after).
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        # Position embedding: the fixed 2-D sin-cos table.
        self.fill_pos_embed_()
        # Patch embedding: xavier-uniform as if the conv were a Linear on its (out, -1) view.
        w = self.x_embedder.proj.weight  # (n, C, p, p)
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))  # as (n, C·p²)
        nn.init.zeros_(self.x_embedder.proj.bias)
