"""Every parameter of every built-in model gets the role docs/theory.md §2 gives it.

The expected roles are written by hand in expected_roles.py from how each architecture
consumes its tensors; here they are compared with what tpcheck derives from the traced graph.
"""

from __future__ import annotations

import json

import pytest
import sympy
from conftest import classification_of, spec_of
from expected_roles import EXPECTED_ROLES, role_of

from tpcheck.cli import main
from tpcheck.symbols import n

TARGETS = sorted(EXPECTED_ROLES)


@pytest.mark.parametrize("target", TARGETS)
def test_every_parameter_has_its_expected_role(target: str) -> None:
    classification = classification_of(target)
    table = EXPECTED_ROLES[target]
    wrong = {name: (t.role, role_of(name, table)) for name, t in classification.tensors.items()
             if t.role != role_of(name, table)}
    assert not wrong, f"(found, expected) roles differ: {wrong}"


@pytest.mark.parametrize("target", TARGETS)
def test_all_parameters_are_traced(target: str) -> None:
    spec = spec_of(target)
    model = spec.factory(spec.widths[0])
    names = {name for name, _ in model.named_parameters()}
    assert set(classification_of(target).tensors) == names


def test_fans_are_expressions_in_the_width() -> None:
    tensors = classification_of("dit").tensors
    qkv = tensors["blocks.0.attn.qkv.weight"]
    assert qkv.shape == (3 * n, n)
    assert (qkv.fan_in, qkv.fan_out) == (n, 3 * n)
    fc2 = tensors["blocks.0.mlp.fc2.weight"]
    assert (fc2.fan_in, fc2.fan_out) == (4 * n, n)  # the tensor's own fan, not d_model
    patch = tensors["x_embedder.proj.weight"]
    assert (patch.fan_in, patch.fan_out) == (sympy.Integer(16), n)  # C·p² = 4·2·2
    emb = tensors["y_embedder.embedding_table.weight"]
    assert emb.shape == (sympy.Integer(11), n) and emb.fan_in == 1  # one-hot over 10 + null


def test_uvit_long_skip_concatenates_two_width_blocks() -> None:
    skip = classification_of("uvit").tensors["out_blocks.0.skip_linear.weight"]
    assert (skip.fan_in, skip.fan_out, skip.role) == (2 * n, n, "hidden")


def test_frozen_pos_embed_is_a_frozen_vector() -> None:
    pos = classification_of("dit").tensors["pos_embed"]
    assert pos.role == "vector" and not pos.trainable


@pytest.mark.parametrize(("target", "grows"), [("dit", False), ("dit-growing-head-dim", True),
                                               ("mmdit", False), ("mmdit-growing-head-dim", True)])
def test_attention_records_head_dim_and_scale(target: str, grows: bool) -> None:
    attention = classification_of(target).attention
    assert attention, "every reference model has attention"
    for att in attention:
        assert (sympy.diff(att.head_dim, n) != 0) == grows
        for width, scale in att.scales.items():  # SDPA default: 1/√head_dim at each width
            head = att.head_dim.subs(n, width)
            assert scale == pytest.approx(float(head) ** -0.5)


def test_weightless_contractions_are_recorded() -> None:
    contractions = classification_of("dit").contractions
    assert any(c.op == "scaled_dot_product_attention" and c.contracted == 16
               for c in contractions)


def test_lint_dit_json_classifies_every_parameter(capsys: pytest.CaptureFixture[str]) -> None:
    """Issue acceptance: `tpcheck lint dit --format json` — 100 % classified, key roles."""
    assert main(["lint", "dit", "--format", "json", "--roles-only"]) == 0
    (report,) = json.loads(capsys.readouterr().out)["targets"]
    roles = {t["name"]: t["role"] for t in report["tensors"]}
    assert set(roles.values()) <= {"input", "hidden", "output", "vector", "scalar"}
    assert roles["blocks.0.adaLN_modulation.1.weight"] == "hidden"
    assert roles["final_layer.adaLN_modulation.1.weight"] == "hidden"
    assert roles["y_embedder.embedding_table.weight"] == "input"
    assert roles["x_embedder.proj.weight"] == "input"
    assert roles["final_layer.linear.weight"] == "output"
    for name, role in roles.items():
        if name.endswith(".bias") and name != "final_layer.linear.bias":
            assert role == "vector", name
    for t in report["tensors"]:
        assert {"name", "shape", "role", "fan_in", "fan_out"} <= set(t)
        assert all(isinstance(d, str) for d in t["shape"])


def test_text_table_folds_identical_blocks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", "dit", "--roles-only"]) == 0
    out = capsys.readouterr().out
    assert "blocks.{0..1}.attn.qkv.weight" in out
    assert "blocks.0.attn.qkv.weight" not in out
