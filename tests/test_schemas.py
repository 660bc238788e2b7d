"""The schemas users' files are validated against (tpcheck/schemas/, docs/report.schema.json)
and tpcheck's own validator (tpcheck/schema.py): the schemas are valid JSON Schema, and the
validator — which the core uses so that it does not depend on jsonschema — reaches the same
verdict as jsonschema on every document, valid or not.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tpcheck.schema import load, problems

REPO = Path(__file__).resolve().parents[1]
SCHEMAS = {"config": load("config"), "plan": load("plan"),
           "report": json.loads((REPO / "docs" / "report.schema.json").read_text())}


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_each_schema_is_valid_json_schema(name: str) -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMAS[name])


def agree(document: object, name: str) -> None:
    schema = SCHEMAS[name]
    ours = problems(document, schema)
    theirs = list(jsonschema.Draft202012Validator(schema).iter_errors(document))
    assert bool(ours) == bool(theirs), (document, [p.message for p in ours],
                                        [e.message for e in theirs])


# --- [tool.tpcheck]: documents near the schema, right and wrong ------------------------------

codes = st.sampled_from(["TP1", "TP101", "sp-readout", "", "TP402"])
values = st.one_of(st.integers(-3, 300), st.text(max_size=4), st.booleans(), st.none(),
                   st.floats(allow_nan=False), st.lists(st.integers(-1, 300), max_size=4))
ignore_entry = st.dictionaries(
    st.sampled_from(["pattern", "rules", "reason", "why"]),
    st.one_of(st.text(max_size=5), st.lists(codes, max_size=3), st.integers()), max_size=4)
config_values = {
    "targets": st.one_of(st.lists(st.text(max_size=6), max_size=3), values),
    "widths": st.one_of(st.lists(st.integers(-8, 512), max_size=5),
                        st.lists(st.one_of(st.integers(1, 512), st.text(max_size=2)), max_size=4),
                        values),
    "select": st.one_of(st.lists(codes, max_size=3), values),
    "ignore": st.one_of(st.lists(codes, max_size=3), st.just("TP402"), values),
    "format": st.one_of(st.sampled_from(["text", "json", "sarif", "xml"]), values),
    "per-tensor-ignores": st.one_of(st.lists(ignore_entry, max_size=2), values),
    "target": values,
}
configs = st.fixed_dictionaries({}, optional=config_values)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs)
def test_the_config_validator_agrees_with_jsonschema(config: dict) -> None:
    agree(config, "config")


# --- plan files: a real plan, mutated ----------------------------------------------------------


@pytest.fixture(scope="module")
def plan() -> dict:
    from tpcheck.rules.stack import Knobs, spec

    from tpcheck.conversion import convert

    return convert(spec(Knobs.mup("adamw", attention="growing"))).to_json()


def test_a_real_plan_is_valid(plan: dict) -> None:
    assert problems(plan, SCHEMAS["plan"]) == []
    jsonschema.validate(plan, SCHEMAS["plan"])


mutations = st.lists(st.tuples(st.integers(0, 10_000), st.one_of(
    st.none(), st.integers(-2, 3), st.text(max_size=3), st.floats(allow_nan=False),
    st.booleans(), st.just([]), st.just({}), st.just("delete"))), min_size=1, max_size=3)


def locations(node: object) -> list[tuple[object, object]]:
    """Every (container, key) pair in a JSON document, depth first."""
    out: list[tuple[object, object]] = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(
        node, list) else ()
    for key, child in items:
        out.append((node, key))
        out += locations(child)
    return out


def mutate(document: dict, edits: list[tuple[int, object]]) -> dict:
    """Replace (or delete) the values at a few of the document's paths."""
    data = json.loads(json.dumps(document))
    for index, value in edits:
        paths = locations(data)
        if not paths:
            return data
        parent, key = paths[index % len(paths)]
        if value == "delete" and isinstance(parent, dict):
            del parent[key]
        else:
            parent[key] = value  # type: ignore[index]
    return data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(mutations)
def test_the_plan_validator_agrees_with_jsonschema(plan: dict, edits: list) -> None:
    agree(mutate(plan, edits), "plan")


# --- reports -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def report() -> dict:
    from tpcheck.rules.stack import Knobs, spec

    import tpcheck
    from tpcheck.runreport import RunReport

    bad = tpcheck.lint(spec(Knobs.mup("sgd").shifted("hid", dc=-1)))
    return RunReport((bad,)).to_json()


def test_a_real_report_is_valid(report: dict) -> None:
    assert report["targets"][0]["findings"]
    assert problems(report, SCHEMAS["report"]) == []


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(mutations)
def test_the_report_validator_agrees_with_jsonschema(report: dict, edits: list) -> None:
    agree(mutate(report, edits), "report")


def test_the_validator_refuses_keywords_it_does_not_implement() -> None:
    """A schema edit that uses, say, maxItems must fail loudly, not validate less."""
    with pytest.raises(ValueError, match="maxItems"):
        problems([1, 2], {"type": "array", "maxItems": 1})
