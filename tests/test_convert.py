"""convert: the μP Plan lints clean, is idempotent, keeps the base-width model, round-trips
through JSON, matches the mup package's parametrization, and works with the tools users
train with (torch.compile, DistributedDataParallel, state_dict checkpoints)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from fractions import Fraction as Fr
from pathlib import Path

import pytest
import torch
from conftest import spec_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tpcheck.models.dit import DiT, DiTConfig
from tpcheck.rules.stack import LAYERS, Knobs, spec

import tpcheck
from tpcheck import Plan, convert
from tpcheck.cli import main

TARGETS = ["dit", "dit-growing-head-dim", "uvit", "uvit-growing-head-dim", "pixart",
           "pixart-growing-head-dim", "mmdit", "mmdit-growing-head-dim", "diffusers-dit",
           "diffusers-pixart", "diffusers-sd3",
           # an MoE router: a per-token weight times width-sized expert outputs, whose gradient
           # sums over the width
           "diffusers-hidream"]
_PLANS: dict[str, Plan] = {}


def plan_of(target: str) -> Plan:
    if target not in _PLANS:
        _PLANS[target] = convert(spec_of(target))
    return _PLANS[target]


#: The one warning a converted model may keep: a zero-initialised hidden weight (adaLN-Zero,
#: PixArt's zero cross-attention output) stays zero, as the user wrote it.
KEPT = {"TP105"}


def _departures(report: tpcheck.Report) -> list[str]:
    return [f"{f.rule} {f.subject}: {f.message}" for f in report.findings
            if f.severity == "error" or (f.severity == "warning" and f.rule not in KEPT)]


@pytest.mark.parametrize("target", TARGETS)
def test_converted_model_lints_without_errors(target: str) -> None:
    """No error, and no warning but TP105: with a growing head dim too, where q's gradient
    through 1/d logits is Θ(1/n) once trained and the plan's ε ∝ 1/n is right."""
    report = tpcheck.lint(plan_of(target).spec(), seeds=1)
    departures = _departures(report)
    assert not departures, "\n".join(departures)


@pytest.mark.parametrize("optimizer", ["SGD", "Adafactor"])
@pytest.mark.parametrize("target", ["dit", "pixart-growing-head-dim"])
def test_converted_model_lints_clean_under_other_families(target: str, optimizer: str) -> None:
    """The plan has an LR per family: SGD's and Adafactor's must be μP too (Adafactor: a
    zero-initialised weight has no RMS to scale its step by, so it takes Adam's LR)."""
    make = {"SGD": lambda m: torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9),
            "Adafactor": lambda m: torch.optim.Adafactor(m.parameters(), lr=1e-2)}[optimizer]
    source = replace(spec_of(target), optimizer=make)
    report = tpcheck.lint(convert(source, seeds=1).spec(source), seeds=1)
    departures = _departures(report)
    assert not departures, "\n".join(departures)


def test_a_plan_for_muon_on_every_matrix_lints_clean_and_round_trips(tmp_path: Path) -> None:
    """Muon on the input and output matrices too (AdamW for the vectors): the plan's Muon LR
    meets the spectral condition ‖ΔW‖ ∝ √(fan_out / fan_in) over torch's own adjustment
    ``√max(1, rows / cols)``, which is a ``Max`` of width expressions in the JSON."""
    def muon_everywhere(model: torch.nn.Module) -> list[torch.optim.Optimizer]:
        params = list(model.parameters())
        return [torch.optim.Muon([p for p in params if p.ndim == 2], lr=0.02),
                torch.optim.AdamW([p for p in params if p.ndim != 2], lr=1e-3)]

    source = replace(spec(Knobs(attention="fixed")), optimizer=muon_everywhere)
    plan = convert(source, seeds=1)
    path = tmp_path / "plan.json"
    plan.save(path)
    loaded = Plan.load(path)
    assert loaded == plan
    assert any("Max" in mult for rule in loaded.tensors.values()
               for mult in rule.lr_mult.values())
    report = tpcheck.lint(loaded.spec(source), seeds=1)
    departures = _departures(report)
    assert not departures, "\n".join(departures)


