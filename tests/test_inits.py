"""Inits read, not sampled (capture + measure): every init size of the reference models is
exact — E[w²] at every traced width equals the closed form of the init the model's code
calls, to 1e-9 (float32 rounding for the stored sin-cos table) — and its exponent b is
exactly the analytic, asymptotic one.

The closed forms are written here from the models' ``initialize_weights`` and PyTorch's
documented defaults (kaiming-uniform(a=√5): E[w²] = 1/(3·fan_in) for Linear/conv weights and
biases; xavier-uniform: 2/(fan_in + fan_out); nn.Embedding N(0, 1)), with the truncated
normal's moment from SciPy: independent of tpcheck's init reader.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fnmatch import fnmatchcase

import pytest
import sympy
import torch
from scipy.stats import truncnorm
from tpcheck.models import registry

from tpcheck.capture import capture

Shape = tuple[int, ...]


def _fans(shape: Shape) -> tuple[int, int]:
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def xavier(shape: Shape) -> float:
    fan_in, fan_out = _fans(shape)
    return 2.0 / (fan_in + fan_out)


def torch_default(fan_in: Callable[[Shape], int]) -> Callable[[Shape], float]:
    """nn.Linear / nn.Conv defaults: weight and bias both have E[w²] = 1/(3·fan_in)."""
    return lambda shape: 1.0 / (3.0 * fan_in(shape))


def constant(value: float) -> Callable[[Shape], float]:
    return lambda shape: value


TRUNC_002 = float(truncnorm(-2 / 0.02, 2 / 0.02, scale=0.02).moment(2))
LINEAR_FAN = torch_default(lambda s: s[1])

#: target -> [(pattern, E[w²] at the tensor's shape, analytic b)], first match wins. ``fan``
#: for a bias is its layer's fan-in, which the table gives through the layer's weight shape.
EXPECTED: dict[str, list[tuple[str, Callable[[Shape], float], sympy.Expr]]] = {
    "dit": [
        ("pos_embed", constant(0.5), 0),  # sin² + cos² over each frequency pair
        ("x_embedder.proj.weight", lambda s: xavier((s[0], math.prod(s[1:]))), sympy.S.Half),
        ("y_embedder.embedding_table.weight", constant(0.0004), 0),
        ("t_embedder.mlp.*.weight", constant(0.0004), 0),
        ("*adaLN_modulation.1.*", constant(0.0), sympy.oo),
        ("final_layer.linear.*", constant(0.0), sympy.oo),
        ("*.bias", constant(0.0), sympy.oo),
        ("*.weight", xavier, sympy.S.Half),
    ],
    "pixart": [
        ("pos_embed", constant(0.5), 0),
        ("x_embedder.proj.weight", lambda s: xavier((s[0], math.prod(s[1:]))), sympy.S.Half),
        ("*scale_shift_table", lambda s: 1.0 / s[-1], sympy.S.Half),  # randn / √n
        ("t_embedder.mlp.*.weight", constant(0.0004), 0),
        ("t_block.1.weight", constant(0.0004), 0),
        ("y_embedder.y_proj.fc*.weight", constant(0.0004), 0),
        ("blocks.*.cross_attn.proj.*", constant(0.0), sympy.oo),
        ("final_layer.linear.*", constant(0.0), sympy.oo),
        ("*.bias", constant(0.0), sympy.oo),
        ("*.weight", xavier, sympy.S.Half),
    ],
    "uvit": [
        ("pos_embed", constant(TRUNC_002), 0),
        ("label_emb.weight", constant(1.0), 0),
        ("patch_embed.proj.*", lambda s: 1.0 / (3.0 * 4 * 2 * 2), 0),  # fan_in C·p² = 16
        ("final_layer.*", lambda s: 1.0 / (3.0 * 4 * 3 * 3), 0),  # 3×3 conv over 4 channels
        ("*norm*.weight", constant(1.0), 0),
        ("*norm*.bias", constant(0.0), sympy.oo),
        ("*.bias", constant(0.0), sympy.oo),
        ("*.weight", constant(TRUNC_002), 0),  # every Linear: trunc N(0, 0.02²), any fan-in
    ],
}


def _bias_fans(model: torch.nn.Module) -> dict[str, int]:
    """Fan-in of the layer each bias belongs to (its weight's second dim × kernel)."""
    params = dict(model.named_parameters())
    out = {}
    for name in params:
        weight = params.get(name[:-5] + ".weight")
        if name.endswith(".bias") and weight is not None and weight.dim() >= 2:
            out[name] = _fans(tuple(weight.shape))[0]
    return out


def _mmdit_expectation(name: str, shape: Shape, bias_fan: dict[str, int]
                       ) -> tuple[float, sympy.Expr]:
    """MMDiT keeps PyTorch's defaults everywhere but the frozen sin-cos table."""
    if name == "pos_embed":
        return 0.5, sympy.Integer(0)
    if "norm" in name and name.endswith(".weight") and len(shape) == 1:
        return 1.0, sympy.Integer(0)  # QK RMSNorm gains: ones
    fan_in = bias_fan[name] if name.endswith(".bias") else _fans(shape)[0]
    return 1.0 / (3.0 * fan_in), sympy.Integer(0)  # b decided below from fan_in's growth


@pytest.mark.parametrize("target", ["dit", "pixart", "uvit", "mmdit"])
def test_read_init_sizes_are_the_closed_forms(target: str) -> None:
    spec = registry.build(target)
    captured = capture(spec)
    for width, trace in captured.traces.items():
        with torch.device("meta"):
            model = spec.factory(width)  # shapes only
        bias_fan = _bias_fans(model)
        for name, p in model.named_parameters():
            read = trace.inits[name]
            assert read.how == "read", (name, read)
            if target == "mmdit":
                expected, _ = _mmdit_expectation(name, tuple(p.shape), bias_fan)
            else:
                row = next(r for r in EXPECTED[target] if fnmatchcase(name, r[0]))
                expected = row[1](tuple(p.shape))
            # the sin-cos table is computed, then stored in float32: exact to float32 rounding
            rel = 1e-7 if name == "pos_embed" and target != "uvit" else 1e-9
            assert read.mean_square == pytest.approx(expected, rel=rel, abs=1e-15), (
                name, width, read)


@pytest.mark.parametrize("target", ["dit", "pixart", "uvit", "mmdit"])
def test_init_exponents_are_the_analytic_ones(target: str) -> None:
    import tpcheck

    report = tpcheck.lint(registry.build(target))
    with torch.device("meta"):
        small, large = (registry.build(target).factory(w) for w in (64, 256))
    fans_small, fans_large = _bias_fans(small), _bias_fans(large)
    large_params = dict(large.named_parameters())
    for row in report.tensors:
        if target == "mmdit":
            if row.name == "pos_embed" or ("norm" in row.name and len(row.shape) == 1
                                           and row.name.endswith(".weight")):
                b = sympy.Integer(0)
            else:
                shape_s = tuple(dict(small.named_parameters())[row.name].shape)
                shape_l = tuple(large_params[row.name].shape)
                fan_s = fans_small[row.name] if row.name.endswith(".bias") else _fans(shape_s)[0]
                fan_l = fans_large[row.name] if row.name.endswith(".bias") else _fans(shape_l)[0]
                b = sympy.S.Half if fan_l > fan_s else sympy.Integer(0)
        else:
            b = next(r[2] for r in EXPECTED[target] if fnmatchcase(row.name, r[0]))
        found = sympy.oo if row.b == "inf" else sympy.nsimplify(row.b)
        assert found == b, (row.name, row.b, b)
