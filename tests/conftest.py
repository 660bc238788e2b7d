"""Shared fixtures: each built-in target is traced (and linted) once per test session.

Tracing and linting real models takes seconds, so tests that look at the same target share
one result; nothing here replaces a real model, optimizer or diffusers class.
"""

from __future__ import annotations

import os
from functools import cache

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may reach the hub

from tpcheck.models import registry

from tpcheck.pipeline import analyze, lint


def spec_of(name: str):
    if name.startswith("diffusers"):
        pytest.importorskip("diffusers")
    return registry.build(name)


@cache
def classification_of(name: str):
    """The classification of a built-in target (traced on the meta device)."""
    return analyze(spec_of(name))


@cache
def report_of(name: str):
    """The lint report of a built-in target with its spec's optimizer."""
    return lint(spec_of(name))
