"""The rule catalogue's contract (check stage): every rule fires on its bad fixture, naming
the right tensor or node, and stays silent on its good twin — under every optimizer family it
claims to cover. The fixtures live with the rules (``rules/fixtures.py``); adding a rule means
adding its fixture there.
"""

from __future__ import annotations

import pytest
from tpcheck.rules import catalogue
from tpcheck.rules.fixtures import FIXTURES
from tpcheck.rules.stack import Knobs, spec

import tpcheck
import tpcheck.report

_REPORTS: dict[str, tpcheck.report.Report] = {}


def report(knobs: Knobs) -> tpcheck.report.Report:
    """Lint each fixture once per session (keyed by its repr: Knobs holds a dict)."""
    key = repr(knobs)
    if key not in _REPORTS:
        _REPORTS[key] = tpcheck.lint(spec(knobs))
    return _REPORTS[key]


def test_every_rule_has_a_fixture() -> None:
    assert set(FIXTURES) == {r.code for r in catalogue()}
    assert all(f.bad and f.good for f in FIXTURES.values())


BAD = [(code, i, optimizer) for code, f in sorted(FIXTURES.items())
       for i in range(len(f.bad)) for optimizer in f.optimizers]
GOOD = [(code, i, optimizer) for code, f in sorted(FIXTURES.items())
        for i in range(len(f.good)) for optimizer in f.optimizers]


@pytest.mark.parametrize(("code", "case", "optimizer"), BAD)
def test_rule_fires_on_its_bad_fixture(code: str, case: int, optimizer: str) -> None:
    build, subject = FIXTURES[code].bad[case]
    found = report(build(optimizer)).findings
    hits = [f for f in found if f.rule == code]
    assert hits, f"{code} did not fire under {optimizer}; got {sorted({f.rule for f in found})}"
    assert any(subject in f"{f.tensor} {f.node} {f.module}" for f in hits), hits


@pytest.mark.parametrize(("code", "case", "optimizer"), GOOD)
def test_rule_is_silent_on_its_good_fixture(code: str, case: int, optimizer: str) -> None:
    build = FIXTURES[code].good[case]
    found = report(build(optimizer)).findings
    assert not [f for f in found if f.rule == code], [f for f in found if f.rule == code]


@pytest.mark.parametrize("optimizer", sorted({o for f in FIXTURES.values()
                                                for o in f.optimizers}))
def test_canonical_mup_has_no_error_under_any_family(optimizer: str) -> None:
    """The good twin of every update rule: canonical μP for the family lints clean."""
    errors = [f for f in report(Knobs.mup(optimizer)).findings if f.severity == "error"]
    assert not errors, errors
