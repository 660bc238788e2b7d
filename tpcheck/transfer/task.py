"""What a μTransfer study needs from a model and its data: the ``Task`` protocol.

A study trains the same model family at several widths, many times over. It needs a way to
build the model at any width (``build``), a ``ModelSpec`` for ``tpcheck.convert`` to trace
(``spec``), training batches that depend only on the seed and the step (``batch``), the loss
(``loss``), and a held-out loss that is the same measurement for every run (``evaluate``):
fixed examples, fixed noise, fixed timesteps, so two runs differ only by their weights.

The built-in task is :class:`tpcheck.transfer.digits.DigitsTask`. Your own task is any object
with these methods; with ``workers > 1`` it must also pickle (a module-level class whose
attributes are tensors, numbers or strings does), because each worker process receives a copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch

from tpcheck.spec import ModelSpec


@runtime_checkable
class Task(Protocol):
    """A model family plus its data; see the module docstring for why each method exists."""

    name: str

    def build(self, width: int) -> torch.nn.Module:
        """The model at hidden size ``width`` in the model's own (standard) init."""
        ...

    def spec(self, widths: Sequence[int]) -> ModelSpec:
        """The ModelSpec ``tpcheck.convert`` traces to make the μP plan (≥ 3 widths)."""
        ...

    def batch(self, generator: torch.Generator, size: int) -> Any:
        """One training batch drawn from ``generator`` (seeded per run)."""
        ...

    def loss(self, model: torch.nn.Module, batch: Any) -> torch.Tensor:
        """The scalar training loss of ``model`` on ``batch``."""
        ...

    def evaluate(self, model: torch.nn.Module) -> float:
        """The held-out loss: a fixed split with fixed noise, identical for every run."""
        ...
