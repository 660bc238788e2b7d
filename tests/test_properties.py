"""Property tests (hypothesis) for the algebra the rules rest on (measure, propagate, check).

* the verdict on every tensor of a randomly parametrised stack equals the closed-form rule of
  docs/theory.md §3, computed here independently of tpcheck;
* every member of an abc-symmetry class gets the same verdict (TP4 Eq. 5, TP5 Lemma J.1);
* width fits recover any affine dimension and reject non-affine ones;
* lint leaves the model, its training mode and the global RNG as they were;
* any valid μP stack, under any optimizer family and in any member of its symmetry class,
  lints with zero errors, and one exponent moved off μP is an error on that tensor.
"""

from __future__ import annotations

import copy
from fractions import Fraction as Fr

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tpcheck.rules.stack import FAMILY, ROLE, Knobs, Stack, spec

import tpcheck
from tpcheck.symbols import n
from tpcheck.widths import fit_dim

HALVES = st.sampled_from([Fr(-1, 2), Fr(0), Fr(1, 2), Fr(1), Fr(3, 2)])
SLOW = settings(max_examples=8, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
WEIGHTS = ("inp", "hid", "gate", "out")
EXPECTED = {"input": (Fr(0), {"adam": Fr(0), "sgd": Fr(-1)}),
            "hidden": (Fr(1, 2), {"adam": Fr(1), "sgd": Fr(0)}),
            "output": (Fr(1), {"adam": Fr(1), "sgd": Fr(1)})}


def closed_form(role: str, a: Fr, b: Fr, c: Fr, optimizer: str) -> set[str]:
    """Rule codes docs/theory.md §3 assigns to one weight with exponents (a, b, c)."""
    init, update = EXPECTED[role][0], EXPECTED[role][1][optimizer]
    I = a + b
    U = a + c if optimizer == "adam" else 2 * a + c
    codes = set()
    if I < init:
        codes.add({"output": "TP101", "hidden": "TP102", "input": "TP103"}[role])
    elif I > init:
        codes.add("TP104")
    if U < update:
        codes.add({"hidden": "TP201", "output": "TP202", "input": "TP203"}[role])
    elif U > update:
        codes.add("TP204" if role == "input" else "TP205")
    return codes


def verdicts(knobs: Knobs) -> dict[str, set[str]]:
    report = tpcheck.lint(spec(knobs), select=["TP1", "TP2"])
    out: dict[str, set[str]] = {f"{layer}.weight": set() for layer in WEIGHTS}
    for f in report.findings:
        if f.tensor in out:
            out[f.tensor].add(f.rule)
    return {k: v for k, v in out.items() if k != "gate.weight" or knobs.gate}


abc = st.tuples(HALVES, HALVES, HALVES)
stacks = st.fixed_dictionaries({layer: abc for layer in WEIGHTS})


def knobs_for(params: dict, gate: bool, optimizer: str) -> Knobs:
    knobs = Knobs(gate=gate, optimizer=optimizer)
    for layer, (a, b, c) in params.items():
        knobs = knobs.with_abc(layer, a, b, c)
    return knobs


@SLOW
@given(params=stacks, gate=st.booleans(), optimizer=st.sampled_from(["adam", "sgd"]))
def test_verdict_equals_closed_form(params: dict, gate: bool, optimizer: str) -> None:
    knobs = knobs_for(params, gate, "adamw" if optimizer == "adam" else "sgd")
    found = verdicts(knobs)
    for name, codes in found.items():
        layer = name.split(".")[0]
        a, b, c = params[layer]
        assert codes == closed_form(ROLE[layer], a, b, c, optimizer), (name, params[layer])


@SLOW
@given(params=stacks, theta=st.sampled_from([Fr(-1, 2), Fr(1, 2), Fr(1)]),
       optimizer=st.sampled_from(["adam", "sgd"]))
def test_abc_symmetry_class_shares_its_verdict(params: dict, theta: Fr, optimizer: str) -> None:
    """(a, b, c) → (a+θ, b−θ, c−θ) for Adam, (a+θ, b−θ, c−2θ) for SGD: same training."""
    shift = theta if optimizer == "adam" else 2 * theta
    moved = {k: (a + theta, b - theta, c - shift) for k, (a, b, c) in params.items()}
    opt = "adamw" if optimizer == "adam" else "sgd"
    assert verdicts(knobs_for(params, False, opt)) == verdicts(knobs_for(moved, False, opt))


@given(p=st.fractions(min_value=-4, max_value=8, max_denominator=4),
       q=st.integers(min_value=-64, max_value=4096),
       widths=st.lists(st.integers(min_value=8, max_value=4096), min_size=3, max_size=5,
                       unique=True))
def test_fit_dim_recovers_affine_dims(p: Fr, q: int, widths: list[int]) -> None:
    values = {w: p * w + q for w in widths}
    if any(v.denominator != 1 for v in values.values()):
        return
    expr = fit_dim({w: int(v) for w, v in values.items()})
    assert expr is not None
    for w, v in values.items():
        assert expr.subs(n, w) == v


@given(cap=st.integers(min_value=9, max_value=100),
       widths=st.lists(st.integers(min_value=8, max_value=200), min_size=3, max_size=5,
                       unique=True))
def test_fit_dim_rejects_a_cap_inside_the_widths(cap: int, widths: list[int]) -> None:
    values = {w: min(w, cap) for w in widths}
    below = [w for w in widths if w < cap]
    above = [w for w in widths if w > cap]
    expr = fit_dim(values)
    if (len(below) >= 2 and above) or (below and len(above) >= 2):
        assert expr is None
    elif expr is not None:
        assert all(expr.subs(n, w) == v for w, v in values.items())


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params=stacks, train=st.booleans())
def test_lint_never_changes_the_model(params: dict, train: bool) -> None:
    """A factory may return an object the user holds: lint leaves it, and the RNG, as they were."""
    knobs = knobs_for(params, True, "adamw")
    held = {w: Stack(w, knobs).train(train) for w in (32, 64, 128)}
    before = {w: copy.deepcopy(m.state_dict()) for w, m in held.items()}
    user = spec(knobs)
    from dataclasses import replace

    user = replace(user, factory=lambda w: held[w])
    rng = torch.get_rng_state()
    tpcheck.lint(user)
    assert torch.equal(torch.get_rng_state(), rng)
    for w, model in held.items():
        assert model.training == train
        assert all(m.training == train for m in model.modules())
        assert not any("width_mult" in vars(m) for m in model.modules())
        state = model.state_dict()
        assert state.keys() == before[w].keys()
        assert all(torch.equal(state[k], before[w][k]) for k in state)
        assert all(p.requires_grad for p in model.parameters())


