"""Small, cheap experiments on a candidate spec: build it on the meta device, compare parameter
shapes, tell block kinds apart, run one forward.

Every decision of the spec generator is checked by one of these rather than taken from a list
of classes: an entry is a width because the model's shapes or its forward say so.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_map

from tpcheck.capture import training_graph

Shapes = dict[str, tuple[int, ...]]
#: Largest model built with real weights when a forward needs real values (a vocabulary of
#: 150k × 4096 fixed by the config would otherwise allocate gigabytes to check one forward).
MAX_CPU_PARAMETERS = 100_000_000
#: Loggers of libraries whose models warn on construction (deprecations, defaults).
_LOGGERS = ("diffusers", "transformers")


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence the model's own warnings and library logging while probing it."""
    levels = {name: logging.getLogger(name).level for name in _LOGGERS}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in _LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
        try:
            yield
        finally:
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)


def build(factory: Callable[[int], nn.Module], width: int, device: str = "meta") -> nn.Module:
    """``factory(width)`` on ``device``, seeded, quietly; exceptions propagate."""
    ctx = torch.device("meta") if device == "meta" else contextlib.nullcontext()
    with quiet(), torch.random.fork_rng(devices=[]), ctx:
        torch.manual_seed(0)
        model = factory(width)
    if not isinstance(model, nn.Module):
        raise TypeError(f"the factory returned {type(model).__name__}, not a torch.nn.Module")
    return model


def try_build(factory: Callable[[int], nn.Module], width: int) -> nn.Module | Exception:
    """The model on meta at ``width``, or the exception that building it raised."""
    try:
        return build(factory, width)
    except Exception as exc:
        return exc


def shapes(model: nn.Module) -> Shapes:
    return {name: tuple(p.shape) for name, p in model.named_parameters()}


# --- how a parameter axis is used -----------------------------------------------------------


def axis_kinds(model: nn.Module) -> dict[str, tuple[str, ...]]:
    """For every weight, what each axis is: ``in`` (contracted), ``out`` (produced) or ``other``.

    Read from the owning module's type: Linear and Conv store (out, in, ...), transposed convs
    (in, out, ...), an Embedding (rows, out). Anything else is ``other`` on every axis.
    """
    kinds: dict[str, tuple[str, ...]] = {}
    for prefix, module in model.named_modules():
        for pname, p in module.named_parameters(recurse=False):
            name = f"{prefix}.{pname}" if prefix else pname
            kinds[name] = _axes(module, pname, p.dim())
    return kinds


def _axes(module: nn.Module, pname: str, ndim: int) -> tuple[str, ...]:
    if pname != "weight" or ndim < 2:
        return ("vector",) * ndim
    rest = ("other",) * (ndim - 2)
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        return ("in", "out", *rest)
    if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)):
        return ("out", "in", *rest)
    if isinstance(module, nn.Embedding):
        return ("other", "out")
    return ("other",) * ndim


def usage(base: nn.Module, changed: nn.Module) -> set[str]:
    """How the axes that differ between two builds are used (``in``, ``out``, ``vector``,
    ``other``): the builds differ in one config entry, so these are the axes it sizes."""
    kinds = axis_kinds(base)
    before, after = shapes(base), shapes(changed)
    used: set[str] = set()
    for name in before.keys() | after.keys():
        if name not in before or name not in after:
            used.add("other")  # the entry changes the structure, not just sizes
            continue
        if len(before[name]) != len(after[name]):
            used.add("other")
            continue
        for axis, (a, b) in enumerate(zip(before[name], after[name], strict=True)):
            if a != b:
                used.add(kinds[name][axis])
    return used


# --- block kinds ----------------------------------------------------------------------------


def block_kinds(model: nn.Module) -> frozenset[tuple[Any, ...]]:
    """The distinct kinds of blocks in every ``ModuleList`` of the model.

    A block's kind is its module tree (relative names and classes), its parameter shapes and
    its flags (boolean and string attributes such as ``context_pre_only``); integer attributes
    such as a layer index are left out, so that blocks differing only in position are one kind.
    """
    kinds = set()
    for path, module in model.named_modules():
        if isinstance(module, nn.ModuleList):
            pattern = ".".join("*" if part.isdigit() else part for part in path.split("."))
            for child in module:
                kinds.add((pattern, _signature(child)))
    return frozenset(kinds)


