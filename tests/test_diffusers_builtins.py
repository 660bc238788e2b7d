"""The hand-written diffusers built-ins added with spec generation (diffusers-flux, -lumina2,
-mochi, -hidream, -auraflow): each builds at every traced width, runs forward and backward
with finite gradients into every trainable tensor, splits its heads at a fixed head dim of 16,
and (slow tier) converts to a plan that lints with zero errors and zero warnings. Their role
tables are checked against the traced graph by test_classify.py, like every built-in's.
"""

from __future__ import annotations

import pytest
import torch
from conftest import plan_lint_summary
from tpcheck.models import registry

pytest.importorskip("diffusers")

NEW = ["diffusers-flux", "diffusers-lumina2", "diffusers-mochi", "diffusers-hidream",
       "diffusers-auraflow"]


def _latent_out(name: str, inputs: dict) -> tuple[int, ...]:
    """The prediction's shape: the latent's (Flux's is its packed tokens), except HiDream's,
    which in training mode stays patchified: (B, C, patches, p²)."""
    shape = tuple(inputs["hidden_states"].shape)
    if name == "diffusers-hidream":
        b, c, h, w = shape
        return (b, c, (h // 2) * (w // 2), 4)
    return shape


@pytest.mark.parametrize("name", NEW)
def test_forward_backward_every_width(name: str) -> None:
    spec = registry.build(name)
    assert spec.name == name and tuple(spec.widths) == (64, 128, 256) and spec.base == 64
    assert spec.meta["head_dim"] == "fixed"
    for n in spec.widths:
        torch.manual_seed(0)
        model = spec.factory(n)
        inputs = spec.inputs(n)
        out = model(**inputs)[0]
        assert tuple(out.shape) == _latent_out(name, inputs), (name, n)
        assert torch.isfinite(out).all()
        out.square().mean().backward()
        for pname, p in model.named_parameters():
            if p.requires_grad and p.grad is not None:
                assert torch.isfinite(p.grad).all(), (name, n, pname)
        heads = [m for m in model.modules() if hasattr(m, "heads") and hasattr(m, "to_q")]
        assert heads and all(m.heads == n // 16 for m in heads), (name, n)


def test_inputs_are_seeded() -> None:
    for name in NEW:
        spec = registry.build(name)
        first, second = spec.inputs(128), spec.inputs(128)
        for key, value in first.items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, second[key]), (name, key)


@pytest.mark.slow
@pytest.mark.parametrize("name", NEW)
def test_convert_then_lint_plan_has_no_errors(name: str, tmp_path, capsys) -> None:
    summary = plan_lint_summary(name, tmp_path, capsys)
    assert summary["error"] == 0 and summary["warning"] == 0, summary
