"""Convert: a name-keyed μP Plan for a standard model, applied without editing its code.

``convert(spec)`` traces and classifies the model like lint, measures its own init at the
base width, and writes for every tensor the canonical μP exponents of its role
(docs/theory.md §3) as rules in the width ``n``:

* init: std(n) = std_base · m_in^-I (I = 0 input / vector / scalar, ½ hidden, 1 output; the
  ``multiplier`` style gives output weights a forward multiplier 1/m_in instead of the 1/m_in
  init), so at the base width the model is exactly the one the user built (TP5 Eq. 4);
* learning rate, per optimizer family (docs/theory.md §8): Adam-like ``η·m_in^-α_in``, SGD
  ``η·m_out^α_out·m_in^-α_in``, Adafactor ``η·m_in^-(α_in − I)`` (its step already scales with
  the weight), Muon ``η·m_in^-(α_in−α_out)/2 / (f(n)/f(n_base))`` (f: Muon's own LR adjustment),
  each times the multiplier's correction where the model has one;
* decoupled weight decay ``λ / lr_mult`` (the shrink η·λ stays constant in width);
* Adam ε ``ε·m_out^-α_out`` (ε follows each tensor's gradient, docs/theory.md §5);
* attention whose head dim grows: logit scale ``√d_base / d`` (1/d, equal to 1/√d at the base).

``m_in``, ``m_out`` are the tensor's own fan multipliers ``fan(n) / fan(n_base)`` (fc2's fan-in
is 4n), 1 on finite dims. Two structures get a compromise, said in the plan's notes:

* a weight tied between an input and an output use (GPT-style ``head.weight = emb.weight``)
  keeps the input use's init and LR and gets a forward multiplier 1/m on its readout module's
  input (mup's MuSharedReadout); a readout use that is no module call cannot be hooked, and
  convert stops with what to change;
* a fan-in that concatenates a width block and a fixed block (``cat([h, pooled])``) is
  initialised block by block, each by its own fan-in, and takes its LR from the width part.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import sympy
import torch

from tpcheck.capture import build_model, build_with_inits
from tpcheck.errors import TpcheckError
from tpcheck.optimizers import classify_optimizer
from tpcheck.plan import STYLES, AttentionRule, Plan, TensorRule, unwrap
from tpcheck.spec import ModelSpec
from tpcheck.symbols import n
from tpcheck.widths import describe, is_infinite

__all__ = ["AttentionRule", "Plan", "TensorRule", "changes", "convert", "own_init_std", "unwrap"]

_INIT_EXPONENT = {"input": 0, "vector": 0, "scalar": 0, "hidden": sympy.Rational(1, 2),
                  "output": 1}


def convert(spec: ModelSpec, *, base_width: int | None = None, style: str = "init-lr",
            zero_readout: bool = False, seeds: int = 2) -> Plan:
    """The μP Plan of ``spec`` (see the module docstring for the rules).

    Forward multipliers the model already has (measured like lint does, e.g. a MuReadout's
    1/m) are kept and the plan's init and LR rules compensate for them, so a model that is
    already μP converts to itself.
    """
    from tpcheck.measure import measure
    from tpcheck.pipeline import analyze

    if style not in STYLES:
        raise TpcheckError(f"style {style!r} is not one of {STYLES}.")
    base = base_width or spec.base
    spec = replace(spec, base_width=base)
    classification = analyze(spec)
    measurement = measure(spec, classification, seeds=seeds)
    std_base = ({name: tm.init.values[base] for name, tm in measurement.tensors.items()}
                if base in classification.graph.shapes.widths else own_init_std(spec, base))
    optimizers, classes = _optimizers(spec, base)
    tensors: dict[str, TensorRule] = {}
    notes: list[str] = []
    for name, t in classification.tensors.items():
        tm = measurement.tensors[name]
        a_own = tm.a if tm.a.is_Rational else sympy.Integer(0)
        tied = len(t.roles) > 1
        if tied:  # init and LR of the use that is not the readout (the input embedding)
            use = next((u for u in t.uses if u.role != "output"), t.uses[0])
            t = replace(t, role=use.role, fan_in=use.fan_in, fan_out=use.fan_out)
        rule = _tensor_rule(name, t, base, std_base.get(name, 0.0), style, zero_readout, a_own,
                            _muon_factor(optimizers, tm.group, t, base))
        if tied:
            rule = _untie(rule, classification.tensors[name], a_own, base, notes)
        blocks = t.uses[0].fan_in_blocks if t.uses else ()
        if blocks and any(is_infinite(b) for b in blocks) and t.trainable:
            rule = _by_blocks(rule, t, blocks, base, notes)
        group = tm.group.split(".")[0] if tm.group else "0"
        tensors[name] = replace(rule, optimizer=int(group))
    attention = tuple(_attention_rule(a, base) for a in classification.attention
                      if a.head_dim is not None and is_infinite(a.head_dim))
    return Plan(model=spec.label, base_width=base, style=style, tensors=tensors,
                attention=tuple(dict.fromkeys(attention)), optimizers=optimizers,
                zero_readout=zero_readout, notes=tuple(notes), source_spec=spec,
                optimizer_classes=classes)


def _tensor_rule(name: str, t: Any, base: int, std_base: float, style: str,
                 zero_readout: bool, a_own: sympy.Expr, muon: sympy.Expr) -> TensorRule:
    role = t.role if t.role not in ("unused",) else "vector"
    m = n / base
    m_in = _multiplier(t.fan_in, base)
    m_out = _multiplier(t.fan_out, base)
    alpha_in, alpha_out = int(is_infinite(t.fan_in)), int(is_infinite(t.fan_out))
    if role in ("vector", "scalar"):
        alpha_in = 0
    forward = None
    a = a_own
    if style == "multiplier" and role == "output" and a_own != 1:
        forward = m_in ** -1 * m ** a_own  # a = 1 on the readout (mup's Table-8 form)
        a = sympy.Integer(1)
    # canonical invariants I, U of the role, reached through b = I - a and c = U - a (2a, SGD)
    init_exponent = _INIT_EXPONENT[role] if alpha_in else 0
    init_mult = m_in ** -init_exponent * m ** a
    lr = {"adam": m_in ** -alpha_in * m ** a,
          "sgd": m_out ** alpha_out * m_in ** -alpha_in * m ** (2 * a),
          "adafactor": m_in ** -(alpha_in - init_exponent),
          # the spectral condition: ‖ΔW‖ ∝ √(fan_out / fan_in), over Muon's own adjustment
          "muon": (m_in ** -sympy.Rational(alpha_in, 2) * m_out ** sympy.Rational(alpha_out, 2)
                   * m ** a / muon)}
    eps = m_out ** -alpha_out * m ** -a
    if not t.trainable or t.role == "unused":
        init = "keep"
    elif (zero_readout and role == "output") or std_base == 0.0:
        init = "zero"
        # Adafactor scales a step by max(eps2, RMS(w)): a zero tensor has no RMS to follow,
        # so its step is Adam-like and takes Adam's LR (docs/theory.md §8.3)
        lr["adafactor"] = lr["adam"]
    else:
        init = "scale"
    return TensorRule(
        name=name, role=t.role, shape=describe(t.shape, t.rounded), fan_in=str(t.fan_in),
        fan_out=str(t.fan_out), trainable=t.trainable, init=init, std_base=std_base,
        init_mult=_text(init_mult), lr_mult={k: _text(v) for k, v in lr.items()},
        wd_mult={k: _text(1 / v) for k, v in lr.items()}, eps_mult=_text(eps),
        forward_mult=None if forward is None else _text(forward))


def _multiplier(fan: sympy.Expr, base: int) -> sympy.Expr:
    return sympy.simplify(fan / fan.subs(n, base))


def _text(expr: sympy.Expr) -> str:
    return str(sympy.simplify(expr))


def _untie(rule: TensorRule, t: Any, a_own: sympy.Expr, base: int,
           notes: list[str]) -> TensorRule:
    """A weight tied between an input and a readout use: the input use's init and LR, and a
    forward multiplier 1/m on the readout module's input (mup's MuSharedReadout)."""
    outputs = [u for u in t.uses if u.role == "output"]
    others = [u for u in t.uses if u.role != "output"]
    if not outputs or not others:
        raise TpcheckError(
            f"{t.name} is used as {' and '.join(t.roles)}: no single init and LR gives every "
            "use its μP exponents, and tpcheck knows no multiplier that reconciles them.",
            where=t.defined_at or t.name,
            fix="untie the weights, or give each use a forward multiplier that makes its "
                "exponents those of its role")
    readout = outputs[0]
    aliases = {t.name, *t.aliases}
    module_weight = f"{readout.module}.weight" if readout.module else "weight"
    if readout.op not in ("linear", "conv1d", "conv2d", "conv3d") or module_weight not in aliases:
        raise TpcheckError(
            f"{t.name} is tied: used as {others[0].role} and as the readout "
            f"({readout.op} at {readout.source or readout.node}), which is not a call of a "
            "module whose weight it is; μP needs a 1/m multiplier on the readout use only, "
            "which an init or LR cannot give and tpcheck cannot install there.",
            where=readout.source or t.defined_at or t.name,
            fix=f"multiply the readout's input by {base}/width before it meets {t.name} "
                "(mup's MuSharedReadout), or make the readout an nn.Linear whose weight is "
                f"{t.name}")
    m_in = _multiplier(readout.fan_in, base)
    notes.append(f"{t.name} is tied (input and readout): it keeps the input's init and LR, and "
                 f"the readout {readout.module} gets a forward multiplier 1/m on its input")
    return replace(rule, role="+".join(t.roles), forward_mult=_text(m_in ** -1 * (n / base)
                                                                      ** a_own),
                   forward_at=readout.module)


def _by_blocks(rule: TensorRule, t: Any, blocks: tuple[sympy.Expr, ...], base: int,
               notes: list[str]) -> TensorRule:
    """A fan-in made of a width block and fixed blocks: each block's init by its own fan-in
    (the width block hidden-like, a fixed block input-like), the LR from the width part."""
    exponent = _INIT_EXPONENT["hidden"] if is_infinite(t.fan_out) else _INIT_EXPONENT["output"]
    spec_blocks = []
    for size in blocks:
        mult = _multiplier(size, base) ** -exponent if is_infinite(size) else sympy.Integer(1)
        spec_blocks.append({"size": str(size), "init_mult": _text(mult)})
    width = sum((b for b in blocks if is_infinite(b)), sympy.Integer(0))
    m_w = _multiplier(width, base)
    lr = dict(rule.lr_mult)
    lr["adam"] = _text(m_w ** -1)
    lr["adafactor"] = _text(m_w ** -(1 - exponent))
    fixed = " + ".join(str(b) for b in blocks if not is_infinite(b))
    notes.append(f"{t.name}: fan-in {t.fan_in} concatenates a width block and a fixed block "
                 f"({fixed}): each block is initialised by its own fan-in, and the LR follows "
                 "the width part, so the fixed block's LR shrinks with the width too (split the "
                 "layer in two to give it its own LR)")
    return replace(rule, blocks=spec_blocks, lr_mult=lr,
                   wd_mult={k: _text(1 / sympy.sympify(v)) for k, v in lr.items()})


def _muon_factor(optimizers: tuple[dict[str, Any], ...], group: str | None, t: Any,
                 base: int) -> sympy.Expr:
    """Muon's own LR adjustment f(n)/f(n_base) for this tensor (1 for other families)."""
    k = int(group.split(".")[0]) if group else 0
    record = optimizers[k] if k < len(optimizers) else {}
    if record.get("family") != "muon" or len(t.shape) < 2:
        return sympy.Integer(1)
    out, inp = t.shape[0], sympy.Mul(*t.shape[1:])
    if record.get("adjust_lr_fn") == "match_rms_adamw":
        f = sympy.sqrt(sympy.Max(out, inp))
    else:
        f = sympy.sqrt(sympy.Max(1, out / inp))
    return sympy.simplify(f / f.subs(n, base))


