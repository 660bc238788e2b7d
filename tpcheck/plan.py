"""The Plan: a name-keyed description of a model's μP parametrization, and how to apply it.

A :class:`Plan` (made by :func:`tpcheck.convert`) holds, per tensor, expressions in the width
``n``: the init std relative to the model's own init at the base width, the LR, weight-decay
and ε multipliers for each optimizer family, and forward multipliers; per attention op, the
logit scale. Nothing is stored on parameters (lost under FSDP, torch.compile, DataParallel and
torch.save): the plan is a table, saved as JSON beside the checkpoint.

* :meth:`Plan.apply` re-initialises a model in place at any width (inferred from its shapes),
  installs forward multipliers and attention scales;
* :meth:`Plan.param_groups` / :meth:`Plan.build_optimizer` give each tensor its μP LR, weight
  decay and ε, for the optimizers the source spec used (Muon beside AdamW included);
* :meth:`Plan.spec` is the μP ModelSpec, which ``tpcheck lint`` must find clean.
"""

from __future__ import annotations

import json
import weakref
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import sympy
import torch

from tpcheck import __version__
from tpcheck.errors import TpcheckError
from tpcheck.spec import ModelSpec
from tpcheck.symbols import ROUNDED, n, parse
from tpcheck.widths import is_infinite

#: Optimizer names ``param_groups(optimizer=...)`` accepts, and the family whose multipliers
#: each takes.
OPTIMIZERS = {"adamw": "adam", "adam": "adam", "nadam": "adam", "radam": "adam",
              "adamax": "adam", "lion": "adam", "sgd": "sgd", "adafactor": "adafactor",
              "muon": "muon"}