def test_converted_dit_matches_the_mup_package() -> None:
    """Same per-tensor invariants I and U as DiT built with MuReadout + set_base_shapes +
    MuAdamW (tests/mup_models.py), both keeping DiT's zero-initialised readout."""
    from mup_models import _mup_spec, _reinit_dit
    from tpcheck.models import dit

    mup_dit = _mup_spec(dit.dit_spec(), "dit", zero_readout=True, reinit=_reinit_dit)
    ours = {t.name: (t.I, t.U) for t in tpcheck.lint(plan_of("dit").spec(), seeds=1).tensors}
    theirs = {t.name: (t.I, t.U) for t in tpcheck.lint(mup_dit, seeds=1).tensors}
    assert ours.keys() == theirs.keys()
    differ = {k: (ours[k], theirs[k]) for k in ours if ours[k] != theirs[k]}
    assert not differ, differ


def test_growing_head_dim_gets_a_1_over_d_scale() -> None:
    plan = plan_of("dit-growing-head-dim")
    assert {a.module for a in plan.attention} == {"blocks.0.attn", "blocks.1.attn"}
    model = plan.spec().factory(256)  # head dim 64, base head dim 16
    scale = model.blocks[0].attn.scale
    assert scale == pytest.approx(math.sqrt(16) / 64)
    base = plan.spec().factory(64).blocks[0].attn.scale
    assert base == pytest.approx(1 / math.sqrt(16))  # unchanged at the base width


def test_diffusers_attention_is_rescaled_through_its_processor() -> None:
    report = tpcheck.lint(plan_of("diffusers-sd3").spec(), select=["TP301"], seeds=1)
    assert report.findings == ()
    sp = tpcheck.lint(spec_of("diffusers-sd3"), select=["TP301"], seeds=1)
    assert sp.findings == ()  # fixed head dim: nothing to rescale, nothing reported


def test_plan_json_round_trip(tmp_path: Path) -> None:
    plan = plan_of("pixart")
    path = tmp_path / "plan.json"
    plan.save(path)
    loaded = Plan.load(path)
    assert loaded == plan
    assert json.loads(path.read_text())["tensors"]["blocks.0.attn.qkv.weight"]["role"] == "hidden"


def test_plan_made_at_proxy_widths_applies_to_a_larger_model() -> None:
    plan = plan_of("dit")
    big = DiT(DiTConfig(hidden_size=1024, depth=2, head_dim=16, num_classes=10, input_size=8,
                        in_channels=4, class_dropout_prob=0.0))
    plan.apply(big)
    rule = plan.tensors["blocks.0.mlp.fc1.weight"]
    rms = big.blocks[0].mlp.fc1.weight.pow(2).mean().sqrt().item()
    assert rms == pytest.approx(rule.std_base * math.sqrt(64 / 1024), rel=1e-4)
    groups = plan.param_groups(big, lr=1e-3)
    lr = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert lr[id(big.blocks[0].mlp.fc1.weight)] == pytest.approx(1e-3 * 64 / 1024)
    assert lr[id(big.x_embedder.proj.weight)] == pytest.approx(1e-3)


def test_apply_after_meta_construction_and_to_empty() -> None:
    plan = plan_of("dit")
    config = DiTConfig(hidden_size=128, depth=2, head_dim=16, num_classes=10, input_size=8,
                       in_channels=4, class_dropout_prob=0.0)
    with torch.device("meta"):
        model = DiT(config)
    assert plan.infer_width(model) == 128
    plan.apply(model)  # structure only: fine on meta
    model = model.to_empty(device="cpu")
    model.initialize_weights()  # the model's own init, then the plan's rescaling
    plan.apply(model)
    rule = plan.tensors["blocks.0.attn.qkv.weight"]
    rms = model.blocks[0].attn.qkv.weight.pow(2).mean().sqrt().item()
    assert rms == pytest.approx(rule.std_base * math.sqrt(64 / 128), rel=1e-4)


def test_function_preserving_mode_keeps_outputs() -> None:
    spec_ = spec_of("dit")
    plan = convert(spec_, base_width=128)  # the checkpoint's width
    torch.manual_seed(0)
    original = spec_.factory(128)
    converted = spec_.factory(128)
    converted.load_state_dict(original.state_dict())
    plan.apply(converted, reinit=False)
    inputs = spec_.inputs(128)
    torch.testing.assert_close(converted(*inputs), original(*inputs))


def test_multiplier_style_matches_init_lr_in_invariants() -> None:
    plan = convert(spec_of("dit"), style="multiplier")
    report = tpcheck.lint(plan.spec(), seeds=1)
    assert report.counts["error"] == 0
    readout = next(t for t in report.tensors if t.name == "final_layer.linear.weight")
    assert (readout.a, readout.U) == (1, 1)


