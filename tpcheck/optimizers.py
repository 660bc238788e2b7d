"""Optimizer families: how an optimizer turns a gradient into a step, and what that means for
the update exponent ``U`` of a tensor (docs/theory.md §8).

The family is read from the optimizer that holds the tensor — its class and its param group's
settings — never assumed:

* **adam** (Adam, AdamW, NAdam, RAdam, Adamax, RMSprop, Adagrad, Lion, ...): normalised or
  sign updates, entries Θ(lr·n^-a) whatever the gradient's size: ``U = a + c``;
* **sgd** (SGD with or without momentum, ASGD): the step is the gradient, so its size carries
  the backward exponent (propagate tracks it): ``U = 2a + c``;
* **adafactor** (Adafactor, LAMB, LARS): the step is scaled by the parameter's own size
  (Adafactor's ``scale_parameter``, which torch's Adafactor always applies; LAMB's and LARS's
  layer-wise trust ratio ``‖w‖ / ‖step‖``): the effective ``c`` is the LR's plus ``b``, so
  ``U = a + c + b``; a group whose ``lr`` is None (relative step) has a width-independent LR;
* **muon** (orthogonalised updates, 2-D weights): the step's spectral norm is
  ``lr · f(fan_out, fan_in)`` (torch's ``adjust_lr_fn``: "original" ``√max(1, out/in)``,
  "match_rms_adamw" ``0.2·√max(out, in)``); with ``f ∝ n^φ``, ``U = a + c − φ``, and the
  spectral condition asks ``U = (α_in − α_out)/2``.

An optimizer of none of these is treated as Adam-like, and said so (rule TP404).
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy

FAMILIES = ("adam", "sgd", "adafactor", "muon")

#: Class-name stems of each family (lower case), for classes outside torch.optim too
#: (lion-pytorch's Lion, transformers' Adafactor, a user's MuonWithAuxAdam...).
_ADAM_LIKE = ("adamw", "adam", "nadam", "radam", "adamax", "rmsprop", "adagrad", "adadelta",
              "lion", "sophia", "adan", "rprop", "sparseadam", "came")
#: Steps rescaled to each tensor's own norm (a layer-wise trust ratio): Adafactor's family.
_PARAMETER_SCALED = ("lamb", "lars")
_SGD_LIKE = ("sgd", "asgd")


@dataclass(frozen=True)
class OptimizerClass:
    """One optimizer of the spec: its class name, family, and whether tpcheck knows it."""

    name: str
    family: str
    known: bool
    #: Weight decay is decoupled (shrink lr·wd per step, AdamW-style): checked by TP401.
    decoupled_weight_decay: bool


def classify_optimizer(cls: type, groups: list[dict]) -> OptimizerClass:
    """The family of an optimizer class (and its groups' settings)."""
    names = [k.__name__.lower() for k in cls.__mro__ if k.__name__ not in ("object",
                                                                           "Optimizer")]
    decoupled = any("adamw" in n or n in ("muon",) for n in names) or any(
        g.get("decoupled_weight_decay", False) for g in groups)
    for n in names:
        if "muon" in n:
            return OptimizerClass(cls.__name__, "muon", True, True)
        if "adafactor" in n or n in _PARAMETER_SCALED or n.startswith(_PARAMETER_SCALED):
            return OptimizerClass(cls.__name__, "adafactor", True, decoupled)
        if n in _SGD_LIKE:
            return OptimizerClass(cls.__name__, "sgd", True, True)
        if n in _ADAM_LIKE or n.startswith(_ADAM_LIKE):
            return OptimizerClass(cls.__name__, "adam", True, decoupled)
    return OptimizerClass(cls.__name__, "adam", False, decoupled)


def update_exponent(family: str, a: sympy.Expr, c: sympy.Expr, b: sympy.Expr,
                    phi: sympy.Expr) -> sympy.Expr:
    """``U`` of a use from its multiplier ``a``, LR exponent ``c``, init ``b``, Muon ``φ``."""
    if family == "sgd":
        return 2 * a + c
    if family == "adafactor":
        return a + c + (b if b.is_finite else 0)  # a zero tensor's RMS floor is eps2: no b
    if family == "muon":
        return a + c - phi
    return a + c


def expected_update(family: str, alpha_in: int, alpha_out: int) -> sympy.Expr:
    """What μP asks of ``U`` for a use with fans ``(α_in, α_out)`` under ``family``."""
    if family == "sgd":
        return sympy.Integer(alpha_in - alpha_out)
    if family == "muon":
        return sympy.Rational(alpha_in - alpha_out, 2)
    return sympy.Integer(alpha_in)


def muon_adjustment(adjust_lr_fn: str | None, fan_out: float, fan_in: float) -> float:
    """Muon's factor on the LR for a (fan_out × fan_in) weight (torch.optim.Muon's rule)."""
    if adjust_lr_fn in (None, "original"):
        return max(1.0, fan_out / fan_in) ** 0.5
    if adjust_lr_fn == "match_rms_adamw":
        return 0.2 * max(fan_out, fan_in) ** 0.5
    return 1.0