STYLES = ("init-lr", "multiplier")


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
    lr_mult: dict[str, str]  # optimizer family -> LR multiplier in n
    wd_mult: dict[str, str]
    eps_mult: str
    forward_mult: str | None = None  # a factor on a module's input (readout, tied readout)
    #: The module whose input ``forward_mult`` scales (None: the tensor's own module).
    forward_at: str | None = None
    #: A fan-in that concatenates blocks: ``[{"size": "n", "init_mult": ...}, ...]`` along
    #: the contracted axis (1), each block initialised by its own fan-in.
    blocks: list[dict[str, str]] | None = None
    optimizer: int = 0  # which of the plan's optimizers holds it

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
    #: The source spec's optimizers: class name, family and base hyperparameters each.
    optimizers: tuple[dict[str, Any], ...] = ()
    zero_readout: bool = False
    #: What the plan could not make exactly μP, and what it did instead (printed by convert).
    notes: tuple[str, ...] = ()
    source_spec: ModelSpec | None = field(default=None, compare=False, repr=False)
    #: The source's optimizer classes (not saved: a loaded plan finds torch.optim's by name).
    optimizer_classes: tuple[type, ...] = field(default=(), compare=False, repr=False)

    @property
    def optimizer(self) -> dict[str, Any]:
        """The first optimizer's settings (the one a single-optimizer spec has)."""
        return dict(self.optimizers[0]) if self.optimizers else {}

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
                solution = (size - expr.subs(n, 0)) / sympy.diff(expr, n)
                if solution.is_integer:
                    found.setdefault(int(solution), f"{name}[{axis}] = {size}")
        if len(found) != 1:
            raise TpcheckError(
                "cannot infer one width from the model's parameter shapes "
                f"(candidates: {found or 'none'}).",
                where=self.model, fix="apply the plan to a model of the architecture it was "
                "made for (same parameter names), or pass width= explicitly")
        return next(iter(found))

    def _check_covers(self, params: dict[str, torch.nn.Parameter]) -> None:
        """Every parameter of the model is in the plan: a plan traced at reduced depth (one
        block per kind, as tpcheck traces model classes) applied to the full model would
        re-initialise only some blocks and give the rest no group."""
        extra = [name for name in params if name not in self.tensors]
        if extra:
            raise TpcheckError(
                f"the model has {len(extra)} parameter(s) the plan does not describe "
                f"(e.g. {', '.join(extra[:3])}): the plan was made from a model with fewer "
                "blocks, or another architecture.", where=self.model,
                fix="map a reduced-depth plan onto every block first: plan = "
                    "tpcheck.specgen.extend_plan(plan, model) (docs/diffusers.md)")

    def apply(self, model: torch.nn.Module, *, width: int | None = None,
              reinit: bool = True) -> torch.nn.Module:
        """Re-initialise ``model`` in place for μP at its width, install forward multipliers
        and attention scales.

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
        self._check_covers(params)
        width = width or self.infer_width(model)
        if reinit:
            with torch.no_grad():
                for name, rule in self.tensors.items():
                    _reinit(params[name], rule, width, self.base_width)
        for att in self.attention:
            _set_attention_scale(model, att, width)
        for name, rule in self.tensors.items():
            if rule.forward_mult:
                _install_input_scale(model, name, rule.forward_at,
                                     rule.at(rule.forward_mult, width))
        return outer

    def param_groups(self, model: torch.nn.Module, *, lr: float, weight_decay: float = 0.0,
                     eps: float = 1e-8, optimizer: str = "adamw", width: int | None = None,
                     names: set[str] | None = None) -> list[dict[str, Any]]:
        """Optimizer param groups with each tensor's μP LR, weight decay and ε for
        ``optimizer`` (a name of :data:`OPTIMIZERS`); ``names`` keeps only those tensors."""
        family = OPTIMIZERS.get(optimizer.lower())
        if family is None:
            raise TpcheckError(f"optimizer {optimizer!r} is not one of {sorted(OPTIMIZERS)}.",
                               fix="pass the optimizer's name, e.g. optimizer='adamw'")
        model = unwrap(model)
        if names is None:
            self._check_covers(dict(model.named_parameters()))
        width = width or self.infer_width(model)
        groups: dict[tuple[float, float, float], list[torch.nn.Parameter]] = {}
        for name, p in model.named_parameters():
            if not p.requires_grad or (names is not None and name not in names):
                continue
            rule = self.tensors.get(name)
            if rule is None:
                raise TpcheckError(f"parameter {name!r} is not in the plan.", where=self.model,
                                   fix="make the plan from this architecture (tpcheck convert)")
            g_lr = lr * rule.at(rule.lr_mult[family], width)
            g_wd = weight_decay * rule.at(rule.wd_mult[family], width)
            g_eps = eps * rule.at(rule.eps_mult, width)
            groups.setdefault((g_lr, g_wd, g_eps), []).append(p)
        out = []
        for (g_lr, g_wd, g_eps), ps in groups.items():
            group: dict[str, Any] = {"params": ps, "lr": g_lr, "weight_decay": g_wd}
            if family == "adam" and optimizer.lower() != "lion":
                group["eps"] = g_eps
            out.append(group)
        return out

    def build_optimizer(self, model: torch.nn.Module, **overrides: Any
                        ) -> torch.optim.Optimizer | list[torch.optim.Optimizer]:
        """The source spec's optimizers with the plan's groups (a list when it had several,
        e.g. Muon for the hidden matrices beside AdamW for the rest)."""
        records = self.optimizers or ({"class": "AdamW", "family": "adam", "lr": 1e-4},)
        built = []
        for k, record in enumerate(records):
            settings = {**record, **overrides}
            cls = self._optimizer_class(k, str(settings.get("class", "AdamW")))
            names = {name for name, rule in self.tensors.items() if rule.optimizer == k}
            lr = float(settings.get("lr") or 1e-4)
            groups = self.param_groups(model, lr=lr,
                                       weight_decay=float(settings.get("weight_decay") or 0.0),
                                       eps=float(settings.get("eps") or 1e-8),
                                       optimizer=_optimizer_name(cls, settings), names=names)
            hyper = {k2: v for k2, v in settings.items()
                     if k2 in ("betas", "momentum", "nesterov", "adjust_lr_fn")}
            if "betas" in hyper:
                hyper["betas"] = tuple(hyper["betas"])
            try:
                built.append(cls(groups, lr=lr, **hyper))
            except TypeError:  # a class without one of those hyperparameters
                built.append(cls(groups, lr=lr))
        return built[0] if len(built) == 1 else built

    def _optimizer_class(self, k: int, name: str) -> type:
        if k < len(self.optimizer_classes):
            return self.optimizer_classes[k]
        cls = getattr(torch.optim, name, None)
        if cls is None:
            raise TpcheckError(f"the plan's optimizer {name} is not in torch.optim, and this "
                               "plan was loaded from JSON without its class.",
                               fix="build the optimizer yourself with plan.param_groups(model, "
                                   f"lr=..., optimizer={name.lower()!r})")
        return cls

    def spec(self, base: ModelSpec | None = None) -> ModelSpec:
        """The μP ModelSpec: the same factory and inputs, the plan applied, its optimizers."""
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
                "optimizer": self.optimizer, "optimizers": [dict(o) for o in self.optimizers],
                "tensors": {k: asdict(v) for k, v in self.tensors.items()},
                "attention": [asdict(a) for a in self.attention],
                "notes": list(self.notes)}

    @classmethod
    def from_json(cls, data: Any, where: str = "plan") -> Plan:
        """A plan from its JSON, checked against ``tpcheck/schemas/plan.schema.json`` and
        every expression parsed as a function of ``n`` (a bad plan is a TpcheckError that
        names the key, never a KeyError deep inside ``apply``)."""
        from tpcheck.schema import load, problems

        found = problems(data, load("plan"))
        if found:
            listed = "; ".join(f"{p.key}: {p.message}" for p in found[:5])
            raise TpcheckError(f"not a valid tpcheck plan ({len(found)} problem(s)): {listed}"
                               + (" ..." if len(found) > 5 else ""), where=where,
                               fix="write plans with `tpcheck convert TARGET -o plan.json`; "
                                   "the format is tpcheck/schemas/plan.schema.json")
        optimizers = tuple(dict(o) for o in data.get("optimizers") or [])
        if not optimizers and data.get("optimizer"):  # a plan written before 0.2
            old = dict(data["optimizer"])
            family = old.pop("family", "adamw")
            optimizers = ({"class": {"sgd": "SGD", "adam": "Adam"}.get(family, "AdamW"),
                           "family": "sgd" if family == "sgd" else "adam", **old},)
        tensors = {k: TensorRule(**v) for k, v in data["tensors"].items()}
        attention = tuple(AttentionRule(**a) for a in data.get("attention", ()))
        for key, expr in _expressions(tensors, attention):
            _check_expression(expr, key, where)
        bad = [k for k, t in tensors.items() if t.optimizer >= max(len(optimizers), 1)]
        if bad:
            raise TpcheckError(f"tensors.{bad[0]}.optimizer points past the plan's "
                               f"{len(optimizers)} optimizer(s).", where=where,
                               fix="write plans with `tpcheck convert TARGET -o plan.json`")
        return cls(model=data["model"], base_width=int(data["base_width"]),
                   style=data["style"], tensors=tensors, attention=attention,
                   optimizers=optimizers, zero_readout=bool(data.get("zero_readout", False)),
                   notes=tuple(data.get("notes", ())))

    def to_text(self) -> str:
        """The plan file's contents (what :meth:`save` writes)."""
        return json.dumps(self.to_json(), indent=2) + "\n"

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_text(), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Plan:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise TpcheckError(f"plan file {str(path)!r} does not exist.") from exc
        except IsADirectoryError as exc:
            raise TpcheckError(f"plan file {str(path)!r} is a directory.",
                               fix="pass the plan.json that `tpcheck convert -o` wrote") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise TpcheckError(f"cannot read plan file {str(path)!r}: {exc}") from exc
        except json.JSONDecodeError as exc:
            raise TpcheckError(f"plan file {str(path)!r} is not JSON: {exc.msg}",
                               where=f"{path}:{exc.lineno}",
                               fix="write plans with `tpcheck convert TARGET -o plan.json`"
                               ) from exc
        return cls.from_json(data, where=str(path))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Plan) and self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_json(), sort_keys=True))


