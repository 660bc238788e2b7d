"""`diffusers:ClassName` targets: the spec tpcheck builds from a diffusers class alone.

Guards the spec-generation contract on real diffusers classes: which config entries follow the
width and which stay fixed, the depth kept, the inputs inferred, the widths chosen; that the
roles equal the hand-written specs' tensor by tensor (SD3, Flux); that a plan made at reduced
depth applies to the full-depth model and trains; and the class catalogue
(`tpcheck targets --diffusers`). The slow tier runs lint, convert and lint --plan on every
acceptance class through the CLI (`pytest -m slow`). Nothing reaches the hub: every model is
built from a config.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from conftest import classification_of, plan_lint_summary
from expected_roles import EXPECTED_ROLES, role_of

from tpcheck import Plan, convert
from tpcheck.cli import main
from tpcheck.pipeline import analyze, lint
from tpcheck.specgen import autospec, diffusers_classes, extend_plan, verified

diffusers = pytest.importorskip("diffusers")

#: The classes every release must lint by name, with no user code.
ACCEPTANCE = ["SD3Transformer2DModel", "FluxTransformer2DModel", "PixArtTransformer2DModel",
              "SanaTransformer2DModel", "DiTTransformer2DModel", "CogVideoXTransformer3DModel",
              "WanTransformer3DModel", "LTXVideoTransformer3DModel",
              "HunyuanVideoTransformer3DModel", "AllegroTransformer3DModel",
              "LatteTransformer3DModel", "StableAudioDiTModel"]


def _spec(name: str, **options):
    return autospec(getattr(diffusers, name), **options)


# --------------------------------------------------------------------------- decisions

def test_flux_depth_widths_and_fixed_sizes() -> None:
    spec = _spec("FluxTransformer2DModel")
    assert spec.meta["depth"] == {"num_layers": [19, 1], "num_single_layers": [38, 1]}
    assert spec.widths == (256, 512, 1024)  # 2, 4, 8 heads of 128
    assert spec.meta["scaled"] == {"num_attention_heads": "n/128"}
    inputs = spec.inputs(256)
    assert inputs["hidden_states"].shape == (2, 16, 64)  # packed latent tokens
    assert inputs["encoder_hidden_states"].shape[-1] == 4096  # T5 width, kept
    assert inputs["img_ids"].shape == (16, 3) and inputs["txt_ids"].shape == (8, 3)


def test_sd3_caption_projection_follows_the_width() -> None:
    """Equal to the width in the config and the forward fails otherwise: it scales."""
    spec = _spec("SD3Transformer2DModel")
    assert spec.meta["scaled"]["caption_projection_dim"] == "n"
    assert "joint_attention_dim" not in spec.meta["scaled"]
    assert spec.meta["depth"] == {"num_layers": [18, 2]}  # the last block is context-pre-only


def test_equal_to_the_width_by_coincidence_stays_fixed() -> None:
    """Stable Audio's global condition is 1536 wide like the model, but comes from outside."""
    spec = _spec("StableAudioDiTModel")
    assert "global_states_input_dim" not in spec.meta["scaled"]
    assert spec.meta["scaled"]["num_key_value_attention_heads"] == "n/64/2"
    assert spec.inputs(spec.widths[0])["hidden_states"].dim() == 3  # (B, C, T) audio


def test_absolute_ffn_size_scales_at_its_ratio() -> None:
    """Wan's ffn_dim = 13824 = 2.7 × 5120 is an inner size: 27n/10, at widths where whole."""
    spec = _spec("WanTransformer3DModel")
    assert spec.meta["scaled"]["ffn_dim"] == "27n/10"
    assert spec.widths == (640, 1280, 2560)
    assert "text_dim" not in spec.meta["scaled"]


def test_second_attention_heads_follow_the_width() -> None:
    spec = _spec("SanaTransformer2DModel")
    assert spec.meta["scaled"]["num_cross_attention_heads"] == "n/112"
    assert spec.meta["scaled"]["cross_attention_dim"] == "n"
    assert all(w % 224 == 0 for w in spec.widths)  # heads of 32 and of 112