def _signature(block: nn.Module) -> tuple[Any, ...]:
    parts: list[Any] = []
    for rel, module in block.named_modules():
        flags = tuple(sorted((k, v) for k, v in vars(module).items()
                             if not k.startswith("_") and k != "training"
                             and isinstance(v, (bool, str))))
        parts.append((rel, type(module).__qualname__, flags))
    parts.extend((rel, tuple(p.shape)) for rel, p in block.named_parameters())
    return tuple(parts)


def block_count(model: nn.Module) -> int:
    return sum(len(m) for m in model.modules() if isinstance(m, nn.ModuleList))


# --- one forward ------------------------------------------------------------------------------


def forward_error(factory: Callable[[int], nn.Module], inputs: Callable[[int], Any], width: int,
                  model: nn.Module | None = None, device: str = "meta") -> str | None:
    """``None`` when one training-mode forward runs at ``width``, else why it did not.

    The forward runs on meta (free); a forward that needs real values there (``nonzero`` on a
    mask, ``.item()``) is run again on the CPU with real weights, as tpcheck's capture does.
    ``model``, if given, is the model already built on ``device``.
    """
    if device == "cpu":
        if model is None:
            model = build(factory, width, device="cpu")
        error = _run(model, inputs, width, "cpu")
        return None if error is None else error.text
    try:
        meta_model = model if model is not None else build(factory, width)
    except Exception as exc:
        return f"building it raised {type(exc).__name__}: {exc}"
    error = _run(meta_model, inputs, width, "meta")
    if error is None or not error.needs_real_values:
        return None if error is None else error.text
    cpu = cpu_model(factory, width, meta_model)
    if isinstance(cpu, str):
        return f"the forward needs real values ({error.text}) but {cpu}"
    cpu_error = _run(cpu, inputs, width, "cpu")
    return None if cpu_error is None else cpu_error.text


def runs(factory: Callable[[int], nn.Module], inputs: Callable[[int], Any], width: int
         ) -> str | None:
    """``None`` when the forward runs at ``width`` on meta or, failing that for any reason, on
    the CPU (as capture falls back: some forwards fail on meta in ways that do not say so)."""
    error = forward_error(factory, inputs, width)
    if error is None:
        return None
    try:
        meta_model = build(factory, width)
    except Exception:
        return error
    cpu = cpu_model(factory, width, meta_model)
    if isinstance(cpu, str):
        return error
    return forward_error(factory, inputs, width, model=cpu, device="cpu") and error


def cpu_model(factory: Callable[[int], nn.Module], width: int, meta_model: nn.Module
              ) -> nn.Module | str:
    """The model with real weights on the CPU, or why it is not built."""
    size = sum(p.numel() for p in meta_model.parameters())
    if size > MAX_CPU_PARAMETERS:
        return (f"the model has {size:,} parameters at width {width}, too many to build on the "
                "CPU to check one forward")
    try:
        return build(factory, width, device="cpu")
    except Exception as exc:
        return f"building it on the CPU raised {type(exc).__name__}: {exc}"


class _Failure:
    def __init__(self, exc: Exception) -> None:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        self.text = f"{type(exc).__name__}: {message[:300]}"
        self.needs_real_values = isinstance(exc, NotImplementedError) or "meta" in str(exc)


def _run(model: nn.Module, inputs: Callable[[int], Any], width: int, device: str
         ) -> _Failure | None:
    try:
        with quiet(), torch.random.fork_rng(devices=[]):
            raw = inputs(width)
            moved = tree_map(lambda x: x.to(device) if isinstance(x, torch.Tensor) else x, raw)
            with training_graph(model), torch.no_grad():
                if isinstance(moved, dict):
                    model(**moved)
                elif isinstance(moved, (tuple, list)):
                    model(*moved)
                else:
                    model(moved)
    except Exception as exc:
        return _Failure(exc)
    return None
