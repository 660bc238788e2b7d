"""What the small built-in targets share: widths, batch, head schemes and example inputs.

Every built-in target is traced at the same widths from the same base, on a batch of two,
with a fresh fixed-seed generator per ``inputs(n)`` call so the example inputs are the same
tensors at every width (only the model changes with n). Each reference model comes in the
two head schemes μP tells apart; a :class:`SmallTarget` holds what is the model's own (its
config, its class, its small sizes and its inputs) and builds the spec of either scheme.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import torch
from torch import nn

from tpcheck.spec import ModelSpec

WIDTHS = (64, 128, 256)
BASE_WIDTH = 64
BATCH = 2

C = TypeVar("C")


@dataclass(frozen=True)
class HeadScheme:
    """How the heads follow the width; ``suffix`` and ``meta`` name the scheme in the spec."""

    suffix: str  # appended to the family's name
    meta: str  # the spec's meta["head_dim"]
    head_dim: int | None
    num_heads: int | None


#: The width grows by adding heads of 16 (heads = n / 16), the seed paper's μP scheme.
FIXED_HEAD_DIM = HeadScheme("", "fixed", head_dim=16, num_heads=None)
#: Four heads at every width: the head dim n / 4 grows with n (μP then needs 1/d attention).
GROWING_HEAD_DIM = HeadScheme("-growing-head-dim", "grows", head_dim=None, num_heads=4)


@dataclass(frozen=True)
class SmallTarget(Generic[C]):
    """A reference model at the small size the built-in targets trace.

    ``fields`` are the config's small sizes (not the width, depth or heads: the spec sets
    those); ``inputs`` gets the config at width n and a generator seeded with 0.
    """

    family: str  # the spec's name, before the scheme's suffix
    config: Callable[..., C]
    model: Callable[[C], nn.Module]
    inputs: Callable[[C, torch.Generator], tuple[torch.Tensor, ...]]
    fields: dict[str, Any]

    def spec(self, scheme: HeadScheme, depth: int, overrides: dict[str, Any]) -> ModelSpec:
        """The spec at :data:`WIDTHS`; ``overrides`` (config fields) win over everything."""
        heads = {"head_dim": scheme.head_dim, "num_heads": scheme.num_heads}
        fields = {**self.fields, "depth": depth, **heads, **overrides}

        def config_at(n: int) -> C:
            return self.config(**{**fields, "hidden_size": n})

        def factory(n: int) -> nn.Module:
            return self.model(config_at(n))

        def example_inputs(n: int) -> tuple[torch.Tensor, ...]:
            return self.inputs(config_at(n), torch.Generator().manual_seed(0))

        return ModelSpec(factory, example_inputs, WIDTHS, base_width=BASE_WIDTH,
                         name=self.family + scheme.suffix, meta={"head_dim": scheme.meta})


def latent(gen: torch.Generator, channels: int, side: int) -> torch.Tensor:
    """A standard-normal latent batch (B, C, H, W) with H = W = ``side``."""
    return torch.randn(BATCH, channels, side, side, generator=gen)  # (B, C, H, W)


def float_timesteps(gen: torch.Generator) -> torch.Tensor:
    """Uniform float timesteps in [0, 1000), one per sample: (B,)."""
    return torch.rand(BATCH, generator=gen) * 1000  # (B,)


class ClassConditional(Protocol):
    """The config fields a class-conditional latent model's inputs depend on."""

    in_channels: int
    patch_size: int
    num_classes: int

    @property
    def grid_size(self) -> int: ...


def class_conditional_inputs(cfg: ClassConditional, gen: torch.Generator,
                             ) -> tuple[torch.Tensor, ...]:
    """``(x, t, y)`` for DiT and U-ViT: a latent, float timesteps and class labels."""
    x = latent(gen, cfg.in_channels, cfg.grid_size * cfg.patch_size)  # (B, C, H, W)
    t = float_timesteps(gen)  # (B,) float
    y = torch.randint(0, cfg.num_classes, (BATCH,), generator=gen)  # (B,) long labels
    return x, t, y