def _expressions(tensors: dict[str, TensorRule], attention: tuple[AttentionRule, ...]
                 ) -> list[tuple[str, str]]:
    """Every width expression of a plan, keyed by where it sits in the JSON."""
    out = []
    for name, t in tensors.items():
        out += [(f"tensors.{name}.{f}", getattr(t, f)) for f in ("fan_in", "fan_out",
                                                                  "init_mult", "eps_mult")]
        out += [(f"tensors.{name}.shape[{i}]", e) for i, e in enumerate(t.shape)]
        out += [(f"tensors.{name}.{f}.{fam}", e) for f in ("lr_mult", "wd_mult")
                for fam, e in getattr(t, f).items()]
        if t.forward_mult is not None:
            out.append((f"tensors.{name}.forward_mult", t.forward_mult))
        for i, block in enumerate(t.blocks or ()):
            out += [(f"tensors.{name}.blocks[{i}].{k}", e) for k, e in block.items()]
    for i, a in enumerate(attention):
        out += [(f"attention[{i}].head_dim", a.head_dim), (f"attention[{i}].scale", a.scale)]
    return out


def _check_expression(expr: str, key: str, where: str) -> None:
    """``expr`` is a finite expression in ``n`` alone (:func:`~tpcheck.symbols.parse` says
    what else the text holds)."""
    fix = "write e.g. \"64/n\" or \"sqrt(64/n)\": numbers, n, sqrt, Max, Min and arithmetic"
    try:
        value = parse(expr)
    except Exception as exc:  # parse's ValueError says why; SymPy's parser raises many types
        why = f" ({exc})" if isinstance(exc, ValueError) else ""
        raise TpcheckError(f"{key} = {expr!r} is not an expression in the width n{why}.",
                           where=where, fix=fix) from exc
    if not isinstance(value, sympy.Expr) or value.has(sympy.zoo, sympy.nan, sympy.oo):
        raise TpcheckError(f"{key} = {expr!r} is not a finite expression in the width n.",
                           where=where, fix=fix)


