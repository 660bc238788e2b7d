"""Targets: how a CLI TARGET (or a ``[tool.tpcheck]`` entry) becomes a :class:`ModelSpec`.

This module sits above both :mod:`tpcheck.spec` (what a spec is) and :mod:`tpcheck.models`
(the built-in specs), so neither has to import the other.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tpcheck.errors import TpcheckError
from tpcheck.models import registry
from tpcheck.spec import ModelSpec
from tpcheck.specgen.config import FILE_MODULE_PREFIX


@dataclass(frozen=True)
class TargetOptions:
    """How to build a spec for a target that is a model class rather than a ModelSpec
    (``diffusers:SD3Transformer2DModel``, ``mypkg.models:MyDiT``, ``file.py:MyDiT``).

    ``config``: a local ``config.json`` (as ``save_pretrained`` writes it) with the class's
    constructor arguments; ``width_arg`` / ``heads_arg``: the constructor arguments that hold
    the width and the head count; ``head_dim``: the head dimension kept fixed while the width
    grows; ``inputs``: ``module:fn`` or ``file.py:fn`` returning example inputs for a width;
    ``widths``: the widths to trace (so the generated spec's source shows them).
    """

    config: str | None = None
    width_arg: str | None = None
    heads_arg: str | None = None
    head_dim: int | None = None
    inputs: str | None = None
    widths: tuple[int, ...] | None = None


def load_target(target: str, options: TargetOptions | None = None, *,
                strict: bool = True) -> ModelSpec:
    """Resolve a CLI TARGET into a ModelSpec.

    TARGET is a built-in model name (``dit``, ``uvit``, ...), ``package.module:attr``,
    ``path/to/file.py:attr`` or ``diffusers:ClassName``. ``attr`` is a ModelSpec, a zero-argument
    callable returning one, or a model class (or a function taking its config as keywords),
    whose spec :func:`tpcheck.specgen.autospec` builds with ``options``.
    """
    if ":" not in target:
        if target in registry.BUILTINS:
            _refuse_class_options(options, target, "a built-in spec", strict)
            return registry.build(target)
        raise TpcheckError(
            f"unknown target {target!r}.",
            fix="use a built-in name (" + ", ".join(sorted(registry.BUILTINS))
            + "), package.module:attr, path/to/file.py:attr or diffusers:ClassName",
        )
    location, _, attr = target.rpartition(":")
    if not attr:
        raise TpcheckError(f"target {target!r} names no attribute after ':'.",
                           fix="write TARGET as module:attr, e.g. mypkg.models:dit_spec")
    obj = _diffusers_class(attr) if location == "diffusers" else _attribute(location, attr,
                                                                             target)
    if isinstance(obj, ModelSpec):
        _refuse_class_options(options, target, "a ModelSpec", strict)
        return obj
    if _is_model_class(obj) or (callable(obj) and _requires_arguments(obj)):
        return _autospec(obj, target, options or TargetOptions())
    if callable(obj):
        try:
            # a builder whose config all has defaults may build a model: on meta, no weights
            # (a true zero-argument spec builder runs as written: its tensors stay real)
            with torch.device("meta") if _takes_arguments(obj) else contextlib.nullcontext():
                spec = obj()
        except TpcheckError:
            raise
        except Exception as exc:  # the user's code: report, don't crash
            raise TpcheckError(f"calling {attr}() raised {type(exc).__name__}: {exc}",
                               where=target,
                               fix="make the attribute a zero-argument callable that returns a "
                                   "tpcheck.ModelSpec") from exc
        if isinstance(spec, ModelSpec):
            _refuse_class_options(options, target, "a function that returns a ModelSpec",
                                  strict)
            return spec
        if isinstance(spec, torch.nn.Module) and _takes_arguments(obj):
            return _autospec(obj, target, options or TargetOptions())  # make_model(dim=...)
        raise TpcheckError(f"{attr}() returned {type(spec).__name__}, not a tpcheck.ModelSpec.",
                           where=target, fix="return tpcheck.ModelSpec(factory, inputs, widths), "
                                             "or point TARGET at the model class")
    raise TpcheckError(f"{attr!r} is of type {type(obj).__name__}, not a ModelSpec, a model "
                       "class or a callable.", where=target,
                       fix="point TARGET at a tpcheck.ModelSpec or a torch.nn.Module class")


#: The options that say how to build a spec from a model class, with their CLI spelling.
_CLASS_OPTIONS = {"config": "--config", "width_arg": "--width-arg", "heads_arg": "--heads-arg",
                  "head_dim": "--head-dim", "inputs": "--inputs"}


def _refuse_class_options(options: TargetOptions | None, target: str, what: str,
                          strict: bool) -> None:
    """One of several lint targets (not ``strict``): the options are for the others."""
    if strict:
        refuse_class_options(options, f"{target!r} is {what}", where=target)


def refuse_class_options(options: TargetOptions | None, why: str,
                         where: str | None = None) -> None:
    """Model-class options (``--config`` and its siblings) given where no target is a model
    class would be ignored: say so instead (a ``--config`` the user believes in, silently
    unused, is a wrong report). ``why``: what the targets are instead."""
    given = [flag for field, flag in _CLASS_OPTIONS.items()
             if options is not None and getattr(options, field) is not None]
    if given:
        verb = "applies" if len(given) == 1 else "apply"
        raise TpcheckError(f"{', '.join(given)} only {verb} to model-class targets "
                           f"(diffusers:Class, module:Class); {why}.", where=where,
                           fix=f"drop {', '.join(given)}, or point TARGET at the model class")


def import_object(reference: str) -> Any:
    """The object ``module:attr`` or ``path/to/file.py:attr`` names (generated spec files import
    the user's classes and inputs functions with it). A file already executed is reused, so the
    class is the very object tpcheck probed."""
    location, _, attr = reference.rpartition(":")
    if not location or not attr:
        raise TpcheckError(f"{reference!r} is not module:attr or file.py:attr.",
                           fix="write e.g. mypkg.inputs:make_inputs or inputs.py:make_inputs")
    return _attribute(location, attr, reference, reuse=True)


def _attribute(location: str, attr: str, target: str, reuse: bool = False) -> Any:
    module = _import_location(location, target, reuse=reuse)
    if not hasattr(module, attr):
        public = sorted(a for a in vars(module) if not a.startswith("_"))
        raise TpcheckError(
            f"{location!r} has no attribute {attr!r}.",
            where=target,
            fix="name one of: " + ", ".join(public[:20]) + (" ..." if len(public) > 20 else ""),
        )
    return getattr(module, attr)


def _is_model_class(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, torch.nn.Module)


def _requires_arguments(obj: Any) -> bool:
    """A function that cannot be called without arguments builds a model from its config."""
    try:
        params = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.default is inspect.Parameter.empty
               and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params)


def _takes_arguments(obj: Any) -> bool:
    """A function with parameters may build a model from its config (when, called with its
    defaults, it returns a model rather than a spec)."""
    try:
        return bool(inspect.signature(obj).parameters)
    except (TypeError, ValueError):
        return False


def _autospec(obj: Any, target: str, options: TargetOptions) -> ModelSpec:
    from tpcheck.specgen import autospec

    inputs = None
    if options.inputs:
        inputs = import_object(options.inputs) if ":" in options.inputs else None
        if not callable(inputs):
            raise TpcheckError(f"--inputs {options.inputs!r} is not a function.",
                               fix="pass --inputs module:fn or file.py:fn, a function width -> "
                                   "the forward's example inputs")
    return autospec(obj, config=options.config, inputs=inputs, width_arg=options.width_arg,
                    heads_arg=options.heads_arg, head_dim=options.head_dim,
                    widths=options.widths, name=target)


def _diffusers_class(name: str) -> Any:
    """``diffusers:ClassName``: the class, with close names suggested for a typo."""
    try:
        import diffusers
    except ImportError as exc:
        raise TpcheckError(f"diffusers:{name} needs diffusers: {exc}",
                           fix="pip install 'tpcheck[diffusers]'") from exc
    try:
        obj = getattr(diffusers, name)
    except (AttributeError, ImportError, RuntimeError):
        obj = None
    if not _is_model_class(obj):
        from tpcheck.specgen.catalogue import class_names

        close = difflib.get_close_matches(name, class_names(), n=5, cutoff=0.5)
        raise TpcheckError(f"diffusers {diffusers.__version__} has no model class {name!r}.",
                           where=f"diffusers:{name}",
                           fix=("did you mean " + ", ".join(close) + "? " if close else "")
                           + "`tpcheck targets --diffusers` lists the transformer classes")
    return obj


def _import_location(location: str, target: str, reuse: bool = False) -> Any:
    """Import ``package.module`` or execute ``path/to/file.py`` as a module.

    A file's folder goes on ``sys.path`` (and stays: its factory may import a module beside it
    when tpcheck calls it, long after the file ran), so the file imports its neighbours as it
    does when run as a script.
    """
    if location.endswith(".py") or "/" in location or "\\" in location:
        path = Path(location)
        if not path.is_file():
            raise TpcheckError(f"file {location!r} does not exist.", where=target,
                               fix="give a path to a Python file, relative to the current "
                                   "directory")
        mod_name = f"{FILE_MODULE_PREFIX}{abs(hash(str(path.resolve())))}"
        if reuse and mod_name in sys.modules:
            return sys.modules[mod_name]
        spec = importlib.util.spec_from_file_location(mod_name, path)
        if spec is None or spec.loader is None:
            raise TpcheckError(f"cannot load {location!r} as Python.", where=target)
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        folder = str(path.resolve().parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        try:
            spec.loader.exec_module(module)
        except TpcheckError:
            sys.modules.pop(mod_name, None)
            raise
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
