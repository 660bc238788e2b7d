"""The built-in models: they build at every traced width, run forward and backward, keep the
papers' init facts, and every parameter has exactly one expected role (expected_roles.py)."""

from __future__ import annotations

import math

import pytest
import torch
from expected_roles import EXPECTED_ROLES, ROLES, unmatched, unused_patterns
from tpcheck.models import registry
from tpcheck.models.dit import DiTConfig, sincos_pos_embed_2d
from tpcheck.models.mmdit import MMDiTConfig
from tpcheck.models.pixart import PixArtConfig
from tpcheck.models.uvit import UViTConfig

REFERENCE = ["dit", "dit-growing-head-dim", "uvit", "uvit-growing-head-dim",
             "pixart", "pixart-growing-head-dim", "mmdit", "mmdit-growing-head-dim"]
DIFFUSERS = ["diffusers-dit", "diffusers-pixart", "diffusers-sd3"]
#: Output channels on the 4-channel latent: DiT and PixArt also predict the variance.
OUT_CHANNELS = {"dit": 8, "uvit": 4, "pixart": 8, "mmdit": 4,
                "diffusers-dit": 4, "diffusers-pixart": 8, "diffusers-sd3": 4}


def _spec(name: str):
    if name.startswith("diffusers"):
        pytest.importorskip("diffusers")
    return registry.build(name)


def _call(model: torch.nn.Module, inputs) -> torch.Tensor:
    out = model(**inputs) if isinstance(inputs, dict) else model(*inputs)
    return out[0] if isinstance(out, tuple) else out


def _latent(inputs) -> torch.Tensor:
    return inputs["hidden_states"] if isinstance(inputs, dict) else inputs[0]


def _attention_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    return [m for m in model.modules() if hasattr(m, "scale") and hasattr(m, "num_heads")]


@pytest.fixture(scope="module")
def smallest() -> dict[str, torch.nn.Module]:
    """Each reference model at its smallest width (built once, read-only in tests)."""
    torch.manual_seed(0)
    return {name: registry.build(name).factory(64) for name in REFERENCE}


# --------------------------------------------------------------------------- build / run

def test_registry_names_have_tables() -> None:
    assert set(EXPECTED_ROLES) == set(registry.BUILTINS)


@pytest.mark.parametrize("name", REFERENCE + DIFFUSERS)
def test_forward_backward_every_width(name: str) -> None:
    spec = _spec(name)
    assert spec.name == name and spec.base == 64 and tuple(spec.widths) == (64, 128, 256)
    assert spec.meta["head_dim"] in ("fixed", "grows")
    for n in spec.widths:
        torch.manual_seed(0)
        model = spec.factory(n)
        inputs = spec.inputs(n)
        x = _latent(inputs)
        out = _call(model, inputs)
        family = name.removesuffix("-growing-head-dim")
        assert out.shape == (x.shape[0], OUT_CHANNELS[family], *x.shape[2:]), (name, n)
        assert torch.isfinite(out).all()
        out.square().mean().backward()
        for pname, p in model.named_parameters():
            if p.requires_grad:
                assert p.grad is not None and torch.isfinite(p.grad).all(), (name, n, pname)
            else:
                assert p.grad is None, (name, n, pname)


@pytest.mark.parametrize("name", REFERENCE)
def test_inputs_are_deterministic_cpu_tensors(name: str) -> None:
    spec = _spec(name)
    first, second = spec.inputs(128), spec.inputs(128)
    for a, b in zip(first, second, strict=True):
        assert a.device.type == "cpu" and torch.equal(a, b)


@pytest.mark.parametrize("name", ["dit", "mmdit-growing-head-dim"])
def test_builds_and_exports_on_meta(name: str) -> None:
    spec = _spec(name)
    with torch.device("meta"):
        model = spec.factory(256)
    inputs = tuple(t.to("meta") for t in spec.inputs(256))
    program = torch.export.export(model, inputs, strict=False)
    params = set(program.graph_signature.inputs_to_parameters.values())
    assert params == {name for name, _ in model.named_parameters()}


# --------------------------------------------------------------------------- heads

