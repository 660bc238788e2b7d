"""One bad fixture per rule: the rule fires on it, naming the right tensor or node; the μP
fixture triggers nothing. Adding a rule means adding a row to BAD."""

from __future__ import annotations

from fractions import Fraction as Fr

import pytest
from fixtures.stack import Knobs, spec
from tpcheck.rules import catalogue

import tpcheck
import tpcheck.report

MUP = Knobs()

#: rule code -> (knobs that violate it, the tensor or node the finding must name)
BAD: dict[str, tuple[Knobs, str]] = {
    "TP001": (Knobs(capped_hidden_init=True), "hid.weight"),
    "TP002": (Knobs(unused=True), "spare"),
    "TP101": (MUP.with_abc("out", 0, Fr(1, 2), 1), "out.weight"),
    "TP102": (MUP.with_abc("hid", 0, 0, 1), "hid.weight"),
    "TP103": (MUP.with_abc("inp", 0, Fr(-1, 2), 0), "inp.weight"),
    "TP104": (MUP.with_abc("hid", 0, 1, 1), "hid.weight"),
    "TP105": (Knobs(zero=("hid",)), "hid.weight"),
    "TP106": (Knobs(attention="fixed", zero=("qkv", "proj")), "proj.weight"),
    "TP201": (MUP.with_abc("hid", 0, Fr(1, 2), 0), "hid.weight"),
    "TP202": (MUP.with_abc("out", 0, 1, 0), "out.weight"),
    "TP203": (MUP.with_abc("inp", 0, 0, -1), "inp.weight"),
    "TP204": (MUP.with_abc("inp", 0, 0, 1), "inp.weight"),
    "TP205": (MUP.with_abc("hid", 0, Fr(1, 2), 2), "hid.weight"),
    "TP301": (Knobs(attention="growing"), "scaled_dot_product_attention"),
    "TP401": (Knobs(weight_decay=0.1, wd_scaled=False), "hid.weight"),
    "TP402": (Knobs(eps_scaled=False), "hid.weight"),
    "TP501": (Knobs(tie=True), "inp.weight"),
    "TP502": (Knobs(sum_over_width=True), "sum"),
    "TP503": (Knobs(multiplier_in_n=True).with_abc("out", 1, 0, 0), "out.weight"),
    "TP504": (Knobs(mixed_fan_in=True), "hid.weight"),
    "TP601": (MUP.with_abc("hid", 0, 0, 1), "hid.weight"),
    "TP602": (MUP.with_abc("hid", 0, Fr(1, 2), 0), "hid.weight"),
    "TP603": (Knobs(frozen_biases=True).with_abc("inp", 0, 0, 1).with_abc("hid", 0, Fr(1, 2), 2)
              .with_abc("out", 0, 1, 2), "linear_2"),
}
#: Good twins that differ from the bad fixture only in the fix.
GOOD: dict[str, Knobs] = {
    "TP106": Knobs(attention="fixed", zero=("proj",)),
    "TP301": Knobs(attention="growing", attn_scale="1/d"),
    "TP401": Knobs(weight_decay=0.1, wd_scaled=True),
    "TP501": Knobs(tie=True).with_abc("out", 1, 0, 0),
    "TP503": Knobs().with_abc("out", 1, 0, 0),
}


_REPORTS: dict[str, tpcheck.report.Report] = {}


def report(knobs: Knobs) -> tpcheck.report.Report:
    """Lint each fixture once per session (keyed by its repr: Knobs holds a dict)."""
    key = repr(knobs)
    if key not in _REPORTS:
        _REPORTS[key] = tpcheck.lint(spec(knobs))
    return _REPORTS[key]


def test_every_rule_has_a_fixture() -> None:
    assert set(BAD) == {r.code for r in catalogue()}


@pytest.mark.parametrize("code", sorted(BAD))
def test_rule_fires_on_its_bad_fixture(code: str) -> None:
    knobs, subject = BAD[code]
    findings = [f for f in report(knobs).findings if f.rule == code]
    assert findings, f"{code} did not fire; got {[f.rule for f in report(knobs).findings]}"
    assert any(subject in f"{f.tensor} {f.node}" for f in findings), findings


@pytest.mark.parametrize("code", sorted(GOOD))
def test_fixed_twin_is_clean_of_the_rule(code: str) -> None:
    findings = report(GOOD[code]).findings
    assert not [f for f in findings if f.rule == code], findings
    assert report(GOOD[code]).counts["error"] == 0, findings


def test_mup_stack_has_no_findings() -> None:
    assert report(MUP).findings == ()


def test_exit_code_follows_errors() -> None:
    assert report(MUP).exit_code == 0
    assert report(BAD["TP104"][0]).exit_code == 0  # warnings only
    assert report(BAD["TP201"][0]).exit_code == 1
