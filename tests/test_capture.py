"""Capture: the recording tracer and ``torch.export`` must see the same model (a differential
test: two independent traces of one forward, one report), and tracing leaves no trace on the
user's model (train/eval modes, dropout probabilities, RNG).
"""

from __future__ import annotations

import pytest
import torch
from conftest import spec_of
from tpcheck.models import registry

import tpcheck
from tpcheck.capture import capture, training_graph


def _verdicts(report: tpcheck.Report) -> tuple[set, set]:
    """What a report says, without the tracer's node names: tensors and findings."""
    tensors = {(t.name, t.role, t.fan_in, t.fan_out, str(t.I), str(t.U)) for t in report.tensors}
    findings = {(f.rule, f.severity, f.tensor, f.module, f.found, f.expected)
                for f in report.findings}
    return tensors, findings


@pytest.mark.parametrize("target", sorted(registry.BUILTINS))
def test_recorder_and_export_give_the_same_report(target: str) -> None:
    """Where export can trace the model at all; a forward that needs real values (a mask's
    ``nonzero``, ``.tolist()``) is traced by the recorder on the CPU and refused by export."""
    spec = spec_of(target)
    recorded = tpcheck.lint(spec)
    if recorded.traced_on == "cpu":
        with pytest.raises(tpcheck.TpcheckError, match=r"torch\.export"):
            tpcheck.lint(spec, tracer="export", device="cpu")
        return
    exported = tpcheck.lint(spec, tracer="export")
    assert recorded.traced_on == exported.traced_on == "meta"
    rec_tensors, rec_findings = _verdicts(recorded)
    exp_tensors, exp_findings = _verdicts(exported)
    assert rec_tensors == exp_tensors
    assert rec_findings == exp_findings
    assert recorded.counts == exported.counts


def test_tracing_restores_modes_and_dropout() -> None:
    """Train mode and p = 0 while tracing; the model's own settings afterwards."""
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.3), torch.nn.Linear(8, 2))
    model.eval()
    model[0].train()
    with training_graph(model):
        assert all(m.training for m in model.modules())
        assert model[1].p == 0.0
    assert not model.training and model[0].training and not model[2].training
    assert model[1].p == 0.3


def test_dropout_is_off_in_the_traced_forward() -> None:
    """A traced forward with dropout is the deterministic training graph."""
    spec = spec_of("diffusers-dit")  # diffusers' LabelEmbedding drops labels with p = 0.1
    first = capture(spec).traces[64].nodes
    second = capture(spec).traces[64].nodes
    assert [n.target for n in first] == [n.target for n in second]


def test_capture_leaves_the_rng_alone() -> None:
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    capture(spec_of("dit"))
    assert torch.equal(torch.rand(3), expected)
