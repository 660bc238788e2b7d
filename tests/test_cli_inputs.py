"""The CLI's input contract (cli, config and plan loading): every bad value a user can give —
a config key of the wrong type, a rule code no rule has, a width or rate out of range, a plan
file that is not a plan, an output path that cannot be written — exits 2 with a message that
says what, where and how to fix it, before any tracing or training starts. Exit 1 stays
reserved for findings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tpcheck.cli import main


def pyproject(tmp_path: Path, table: str) -> Path:
    path = tmp_path / "pyproject.toml"
    path.write_text('[project]\nname = "x"\n\n[tool.tpcheck]\n' + textwrap.dedent(table))
    return path


def error_of(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    return err


# --- [tool.tpcheck] -------------------------------------------------------------------------

CONFIGS = {
    # key = value, what the message must say, the line the key is on (5 = first key)
    "ignore-is-a-string": ('ignore = "TP402"\n', "ignore: expected an array", 5),
    "widths-not-integers": ('widths = ["a", 128, 256]\n', "widths[0]: expected an integer", 5),
    "widths-too-few": ("widths = [64, 128]\n", "at least 3", 5),
    "widths-repeated": ("widths = [64, 64, 128]\n", "fewer than 3 distinct", 5),
    "widths-negative": ("widths = [-64, 128, 256]\n", "more than 0", 5),
    "unknown-key": ('target = ["dit"]\n', "unknown key; did you mean 'targets'", 5),
    "format-unknown": ('format = "xml"\n', "format: expected one of", 5),
    "select-unknown-code": ('select = ["TP1", "TP999"]\n', "select[1]: 'TP999' matches no rule",
                            5),
    "ignore-unknown-name": ('ignore = ["no-such-rule"]\n', "matches no rule", 5),
    "per-tensor-unknown-code": ('\n[[tool.tpcheck.per-tensor-ignores]]\npattern = "x*"\n'
                                'rules = ["TP9"]\nreason = "r"\n', "per-tensor-ignores[0]", 6),
    "per-tensor-no-reason": ('\n[[tool.tpcheck.per-tensor-ignores]]\npattern = "x*"\n'
                             'rules = ["TP1"]\n', "'reason' is missing", 6),
    "per-tensor-blank-reason": ('\n[[tool.tpcheck.per-tensor-ignores]]\npattern = "x*"\n'
                                'rules = ["TP1"]\nreason = "  "\n', "is blank", 6),
    "per-tensor-rules-string": ('\n[[tool.tpcheck.per-tensor-ignores]]\npattern = "x*"\n'
                                'rules = "TP1"\nreason = "r"\n', "rules: expected an array", 6),
}


@pytest.mark.parametrize("case", sorted(CONFIGS))
def test_a_bad_config_exits_2_naming_the_key_and_line(case: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    table, needle, line = CONFIGS[case]
    path = pyproject(tmp_path, table)
    err = error_of(capsys, ["lint", "dit", "--pyproject", str(path)])
    assert needle in err, err
    assert f"where: {path}:{line}" in err, err
    assert "fix:" in err


def test_the_second_per_tensor_ignore_is_located_at_its_own_header(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    entry = '\n[[tool.tpcheck.per-tensor-ignores]]\npattern = "x*"\nrules = ["TP1"]\n'
    path = pyproject(tmp_path, entry + 'reason = "ok"\n' + entry + 'reason = ""\n')
    err = error_of(capsys, ["lint", "dit", "--pyproject", str(path)])
    assert "per-tensor-ignores[1].reason" in err
    header = [i for i, text in enumerate(path.read_text().splitlines(), 1)
              if text.startswith("[[tool.tpcheck.per-tensor-ignores]]")][1]
    assert f"where: {path}:{header}" in err


def test_a_config_that_is_not_toml_exits_2(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = pyproject(tmp_path, "targets = [\n")
    assert "not valid TOML" in error_of(capsys, ["lint", "--pyproject", str(path)])


def test_a_single_ignore_is_not_read_character_by_character(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The old bug: ignore = "TP402" ignored 'T', 'P', '4', ... — i.e. every rule."""
    path = pyproject(tmp_path, 'targets = ["dit"]\nignore = "TP402"\n')
    assert main(["lint", "--pyproject", str(path), "--format", "json"]) == 2
    assert capsys.readouterr().out == ""  # no report at all, not an empty one