def _optimizer_name(cls: type, settings: dict[str, Any]) -> str:
    """The :data:`OPTIMIZERS` key for an optimizer class (its family's name if unknown)."""
    name = cls.__name__.lower()
    return name if name in OPTIMIZERS else str(settings.get("family", "adam"))


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


# --- applying, per tensor and per module ----------------------------------------------------


def _reinit(p: torch.nn.Parameter, rule: TensorRule, width: int, base: int) -> None:
    """Rescale the model's own init to the plan's std; exact identity at the base width.

    A tensor with values is scaled by target / its own RMS, so its RMS is the target exactly;
    a meta tensor has no values, and gets a draw of the target size, which is all tpcheck's
    init reader sees of it (asked through ``.device``: code asking ``is_meta`` reads as
    unreadable). A fan-in made of blocks is rescaled block by block.
    """
    if rule.init == "keep" or (width == base and rule.init == "scale"):
        return
    if rule.init == "zero":
        p.zero_()
        return
    if rule.blocks:  # each block of the fan-in drawn at its own size (a normal draw)
        start = 0
        for block in rule.blocks:
            size = round(rule.at(block["size"], width))
            p[:, start:start + size].normal_(
                0.0, rule.std_base * rule.at(block["init_mult"], width))
            start += size
        return
    _rescale(p, rule.std_base * rule.at(rule.init_mult, width))


def _rescale(p: torch.Tensor, target: float) -> None:
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
    key and survives tracing (the call is traced through).
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


def _install_input_scale(model: torch.nn.Module, name: str, at: str | None,
                         factor: float) -> None:
    """A forward multiplier on the input of ``at`` (default: ``name``'s own module)."""
    module_path = at if at is not None else name.rpartition(".")[0]
    module = model.get_submodule(module_path) if module_path else model
    if not isinstance(module, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d,
                               torch.nn.Conv3d)):
        raise TpcheckError(
            f"cannot install a forward multiplier for {name!r}: the module {module_path!r} "
            f"({type(module).__name__}) is not a Linear or Conv.",
            fix="use style='init-lr' (no forward change), or multiply the readout's input by "
                "1/m in your forward")
    previous = _HOOKS.get(module)
    if previous is not None:
        previous.remove()
    _HOOKS[module] = module.register_forward_pre_hook(InputScale(factor))
