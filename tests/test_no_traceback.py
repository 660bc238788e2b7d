"""The CLI contract on broken models: every command ends in exit 2 and one message (what,
where in the user's file, how to fix it), never a Python traceback; exit 1 means findings.

Each case is a real torch model that fails the way user models do: its forward raises deep
inside a torch kernel, its shapes depend on the data, its factory ignores the width, or it
branches on tensor values. They run through ``lint``, ``convert`` and ``coord``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tpcheck.cli import main

FIXTURE = Path(__file__).parent / "fixtures" / "bad_targets.py"
COMMANDS = {"lint": [], "convert": [], "coord": ["--steps", "1", "--seeds", "1"]}
CASES = {
    "raises_inside_torch": ["the model's forward raised RuntimeError", "bad_targets.py:"],
    "data_dependent_shapes": ["raised RuntimeError", "bad_targets.py:"],
    "factory_ignores_n": ["does not depend on the width", "factory(width)"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_model_exits_2_with_a_message(capsys: pytest.CaptureFixture[str], command: str,
                                             case: str) -> None:
    code = main([command, f"{FIXTURE}:{case}", *COMMANDS[command]])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("tpcheck: error: ") and "Traceback" not in err
    assert "fix:" in err
    needles = CASES[case]
    if case == "factory_ignores_n" and command != "coord":
        needles = ["no parameter dimension grows with the width", "factory(width)"]
    if command == "coord" and case != "factory_ignores_n":
        needles = ["training raised RuntimeError", "bad_targets.py:"]
    for needle in needles:
        assert needle in err, f"{needle!r} not in:\n{err}"


def test_source_line_is_the_users_line(capsys: pytest.CaptureFixture[str]) -> None:
    """The line named is the forward's line that called into torch, not a torch frame."""
    main(["lint", f"{FIXTURE}:raises_inside_torch"])
    err = capsys.readouterr().err
    line = next(i for i, text in enumerate(FIXTURE.read_text().splitlines(), 1)
                if "return self.out(h @ h)" in text)
    assert f"bad_targets.py:{line}" in err


def test_a_broken_optimizer_is_the_users_error(tmp_path: Path) -> None:
    """An optimizer class whose param groups raise: exit 2 naming the user's file, run as
    users run it (the console entry point in a subprocess)."""
    target = tmp_path / "odd.py"
    target.write_text(
        "import torch\n"
        "from torch import nn\n"
        "from tpcheck import ModelSpec\n"
        "class Odd(nn.Module):\n"
        "    def __init__(self, n):\n"
        "        super().__init__()\n"
        "        self.w = nn.Linear(4, n)\n"
        "        self.out = nn.Linear(n, 2)\n"
        "    def forward(self, x):\n"
        "        return self.out(self.w(x))\n"
        "class BadOptimizer(torch.optim.SGD):\n"
        "    @property\n"
        "    def param_groups(self):\n"
        "        raise ZeroDivisionError('broken property')\n"
        "    @param_groups.setter\n"
        "    def param_groups(self, value):\n"
        "        pass\n"
        "spec = ModelSpec(Odd, lambda n: (torch.randn(2, 4),), (32, 64, 128),\n"
        "                 optimizer=lambda m: BadOptimizer(m.parameters(), lr=0.1))\n")
    done = subprocess.run([sys.executable, "-m", "tpcheck", "lint", f"{target}:spec"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("tpcheck: error: ")
    assert "odd.py:14" in done.stderr and "where:" in done.stderr  # the property that raised
    assert done.stderr.count("where:") == 1


def test_a_bug_in_tpcheck_says_so_and_how_to_report() -> None:
    """An exception no stage expected is tpcheck's bug: one message with the stage, the
    tpcheck line it came from, and where to report it (the CLI prints it, exit 2)."""
    from tpcheck.errors import ISSUES_URL, InternalError, stage

    with pytest.raises(InternalError) as info, stage("classify", "my-model"):
        {}["missing"]  # a real KeyError, as a bug in a stage would raise
    text = info.value.render()
    assert "internal error in tpcheck: KeyError" in text
    assert "the classify stage" in text and "my-model" in text
    assert ISSUES_URL in text and "TPCHECK_DEBUG=1" in text