@pytest.mark.parametrize(("name", "layout"), [
    ("CogVideoXTransformer3DModel", (2, 2, 16, 8, 8)),  # (B, F, C, H, W)
    ("WanTransformer3DModel", (2, 16, 2, 8, 8)),  # (B, C, F, H, W)
    ("LTXVideoTransformer3DModel", (2, 16, 128)),  # (B, tokens, C), with the grid as ints
])
def test_latent_layout_is_found_by_running(name: str, layout: tuple[int, ...]) -> None:
    spec = _spec(name)
    inputs = spec.inputs(spec.widths[0])
    assert tuple(inputs["hidden_states"].shape) == layout
    if name.startswith("LTX"):
        assert (inputs["num_frames"], inputs["height"], inputs["width"]) == (1, 4, 4)


def test_layer_index_list_is_rechosen_at_reduced_depth() -> None:
    """SD3.5: dual attention in the first 13 of 24 blocks; 3 blocks keep every kind."""
    spec = _spec("SD3Transformer2DModel", config={
        "num_layers": 24, "dual_attention_layers": list(range(13)), "qk_norm": "rms_norm",
        "num_attention_heads": 24, "caption_projection_dim": 1536})
    assert spec.meta["depth"] == {"num_layers": [24, 3]}
    with torch.device("meta"):
        blocks = spec.factory(spec.widths[0]).transformer_blocks
    assert [b.use_dual_attention for b in blocks] == [True, False, False]
    assert [b.context_pre_only for b in blocks] == [False, False, True]


def test_head_dim_option_rescales_rope_axes() -> None:
    spec = _spec("FluxTransformer2DModel", head_dim=64)
    assert spec.widths == (128, 256, 512)
    assert '"axes_dims_rope": (8, 28, 28)' in spec.meta["spec_source"]


def test_none_sizes_are_filled_and_said() -> None:
    spec = _spec("LatteTransformer3DModel")
    notes = "\n".join(spec.meta["notes"])
    assert "in_channels: None in the defaults, set to 4" in notes
    assert "patch_size: None in the defaults, set to 2" in notes


# --------------------------------------------------------------------------- roles

@pytest.mark.parametrize(("cls", "builtin"), [("SD3Transformer2DModel", "diffusers-sd3"),
                                              ("FluxTransformer2DModel", "diffusers-flux")])
def test_roles_equal_the_hand_written_spec(cls: str, builtin: str, tmp_path: Path) -> None:
    """Tensor by tensor, at the class's defaults and at the built-in's own config."""
    hand = classification_of(builtin).tensors
    auto = analyze(_spec(cls)).tensors
    assert set(auto) <= set(hand)  # SD3's defaults have no QK norm: a subset
    assert {k: t.role for k, t in auto.items()} == {k: hand[k].role for k in auto}
    assert all(t.role == role_of(k, EXPECTED_ROLES[builtin]) for k, t in auto.items())
    from tpcheck.models import registry

    registry.build(builtin).factory(64).save_config(tmp_path)
    same = analyze(_spec(cls, config=tmp_path / "config.json")).tensors
    assert {k: t.role for k, t in same.items()} == {k: t.role for k, t in hand.items()}


# --------------------------------------------------------------------------- the loop

@pytest.fixture(scope="module")
def small_sd3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-block SD3 config.json, as save_pretrained writes it."""
    folder = tmp_path_factory.mktemp("sd3")
    diffusers.SD3Transformer2DModel.from_config(dict(
        sample_size=8, patch_size=2, in_channels=4, num_layers=4, attention_head_dim=16,
        num_attention_heads=6, joint_attention_dim=32, caption_projection_dim=96,
        pooled_projection_dim=24, out_channels=4, pos_embed_max_size=8,
        qk_norm="rms_norm")).save_config(folder)
    return folder


def test_reduced_depth_plan_trains_the_full_model(small_sd3: Path) -> None:
    """convert at depth 2, extend to 4 blocks, apply, train: the docs' loop without the hub."""
    plan = convert(_spec("SD3Transformer2DModel", config=small_sd3 / "config.json"))
    model = diffusers.SD3Transformer2DModel.from_config(
        diffusers.SD3Transformer2DModel.load_config(small_sd3))
    full = extend_plan(plan, model)
    params = dict(model.named_parameters())
    assert set(full.tensors) == set(params) and len(params) > len(plan.tensors)
    assert full.tensors["transformer_blocks.3.norm1_context.linear.weight"].shape == ["2*n", "n"]
    assert full.tensors["transformer_blocks.2.norm1_context.linear.weight"].shape == ["6*n", "n"]
    full.apply(model)
    optimizer = torch.optim.AdamW(full.param_groups(model, lr=1e-3))
    gen = torch.Generator().manual_seed(0)
    batch = dict(hidden_states=torch.randn(2, 4, 8, 8, generator=gen),
                 encoder_hidden_states=torch.randn(2, 8, 32, generator=gen),
                 pooled_projections=torch.randn(2, 24, generator=gen),
                 timestep=torch.rand(2, generator=gen) * 1000, return_dict=False)
    losses = []
    for _ in range(3):
        loss = model(**batch)[0].square().mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()))
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]


