"""Convert: a name-keyed μP Plan for a standard model, applied without editing its code.

``convert(spec)`` traces and classifies the model like lint, measures its own init at the
base width, and writes for every tensor the canonical μP exponents of its role (theory.md
§3) as rules in the width ``n``:

* init: std(n) = std_base · m_in^-I (I = 0 input / vector / scalar, ½ hidden, 1 output; the
  ``multiplier`` style gives output weights a forward multiplier 1/m_in instead of the 1/m_in
  init), so at the base width the model is exactly the one the user built (TP5 Eq. 4);
* learning rate: Adam ``η·m_in^-α_in``, SGD ``η·m_out^α_out·m_in^-α_in`` (times the multiplier's
  correction in the ``multiplier`` style);
* decoupled weight decay ``λ / lr_mult`` (the shrink η·λ stays constant in width);
* Adam ε ``ε·m_out^-α_out`` (ε follows each tensor's gradient, theory.md §5);
* attention whose head dim grows: logit scale ``√d_base / d`` (1/d, equal to 1/√d at the base).

``m_in``, ``m_out`` are the tensor's own fan multipliers ``fan(n) / fan(n_base)`` (fc2's fan-in
is 4n), 1 on finite dims. Nothing is stored on parameters: the Plan is a table keyed by
qualified name, saved as JSON beside the checkpoint.
"""

from __future__ import annotations

import json
import math
import weakref
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import sympy
import torch

from tpcheck import __version__
from tpcheck.capture import build_model, build_with_inits
from tpcheck.errors import TpcheckError
from tpcheck.spec import ModelSpec
from tpcheck.symbols import ROUNDED, n, parse
from tpcheck.widths import describe, is_infinite

STYLES = ("init-lr", "multiplier")
OPTIMIZERS = ("adamw", "adam", "sgd")
_INIT_EXPONENT = {"input": 0, "vector": 0, "scalar": 0, "hidden": sympy.Rational(1, 2),
                  "output": 1}


@dataclass(frozen=True)
class TensorRule:
    """The μP parametrization of one tensor, as expressions in ``n`` (JSON-friendly)."""

    name: str
    role: str
    shape: list[str]
    fan_in: str
    fan_out: str
    trainable: bool
    init: str  # "scale" (std_base · init_mult), "keep" (frozen or unused) or "zero"
    std_base: float  # root-mean-square of the model's own init at the base width
    init_mult: str  # std(n) / std_base
    lr_mult: dict[str, str]  # optimizer kind ("adam", "sgd") -> LR multiplier in n
    wd_mult: dict[str, str]
    eps_mult: str
    forward_mult: str | None = None  # multiplier style: factor on the module's input

    def at(self, expr: str, width: int) -> float:
        return float(parse(expr).subs(n, width))


@dataclass(frozen=True)
class AttentionRule:
    """An attention op whose logit scale the Plan sets (its head dim grows with ``n``)."""

    module: str
    head_dim: str
    scale: str  # the logit scale in n: √d_base / d

    def at(self, width: int) -> float:
        return float(parse(self.scale).subs(n, width))


