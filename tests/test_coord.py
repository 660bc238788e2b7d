"""The coord check on a three-layer model whose exponents are known in closed form.

``Tiny`` is x → input (8 → n, frozen) → GELU → hidden (n → n) → GELU → readout (n → 4), no
biases. The input layer is frozen so that the hidden layer's own update is the only term in the
hidden activation's change: no width-independent term (the input layer's update, a bias)
competes with it at small widths, and the measured slope is the theory's exponent already at
n = 32…512 (docs/theory.md §4):

* SP (std 1/√fan_in everywhere, one global Adam LR): hidden ``u = 1``, readout ``u = 3/2``;
* μP (readout std 1/n, hidden and readout LR ÷ m): every ``u = 0``.
"""

from __future__ import annotations

import json

import pytest
import sympy
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from tpcheck.rules.stack import Knobs
from tpcheck.rules.stack import spec as stack_spec

from tpcheck import ModelSpec, TpcheckError, coord
from tpcheck.cli import main
from tpcheck.coord import judge
from tpcheck.coord.record import OUTPUT

BASE = 32
WIDTHS = (32, 64, 128, 256, 512)


class Tiny(nn.Module):
    def __init__(self, n: int, mup: bool, nan_at: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.n, self.nan_at, self.calls = n, nan_at, 0
        self.inp = nn.Linear(8, n, bias=False)
        self.hid = nn.Linear(n, n, bias=False)
        self.out = nn.Linear(n, 4, bias=False)
        self.inp.weight.requires_grad_(False)
        with torch.no_grad():
            self.inp.weight.normal_(0.0, 8 ** -0.5)
            self.hid.weight.normal_(0.0, n ** -0.5)
            self.out.weight.normal_(0.0, 1 / n if mup else n ** -0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.out(F.gelu(self.hid(F.gelu(self.inp(x)))))  # (B, T, 4)
        self.calls += 1
        if self.nan_at and (self.n, self.calls - 1) == self.nan_at:  # forward t = step
            y = y * float("nan")
        return y


def tiny_spec(mup: bool, nan_at: tuple[int, int] | None = None) -> ModelSpec:
    def optimizer(model: Tiny) -> torch.optim.Optimizer:
        scale = BASE / model.n if mup else 1.0  # μP: hidden and readout LR ÷ m (Adam)
        return torch.optim.AdamW([{"params": [model.hid.weight, model.out.weight],
                                   "lr": 1e-2 * scale}], lr=1e-2, weight_decay=0.0)

    def inputs(n: int) -> tuple[torch.Tensor]:
        return (torch.randn(4, 8, 8, generator=torch.Generator().manual_seed(0)),)

    return ModelSpec(lambda n: Tiny(n, mup, nan_at), inputs, (32, 64, 128), base_width=BASE,
                     optimizer=optimizer, name="tiny-mup" if mup else "tiny-sp")


@pytest.fixture(scope="module")
def sp() -> coord.CoordResult:
    return coord.coord_check(tiny_spec(mup=False), widths=WIDTHS, steps=3, seeds=2)


@pytest.fixture(scope="module")
def mup() -> coord.CoordResult:
    return coord.coord_check(tiny_spec(mup=True), widths=WIDTHS, steps=3, seeds=2)


def by_name(result: coord.CoordResult) -> dict[str, coord.Record]:
    return {r.name: r for r in result.records}


def test_sp_hidden_update_grows_like_n(sp):
    hid = by_name(sp)["hid"]
    assert hid.update_slopes[0].mean == pytest.approx(1.0, abs=0.15)
    assert hid.size_slope.mean == pytest.approx(0.0, abs=0.15)
    out = by_name(sp)[OUTPUT]
    assert out.update_slopes[0].mean > 1.0  # predicted 3/2: the SP readout blows up
    assert {r.verdict for r in sp.records} == {"agree"}


def test_mup_updates_are_width_independent(mup):
    for name in ("hid", "out", OUTPUT):
        for slope in by_name(mup)[name].update_slopes:
            assert abs(slope.mean) <= 0.15, (name, slope)
    assert mup.agreement_rate == 1.0


def test_static_prediction_beside_measurement(sp, mup):
    assert by_name(sp)["hid"].prediction.u == 1
    assert by_name(sp)["out"].prediction.u == sympy.Rational(3, 2)
    assert by_name(mup)["out"].prediction.s == sympy.Rational(-1, 2)
    frozen = by_name(sp)["inp"]  # nothing trainable feeds it: predicted and measured zero
    assert frozen.update_slopes[0].mean == float("-inf")
    assert frozen.update_verdict == "agree"


def test_disagreement_is_shown_not_hidden(sp):
    hid = by_name(sp)["hid"]
    wrong = judge.update_verdict(hid.prediction.u - 1, hid.update_slopes[0], coord.TOLERANCE,
                                  "n")
    assert wrong == "disagree"
    text = sp.to_text()
    assert "agreement: 100.0%" in text and "hid" in text


class Residual(nn.Module):
    """x → input (8 → n, frozen) → h; y = h + hid2(hid1(h)) with std-0.02 hidden layers.

    The branch has size ``0.02² · n`` against a Θ(1) stream: ``s = 1`` as n → ∞ (docs/theory.md §4),
    but ``E[y²] = 1 + (0.0004·n)²`` is flat at n ≤ 512; the leading term shows (local slope
    within 0.25 of 1) from ``n = √3 / 0.0004 ≈ 4,330``.
    """

    def __init__(self, n: int, std: float = 0.02) -> None:
        super().__init__()
        self.inp = nn.Linear(8, n, bias=False)
        self.hid1 = nn.Linear(n, n, bias=False)
        self.hid2 = nn.Linear(n, n, bias=False)
        self.out = nn.Linear(n, 4, bias=False)
        self.inp.weight.requires_grad_(False)
        with torch.no_grad():
            self.inp.weight.normal_(0.0, 8 ** -0.5)
            for layer in (self.hid1, self.hid2):
                layer.weight.normal_(0.0, std)
            self.out.weight.normal_(0.0, n ** -0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        return self.out(h + self.hid2(self.hid1(h)))


def test_finite_width_size_prediction_and_crossover():
    spec = ModelSpec(Residual, lambda n: (torch.randn(4, 8, 8),), (32, 64, 128), base_width=BASE,
                     optimizer=lambda m: torch.optim.AdamW(m.parameters(), lr=1e-3),
                     name="residual")
    result = coord.coord_check(spec, widths=WIDTHS, steps=1, seeds=2)
    branch = by_name(result)["hid2"]
    assert branch.prediction.s == 1 and branch.size_slope.mean == pytest.approx(1.0, abs=0.15)
    out = by_name(result)["out"]  # reads the stream h + branch through an SP readout
    assert out.prediction.s == 1
    assert abs(out.size_slope.mean) < 0.25  # measured: the stream is still flat here
    assert out.prediction.s_here == pytest.approx(out.size_slope.mean, abs=0.1)
    assert out.size_verdict == "agree"
    crossover = 3 ** 0.5 / 0.02 ** 2
    assert crossover / 2 ** 0.5 <= out.prediction.s_from <= crossover * 2 ** 0.5
    assert "s from n≈" in result.to_text()


@settings(max_examples=6, deadline=None)
@given(std=st.floats(min_value=0.004, max_value=0.25))
def test_size_prediction_tracks_the_measured_slope_through_the_crossover(std):
    """For any branch constant, from flat (std 0.004: crossover beyond 10⁵) to fully grown
    (std 0.25: from n ≈ 30), the constants-included slope is what the model measures."""
    spec = ModelSpec(lambda n: Residual(n, std), lambda n: (torch.randn(4, 8, 8),), (32, 64, 128),
                     base_width=BASE, name="residual")
    result = coord.coord_check(spec, widths=WIDTHS, steps=1, seeds=2)
    out = by_name(result)["out"]
    assert out.prediction.s == 1
    assert out.prediction.s_here == pytest.approx(out.size_slope.mean, abs=0.15)


def test_divergence_reported_with_width_and_step():
    result = coord.coord_check(tiny_spec(mup=False, nan_at=(64, 2)), widths=(32, 64, 128),
                               steps=3, seeds=1, static=False)
    assert [(d.width, d.step) for d in result.divergences] == [(64, 2)]
    assert result.exit_code == 1
    assert "width 64 diverged at step 2" in result.to_text()


def test_too_few_widths_is_a_user_error():
    with pytest.raises(TpcheckError, match="at least 3 distinct widths"):
        coord.coord_check(tiny_spec(mup=False), widths=(32, 64, 64))
    assert main(["coord", "dit", "--widths", "64,128"]) == 2  # the CLI: exit 2, no traceback


def test_json_has_the_documented_keys(sp):
    doc = json.loads(json.dumps(sp.to_json()))  # strict JSON: no NaN / Infinity
    assert {"tpcheck", "check", "model", "widths", "steps", "seeds", "lr", "optimizer",
            "tolerance", "verdict_step", "records", "divergences", "summary", "seconds",
            "notes"} <= set(doc)
    assert {"records", "agree", "disagree", "not_predicted", "not_measured",
            "agreement_rate"} <= set(doc["summary"])
    record = doc["records"][0]
    assert {"name", "kind", "module_type", "shape", "size", "update", "slopes", "predicted",
            "verdict", "size_verdict", "update_verdict", "aliases"} <= set(record)
    assert len(record["size"]) == doc["steps"] + 1 and len(record["update"]) == doc["steps"]
    assert len(record["size"][0]) == len(doc["widths"])
    assert {"s", "u", "node"} <= set(record["predicted"])


def test_plot_writes_a_png(sp, tmp_path):
    pytest.importorskip("matplotlib")
    from tpcheck.coord.plot import plot

    path = plot(sp, tmp_path / "coord.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_attention_logits_are_recorded():
    result = coord.coord_check(stack_spec(Knobs(attention="fixed")), widths=(32, 64, 128),
                               steps=1, seeds=1, static=False)
    logits = by_name(result)["logits"]
    assert logits.kind == "logits" and logits.size[0][0] > 0


def test_uvit_residual_stream_is_flat_at_small_widths_and_predicted_so():
    """U-ViT's std-0.02 blocks: the stream is n^1 as n → ∞ but flat at n ≤ 256, and the
    constants-included prediction says so (and from which width n^1 shows)."""
    from tpcheck.targets import load_target

    result = coord.coord_check(load_target("uvit"), widths=(64, 128, 256), steps=1, seeds=1)
    block = by_name(result)["in_blocks.0"]
    assert block.prediction.s == 1
    assert abs(block.size_slope.mean) < 0.25
    assert block.size_verdict == "agree"
    assert block.prediction.s_from is not None and block.prediction.s_from > 256


def test_too_few_steps_say_so_when_a_zero_readout_holds_the_gradient():
    """A zero readout blocks every gradient upstream at step 1: with --steps 1 the update
    verdicts mean nothing, and the result says to use more steps; with 3 it does not."""
    zero_readout = stack_spec(Knobs.mup("adamw", zero=("out",)))
    short = coord.coord_check(zero_readout, steps=1, seeds=1)
    assert any("use --steps ≥ 3" in note for note in short.notes), short.notes
    enough = coord.coord_check(zero_readout, steps=3, seeds=1)
    assert not any("--steps" in note for note in enough.notes), enough.notes


def test_fail_under_turns_the_agreement_into_an_exit_code(capsys):
    """`coord --fail-under RATE` exits 1 exactly when the agreement is under RATE."""
    target = "tpcheck.rules.stack:spec"
    argv = ["coord", target, "--steps", "3", "--seeds", "1", "--format", "json"]
    assert main(argv) == 0
    rate = json.loads(capsys.readouterr().out)["summary"]["agreement_rate"]
    assert rate is not None and rate > 0.5
    assert main([*argv, "--fail-under", f"{rate:.6f}"[:-1]]) == 0  # at (just under) the rate
    capsys.readouterr()
    assert main([*argv, "--fail-under", f"{min(rate + 0.01, 1.0) if rate < 1 else 1.0}"]) == (
        1 if rate < 1 else 0)
    err = capsys.readouterr().err
    if rate < 1:
        assert "is under --fail-under" in err


def test_the_cli_default_tolerance_is_the_judges():
    """`tpcheck coord --help` shows the default without importing the coord stage: the two
    constants must stay equal."""
    from tpcheck.cli.coord import TOLERANCE

    assert TOLERANCE == judge.TOLERANCE
