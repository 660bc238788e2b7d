"""Shared fixtures: each built-in target is traced (and linted) once per test session.

Tracing and linting real models takes seconds, so tests that look at the same target share
one result; nothing here replaces a real model, optimizer or diffusers class.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may reach the hub

from tpcheck.models import registry

from tpcheck.cli import main
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


def plan_lint_summary(target: str, folder: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    """``tpcheck convert TARGET -o plan.json`` then ``tpcheck lint TARGET --plan plan.json``, as
    a user types them: the lint's JSON summary (counts by severity); both must exit 0."""
    plan = str(folder / "plan.json")
    assert main(["convert", target, "-o", plan, "-q"]) == 0
    capsys.readouterr()
    assert main(["lint", target, "--plan", plan, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)["summary"]