@dataclass(frozen=True)
class Plan:
    """The μP parametrization of a model, keyed by parameter name (the Plan contract)."""

    model: str
    base_width: int
    style: str
    tensors: dict[str, TensorRule]
    attention: tuple[AttentionRule, ...] = ()
    optimizer: dict[str, Any] = field(default_factory=dict)  # the spec's base hyperparameters
    zero_readout: bool = False
    source_spec: ModelSpec | None = field(default=None, compare=False, repr=False)

    # --- applying ---------------------------------------------------------------------

    def infer_width(self, model: torch.nn.Module) -> int:
        """The width ``n`` a model was built at, solved from its parameter shapes."""
        model = unwrap(model)
        found: dict[int, str] = {}
        params = dict(model.named_parameters())
        for name, rule in self.tensors.items():
            if name not in params:
                continue
            for axis, expr_text in enumerate(rule.shape):
                if expr_text.startswith(ROUNDED):
                    continue  # 8n/3 rounded to a multiple: it does not pin n exactly
                expr = parse(expr_text)
                if not is_infinite(expr):
                    continue
                size = params[name].shape[axis]
                slope = sympy.diff(expr, n)
                solution = (size - expr.subs(n, 0)) / slope
                if solution.is_integer:
                    found.setdefault(int(solution), f"{name}[{axis}] = {size}")
        if len(found) != 1:
            raise TpcheckError(
                "cannot infer one width from the model's parameter shapes "
                f"(candidates: {found or 'none'}).",
                where=self.model, fix="apply the plan to a model of the architecture it was "
                "made for (same parameter names), or pass width= explicitly")
        return next(iter(found))

    def apply(self, model: torch.nn.Module, *, width: int | None = None,
              reinit: bool = True) -> torch.nn.Module:
        """Re-initialise ``model`` in place for μP at its width and set attention scales.

        ``reinit=False`` keeps the weights (continuing from a pretrained checkpoint) and only
        installs forward multipliers and scales; with ``base_width`` set to the checkpoint's
        width the outputs are unchanged.
        """
        outer, model = model, unwrap(model)
        params = dict(model.named_parameters())
        missing = sorted(set(self.tensors) - set(params))
        if missing:
            raise TpcheckError(f"the model lacks {len(missing)} tensor(s) of the plan: "
                               f"{missing[:5]}", where=self.model,
                               fix="apply the plan to the architecture it was made for")
        width = width or self.infer_width(model)
        if reinit:
            with torch.no_grad():
                for name, rule in self.tensors.items():
                    _reinit(params[name], rule, width, self.base_width)
        for att in self.attention:
            _set_attention_scale(model, att, width)
        if self.style == "multiplier":
            for name, rule in self.tensors.items():
                if rule.forward_mult:
                    _install_input_scale(model, name, rule.at(rule.forward_mult, width))
        return outer

    def param_groups(self, model: torch.nn.Module, *, lr: float, weight_decay: float = 0.0,
                     eps: float = 1e-8, optimizer: str = "adamw",
                     width: int | None = None) -> list[dict[str, Any]]:
        """Optimizer param groups with each tensor's μP LR, weight decay and ε."""
        if optimizer not in OPTIMIZERS:
            raise TpcheckError(f"optimizer {optimizer!r} is not one of {OPTIMIZERS}.")
        kind = "sgd" if optimizer == "sgd" else "adam"
        width = width or self.infer_width(model)
        model = unwrap(model)
        groups: dict[tuple[float, float, float], list[torch.nn.Parameter]] = {}
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            rule = self.tensors.get(name)
            if rule is None:
                raise TpcheckError(f"parameter {name!r} is not in the plan.", where=self.model,
                                   fix="make the plan from this architecture (tpcheck convert)")
            g_lr = lr * rule.at(rule.lr_mult[kind], width)
            g_wd = weight_decay * rule.at(rule.wd_mult[kind], width)
            g_eps = eps * rule.at(rule.eps_mult, width)
            groups.setdefault((g_lr, g_wd, g_eps), []).append(p)
        out = []
        for (g_lr, g_wd, g_eps), ps in groups.items():
            group: dict[str, Any] = {"params": ps, "lr": g_lr, "weight_decay": g_wd}
            if kind == "adam":
                group["eps"] = g_eps
            out.append(group)
        return out

    def build_optimizer(self, model: torch.nn.Module, **overrides: Any) -> torch.optim.Optimizer:
        """The spec's optimizer family and base hyperparameters, with the plan's groups."""
        settings = {**self.optimizer, **overrides}
        family = settings.pop("family", "adamw")
        groups = self.param_groups(model, lr=settings.get("lr", 1e-4),
                                   weight_decay=settings.get("weight_decay", 0.0),
                                   eps=settings.get("eps", 1e-8), optimizer=family)
        if family == "sgd":
            return torch.optim.SGD(groups, lr=settings.get("lr", 1e-4),
                                   momentum=settings.get("momentum", 0.0))
        cls = torch.optim.AdamW if family == "adamw" else torch.optim.Adam
        return cls(groups, lr=settings.get("lr", 1e-4),
                   betas=tuple(settings.get("betas", (0.9, 0.999))))

    def spec(self, base: ModelSpec | None = None) -> ModelSpec:
        """The μP ModelSpec: the same factory and inputs, the plan applied, its optimizer."""
        base = base or self.source_spec
        if base is None:
            raise TpcheckError("this plan was loaded from JSON and has no ModelSpec.",
                               fix="pass the original spec: plan.spec(load_target(...))")
        plan = self

        def factory(width: int) -> torch.nn.Module:
            return plan.apply(base.factory(width), width=width)

        return replace(base, factory=factory, optimizer=self.build_optimizer,
                       base_width=self.base_width, name=f"{base.label}+μP")

    # --- JSON -------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {"tpcheck": __version__, "model": self.model, "base_width": self.base_width,
                "style": self.style, "zero_readout": self.zero_readout,
                "optimizer": self.optimizer,
                "tensors": {k: asdict(v) for k, v in self.tensors.items()},
                "attention": [asdict(a) for a in self.attention]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        try:
            return cls(model=data["model"], base_width=int(data["base_width"]),
                       style=data["style"],
                       tensors={k: TensorRule(**v) for k, v in data["tensors"].items()},
                       attention=tuple(AttentionRule(**a) for a in data.get("attention", ())),
                       optimizer=dict(data.get("optimizer", {})),
                       zero_readout=bool(data.get("zero_readout", False)))
        except (KeyError, TypeError, ValueError) as exc:
            raise TpcheckError(f"not a tpcheck plan: {exc}",
                               fix="write plans with `tpcheck convert TARGET -o plan.json`"
                               ) from exc

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Plan:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise TpcheckError(f"plan file {str(path)!r} does not exist.") from exc
        except json.JSONDecodeError as exc:
            raise TpcheckError(f"plan file {str(path)!r} is not JSON: {exc}") from exc
        return cls.from_json(data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Plan) and self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_json(), sort_keys=True))


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The user's module inside DistributedDataParallel / DataParallel / torch.compile."""
    wrappers = (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)
    while True:
        if isinstance(model, wrappers):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), torch.nn.Module):
            model = model._orig_mod  # torch.compile's OptimizedModule
        else:
            return model