def test_torch_compile_trains_a_converted_model() -> None:
    plan = plan_of("dit")
    spec_ = plan.spec()
    model = spec_.factory(64)
    compiled = torch.compile(model, backend="aot_eager")
    opt = torch.optim.AdamW(plan.param_groups(compiled, lr=1e-3))
    before = model.final_layer.linear.weight.detach().clone()  # adaLN-Zero: blocks start idle
    out = compiled(*spec_.inputs(64))
    loss = (out - torch.ones_like(out)).square().mean()  # the zero readout starts at 0
    loss.backward()
    opt.step()
    assert not torch.equal(before, model.final_layer.linear.weight)


def test_state_dict_round_trip_keeps_the_parametrization(tmp_path: Path) -> None:
    plan = plan_of("mmdit-growing-head-dim")
    spec_ = plan.spec()
    model = spec_.factory(128)
    torch.save(model.state_dict(), tmp_path / "model.pt")
    plan.save(tmp_path / "plan.json")
    fresh = spec_of("mmdit-growing-head-dim").factory(128)
    assert set(fresh.state_dict()) == set(model.state_dict())  # keys untouched
    Plan.load(tmp_path / "plan.json").apply(fresh, reinit=False)
    fresh.load_state_dict(torch.load(tmp_path / "model.pt"))
    inputs = spec_.inputs(128)
    torch.testing.assert_close(fresh(*inputs), model(*inputs))


