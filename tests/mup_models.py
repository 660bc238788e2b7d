"""μP versions of the reference models, built with Microsoft's ``mup`` package (ground truth).

Each function returns a :class:`tpcheck.ModelSpec` whose factory does what a ``mup`` user does
to a standard-parametrization model, without touching the model classes:

1. build the reference model at width ``n`` (the ``*_spec()`` factories of
   ``tpcheck.models``) and swap its readout ``nn.Linear`` for a ``mup.MuReadout`` of the same
   shape; where the head dim grows with the width, set every attention's ``scale`` to
   ``1 / head_dim`` (mup's 1/d attention);
2. ``mup.set_base_shapes(model, base, delta=delta)`` with the same construction at the base
   width and at :data:`DELTA_WIDTH` (which dims are widths; rescales SP readouts and biases);
3. replay the model's own ``initialize_weights`` with the ``mup.init`` drop-ins (they need the
   ``infshape`` of step 2): the same init as torch's at the base width, scaled by the fan-in
   width multiplier elsewhere, so a fixed std such as DiT's timestep-MLP ``normal(0.02)`` or
   U-ViT's ``trunc_normal(0.02)`` becomes ``0.02 / √m`` on hidden weights;

and the optimizer is ``mup.MuAdamW(model.parameters(), lr=1e-3)``: LR ÷ m on matrix-like
(two width dims) tensors, a global LR on the rest.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import mup
import torch
from mup import MuReadout
from torch import nn
from tpcheck.models import dit, mmdit, pixart, uvit

import tpcheck
from tpcheck import ModelSpec
from tpcheck.report import Report

BASE_WIDTH = 64  # the reference specs' base width
DELTA_WIDTH = 128  # a second width, so set_base_shapes can tell which dims scale
LR = 1e-3

#: The readout Linear (infinite → finite) of each family, by attribute path.
READOUTS = {"dit": "final_layer.linear", "uvit": "decoder_pred",
            "pixart": "final_layer.linear", "mmdit": "proj_out"}


def readout_weight(family: str) -> str:
    """The readout weight's parameter name in ``family``'s models."""
    return READOUTS[family] + ".weight"


# --------------------------------------------------------------------------- construction

def _to_mu_readout(model: nn.Module, path: str, *, zero_init: bool) -> None:
    """Replace the Linear at ``path`` by a MuReadout of the same shape, on the same device.

    ``zero_init=False`` keeps MuReadout's own init (torch's default Linear init, which
    ``set_base_shapes`` rescales by √m to a width-independent std, mup's recommended form).
    """
    parent_path, _, attr = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    old = getattr(parent, attr)
    assert type(old) is nn.Linear, (path, type(old))
    new = MuReadout(old.in_features, old.out_features, bias=old.bias is not None,
                    readout_zero_init=zero_init, device=old.weight.device,
                    dtype=old.weight.dtype)
    setattr(parent, attr, new)


def _attention_modules(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if hasattr(m, "scale") and hasattr(m, "head_dim")]


def _mup_spec(sp: ModelSpec, family: str, *, zero_readout: bool,
              reinit: Callable[[nn.Module], None], attn_over_d: bool = False) -> ModelSpec:
    """The μP version of the SP reference spec ``sp`` (see the module docstring)."""

    def build(n: int) -> nn.Module:
        model = sp.factory(n)
        _to_mu_readout(model, READOUTS[family], zero_init=zero_readout)
        if attn_over_d:
            for attn in _attention_modules(model):
                attn.scale = 1.0 / attn.head_dim
        return model

    def factory(n: int) -> nn.Module:
        model = build(n)
        mup.set_base_shapes(model, build(BASE_WIDTH), delta=build(DELTA_WIDTH))
        with torch.no_grad():
            reinit(model)
        return model

    def optimizer(model: nn.Module) -> torch.optim.Optimizer:
        return mup.MuAdamW(model.parameters(), lr=LR)

    return ModelSpec(factory, sp.inputs, sp.widths, base_width=BASE_WIDTH, optimizer=optimizer,
                     name=f"mup-{sp.name}", meta={**sp.meta, "parametrization": "mup"})


def _linears(model: nn.Module) -> list[nn.Linear]:
    """Every Linear except the MuReadout (whose init set_base_shapes already made μP)."""
    return [m for m in model.modules()
            if isinstance(m, nn.Linear) and not isinstance(m, MuReadout)]


# --------------------------------------------------------------------------- re-inits
# Each replays the reference ``initialize_weights`` with mup.init in place of torch.nn.init.

def _reinit_dit(model: dit.DiT) -> None:
    for linear in _linears(model):
        mup.init.xavier_uniform_(linear.weight)  # biases are zero already
    # Patch embedding (n, C, p, p): mup's xavier makes its std width-independent.
    mup.init.xavier_uniform_(model.x_embedder.proj.weight)
    mup.init.normal_(model.y_embedder.embedding_table.weight, std=0.02)
    # Timestep MLP normal(0.02): the (n, n) second layer becomes 0.02 / √m.
    mup.init.normal_(model.t_embedder.mlp[0].weight, std=0.02)
    mup.init.normal_(model.t_embedder.mlp[2].weight, std=0.02)
    # adaLN-Zero stays zero (a hidden weight: tpcheck warns TP105, docs/theory.md §3).
    for block in model.blocks:
        nn.init.zeros_(block.adaLN_modulation[-1].weight)
    nn.init.zeros_(model.final_layer.adaLN_modulation[-1].weight)


def _reinit_uvit(model: uvit.UViT) -> None:
    mup.init.trunc_normal_(model.pos_embed, std=0.02)
    # trunc_normal(0.02) on every Linear, readout included: 0.02 / √m on hidden weights, a
    # constant 0.02 on the MuReadout (its 1/m multiplier makes it μP).
    for module in model.modules():
        if isinstance(module, nn.Linear):
            mup.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    # Convs and the class table keep torch's defaults: their fan-in does not grow.


def _reinit_pixart(model: pixart.PixArt) -> None:
    for linear in _linears(model):
        mup.init.xavier_uniform_(linear.weight)
    mup.init.xavier_uniform_(model.x_embedder.proj.weight)
    mup.init.normal_(model.t_embedder.mlp[0].weight, std=0.02)
    mup.init.normal_(model.t_embedder.mlp[2].weight, std=0.02)
    mup.init.normal_(model.t_block[1].weight, std=0.02)  # (6n, n): 0.02 / √m
    for block in model.blocks:
        nn.init.zeros_(block.cross_attn.proj.weight)  # zero init, as the reference
        # The table's reference std 1/√n shrinks with n; mup's drop-in keeps its base value.
        mup.init.normal_(block.scale_shift_table, std=BASE_WIDTH ** -0.5)
    mup.init.normal_(model.final_layer.scale_shift_table, std=BASE_WIDTH ** -0.5)
    mup.init.normal_(model.y_embedder.y_proj.fc1.weight, std=0.02)
    mup.init.normal_(model.y_embedder.y_proj.fc2.weight, std=0.02)  # (n, n): 0.02 / √m


def _reinit_mmdit(model: mmdit.MMDiT) -> None:
    # torch's default Linear init is kaiming-uniform(a=√5); set_base_shapes already rescaled
    # the hidden biases (U(±1/√fan_in)) to a width-independent size.
    for linear in _linears(model):
        mup.init.kaiming_uniform_(linear.weight, a=math.sqrt(5))
    mup.init.kaiming_uniform_(model.x_embedder.proj.weight, a=math.sqrt(5))


# --------------------------------------------------------------------------- specs

def mup_dit_spec() -> ModelSpec:
    """DiT, head dim 16: MuReadout with mup's (non-zero) init, adaLN-Zero kept."""
    return _mup_spec(dit.dit_spec(), "dit", zero_readout=False, reinit=_reinit_dit)


