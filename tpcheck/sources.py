"""Where in the user's code: the source lines a finding or an error points at.

A finding is useful when it lands on the line a user edits: the assignment that creates a
parameter (``self.qkv = nn.Linear(...)``), or the forward line that calls a module. torch's and
tpcheck's own frames say nothing to the user and are skipped.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import re
import sys
import traceback
import weakref
from collections.abc import Iterator
from typing import Any

import torch

_TORCH_DIR = os.path.dirname(torch.__file__)
_ENGINE_DIR = os.path.dirname(__file__)  # tpcheck/ itself; its models/ zoo is user code
_MODELS_DIR = os.path.join(_ENGINE_DIR, "models")


def is_library_file(path: str) -> bool:
    """torch's and tpcheck's engine files, the standard library and synthetic frames."""
    if path.startswith("<") or path == contextlib.__file__:
        return True
    if path.startswith(_ENGINE_DIR) and not path.startswith(_MODELS_DIR):
        return True
    if path.startswith(_TORCH_DIR):
        return True
    if os.sep + "torch" + os.sep in path and ("site-packages" in path or "dist-packages" in path):
        return True
    return path.startswith(os.path.dirname(os.__file__) + os.sep) and "-packages" not in path


def user_frame(exc: BaseException) -> str | None:
    """``file:line (code)`` of the innermost traceback frame in the user's code."""
    best = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if is_library_file(frame.filename):
            continue
        best = f"{frame.filename}:{frame.lineno} ({frame.line or frame.name})"
    return best


def last_user_line(stack: str | None) -> str | None:
    """``file:line`` of the innermost user frame in a node's ``stack_trace`` text."""
    if not stack:
        return None
    last = None
    for line in stack.splitlines():
        line = line.strip()
        if line.startswith('File "'):
            try:
                fname = line.split('"')[1]
                lineno = line.split("line ")[1].split(",")[0]
            except IndexError:
                continue
            if not is_library_file(fname):
                last = f"{fname}:{lineno}"
    return last


#: Where each module and parameter of a model tpcheck built was assigned, as the build ran:
#: model -> {(id(owner module), attribute): "file:line"} (see :func:`recording_sites`).
_SITES: weakref.WeakKeyDictionary[torch.nn.Module, dict[tuple[int, str], str]] = (
    weakref.WeakKeyDictionary())


@contextlib.contextmanager
def recording_sites() -> Iterator[dict[tuple[int, str], str]]:
    """Record, while a model is built, the innermost user line of every module or parameter
    assignment (``self.hid = nn.Linear(...)`` in the branch that actually ran).

    Reading the class source instead finds the first ``self.hid =`` in it, which is the wrong
    line when a model assigns an attribute in several branches or a helper. Only models tpcheck
    builds for itself are built under this; ``nn.Module.__setattr__`` is restored after.
    """
    sites: dict[tuple[int, str], str] = {}
    original = torch.nn.Module.__setattr__

    def record(module: torch.nn.Module, name: str, value: Any) -> None:
        if isinstance(value, (torch.nn.Module, torch.nn.Parameter)):
            frame = sys._getframe(1)
            while frame is not None and is_library_file(frame.f_code.co_filename):
                frame = frame.f_back
            if frame is not None:
                sites[id(module), name] = f"{frame.f_code.co_filename}:{frame.f_lineno}"
        original(module, name, value)

    torch.nn.Module.__setattr__ = record  # type: ignore[method-assign]
    try:
        yield sites
    finally:
        torch.nn.Module.__setattr__ = original  # type: ignore[method-assign]


def remember_sites(model: torch.nn.Module, sites: dict[tuple[int, str], str]) -> None:
    """Keep the sites recorded while ``model`` was built, for :func:`definition_site`."""
    _SITES[model] = sites


def definition_site(model: torch.nn.Module, name: str) -> str | None:
    """``file:line`` where the parameter, or the module holding it, is assigned in its
    parent's ``__init__`` (``self.qkv = nn.Linear(...)``): where a user fixes its init.

    The line recorded while the model was built when there is one, else the first such
    assignment in the class source."""
    parts = name.split(".")
    owner: Any = model
    chain = [model]
    for part in parts[:-1]:
        owner = getattr(owner, part, None)
        if owner is None:
            return None
        chain.append(owner)
    recorded = _SITES.get(model, {})
    for depth in range(len(parts) - 1, -1, -1):
        site = recorded.get((id(chain[depth]), parts[depth]))
        if site is not None:
            return site
    # walk up until an attribute assignment is found in user code (skips nn.Linear itself)
    for depth in range(len(parts) - 1, -1, -1):
        site = _assignment_line(type(chain[depth]), parts[depth])
        if site is not None:
            return site
    return None


@functools.cache
def _assignment_line(cls: type, attr: str) -> str | None:
    """Cached per (class, attribute): reading a class's source parses its whole module."""
    if attr.isdigit():  # an item of an nn.ModuleList / Sequential: no attribute to find
        return None
    pattern = re.compile(rf"self\.{re.escape(attr)}\s*(:[^=]+)?=")
    for klass in cls.__mro__:
        if klass in (torch.nn.Module, object):
            break
        try:
            lines, start = inspect.getsourcelines(klass)
            path = inspect.getsourcefile(klass)
        except (OSError, TypeError):
            continue
        if path is None or is_library_file(path):
            continue
        for offset, text in enumerate(lines):
            if pattern.search(text):
                return f"{path}:{start + offset}"
    return None