def test_convert_and_lint_plan_from_the_cli(small_sd3: Path, tmp_path: Path, capsys) -> None:
    config = str(small_sd3 / "config.json")
    target = "diffusers:SD3Transformer2DModel"
    plan = str(tmp_path / "plan.json")
    assert main(["convert", target, "--config", config, "-o", plan]) == 0
    capsys.readouterr()
    assert main(["lint", target, "--config", config, "--plan", plan, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["summary"]["error"] == 0
    assert Plan.load(plan).model == target


def test_converted_cogvideox_draws_no_epsilon_warning(tmp_path: Path, capsys) -> None:
    """CogVideoX's time path: sin-cos features of width n (frequencies ``e^(−c·k/n)``: Θ(1)
    values) → a 512-wide embedding → adaLN layers of width n. The embedding's weights have
    Θ(1) gradients once training has aligned the adaLN steps with the gradient, so the plan's
    constant ε for them is right (docs/theory.md §8.2) and lint must not warn."""
    summary = plan_lint_summary("diffusers:CogVideoXTransformer3DModel", tmp_path, capsys)
    assert summary["error"] == 0 and summary["warning"] == 0, summary


@pytest.mark.parametrize("name", ["SanaTransformer2DModel", "LTXVideoTransformer3DModel"])
def test_converted_plan_lints_clean_under_sgd(name: str) -> None:
    """SGD's steps carry the backward exponent, so the backward must be right where the
    channels never mix (Sana's depthwise conv: groups = channels, each input feeds one output
    channel) and through RMSNorm written out (``x.pow(2).mean(-1)``: each entry gets 1/n of
    the mean's gradient). μP for SGD then has g = −1 on every width-sized activation."""
    source = dataclasses.replace(
        autospec(getattr(diffusers, name)),
        optimizer=lambda m: torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9))
    report = lint(convert(source, seeds=1).spec(source), seeds=1)
    departures = [f"{f.rule} {f.subject}" for f in report.findings
                  if f.severity in ("error", "warning")]
    assert not departures, departures


# --------------------------------------------------------------------------- catalogue

def test_catalogue_lists_every_transformer_class(capsys) -> None:
    entries = diffusers_classes()
    names = [e.name for e in entries]
    assert set(ACCEPTANCE) <= set(names) and len(names) == len(set(names))
    assert all(isinstance(e.status, str) and e.status for e in entries)
    if verified.DIFFUSERS_VERSION == diffusers.__version__:
        status = {e.name: e.status for e in entries}
        assert all(status[name].startswith("supported") for name in ACCEPTANCE), status
    assert main(["targets", "--diffusers"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("diffusers:FluxTransformer2DModel ") for line in lines)


@pytest.mark.parametrize(("argv", "needles"), [
    (["diffusers:FluxTransfomer2DModel"], ["has no model class", "FluxTransformer2DModel"]),
    (["diffusers:FluxTransformer2DModel", "--config", "{sd3}"], ["is for SD3Transformer2DModel"]),
    (["diffusers:FluxTransformer2DModel", "--head-dim", "20"], ["axes_dims_rope", "even"]),
])
def test_bad_diffusers_targets_exit_2(small_sd3: Path, capsys, argv: list[str],
                                      needles: list[str]) -> None:
    code = main(["lint", *(a.format(sd3=small_sd3 / "config.json") for a in argv)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    for needle in needles:
        assert needle in err, err


# --------------------------------------------------------------------------- slow tier

@pytest.mark.slow
@pytest.mark.parametrize("name", ACCEPTANCE)
def test_lint_convert_and_lint_plan_by_name(name: str, tmp_path: Path, capsys) -> None:
    """The acceptance loop, exactly as a user types it."""
    target = f"diffusers:{name}"
    assert main(["lint", target, "--no-tensors"]) == 1  # standard parametrization: μP errors
    summary = plan_lint_summary(target, tmp_path, capsys)
    assert summary["error"] == 0 and summary["warning"] == 0, summary
