"""`ModelSpec`: what tpcheck needs to know about a model to trace it at several widths.

A spec is a recipe rather than a model: tpcheck builds a fresh model at every width it
traces, so the user's own model object is never touched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from tpcheck.errors import TpcheckError
from tpcheck.sources import user_frame

Factory = Callable[[int], torch.nn.Module]
InputsFn = Callable[[int], "tuple[Any, ...] | dict[str, Any]"]
OptimizerFn = Callable[[torch.nn.Module],
                       "torch.optim.Optimizer | Sequence[torch.optim.Optimizer]"]


def default_optimizer(model: torch.nn.Module) -> torch.optim.Optimizer:
    """What most training scripts do: AdamW with one global learning rate."""
    return torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0)


@dataclass(frozen=True)
class ModelSpec:
    """How to build, feed and optimise a model at any width ``n`` (the contract in docs/api.md).

    ``factory(n)`` returns the model at hidden size ``n``; ``inputs(n)`` returns example
    forward inputs (a tuple of positional arguments or a dict of keyword arguments, CPU
    tensors); ``widths`` are the widths to trace (at least three, distinct);
    ``base_width`` is ``n_base`` for width multipliers ``m = n / n_base`` (default: the
    smallest traced width); ``optimizer(model)`` builds the optimizer whose param groups
    say each tensor's learning rate (default: one global AdamW LR).
    """

    factory: Factory
    inputs: InputsFn
    widths: Sequence[int]
    base_width: int | None = None
    optimizer: OptimizerFn | None = None
    name: str | None = None
    #: Free-form facts about the model (e.g. ``{"head_dim": "fixed"}``); shown in reports.
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        widths = tuple(int(w) for w in self.widths)
        object.__setattr__(self, "widths", widths)
        where = f"ModelSpec {self.label!r}"
        if not callable(self.factory):
            raise TpcheckError("ModelSpec.factory is not callable.", where=where,
                               fix="pass a function width -> torch.nn.Module")
        if not callable(self.inputs):
            raise TpcheckError("ModelSpec.inputs is not callable.", where=where,
                               fix="pass a function width -> tuple or dict of example inputs")
        if len(set(widths)) < 3:
            raise TpcheckError(
                f"ModelSpec.widths needs at least 3 distinct widths to fit and verify how each "
                f"dimension scales; got {list(widths)}.",
                where=where,
                fix="trace e.g. widths=(64, 128, 256) (three widths, each a valid hidden size)",
            )
        if any(w <= 0 for w in widths):
            raise TpcheckError(f"ModelSpec.widths must be positive; got {list(widths)}.",
                               where=where)
        if self.base_width is not None and self.base_width <= 0:
            raise TpcheckError(f"ModelSpec.base_width must be positive; got {self.base_width}.",
                               where=where)

    @property
    def label(self) -> str:
        """A printable name: the spec's name, else the factory's qualified name."""
        if self.name:
            return self.name
        return getattr(self.factory, "__qualname__", repr(self.factory))

    @property
    def base(self) -> int:
        """``n_base``: the width at which every width multiplier is 1."""
        return self.base_width if self.base_width is not None else min(self.widths)

    def with_widths(self, widths: Sequence[int]) -> ModelSpec:
        """The same spec traced at other widths (from the CLI's ``--widths``)."""
        return replace(self, widths=tuple(widths))

    def build_optimizers(self, model: torch.nn.Module, width: int | None = None
                         ) -> tuple[torch.optim.Optimizer, ...]:
        """The spec's optimizers for ``model`` (default: one global-LR AdamW).

        ``optimizer(model)`` returns one optimizer, or several that together hold the model's
        parameters (Muon for the hidden matrices, AdamW for the rest). The user's function
        failing, or returning something else, is a TpcheckError naming the width.
        """
        at = f" at width {width}" if width is not None else ""
        try:
            built = (self.optimizer or default_optimizer)(model)
        except Exception as exc:
            line = user_frame(exc)
            raise TpcheckError(f"the spec's optimizer raised {type(exc).__name__}{at}: {exc}",
                               where=f"{self.label}, {line}" if line else self.label,
                               fix="make optimizer(model) build a torch.optim.Optimizer") from exc
        opts = tuple(built) if isinstance(built, (list, tuple)) else (built,)
        bad = [type(o).__name__ for o in opts if not isinstance(o, torch.optim.Optimizer)]
        if bad or not opts:
            raise TpcheckError(f"optimizer(model) returned {', '.join(bad) or 'nothing'}{at}.",
                               where=self.label,
                               fix="return a torch.optim.Optimizer, or a list of them (e.g. "
                                   "[Muon(hidden matrices), AdamW(the rest)])")
        return opts

    def build_optimizer(self, model: torch.nn.Module, width: int | None = None
                        ) -> torch.optim.Optimizer:
        """The spec's only optimizer (a spec with several: use :meth:`build_optimizers`)."""
        opts = self.build_optimizers(model, width)
        if len(opts) != 1:
            raise TpcheckError(f"the spec has {len(opts)} optimizers where one is needed.",
                               where=self.label, fix="use build_optimizers(model)")
        return opts[0]