# --- option values --------------------------------------------------------------------------

OPTIONS = {
    "convert-base-width-0": (["convert", "dit", "--base-width", "0"], "--base-width"),
    "convert-width-negative": (["convert", "dit", "--width", "-4"], "--width"),
    "coord-lr-negative": (["coord", "dit", "--lr", "-1"], "--lr"),
    "coord-lr-nan": (["coord", "dit", "--lr", "nan"], "--lr"),
    "coord-tolerance-negative": (["coord", "dit", "--tolerance=-3"], "--tolerance"),
    "coord-steps-0": (["coord", "dit", "--steps", "0"], "--steps"),
    "coord-seeds-0": (["coord", "dit", "--seeds", "0"], "--seeds"),
    "coord-fail-under-above-1": (["coord", "dit", "--fail-under", "1.5"], "--fail-under"),
    "coord-fail-under-text": (["coord", "dit", "--fail-under", "most"], "--fail-under"),
    "lint-widths-text": (["lint", "dit", "--widths", "64,a"], "--widths"),
    "lint-widths-zero": (["lint", "dit", "--widths", "0,64,128"], "--widths"),
    "lint-unknown-rule": (["lint", "dit", "--select", "TP999"], "matches no rule"),
    "lint-unknown-format": (["lint", "dit", "--format", "xml"], "--format"),
    "head-dim-0": (["lint", "diffusers:SD3Transformer2DModel", "--head-dim", "0"], "--head-dim"),
}


@pytest.mark.parametrize("case", sorted(OPTIONS))
def test_an_out_of_range_option_exits_2(case: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv, needle = OPTIONS[case]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own exit for a value its type rejected
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert needle in err and "Traceback" not in err


# --- plan files -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plan_json(tmp_path_factory: pytest.TempPathFactory) -> dict:
    path = tmp_path_factory.mktemp("plan") / "plan.json"
    assert main(["convert", "dit", "-o", str(path), "--quiet", "--no-verify"]) == 0
    return json.loads(path.read_text())


def broken_plans(plan: dict) -> dict[str, tuple[object, str]]:
    first = next(iter(plan["tensors"]))

    def edit(path: tuple, value: object) -> dict:
        data = json.loads(json.dumps(plan))
        node = data
        for key in path[:-1]:
            node = node[key]
        if value is KeyError:
            del node[path[-1]]
        else:
            node[path[-1]] = value
        return data

    return {
        "not-an-object": ([1, 2], "expected a table"),
        "no-tensors": (edit(("tensors",), KeyError), "'tensors' is missing"),
        "base-width-0": (edit(("base_width",), 0), "base_width: expected more than 0"),
        "style-unknown": (edit(("style",), "sp"), "style: expected one of"),
        "lr-mult-number": (edit(("tensors", first, "lr_mult", "adam"), 1.0),
                           f"tensors.{first}.lr_mult.adam: expected a string"),
        "init-unknown": (edit(("tensors", first, "init"), "xavier"), ".init: expected one of"),
        "expression-other-symbol": (edit(("tensors", first, "init_mult"), "m/64"),
                                    "it uses m"),
        "expression-not-parsable": (edit(("tensors", first, "eps_mult"), "64/(n"),
                                    "is not an expression in the width n"),
        "expression-power-bomb": (edit(("tensors", first, "init_mult"), "9**9**9/n"),
                                  "a power's exponent must be a number"),
        "shape-not-parsable": (edit(("tensors", first, "shape"), ["n", "4*m"]),
                               f"tensors.{first}.shape[1] = '4*m'"),
        "optimizer-index-past-end": (edit(("tensors", first, "optimizer"), 3),
                                     "points past the plan's 1 optimizer"),
        "extra-key": (edit(("tensors", first, "std"), 0.02), "unknown key"),
    }


@pytest.mark.parametrize("case", ["not-an-object", "no-tensors", "base-width-0", "style-unknown",
                                  "lr-mult-number", "init-unknown", "expression-other-symbol",
                                  "expression-not-parsable", "expression-power-bomb",
                                  "shape-not-parsable", "optimizer-index-past-end",
                                  "extra-key"])
def test_a_broken_plan_exits_2_naming_the_key(case: str, plan_json: dict, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    data, needle = broken_plans(plan_json)[case]
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data))
    err = error_of(capsys, ["lint", "dit", "--plan", str(path)])
    assert needle in err, err
    assert f"where: {path}" in err