@pytest.mark.parametrize("name", REFERENCE)
def test_head_split(name: str) -> None:
    spec = _spec(name)
    grows = spec.meta["head_dim"] == "grows"
    for n in spec.widths:
        attns = _attention_modules(spec.factory(n))
        assert attns, name
        for attn in attns:
            assert attn.scale is None  # SDPA default 1/√d until a converter changes it
            if grows:
                assert (attn.num_heads, attn.head_dim) == (4, n // 4), (name, n)
            else:
                assert (attn.num_heads, attn.head_dim) == (n // 16, 16), (name, n)


@pytest.mark.parametrize("config", [DiTConfig, UViTConfig, PixArtConfig, MMDiTConfig])
def test_head_config_errors(config) -> None:
    with pytest.raises(ValueError, match="divisible"):
        config(hidden_size=100, head_dim=16)
    with pytest.raises(ValueError, match="exactly one"):
        config(hidden_size=128, head_dim=16, num_heads=8)
    with pytest.raises(ValueError, match="exactly one"):
        config(hidden_size=128, head_dim=None, num_heads=None)


def test_full_size_configs() -> None:
    from tpcheck.models.dit import DIT_XL_2
    from tpcheck.models.mmdit import sd3_medium_config

    assert (DIT_XL_2.depth, DIT_XL_2.hidden_size, DIT_XL_2.n_heads, DIT_XL_2.d_head) == (
        28, 1152, 16, 72)
    sd3 = sd3_medium_config()
    assert (sd3.hidden_size, sd3.depth, sd3.d_head, sd3.joint_dim, sd3.pooled_dim) == (
        1536, 24, 64, 4096, 2048)


# --------------------------------------------------------------------------- roles

@pytest.mark.parametrize("name", REFERENCE + DIFFUSERS)
def test_every_parameter_has_exactly_one_role(name: str) -> None:
    spec = _spec(name)
    table = EXPECTED_ROLES[name]
    model = spec.factory(min(spec.widths))
    assert unmatched(model, table) == {}
    assert unused_patterns(model, table) == []
    assert set(table.values()) <= set(ROLES)


def test_qk_norm_gain_follows_head_dim() -> None:
    for name, size in [("mmdit", lambda n: 16), ("mmdit-growing-head-dim", lambda n: n // 4)]:
        spec = _spec(name)
        for n in (64, 256):
            gain = spec.factory(n).transformer_blocks[0].attn.norm_q.weight
            assert gain.shape == (size(n),)
    assert EXPECTED_ROLES["mmdit"]["transformer_blocks.*.attn.norm_q.weight"] == "scalar"
    growing = EXPECTED_ROLES["mmdit-growing-head-dim"]
    assert growing["transformer_blocks.*.attn.norm_q.weight"] == "vector"


# --------------------------------------------------------------------------- init facts

def _std_close(t: torch.Tensor, std: float, rel: float = 0.1) -> bool:
    return abs(t.float().std().item() - std) <= rel * std


def _is_zero(t: torch.Tensor) -> bool:
    return bool((t == 0).all())


def test_frozen_pos_embeds(smallest) -> None:
    for name in ("dit", "pixart", "mmdit"):
        pos = smallest[name].pos_embed
        assert not pos.requires_grad, name
        n = pos.shape[-1]
        torch.testing.assert_close(pos[0], sincos_pos_embed_2d(n, 4))
        # token 0 sits at (0, 0): sin 0 = 0 and cos 0 = 1 in each half
        quarter = n // 4
        expected = torch.cat([torch.zeros(quarter), torch.ones(quarter)] * 2)
        torch.testing.assert_close(pos[0, 0], expected)
    assert smallest["uvit"].pos_embed.requires_grad  # U-ViT learns its position table


def test_dit_init(smallest) -> None:
    """DiT initialize_weights: adaLN-Zero, zero readout, 0.02 embeddings, xavier elsewhere."""
    for name in ("dit", "dit-growing-head-dim"):
        m = smallest[name]
        for block in m.blocks:
            assert _is_zero(block.adaLN_modulation[1].weight)
            assert _is_zero(block.adaLN_modulation[1].bias)
            w = block.attn.qkv.weight  # xavier-uniform: U(±√(6 / (fan_in + fan_out)))
            bound = math.sqrt(6 / sum(w.shape))
            assert w.abs().max() <= bound and _std_close(w, bound / math.sqrt(3))
            assert _is_zero(block.attn.qkv.bias) and _is_zero(block.mlp.fc1.bias)
        fl = m.final_layer
        assert _is_zero(fl.adaLN_modulation[1].weight) and _is_zero(fl.adaLN_modulation[1].bias)
        assert _is_zero(fl.linear.weight) and _is_zero(fl.linear.bias)
        assert _std_close(m.y_embedder.embedding_table.weight, 0.02, rel=0.2)
        assert _std_close(m.t_embedder.mlp[0].weight, 0.02)
        assert _std_close(m.t_embedder.mlp[2].weight, 0.02, rel=0.2)
        w = m.x_embedder.proj.weight  # xavier on the (out, C·p²) view
        assert w.abs().max() <= math.sqrt(6 / (w.shape[0] + w[0].numel()))
        assert m.y_embedder.embedding_table.num_embeddings == m.cfg.num_classes + 1


def test_uvit_init(smallest) -> None:
    """U-ViT: trunc_normal(0.02) on every Linear, zero biases, LayerNorm (1, 0)."""
    m = smallest["uvit"]
    linears = [mod for mod in m.modules() if isinstance(mod, torch.nn.Linear)]
    # 5 blocks × (qkv, proj, fc1, fc2), a skip_linear in each of the 2 out-blocks, decoder_pred
    assert len(linears) == 5 * 4 + 2 + 1
    for lin in linears:
        assert _std_close(lin.weight, 0.02, rel=0.25), lin
        assert lin.weight.abs().max() <= 2.0  # timm's absolute truncation at ±2
        assert lin.bias is None or _is_zero(lin.bias)
    assert all(b.attn.qkv.bias is None for b in m.in_blocks)
    for ln in (mod for mod in m.modules() if isinstance(mod, torch.nn.LayerNorm)):
        assert bool((ln.weight == 1).all()) and _is_zero(ln.bias)
    assert _std_close(m.pos_embed, 0.02)
    assert [b.skip_linear is None for b in (*m.in_blocks, m.mid_block, *m.out_blocks)] == [
        True, True, True, False, False]
    assert m.mid_block.skip_linear is None and m.out_blocks[0].skip_linear.in_features == 128


def test_pixart_init(smallest) -> None:
    """PixArt: zero cross-attn proj and readout, tables N(0, 1/n), 0.02 for t/t_block/y."""
    m = smallest["pixart"]
    n = m.cfg.hidden_size
    for block in m.blocks:
        assert _is_zero(block.cross_attn.proj.weight) and _is_zero(block.cross_attn.proj.bias)
        assert _std_close(block.scale_shift_table, n ** -0.5, rel=0.2)
        assert not _is_zero(block.attn.proj.weight)
    assert _is_zero(m.final_layer.linear.weight) and _is_zero(m.final_layer.linear.bias)
    assert m.final_layer.scale_shift_table.shape == (2, n)
    assert _std_close(m.final_layer.scale_shift_table, n ** -0.5, rel=0.35)
    for lin in (m.t_embedder.mlp[0], m.t_block[1], m.y_embedder.y_proj.fc1,
                m.y_embedder.y_proj.fc2):
        assert _std_close(lin.weight, 0.02, rel=0.2), lin
    # the null caption is a buffer, not a parameter
    assert "y_embedder.y_embedding" in dict(m.named_buffers())
    assert "y_embedder.y_embedding" not in dict(m.named_parameters())


def test_mmdit_init(smallest) -> None:
    """MMDiT keeps PyTorch defaults: nothing zeroed, QK gains 1; last block context pre-only."""
    m = smallest["mmdit"]
    *full, last = m.transformer_blocks
    for block in m.transformer_blocks:
        w = block.norm1.linear.weight  # kaiming-uniform(a=√5): U(±1/√fan_in)
        assert not _is_zero(w) and w.abs().max() <= 1 / math.sqrt(w.shape[1])
        assert bool((block.attn.norm_q.weight == 1).all())
    assert not _is_zero(m.proj_out.weight)
    assert all(not b.context_pre_only and b.attn.to_add_out is not None for b in full)
    assert last.context_pre_only and last.attn.to_add_out is None
    assert last.norm1_context.linear.out_features == 2 * m.cfg.hidden_size
    assert not hasattr(last, "ff_context")
