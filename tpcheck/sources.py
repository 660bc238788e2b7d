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
import traceback
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


def definition_site(model: torch.nn.Module, name: str) -> str | None:
    """``file:line`` where the parameter, or the module holding it, is assigned in its
    parent's ``__init__`` (``self.qkv = nn.Linear(...)``): where a user fixes its init."""
    parts = name.split(".")
    owner: Any = model
    chain = [model]
    for part in parts[:-1]:
        owner = getattr(owner, part, None)
        if owner is None:
            return None
        chain.append(owner)
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