# --- making a plan -------------------------------------------------------------------------


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
    tensors = {}
    for name, t in classification.tensors.items():
        a_own = measurement.tensors[name].a
        a_own = a_own if a_own.is_Rational else sympy.Integer(0)
        tensors[name] = _tensor_rule(name, t, base, std_base.get(name, 0.0), style,
                                     zero_readout, a_own)
    attention = tuple(_attention_rule(a, base) for a in classification.attention
                      if is_infinite(a.head_dim))
    return Plan(model=spec.label, base_width=base, style=style, tensors=tensors,
                attention=_unique(attention), optimizer=_base_optimizer(spec, base),
                zero_readout=zero_readout, source_spec=spec)


def _tensor_rule(name: str, t: Any, base: int, std_base: float, style: str,
                 zero_readout: bool, a_own: sympy.Expr) -> TensorRule:
    role = t.role if t.role != "unused" else "vector"
    m = n / base
    m_in = sympy.simplify(t.fan_in / t.fan_in.subs(n, base))
    m_out = sympy.simplify(t.fan_out / t.fan_out.subs(n, base))
    alpha_in, alpha_out = int(is_infinite(t.fan_in)), int(is_infinite(t.fan_out))
    if role in ("vector", "scalar"):
        alpha_in = 0
    one = sympy.Integer(1)
    forward = None
    a = a_own
    if style == "multiplier" and role == "output" and a_own != 1:
        forward = m_in ** -1 * m ** a_own  # a = 1 on the readout (mup's Table-8 form)
        a = sympy.Integer(1)
    # canonical invariants I, U of the role, reached through b = I - a and c = U - a (2a, SGD)
    init_mult = (m_in ** -_INIT_EXPONENT[role] if alpha_in else one) * m ** a
    lr_adam = m_in ** -alpha_in * m ** a
    lr_sgd = m_out ** alpha_out * m_in ** -alpha_in * m ** (2 * a)
    eps = m_out ** -alpha_out * m ** -a
    if not t.trainable or t.role == "unused":
        init = "keep"
    elif (zero_readout and role == "output") or std_base == 0.0:
        init = "zero"
    else:
        init = "scale"
    return TensorRule(
        name=name, role=t.role, shape=describe(t.shape, t.rounded), fan_in=str(t.fan_in),
        fan_out=str(t.fan_out), trainable=t.trainable, init=init, std_base=std_base,
        init_mult=str(sympy.simplify(init_mult)),
        lr_mult={"adam": str(sympy.simplify(lr_adam)), "sgd": str(sympy.simplify(lr_sgd))},
        wd_mult={"adam": str(sympy.simplify(1 / lr_adam)),
                 "sgd": str(sympy.simplify(1 / lr_sgd))},
        eps_mult=str(sympy.simplify(eps)),
        forward_mult=None if forward is None else str(sympy.simplify(forward)))


