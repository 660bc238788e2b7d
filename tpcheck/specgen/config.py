"""What a spec is generated from: the model class (or factory), how a spec file imports it, and
its constructor configuration (the signature's defaults, overridden by a ``config.json``).

Nothing here builds the model: the configuration is read from the ``__init__`` signature
(diffusers' ``register_to_config`` keeps it) and from the JSON file, never by instantiating the
class at its defaults (``WanTransformer3DModel()`` would allocate 20 GB).
"""

from __future__ import annotations

import ast
import inspect
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tpcheck.errors import TpcheckError

#: Keys ``save_pretrained`` writes that are not constructor arguments.
_BOOKKEEPING_PREFIX = "_"
#: Module-name prefix under which :mod:`tpcheck.targets` executes ``file.py`` targets.
FILE_MODULE_PREFIX = "_tpcheck_target_"


@dataclass(frozen=True)
class ClassTarget:
    """A model class or factory, named for reports and importable from a spec file.

    ``import_line`` is the statement a standalone spec file uses to get ``obj`` under
    ``name`` (``None`` when it is not importable, e.g. defined inside a function: the generated
    source then says so and tpcheck binds the object itself).
    """

    obj: Callable[..., Any]
    name: str
    label: str
    import_line: str | None
    library: str | None = None  # "diffusers" for a diffusers class

    @property
    def is_diffusers(self) -> bool:
        return self.library == "diffusers"


def describe_target(obj: Callable[..., Any], label: str | None = None) -> ClassTarget:
    """The :class:`ClassTarget` of ``obj`` (a class, or a function taking config keywords)."""
    if not callable(obj):
        raise TpcheckError(f"{obj!r} is not a class or a callable.",
                           fix="pass a torch.nn.Module subclass or a function that builds one "
                               "from keyword arguments")
    name = getattr(obj, "__name__", None) or type(obj).__name__
    module = getattr(obj, "__module__", "") or ""
    library = "diffusers" if module.split(".")[0] == "diffusers" else None
    return ClassTarget(obj=obj, name=name, label=label or _default_label(obj, name, module),
                       import_line=_import_line(obj, name, module), library=library)


def _default_label(obj: Any, name: str, module: str) -> str:
    if module.split(".")[0] == "diffusers":
        return f"diffusers:{name}"
    path = _file_of(module)
    return f"{path}:{name}" if path else f"{module}:{name}"


def _file_of(module: str) -> str | None:
    """The file of a module tpcheck executed from ``file.py`` (not importable by name)."""
    if not module.startswith(FILE_MODULE_PREFIX):
        return None
    return getattr(sys.modules.get(module), "__file__", None)


def _import_line(obj: Any, name: str, module: str) -> str | None:
    """``from M import Name``, or tpcheck's file loader for a ``file.py`` target."""
    qualname = getattr(obj, "__qualname__", name)
    if module.split(".")[0] == "diffusers":
        import diffusers

        if getattr(diffusers, name, None) is obj:
            return f"from diffusers import {name}"
    path = _file_of(module)
    if path is not None:
        reference = json.dumps(f"{Path(path).resolve()}:{qualname}")
        return f"{name} = import_object({reference})"
    mod = sys.modules.get(module)
    if mod is None or "<" in qualname or module == "__main__":
        return None
    target: Any = mod
    for part in qualname.split("."):
        target = getattr(target, part, None)
    if target is not obj:
        return None
    if "." in qualname:
        return None  # a nested class: import the outer one by hand
    return f"from {module} import {name}"


# --- the configuration --------------------------------------------------------------------------


def constructor(obj: Callable[..., Any]) -> inspect.Signature:
    """The keyword arguments that build the model (``__init__`` without ``self``)."""
    try:
        sig = inspect.signature(obj)  # a class: its __init__ without self
    except (TypeError, ValueError) as exc:
        raise TpcheckError(f"cannot read the constructor signature of {obj!r}: {exc}",
                           fix="pass --config with the constructor arguments") from exc
    return sig


def defaults(obj: Callable[..., Any]) -> tuple[dict[str, Any], list[str]]:
    """The constructor's default arguments and the names that have no default."""
    values: dict[str, Any] = {}
    required: list[str] = []
    for name, param in constructor(obj).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.default is inspect.Parameter.empty:
            required.append(name)
        else:
            values[name] = param.default
    return values, required


def accepts_any_keyword(obj: Callable[..., Any]) -> bool:
    return any(p.kind is p.VAR_KEYWORD for p in constructor(obj).parameters.values())


def read_json(path: str | Path, target: ClassTarget) -> tuple[dict[str, Any], list[str]]:
    """The constructor arguments in a ``config.json`` (as ``save_pretrained`` writes it).

    Returns the entries the class accepts and notes on what was dropped. A config written for
    another class is an error: its sizes would be read into the wrong arguments.
    """
    file = Path(path)
    where = str(file)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise TpcheckError(f"config file {where!r} does not exist.",
                           fix="give the path of a local config.json (save_pretrained writes "
                               "one beside the weights)") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TpcheckError(f"config file {where!r} is not readable JSON: {exc}",
                           fix="pass the config.json that save_pretrained wrote") from exc
    if not isinstance(data, dict):
        raise TpcheckError(f"config file {where!r} holds a {type(data).__name__}, not an object "
                           "of constructor arguments.", fix="pass a config.json")
    class_name = data.get("_class_name")
    if class_name is not None and class_name != target.name:
        raise TpcheckError(f"config file {where!r} is for {class_name}, not {target.name}.",
                           where=target.label,
                           fix=f"lint diffusers:{class_name} with this config, or pass the "
                               f"config.json of a {target.name}")
    return accept(data, target, where)


def accept(entries: dict[str, Any], target: ClassTarget, where: str
           ) -> tuple[dict[str, Any], list[str]]:
    """The entries the constructor takes; bookkeeping keys and unknown names are dropped."""
    params = constructor(target.obj).parameters
    open_kwargs = accepts_any_keyword(target.obj)
    kept: dict[str, Any] = {}
    unknown: list[str] = []
    for key, value in entries.items():
        if key.startswith(_BOOKKEEPING_PREFIX):
            continue
        if key in params or open_kwargs:
            kept[key] = _tuple_like(value, params.get(key))
        else:
            unknown.append(key)
    notes = []
    if unknown:
        notes.append(f"{where}: ignored {', '.join(sorted(unknown))} ({target.name}'s "
                     "constructor does not take them, as diffusers' from_config ignores them)")
    return kept, notes


def _tuple_like(value: Any, param: inspect.Parameter | None) -> Any:
    """JSON has no tuples: give a list back as a tuple where the default is a tuple."""
    if isinstance(value, list) and param is not None and isinstance(param.default, tuple):
        return tuple(value)
    return value


def is_literal(value: Any) -> bool:
    """Whether ``repr(value)`` is Python source that evaluates back to ``value``."""
    try:
        return ast.literal_eval(repr(value)) == value
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False


def int_entries(config: dict[str, Any]) -> dict[str, int]:
    """The integer entries of a config (booleans are not sizes)."""
    return {k: v for k, v in config.items() if isinstance(v, int) and not isinstance(v, bool)}
