"""Bad input: exit code 2 and a message that says what, where and how to fix it.

Every case runs the real CLI in-process on a real (deliberately broken) target; none may end
in a traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tpcheck.cli import main

FIXTURE = Path(__file__).parent / "fixtures" / "bad_targets.py"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["lint", *argv])
    captured = capsys.readouterr()
    return code, captured.err


@pytest.mark.parametrize(("target", "needles"), [
    ("no_such_module_xyz:spec", ["cannot import module 'no_such_module_xyz'", "fix:"]),
    (f"{FIXTURE}:nothing_here", ["has no attribute 'nothing_here'", "good"]),
    ("missing/file.py:spec", ["does not exist"]),
    ("ditt", ["unknown target 'ditt'", "dit"]),
    (f"{FIXTURE}:returns_none", ["returned NoneType, not a tpcheck.ModelSpec"]),
    (f"{FIXTURE}:factory_raises", ["factory raised ValueError at width", "not a multiple of 96",
                                   "bad_targets.py:"]),
    (f"{FIXTURE}:names_differ", ["parameter names differ across widths", "extra.weight",
                                 "only at n=128"]),
    (f"{FIXTURE}:not_affine", ["is not affine in the width", "ffn.weight", "n=128: 96"]),
    (f"{FIXTURE}:two_widths", ["at least 3 distinct widths", "[32, 64]"]),
])
def test_bad_target_exits_2_with_a_clear_message(capsys: pytest.CaptureFixture[str],
                                                 target: str, needles: list[str]) -> None:
    code, err = run(capsys, target, "--no-tensors")
    assert code == 2
    assert err.startswith("tpcheck: error: ")
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, f"{needle!r} not in:\n{err}"


def test_branch_on_tensor_values_names_the_line(capsys: pytest.CaptureFixture[str]) -> None:
    """``if h.sum() > 0`` runs eagerly (on the CPU), but takes different paths at different
    widths: exit 2 naming the line, never a graph silently mixed from two paths."""
    code, err = run(capsys, f"{FIXTURE}:untraceable")
    assert code == 2 and "Traceback" not in err
    assert "the traced graph differs between widths" in err
    assert "control flow on tensor values" in err
    assert "bad_targets.py:" in err


def test_export_tracer_names_the_failing_source_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(capsys, f"{FIXTURE}:untraceable", "--tracer", "export")
    line = next(i for i, text in enumerate(FIXTURE.read_text().splitlines(), 1)
                if "if h.sum() > 0" in text)
    assert code == 2 and "Traceback" not in err
    assert "torch.export could not trace the model" in err
    assert f"bad_targets.py:{line}" in err


def test_widths_flag_with_two_widths_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(capsys, f"{FIXTURE}:good", "--widths", "32,64")
    assert code == 2 and "at least 3 distinct widths" in err


def test_unknown_rule_selector_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(capsys, f"{FIXTURE}:good", "--select", "TP999")
    assert code == 2 and "matches no rule" in err


def test_good_target_from_a_file_path_lints(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["lint", f"{FIXTURE}:good", "--no-tensors"])
    out = capsys.readouterr().out
    assert code in (0, 1)
    assert "tiny" in out


def test_module_colon_attr_target(capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(FIXTURE.parent))
    code = main(["lint", "bad_targets:good", "--roles-only"])
    assert code == 0
    assert "inp.weight" in capsys.readouterr().out
