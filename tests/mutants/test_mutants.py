"""The mutation suite (check stage, end to end): zero false alarms on correct μP models under
every optimizer family, and every single deliberate mistake reported with the right rule on the
right tensor — and nothing else at error level. ``python tests/mutants/table.py`` prints the
confusion table (right / false alarm / miss) of the same cases.
"""

from __future__ import annotations

import pytest
from cases import judge, models

MODELS = {m.name: m for m in models()}
MUTANTS = [(m.name, i) for m in MODELS.values() for i in range(len(m.mutants))]


@pytest.mark.parametrize("model", sorted(MODELS))
def test_correct_model_has_no_error(model: str) -> None:
    verdict = judge(MODELS[model].build(), errors=())
    assert verdict.right, f"false alarms: {verdict.false_alarms}"


@pytest.mark.parametrize(("model", "index"), MUTANTS,
                         ids=[f"{m}: {MODELS[m].mutants[i].name}" for m, i in MUTANTS])
def test_mutant_is_reported_exactly(model: str, index: int) -> None:
    mutant = MODELS[model].mutants[index]
    verdict = judge(mutant.build(), mutant.errors, mutant.warnings)
    assert not verdict.missed, f"missed: {verdict.missed}"
    assert not verdict.false_alarms, f"false alarms: {verdict.false_alarms}"
