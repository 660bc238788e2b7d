"""`ModelSpec`: what tpcheck needs to know about a model, and how a CLI TARGET becomes one.

A spec is a recipe rather than a model: tpcheck builds a fresh model at every width it
traces, so the user's own model object is never touched.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from tpcheck.errors import TpcheckError

Factory = Callable[[int], torch.nn.Module]
InputsFn = Callable[[int], "tuple[Any, ...] | dict[str, Any]"]
OptimizerFn = Callable[[torch.nn.Module], torch.optim.Optimizer]


def default_optimizer(model: torch.nn.Module) -> torch.optim.Optimizer:
    """What most training scripts do: AdamW with one global learning rate."""
    return torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0)


@dataclass(frozen=True)
class ModelSpec:
    """How to build, feed and optimise a model at any width ``n`` (the contract in design.md).

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

    def build_optimizer(self, model: torch.nn.Module, width: int | None = None
                        ) -> torch.optim.Optimizer:
        """The spec's optimizer for ``model``, or the default global-LR AdamW.

        The user's optimizer function failing, or returning something else, is a
        TpcheckError naming the width, not a traceback.
        """
        at = f" at width {width}" if width is not None else ""
        try:
            opt = (self.optimizer or default_optimizer)(model)
        except Exception as exc:
            raise TpcheckError(f"the spec's optimizer raised {type(exc).__name__}{at}: {exc}",
                               where=self.label,
                               fix="make optimizer(model) build a torch.optim.Optimizer") from exc
        if not isinstance(opt, torch.optim.Optimizer):
            raise TpcheckError(f"optimizer(model) returned {type(opt).__name__}{at}.",
                               where=self.label, fix="return a torch.optim.Optimizer")
        return opt


def load_target(target: str) -> ModelSpec:
    """Resolve a CLI TARGET into a ModelSpec.

    TARGET is a built-in model name (``dit``, ``uvit``, ...), ``package.module:attr`` or
    ``path/to/file.py:attr``; ``attr`` is a ModelSpec or a zero-argument callable
    returning one.
    """
    from tpcheck.models import registry

    if ":" not in target:
        if target in registry.BUILTINS:
            return registry.build(target)
        raise TpcheckError(
            f"unknown target {target!r}.",
            fix="use a built-in name (" + ", ".join(sorted(registry.BUILTINS))
            + "), package.module:attr or path/to/file.py:attr",
        )
    location, _, attr = target.rpartition(":")
    if not attr:
        raise TpcheckError(f"target {target!r} names no attribute after ':'.",
                           fix="write TARGET as module:attr, e.g. mypkg.models:dit_spec")
    module = _import_location(location, target)
    if not hasattr(module, attr):
        public = sorted(a for a in vars(module) if not a.startswith("_"))
        raise TpcheckError(
            f"{location!r} has no attribute {attr!r}.",
            where=target,
            fix="name one of: " + ", ".join(public[:20]) + (" ..." if len(public) > 20 else ""),
        )
    obj = getattr(module, attr)
    if isinstance(obj, ModelSpec):
        return obj
    if callable(obj):
        try:
            spec = obj()
        except TpcheckError:
            raise
        except Exception as exc:  # the user's code: report, don't crash
            raise TpcheckError(f"calling {attr}() raised {type(exc).__name__}: {exc}",
                               where=target,
                               fix="make the attribute a zero-argument callable that returns a "
                                   "tpcheck.ModelSpec") from exc
        if isinstance(spec, ModelSpec):
            return spec
        raise TpcheckError(f"{attr}() returned {type(spec).__name__}, not a tpcheck.ModelSpec.",
                           where=target, fix="return tpcheck.ModelSpec(factory, inputs, widths)")
    raise TpcheckError(f"{attr!r} is a {type(obj).__name__}, not a ModelSpec or a callable.",
                       where=target, fix="point TARGET at a tpcheck.ModelSpec")


def _import_location(location: str, target: str) -> Any:
    """Import ``package.module`` or execute ``path/to/file.py`` as a module."""
    if location.endswith(".py") or "/" in location or "\\" in location:
        path = Path(location)
        if not path.is_file():
            raise TpcheckError(f"file {location!r} does not exist.", where=target,
                               fix="give a path to a Python file, relative to the current "
                                   "directory")
        mod_name = f"_tpcheck_target_{abs(hash(str(path.resolve())))}"
        spec = importlib.util.spec_from_file_location(mod_name, path)
        if spec is None or spec.loader is None:
            raise TpcheckError(f"cannot load {location!r} as Python.", where=target)
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(mod_name, None)
            raise TpcheckError(f"executing {location!r} raised {type(exc).__name__}: {exc}",
                               where=target, fix="fix the error in that file") from exc
        return module
    try:
        return importlib.import_module(location)
    except ModuleNotFoundError as exc:
        raise TpcheckError(f"cannot import module {location!r}: {exc}", where=target,
                           fix="install the package or run from the directory that holds it "
                               "(or write path/to/file.py:attr)") from exc
    except Exception as exc:
        raise TpcheckError(f"importing {location!r} raised {type(exc).__name__}: {exc}",
                           where=target, fix="fix the error in that module") from exc