def _attention_rule(att: Any, base: int) -> AttentionRule:
    d = att.head_dim
    scale = sympy.sqrt(d.subs(n, base)) / d
    return AttentionRule(module=att.module, head_dim=str(d), scale=str(sympy.simplify(scale)))


def _unique(rules: tuple[AttentionRule, ...]) -> tuple[AttentionRule, ...]:
    return tuple(dict.fromkeys(rules))


def own_init_std(spec: ModelSpec, width: int) -> dict[str, float]:
    """Root-mean-square of every tensor of the model's own init at ``width``: read from its
    init calls on the meta device, sampled on the CPU only where they cannot be read."""
    with torch.random.fork_rng(devices=[]):
        _, reads = build_with_inits(spec, width, "meta")
        if any(not r.known for r in reads.values()):
            _, reads = build_with_inits(spec, width, "cpu")
    return {name: math.sqrt(r.mean_square or 0.0) for name, r in reads.items()}


def _base_optimizer(spec: ModelSpec, base: int) -> dict[str, Any]:
    """The family and hyperparameters of the spec's optimizer (its first group) at the base."""
    with torch.device("meta"):
        model = build_model(spec, base, "meta")
    try:
        opt = spec.build_optimizer(model)
    except Exception:
        opt = spec.build_optimizer(build_model(spec, base, "cpu"))
    group = opt.param_groups[0]
    family = ("sgd" if isinstance(opt, torch.optim.SGD) else
              "adamw" if isinstance(opt, torch.optim.AdamW) else "adam")
    out: dict[str, Any] = {"family": family, "lr": float(group.get("lr", 1e-4)),
                           "weight_decay": float(group.get("weight_decay", 0.0) or 0.0)}
    if "eps" in group:
        out["eps"] = float(group["eps"])
    if "betas" in group:
        out["betas"] = [float(b) for b in group["betas"]]
    if "momentum" in group:
        out["momentum"] = float(group["momentum"])
    return out


# --- applying, per tensor and per module ----------------------------------------------------


def _reinit(p: torch.nn.Parameter, rule: TensorRule, width: int, base: int) -> None:
    """Rescale the model's own init to the plan's std; exact identity at the base width.

    A tensor with values is scaled by target / its own RMS, so its RMS is the target exactly;
    a meta tensor has no values, and gets a draw of the target size, which is all tpcheck's
    init reader sees of it (asked through ``.device``: code asking ``is_meta`` reads as
    unreadable).
    """
    if rule.init == "keep" or (width == base and rule.init == "scale"):
        return
    if rule.init == "zero":
        p.zero_()
        return
    target = rule.std_base * rule.at(rule.init_mult, width)
    current = 0.0 if p.device.type == "meta" else (
        float(p.detach().double().pow(2).mean().sqrt()) if p.numel() else 0.0)
    if current > 0.0:
        p.mul_(target / current)
    else:
        p.normal_(0.0, target)