def _ddp_worker(rank: int, world: int, plan_path: str, port: int, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    plan = Plan.load(plan_path)
    base = spec_of("dit")
    torch.manual_seed(0)
    model = plan.apply(base.factory(128))
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.AdamW(plan.param_groups(ddp, lr=1e-3))
    x, t, y = base.inputs(128)
    for _ in range(2):
        opt.zero_grad()
        pred = ddp(x[rank:rank + 1], t[rank:rank + 1], y[rank:rank + 1])
        (pred - 1.0).square().mean().backward()
        opt.step()
    if rank == 0:
        torch.save({k: v.clone() for k, v in model.state_dict().items()}, out)
    dist.barrier()
    dist.destroy_process_group()


def test_ddp_trains_with_the_plan_groups(tmp_path: Path) -> None:
    import socket

    import torch.multiprocessing as mp

    plan_path = tmp_path / "plan.json"
    plan_of("dit").save(plan_path)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "rank0.pt"
    mp.spawn(_ddp_worker, args=(2, str(plan_path), port, str(out)), nprocs=2, join=True)
    state = torch.load(out)
    readout = state["final_layer.linear.weight"]
    assert torch.isfinite(readout).all() and readout.abs().sum() > 0  # trained off its zero init


def test_convert_cli_writes_a_plan_and_lint_uses_it(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "plan.json"
    assert main(["convert", "dit", "-o", str(path)]) == 0
    out = capsys.readouterr().out
    assert "blocks.{0..1}.adaLN_modulation.1.weight" in out and "hidden" in out
    assert main(["lint", "dit", "--plan", str(path), "--no-tensors"]) == 0
    assert main(["lint", "dit", "--no-tensors"]) == 1


# --- properties on the configurable stack ------------------------------------------------

HALVES = st.sampled_from([Fr(0), Fr(1, 2), Fr(1)])
stacks = st.fixed_dictionaries({layer: st.tuples(HALVES, HALVES, HALVES)
                                for layer in ("inp", "hid", "out")})
FEW = settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def knobs_for(params: dict) -> Knobs:
    knobs = Knobs()
    for layer, (a, b, c) in params.items():
        knobs = knobs.with_abc(layer, a, b, c)
    return knobs


@FEW
@given(params=stacks)
def test_convert_is_idempotent(params: dict) -> None:
    plan = convert(spec(knobs_for(params)), seeds=1)
    again = convert(plan.spec(), seeds=1)
    assert again.to_json()["tensors"] == plan.to_json()["tensors"]
    assert again.attention == plan.attention


@FEW
@given(params=stacks)
def test_base_width_model_and_lrs_equal_the_original(params: dict) -> None:
    original_spec = spec(knobs_for(params))
    plan = convert(original_spec, seeds=1)
    torch.manual_seed(3)
    original = original_spec.factory(32)
    torch.manual_seed(3)
    converted = plan.spec().factory(32)
    for (name, p), q in zip(original.named_parameters(), converted.parameters(), strict=True):
        assert torch.equal(p, q), name
    lr_orig = {id(p): g["lr"] for g in original_spec.build_optimizer(original).param_groups
               for p in g["params"]}
    names = {id(p): name for name, p in original.named_parameters()}
    lr_conv = {name: g["lr"] for g in plan.build_optimizer(converted).param_groups
               for name, p in converted.named_parameters() for q in g["params"] if q is p}
    for pid, lr in lr_orig.items():
        assert lr_conv[names[pid]] == pytest.approx(lr)


@FEW
@given(params=stacks)
def test_converted_stack_lints_clean(params: dict) -> None:
    plan = convert(spec(knobs_for(params)), seeds=1)
    assert tpcheck.lint(plan.spec(), seeds=1).findings == ()


def test_plan_rejects_the_wrong_model() -> None:
    plan = convert(spec(Knobs()), seeds=1)
    with pytest.raises(tpcheck.TpcheckError, match="lacks"):
        plan.apply(DiT(DiTConfig(hidden_size=64, depth=1, head_dim=16, num_classes=10,
                                 input_size=8, in_channels=4)))


def test_replace_keeps_spec_contract() -> None:
    plan = convert(spec(Knobs()), seeds=1)
    converted = plan.spec()
    assert converted.widths == spec(Knobs()).widths and converted.base == 32
    assert replace(converted, widths=(32, 64, 96)).widths == (32, 64, 96)
    assert LAYERS  # the stack's layer list is what the plan covers


def test_attention_it_cannot_rewrite_stops_with_the_module_named() -> None:
    plan = convert(spec(Knobs(attention="growing")), seeds=1)  # SDPA inline in Stack.forward
    with pytest.raises(tpcheck.TpcheckError) as err:
        plan.spec().factory(64)
    message = str(err.value)
    assert "cannot set the attention logit scale" in message and "Stack" in message
    assert "scale=self.scale" in message  # what to change


@FEW
@given(params=stacks, style=st.sampled_from(["init-lr", "multiplier"]))
def test_plan_json_round_trips(params: dict, style: str) -> None:
    plan = convert(spec(knobs_for(params)), seeds=1, style=style)
    assert Plan.from_json(json.loads(json.dumps(plan.to_json()))) == plan


# --- structures with no single μP answer: ties and concatenated fan-ins ----------------------

STRUCTURES = Path(__file__).parent / "fixtures" / "structures.py"


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    from tpcheck.cli import main

    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_tied_readout_module_gets_a_forward_multiplier(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    """GPT-style tie: lint names both roles; convert keeps the embedding's init and LR and puts
    1/m on the readout module's input; the converted model lints without errors."""
    target = f"{STRUCTURES}:tied_module"
    code, out, _ = _cli(capsys, "lint", target)
    assert code == 1 and "emb.weight = head.weight" in out and "input+output" in out
    assert "TP501" in out
    plan_path = tmp_path / "plan.json"
    code, out, err = _cli(capsys, "convert", target, "-o", str(plan_path))
    assert code == 0, err
    assert "emb.weight is tied" in out and "verified" in out
    rule = Plan.load(plan_path).tensors["emb.weight"]
    assert rule.forward_at == "head" and rule.role == "input+output"
    code, out, _ = _cli(capsys, "lint", target, "--plan", str(plan_path), "--no-tensors")
    assert code == 0, out


def test_a_tie_convert_cannot_hook_exits_2_with_the_change_to_make(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _cli(capsys, "convert", f"{STRUCTURES}:tied_functional")
    assert code == 2 and "Traceback" not in err
    assert "emb.weight is tied" in err and "MuSharedReadout" in err
    assert "structures.py:" in err  # the line of the F.linear readout


def test_a_concatenated_fan_in_is_initialised_block_by_block(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = f"{STRUCTURES}:concatenated"
    plan_path = tmp_path / "plan.json"
    code, out, err = _cli(capsys, "convert", target, "-o", str(plan_path))
    assert code == 0, err
    assert "concatenates a width block and a fixed block" in out
    rule = Plan.load(plan_path).tensors["cond.weight"]
    assert [b["size"] for b in rule.blocks] == ["n", "64"]
    assert rule.lr_mult["adam"] == "32/n"  # the width part's 1/m
    code, out, _ = _cli(capsys, "lint", target, "--plan", str(plan_path), "--no-tensors")
    assert code == 0, out
    from fixtures.structures import Concatenated

    model = Plan.load(plan_path).apply(Concatenated(128))
    w = model.cond.weight.detach()
    width_block, fixed_block = w[:, :128], w[:, 128:]
    base = rule.std_base
    assert width_block.pow(2).mean().sqrt().item() == pytest.approx(base * 0.5, rel=0.05)
    assert fixed_block.pow(2).mean().sqrt().item() == pytest.approx(base, rel=0.05)