def mup_dit_growing_head_dim_spec() -> ModelSpec:
    """DiT with 4 heads (head dim n / 4): as :func:`mup_dit_spec` plus 1/d attention."""
    return _mup_spec(dit.dit_growing_head_dim_spec(), "dit", zero_readout=False,
                     reinit=_reinit_dit, attn_over_d=True)


def mup_uvit_spec() -> ModelSpec:
    """U-ViT, head dim 16: every trunc_normal(0.02) through mup.init, MuReadout."""
    return _mup_spec(uvit.uvit_spec(), "uvit", zero_readout=False, reinit=_reinit_uvit)


def mup_pixart_spec() -> ModelSpec:
    """PixArt-α, head dim 16: zero-init MuReadout (as the reference's zero readout)."""
    return _mup_spec(pixart.pixart_spec(), "pixart", zero_readout=True, reinit=_reinit_pixart)


def mup_mmdit_spec() -> ModelSpec:
    """MMDiT, head dim 16: torch-default init through mup.init, MuReadout."""
    return _mup_spec(mmdit.mmdit_spec(), "mmdit", zero_readout=False, reinit=_reinit_mmdit)


#: name → (spec builder, model family)
MUP_SPECS: dict[str, tuple[Callable[[], ModelSpec], str]] = {
    "dit": (mup_dit_spec, "dit"),
    "dit-growing-head-dim": (mup_dit_growing_head_dim_spec, "dit"),
    "uvit": (mup_uvit_spec, "uvit"),
    "pixart": (mup_pixart_spec, "pixart"),
    "mmdit": (mup_mmdit_spec, "mmdit"),
}


def lint_mup(name: str) -> Report:
    """Lint the μP version ``name`` (for a worker process: specs hold closures, names pickle)."""
    torch.set_num_threads(1)  # the test process lints the SP references meanwhile
    return tpcheck.lint(MUP_SPECS[name][0]())