def _attention_rule(att: Any, base: int) -> AttentionRule:
    d = att.head_dim
    scale = sympy.sqrt(d.subs(n, base)) / d
    return AttentionRule(module=att.module, head_dim=str(d), scale=str(sympy.simplify(scale)))


def own_init_std(spec: ModelSpec, width: int) -> dict[str, float]:
    """Root-mean-square of every tensor of the model's own init at ``width``: read from its
    init calls on the meta device, sampled on the CPU only where they cannot be read."""
    with torch.random.fork_rng(devices=[]):
        _, reads = build_with_inits(spec, width, "meta")
        if any(not r.known for r in reads.values()):
            _, reads = build_with_inits(spec, width, "cpu")
    return {name: math.sqrt(r.mean_square or 0.0) for name, r in reads.items()}


def _optimizers(spec: ModelSpec, base: int) -> tuple[tuple[dict[str, Any], ...],
                                                     tuple[type, ...]]:
    """Class, family and base hyperparameters (first group) of each of the spec's optimizers."""
    with torch.device("meta"):
        model = build_model(spec, base, "meta")
    try:
        opts = spec.build_optimizers(model)
    except TpcheckError:
        opts = spec.build_optimizers(build_model(spec, base, "cpu"))
    records = []
    for opt in opts:
        group = opt.param_groups[0] if opt.param_groups else {}
        family = classify_optimizer(type(opt), list(opt.param_groups)).family
        out: dict[str, Any] = {"class": type(opt).__name__, "family": family,
                               "lr": _float(group.get("lr"), 1e-4),
                               "weight_decay": _float(group.get("weight_decay"), 0.0)}
        if isinstance(group.get("eps"), (int, float)):
            out["eps"] = float(group["eps"])
        if "betas" in group:
            out["betas"] = [float(b) for b in group["betas"]]
        for key in ("momentum", "nesterov", "adjust_lr_fn"):
            if key in group:
                out[key] = group[key]
        records.append(out)
    return tuple(records), tuple(type(o) for o in opts)


def _float(value: Any, default: float) -> float:
    if isinstance(value, torch.Tensor):
        return float(value)
    return float(value) if isinstance(value, (int, float)) else default


def changes(plan: Plan, width: int) -> Iterator[dict[str, Any]]:
    """What the plan changes per tensor at ``width``: old → new init std, LR and wd multipliers."""
    for name, rule in plan.tensors.items():
        family = (plan.optimizers[rule.optimizer]["family"]
                  if rule.optimizer < len(plan.optimizers) else "adam")
        yield {"name": name, "role": rule.role, "init": rule.init,
               "std_base": rule.std_base,
               "std": 0.0 if rule.init == "zero" else rule.std_base * rule.at(rule.init_mult,
                                                                               width),
               "lr_mult": rule.at(rule.lr_mult[family], width),
               "wd_mult": rule.at(rule.wd_mult[family], width),
               "eps_mult": rule.at(rule.eps_mult, width),
               "forward_mult": None if rule.forward_mult is None else rule.at(rule.forward_mult,
                                                                              width)}