FAMILY_OPTIMIZERS = st.sampled_from(["adamw", "sgd", "adafactor", "lamb", "muon", "lion"])


def _symmetric(optimizer: str, layer: str, theta: Fr, knobs: Knobs) -> Knobs:
    """Move one layer along its abc-symmetry class for the optimizer's family: Adam-like and
    Muon (a+θ, b−θ, c−θ), SGD (a+θ, b−θ, c−2θ), Adafactor (a+θ, b−θ, c) — its step already
    scales with the weight, so U = a + c + b stays."""
    family = FAMILY[optimizer]
    dc = {"sgd": -2 * theta, "adafactor": Fr(0)}.get(family, -theta)
    return knobs.shifted(layer, da=theta, db=-theta, dc=dc)


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(optimizer=FAMILY_OPTIMIZERS,
       thetas=st.fixed_dictionaries({layer: st.sampled_from([Fr(-1, 2), Fr(0), Fr(1, 2)])
                                     for layer in ("inp", "hid", "out")}),
       gate=st.booleans(), attention=st.sampled_from([None, "fixed"]),
       conditioning=st.booleans(), post_readout=st.booleans())
def test_any_valid_mup_stack_lints_clean(optimizer: str, thetas: dict, gate: bool,
                                         attention: str | None, conditioning: bool,
                                         post_readout: bool) -> None:
    """μP in any member of its symmetry class, under any family: zero errors."""
    knobs = Knobs.mup(optimizer, gate=gate, attention=attention, conditioning=conditioning,
                      post_readout=post_readout)
    for layer, theta in thetas.items():
        knobs = _symmetric(optimizer, layer, theta, knobs)
    errors = [f for f in tpcheck.lint(spec(knobs)).findings if f.severity == "error"]
    assert not errors, errors


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(optimizer=FAMILY_OPTIMIZERS, layer=st.sampled_from(["inp", "hid", "out"]),
       flip=st.sampled_from([(Fr(-1, 2), Fr(0)), (Fr(0), Fr(-1, 2)), (Fr(0), Fr(1, 2))]),
       theta=st.sampled_from([Fr(-1, 2), Fr(0), Fr(1, 2)]))
def test_one_exponent_off_mup_is_an_error_on_that_tensor(optimizer: str, layer: str,
                                                         flip: tuple[Fr, Fr],
                                                         theta: Fr) -> None:
    """An init made larger, or an LR moved either way, from a valid μP stack: an error that
    names the tensor."""
    db, dc = flip
    knobs = _symmetric(optimizer, layer, theta, Knobs.mup(optimizer)).shifted(layer, db=db,
                                                                             dc=dc)
    findings = tpcheck.lint(spec(knobs)).findings
    assert any(f.severity == "error" and f.tensor == f"{layer}.weight" for f in findings), (
        [(f.rule, f.tensor, f.severity) for f in findings])
