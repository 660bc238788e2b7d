"""Targets: how a CLI TARGET (or a ``[tool.tpcheck]`` entry) becomes a :class:`ModelSpec`.

This module sits above both :mod:`tpcheck.spec` (what a spec is) and :mod:`tpcheck.models`
(the built-in specs), so neither has to import the other.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tpcheck.errors import TpcheckError
from tpcheck.models import registry
from tpcheck.spec import ModelSpec


@dataclass(frozen=True)
class TargetOptions:
    """How to build a spec for a target that is a model class rather than a ModelSpec
    (``diffusers:SD3Transformer2DModel``, ``mypkg.models:MyDiT``, ``file.py:MyDiT``).

    ``config``: a local ``config.json`` (as ``save_pretrained`` writes it) with the class's
    constructor arguments; ``width_arg`` / ``heads_arg``: the constructor arguments that hold
    the width and the head count; ``head_dim``: the head dimension kept fixed while the width
    grows; ``inputs``: ``module:fn`` or ``file.py:fn`` returning example inputs for a width.
    """

    config: str | None = None
    width_arg: str | None = None
    heads_arg: str | None = None
    head_dim: int | None = None
    inputs: str | None = None


def load_target(target: str, options: TargetOptions | None = None) -> ModelSpec:
    """Resolve a CLI TARGET into a ModelSpec.

    TARGET is a built-in model name (``dit``, ``uvit``, ...), ``package.module:attr`` or
    ``path/to/file.py:attr``; ``attr`` is a ModelSpec or a zero-argument callable
    returning one.
    """
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