def test_a_plan_expression_is_never_run_as_code(plan_json: dict, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Plans are shared files, and SymPy parses text with eval: an expression that is code
    exits 2 naming it, and the code does not run."""
    marker = tmp_path / "ran"
    data = json.loads(json.dumps(plan_json))
    first = next(iter(data["tensors"]))
    data["tensors"][first]["init_mult"] = f"__import__('pathlib').Path('{marker}').touch() or n"
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data))
    err = error_of(capsys, ["lint", "dit", "--plan", str(path)])
    assert "is not an expression in the width n (it uses Path, __import__," in err, err
    assert not marker.exists()


def test_a_plan_that_is_not_json_names_its_line(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "plan.json"
    path.write_text('{\n  "model": "dit",\n  oops\n}\n')
    err = error_of(capsys, ["coord", "dit", "--plan", str(path)])
    assert "is not JSON" in err and f"where: {path}:3" in err


def test_a_missing_or_folder_plan_exits_2(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert "does not exist" in error_of(capsys, ["lint", "dit", "--plan",
                                                 str(tmp_path / "nope.json")])
    assert "is a directory" in error_of(capsys, ["lint", "dit", "--plan", str(tmp_path)])


# --- output files ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["lint", "dit"], ["convert", "dit"],
                                     ["coord", "dit", "--steps", "1", "--seeds", "1"]])
def test_an_unwritable_output_fails_before_the_work(command: list[str], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """-o into a missing folder, onto a folder, or into a read-only folder: exit 2 at once
    (not after minutes of tracing or training, and not exit 1, which means findings)."""
    suffix = ".png" if command[0] == "coord" else ".json"
    missing = tmp_path / "no" / "such" / f"out{suffix}"
    err = error_of(capsys, [*command, "-o", str(missing)])
    assert "does not exist" in err and "fix:" in err
    err = error_of(capsys, [*command, "-o", str(tmp_path)])
    assert "is a directory" in err
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        err = error_of(capsys, [*command, "-o", str(locked / f"out{suffix}")])
        assert "permission denied" in err


def test_convert_writes_its_plan_even_when_the_reader_leaves_early(tmp_path: Path) -> None:
    """`tpcheck convert dit -o plan.json | head -1`: the plan is written first, so a closed
    pipe cannot lose it, and the command still exits 0."""
    plan = tmp_path / "plan.json"
    shell = (f"{sys.executable} -m tpcheck convert dit -o {plan} | head -1; "
             "exit ${PIPESTATUS[0]}")
    result = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "CI": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("tpcheck convert · dit")
    assert json.loads(plan.read_text())["model"] == "dit"
    assert "Traceback" not in result.stderr


def test_a_written_report_is_readable_by_others(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    assert main(["lint", "dit", "--format", "json", "-o", str(out), "--select", "TP105"]) == 0
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize(("argv", "needle"), [
    (["lint", "dit", "--config", "config.json"], "--config only applies to model-class targets"),
    (["convert", "dit", "--head-dim", "8"], "'dit' is a built-in spec"),
    (["coord", "dit", "--inputs", "mine.py:inputs"], "--inputs only applies"),
    (["lint", "dit", "uvit", "--width-arg", "d", "--heads-arg", "h"],
     "--width-arg, --heads-arg only apply to model-class targets"),
])
def test_a_model_class_option_for_a_spec_is_not_silently_ignored(
        argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``--config`` and its siblings build a spec from a class; a built-in is a spec already,
    so the option would change nothing the user believes it changes."""
    err = error_of(capsys, argv)
    assert needle in err, err
    assert "fix:   drop" in err


def test_no_target_and_no_config_says_how_to_give_one(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text('[project]\nname = "x"\n')
    err = error_of(capsys, ["lint", "--pyproject", str(path)])
    assert "no TARGET given" in err and "[tool.tpcheck]" in err