def _set_attention_scale(model: torch.nn.Module, att: AttentionRule, width: int) -> None:
    try:
        module = model.get_submodule(att.module) if att.module else model
    except AttributeError:
        raise TpcheckError(f"attention module {att.module!r} of the plan is not in the model.",
                           where=att.module) from None
    scale = att.at(width)
    if hasattr(module, "processor") and hasattr(module, "set_processor"):
        inner = module.processor
        if isinstance(inner, ScaledAttentionProcessor):
            inner = inner.inner
        module.set_processor(ScaledAttentionProcessor(inner, scale))
    elif hasattr(module, "scale") and not isinstance(module.scale, torch.Tensor):
        module.scale = scale
    else:
        raise TpcheckError(
            f"cannot set the attention logit scale of {att.module!r} "
            f"({type(module).__name__}): it has no `scale` attribute or attention processor.",
            where=att.module,
            fix=f"pass scale=self.scale to scaled_dot_product_attention in "
                f"{type(module).__name__}.forward and store the scale in self.scale, or "
                f"scale q·kᵀ by √d_base/d yourself (head dim {att.head_dim} grows with n)")


class ScaledAttentionProcessor:
    """Wraps a diffusers attention processor so its SDPA calls use the plan's logit scale.

    diffusers' processors call ``F.scaled_dot_product_attention`` without ``scale``; the
    wrapper supplies it for the duration of the call. It changes no parameter or state_dict
    key and survives ``torch.export`` (the call is traced through).
    """

    def __init__(self, inner: Any, scale: float) -> None:
        self.inner = inner
        self.scale = scale

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        functional = torch.nn.functional
        original = functional.scaled_dot_product_attention
        scale = self.scale

        def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *rest: Any,
                 **kw: Any) -> torch.Tensor:
            kw["scale"] = scale
            return original(q, k, v, *rest, **kw)

        functional.scaled_dot_product_attention = sdpa
        try:
            return self.inner(*args, **kwargs)
        finally:
            functional.scaled_dot_product_attention = original

    def __getattr__(self, name: str) -> Any:  # diffusers inspects processor attributes
        return getattr(self.__dict__["inner"], name)


_HOOKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class InputScale:
    """A forward pre-hook multiplying a module's first input by a constant (1/m)."""

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def __call__(self, module: torch.nn.Module, args: tuple) -> tuple:
        del module
        return (args[0] * self.factor, *args[1:])


def _install_input_scale(model: torch.nn.Module, name: str, factor: float) -> None:
    module_path, _, attr = name.rpartition(".")
    module = model.get_submodule(module_path) if module_path else model
    if attr != "weight" or not isinstance(module, (torch.nn.Linear, torch.nn.Conv1d,
                                                   torch.nn.Conv2d, torch.nn.Conv3d)):
        raise TpcheckError(
            f"cannot install a forward multiplier for {name!r}: its module "
            f"({type(module).__name__}) is not a Linear or Conv.",
            fix="use style='init-lr' (no forward change), or multiply the readout's input by "
                "1/m in your forward")
    previous = _HOOKS.get(module)
    if previous is not None:
        previous.remove()
    _HOOKS[module] = module.register_forward_pre_hook(InputScale(factor))


def changes(plan: Plan, width: int) -> Iterator[dict[str, Any]]:
    """What the plan changes per tensor at ``width``: old → new init std, LR and wd multipliers."""
    for name, rule in plan.tensors.items():
        yield {"name": name, "role": rule.role, "init": rule.init,
               "std_base": rule.std_base,
               "std": 0.0 if rule.init == "zero" else rule.std_base * rule.at(rule.init_mult,
                                                                               width),
               "lr_mult": rule.at(rule.lr_mult["adam"], width),
               "wd_mult": rule.at(rule.wd_mult["adam"], width),
               "eps_mult": rule.at(rule.eps_mult, width),
               "forward_mult": None if rule.forward_mult is None else rule.at(rule.forward_mult,
                                                                              width)}
