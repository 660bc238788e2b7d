"""Inits read, not sampled: each parameter's init size from the init calls that made it.

While the spec's factory builds the model (on the meta device: no weights exist), a
:class:`~torch.overrides.TorchFunctionMode` sees every init call — ``nn.init.kaiming_uniform_``
with its ``a``, ``Tensor.uniform_(-b, b)`` with the bound xavier computed from the shape,
``normal_(std=0.02)``, ``zero_()``, ``fill_(1)``, ``copy_(table)``, ``p.data *= 0.5``, mup's
samplers — and keeps, per storage, the second moment E[w²] those calls give:

* in closed form where the call has one (normal, uniform, constant, zero, the kaiming and
  truncated-normal helpers, orthogonal, scalar ``mul_``/``div_``/``add_``, and tensors made by
  ``randn``/``rand``/``zeros``/``ones``/``full`` and scalar arithmetic on them, which
  ``nn.Parameter(torch.randn(6, n) / n ** 0.5)`` is);
* by replaying the recorded elementwise calls on a fixed probe tensor where a chain has no
  closed form (timm's ``uniform_ → erfinv_ → mul_ → add_ → clamp_``);
* from the values of a ``copy_`` source that holds real data, or that the recorded calls can
  recompute on the CPU (a sin-cos table built with ``arange``/``sin``/``cos`` on meta).

Read values are exact up to float rounding, so exponents need no snapping from noisy samples.
A tensor whose init cannot be read (an op with a tensor operand, init code that branches on
``is_meta``, no init call at all) says why, and :mod:`tpcheck.measure` samples it instead.
"""

from __future__ import annotations

import functools
import inspect
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_map

from tpcheck.tracers.record import op_of

#: Entries of the probe tensor that replays init chains with no closed form.
PROBE_SIZE = 1 << 16
_PROBE_SEED = 20260101

#: nn.init helpers that return early on meta tensors after asking ``tensor.is_meta``: that
#: question is where they are read, from the helper's own frame (the others dispatch to the
#: mode themselves, or call Tensor methods the mode sees).
_META_EARLY_RETURN = {"_no_grad_trunc_normal_": "trunc_normal_", "orthogonal_": "orthogonal_",
                      "sparse_": "sparse_", "dirac_": "dirac_"}
_CREATION = {"randn": (0.0, 1.0), "rand": (0.5, 1.0 / 3.0), "zeros": (0.0, 0.0),
             "ones": (1.0, 1.0)}
_CLOSED_FORM = {"mul", "div", "true_divide", "add", "sub", "neg", "rsub"}
_ELEMENTWISE = _CLOSED_FORM | {"erfinv", "clamp", "clamp_min", "clamp_max", "clip", "abs",
                               "sqrt", "exp", "tanh", "sign", "sigmoid", "log", "reciprocal",
                               "pow", "fmod", "remainder", "round", "floor", "ceil", "sin",
                               "cos", "square"}
_VIEW_LIKE = {"view", "reshape", "alias", "t", "transpose", "permute", "unsqueeze", "squeeze",
              "flatten", "unflatten", "expand", "getitem", "narrow", "select", "slice", "detach",
              "view_as", "as_strided", "movedim", "chunk", "split", "unbind", "contiguous"}

Step = tuple[Callable, tuple, dict]
#: In-place calls that change values only: on a meta tensor they are recorded, not run.
_VALUE_WRITES = {"normal_", "uniform_", "zero_", "fill_", "copy_", "mul_", "div_", "add_",
                 "sub_", "clamp_", "clamp_min_", "clamp_max_", "erfinv_", "neg_", "abs_",
                 "sqrt_", "exp_", "pow_", "setitem", "masked_fill_", "fmod_", "remainder_"}


@dataclass(frozen=True)
class InitRead:
    """One parameter's init at one width: ``mean_square`` = E[w²], and how it was known.

    ``how``: ``"read"`` (closed form or exact values), ``"probed"`` (replayed on a probe
    tensor), ``"sampled"`` (the real tensor's own entries) or ``"unreadable"``
    (``mean_square`` is None and ``detail`` says why).
    """

    mean_square: float | None
    how: str
    detail: str = ""
    entries: int = 0  # sampled: how many random entries the mean is over (its noise)

    @property
    def known(self) -> bool:
        return self.mean_square is not None


# --- what is known about the values in a storage --------------------------------------------


@dataclass(frozen=True)
class _Moments:
    """E[w] and E[w²] of i.i.d. entries; ``steps`` replays them on a probe (None: cannot)."""

    m1: float
    m2: float
    calls: tuple[str, ...]
    steps: tuple[Step, ...] | None


@dataclass(frozen=True)
class _Probe:
    """An elementwise chain with no closed form: replayed on a probe tensor when read."""

    steps: tuple[Step, ...]
    calls: tuple[str, ...]


@dataclass(frozen=True)
class _Computed:
    """Values computed by recorded calls (a table): recomputed on the CPU when read."""

    tensor: torch.Tensor
    steps: tuple[Step, ...] = ()


@dataclass(frozen=True)
class _Unknown:
    why: str


_State = _Moments | _Probe | _Computed | _Unknown


@dataclass
class _Storage:
    """A storage's values: a whole-tensor state, overridden on disjoint parts by later inits."""

    whole: _State
    parts: list[tuple[float, _State]] = field(default_factory=list)
    #: Scaled in place while it held real values: the factor may come from those values (a
    #: normalisation to a target RMS), so the moments carry that draw's sampling noise.
    noisy: bool = False


def _fill(m1: float, m2: float, call: str, step: Step | None) -> _Moments:
    return _Moments(m1, m2, (call,), None if step is None else (step,))


# --- the recorder ---------------------------------------------------------------------------


class InitRecorder(TorchFunctionMode):
    """Use as ``with InitRecorder() as rec: model = factory(n)``, then ``rec.read(model)``."""

    def __init__(self) -> None:
        super().__init__()
        self.storages: dict[int, _Storage] = {}
        self.producers: dict[int, tuple[Callable, tuple, dict, int | None]] = {}
        self.origin: dict[int, int] = {}  # storage -> id of the tensor that created it
        self.writes: dict[int, list[Step]] = {}  # storage -> in-place calls, in order
        self.keep: list[Any] = []  # tensors seen stay alive: their ids must not be reused
        self._busy = 0  # inside an init helper: its own inner calls are not recorded

    def __torch_function__(self, func: Callable, types: Any, args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        kwargs = dict(kwargs or {})
        op = op_of(func)
        if self._busy:
            return func(*args, **kwargs)
        if op == "is_meta" and args:
            self._meta_question(args[0])
            return func(*args, **kwargs)
        if getattr(func, "__module__", "") == "torch.nn.init":
            return self._helper(op, func, args, kwargs)
        target = kwargs.get("out") if isinstance(kwargs.get("out"), torch.Tensor) else (
            args[0] if args and isinstance(args[0], torch.Tensor) else None)
        in_place = target is not None and ("out" in kwargs or op == "setitem" or (
            op.endswith("_") and not op.startswith("_")))
        if in_place and op in _VALUE_WRITES and target.is_meta:
            self._in_place(target, op, func, args, kwargs)
            return None if op == "setitem" else target  # a meta tensor has no values to write
        out = func(*args, **kwargs)
        if in_place:
            self._in_place(target, op, func, args, kwargs)
        elif isinstance(out, torch.Tensor):
            self._created(out, op, func, args, kwargs, None)
        elif isinstance(out, (tuple, list)):
            for i, item in enumerate(out):
                if isinstance(item, torch.Tensor):
                    self._created(item, op, func, args, kwargs, i)
        return out

    def _meta_question(self, tensor: Any) -> None:
        """Code asked ``tensor.is_meta``: an nn.init helper about to skip a meta tensor (read
        its arguments from its frame), or init code we cannot follow (the tensor is tainted)."""
        frame = sys._getframe(2)
        for _ in range(4):
            if frame is None:
                break
            name = _META_EARLY_RETURN.get(frame.f_code.co_name)
            if name and frame.f_code.co_filename == torch.nn.init.__file__:
                args = dict(frame.f_locals)
                original = getattr(torch.nn.init, name)
                if isinstance(args.get("tensor"), torch.Tensor):
                    self._assign(args["tensor"], _helper_state(name, args["tensor"], args,
                                                               original))
                    return
            frame = frame.f_back
        self._taint(tensor, "its init code branches on tensor.is_meta")

    def _helper(self, name: str, func: Callable, args: tuple, kwargs: dict) -> Any:
        """An ``nn.init`` helper seen as one call: its moments from its arguments and shape."""
        if self._busy:
            return func(*args, **kwargs)
        bound = _bind(func, args, kwargs)
        tensor = bound.get("tensor")
        if isinstance(tensor, torch.Tensor):
            self._assign(tensor, _helper_state(name.rstrip("_") + "_", tensor, bound, func))
        if isinstance(tensor, torch.Tensor) and tensor.is_meta:
            return tensor  # nothing to write into a meta tensor; its meta kernels are slow
        self._busy += 1
        try:
            return func(*args, **kwargs)
        finally:
            self._busy -= 1

    # --- writes ---------------------------------------------------------------------------------

    def _in_place(self, target: torch.Tensor, op: str, func: Callable, args: tuple,
                  kwargs: dict) -> None:
        key, _ = _storage_key(target)
        self.writes.setdefault(key, []).append((func, args, kwargs))
        if op == "normal_":
            mean, std = _method_args(args, kwargs, ("mean", 0.0), ("std", 1.0))
            state: _State | None = _fill(mean, mean * mean + std * std,
                                         f"normal_({mean:g}, {std:.4g})",
                                         (torch.Tensor.normal_, (mean, std), {}))
        elif op == "uniform_":
            a, b = _method_args(args, kwargs, ("from", 0.0), ("to", 1.0))
            state = _fill((a + b) / 2, (a * a + a * b + b * b) / 3, f"uniform_({a:.4g}, {b:.4g})",
                          (torch.Tensor.uniform_, (a, b), {}))
        elif op == "zero_":
            state = _fill(0.0, 0.0, "zero_()", (torch.Tensor.zero_, (), {}))
        elif op == "fill_":
            state = self._value_state(args[1] if len(args) > 1 else kwargs.get("value"))
        elif op == "copy_":
            state = self._value_state(args[1] if len(args) > 1 else kwargs.get("src"))
        elif op == "setitem" and len(args) > 2:
            region = target[args[1]]
            self._assign(region, self._value_state(args[2]))
            return
        else:
            state = None
        if state is not None:
            self._assign(target, state)
        else:
            self._transform_in_place(target, op, args[1:], kwargs)

    def _assign(self, tensor: torch.Tensor, state: _State) -> None:
        """New values for ``tensor``: the whole storage, or a part of it."""
        key, fraction = _storage_key(tensor)
        entry = self.storages.get(key)
        if fraction >= 1.0 - 1e-12 or entry is None:
            if fraction >= 1.0 - 1e-12:
                self.storages[key] = _Storage(state)
            else:
                self.storages[key] = _Storage(_Unknown("only part of it was initialised"),
                                              [(fraction, state)])
            return
        entry.parts.append((fraction, state))
        if sum(f for f, _ in entry.parts) > 1.0 + 1e-9:
            entry.whole, entry.parts = _Unknown("it was initialised in overlapping parts"), []

    def _transform_in_place(self, target: torch.Tensor, op: str, operands: tuple,
                            kwargs: dict) -> None:
        key, fraction = _storage_key(target)
        entry = self.storages.get(key)
        if entry is None:
            return  # a tensor nobody reads an init from (an activation-like temporary)
        if fraction < 1.0 - 1e-12:
            entry.whole, entry.parts = _Unknown(f"{op} on a part of it"), []
            return
        entry.whole = _transform(entry.whole, op, operands, kwargs)
        entry.parts = [(f, _transform(s, op, operands, kwargs)) for f, s in entry.parts]
        entry.noisy = entry.noisy or not target.is_meta

    def _taint(self, tensor: Any, why: str) -> None:
        if isinstance(tensor, torch.Tensor):
            key, _ = _storage_key(tensor)
            self.storages[key] = _Storage(_Unknown(why))

    # --- new tensors ----------------------------------------------------------------------------

    def _created(self, out: torch.Tensor, op: str, func: Callable, args: tuple, kwargs: dict,
                 item: int | None) -> None:
        self.keep.append(out)
        self.producers[id(out)] = (func, args, kwargs, item)
        key, _ = _storage_key(out)
        inputs = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
        if op in _VIEW_LIKE and any(_storage_key(a)[0] == key for a in inputs):
            return  # a view: no new values
        self.origin[key] = id(out)
        base = op.removesuffix("_like").removeprefix("new_")
        if base in _CREATION:
            m1, m2 = _CREATION[base]
            step = (torch.Tensor.normal_, (0.0, 1.0), {}) if base == "randn" else (
                (torch.Tensor.uniform_, (0.0, 1.0), {}) if base == "rand" else
                (torch.Tensor.fill_, (m1,), {}))
            state: _State = _fill(m1, m2, base, step)
        elif base == "full":
            value = kwargs.get("fill_value", args[-1] if args else None)
            v = _number(value)
            state = _Computed(out) if v is None else _fill(v, v * v, f"full({v:g})",
                                                           (torch.Tensor.fill_, (v,), {}))
        elif base == "empty":
            state = _Unknown("it was created with torch.empty and never initialised")
        elif base in _ELEMENTWISE and args and isinstance(args[0], torch.Tensor) and all(
                not isinstance(a, torch.Tensor) or a.numel() == 1 for a in args[1:]):
            state = _transform(self._value_state(args[0]), base, args[1:], kwargs)
            if isinstance(state, _Unknown):
                state = _Computed(out)
        else:
            state = _Computed(out)
        self.storages[key] = _Storage(state)

    def _value_state(self, value: Any) -> _State:
        """What a ``copy_``/``fill_`` source or an arithmetic operand holds."""
        if not isinstance(value, torch.Tensor):
            v = _number(value)
            return _Unknown(f"a value tpcheck cannot read ({type(value).__name__})") if (
                v is None) else _fill(v, v * v, f"fill({v:g})", (torch.Tensor.fill_, (v,), {}))
        if not value.is_meta:
            x = value.detach().double()
            return _Moments(float(x.mean()) if x.numel() else 0.0,
                            float(x.pow(2).mean()) if x.numel() else 0.0, ("values",), None)
        key, fraction = _storage_key(value)
        entry = self.storages.get(key)
        if entry is not None and not entry.parts and fraction >= 1.0 - 1e-12:
            return entry.whole
        if id(value) in self.producers:
            return _Computed(value)
        return _Unknown("copied from a meta tensor with no recorded values")

    # --- reading --------------------------------------------------------------------------------

    def read(self, model: torch.nn.Module) -> dict[str, InitRead]:
        """E[w²] of every parameter of ``model`` (the first name of a tied tensor), and how."""
        out: dict[str, InitRead] = {}
        seen: set[int] = set()
        with torch.random.fork_rng(devices=[]):
            for name, p in model.named_parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    out[name] = self._read_one(p)
        return out

    def _read_one(self, p: torch.Tensor) -> InitRead:
        if p.numel() == 0:
            return InitRead(0.0, "read", "empty")
        entry = self.storages.get(_storage_key(p)[0])
        if entry is None:
            return _sampled(p, "no init call was recorded for it")
        covered = sum(f for f, _ in entry.parts)
        states = [*entry.parts, *([(1.0 - covered, entry.whole)] if covered < 1 - 1e-9 else [])]
        total, how, details = 0.0, "read", []
        for fraction, state in states:
            got = self._evaluate(state)
            if not got.known:
                return _sampled(p, got.detail)
            total += fraction * float(got.mean_square)
            how = "probed" if got.how == "probed" else how
            details.append(got.detail)
        return InitRead(total, how, " + ".join(d for d in details if d),
                        entries=p.numel() if entry.noisy else 0)

    def _evaluate(self, state: _State) -> InitRead:
        if isinstance(state, _Moments):
            return InitRead(state.m2, "read", " → ".join(state.calls))
        if isinstance(state, _Unknown):
            return InitRead(None, "unreadable", state.why)
        if isinstance(state, _Probe):
            torch.manual_seed(_PROBE_SEED)  # the same draws at every width
            x = torch.empty(PROBE_SIZE, dtype=torch.float64)
            for func, args, kwargs in state.steps:
                func(x, *args, **kwargs)
            return InitRead(float(x.pow(2).mean()), "probed", " → ".join(state.calls))
        try:
            x = self._recompute(state.tensor, {}).detach().clone().double()
        except _CannotRecompute as exc:
            return InitRead(None, "unreadable", str(exc))
        for func, args, kwargs in state.steps:
            func(x, *args, **kwargs)
        return InitRead(float(x.pow(2).mean()) if x.numel() else 0.0, "read",
                        "values recomputed from its recorded calls")

    def _recompute(self, t: torch.Tensor, memo: dict[int, torch.Tensor]) -> torch.Tensor:
        """The values of a meta tensor, by re-running the recorded calls that made it on CPU."""
        if not t.is_meta:
            return t
        if id(t) in memo:
            return memo[id(t)]
        produced = self.producers.get(id(t))
        if produced is None:
            raise _CannotRecompute("computed from a meta tensor whose values were never set")
        func, args, kwargs, item = produced

        def cpu(x: Any) -> Any:
            if isinstance(x, torch.Tensor):
                return self._recompute(x, memo)
            if isinstance(x, torch.device) and x.type == "meta":
                return torch.device("cpu")
            return "cpu" if x == "meta" else x

        try:
            value = func(*tree_map(cpu, args), **tree_map(cpu, kwargs))
        except _CannotRecompute:
            raise
        except Exception as exc:
            raise _CannotRecompute(f"recomputing it raised {type(exc).__name__}") from exc
        if item is not None:
            value = value[item]
        memo[id(t)] = value
        key, _ = _storage_key(t)
        if self.origin.get(key) == id(t):  # replay what was written into it afterwards
            for wfunc, wargs, wkwargs in self.writes.get(key, ()):
                wfunc(*tree_map(cpu, wargs), **tree_map(cpu, wkwargs))
        return value


class _CannotRecompute(Exception):
    pass


# --- closed forms ---------------------------------------------------------------------------


def _transform(state: _State, op: str, operands: tuple, kwargs: dict) -> _State:
    """``state`` after an elementwise call with scalar operands (``w * 0.5``, ``w.erfinv_()``)."""
    base = op.rstrip("_")
    if isinstance(state, _Unknown):
        return state
    numbers = [_number(a) for a in operands if not isinstance(a, (str, type(None)))]
    if any(v is None for v in numbers) or any(isinstance(v, torch.Tensor) and v.numel() > 1
                                              for v in kwargs.values()):
        return _Unknown(f"{op} with a tensor operand")
    scalars = [float(v) for v in numbers if v is not None]
    if base not in _ELEMENTWISE:
        return _Unknown(f"{op} is not an init call tpcheck can read")
    if base == "rsub":  # c - w: as in-place steps, w·(-1) + c
        c = scalars[0] if scalars else 0.0
        steps: tuple[Step, ...] = ((torch.Tensor.mul_, (-1.0,), {}), (torch.Tensor.add_, (c,), {}))
    else:
        in_place = getattr(torch.Tensor, base + "_", None)
        if in_place is None:
            return _Unknown(f"{op} cannot be replayed")
        clean = {k: v for k, v in kwargs.items() if k in ("alpha", "min", "max", "exponent")}
        steps = ((in_place, tuple(scalars), clean),)
    if isinstance(state, _Computed):
        return _Computed(state.tensor, state.steps + steps)
    if isinstance(state, _Probe):
        return _Probe(state.steps + steps, (*state.calls, base))
    closed = _closed_form(state, base, scalars, kwargs)
    if closed is not None:
        return _Moments(closed[0], closed[1], (*state.calls, closed[2]),
                        None if state.steps is None else state.steps + steps)
    if state.steps is None:
        return _Unknown(f"{op} after an init that cannot be replayed on a probe")
    return _Probe(state.steps + steps, (*state.calls, base))


def _closed_form(m: _Moments, base: str, scalars: list[float], kwargs: dict
                 ) -> tuple[float, float, str] | None:
    c = scalars[0] if scalars else None
    alpha = float(kwargs.get("alpha", 1.0))
    if base == "neg":
        return -m.m1, m.m2, "neg"
    if c is None:
        return None
    if base == "mul":
        return c * m.m1, c * c * m.m2, f"×{c:.4g}"
    if base in ("div", "true_divide") and c != 0:
        return m.m1 / c, m.m2 / (c * c), f"÷{c:.4g}"
    if base in ("add", "sub", "rsub"):
        sign = -1.0 if base == "sub" else 1.0
        shift = sign * alpha * c
        m1, m2 = (-m.m1, m.m2) if base == "rsub" else (m.m1, m.m2)
        return m1 + shift, m2 + 2 * shift * m1 + shift * shift, f"{shift:+.4g}"
    return None


def _helper_state(name: str, tensor: torch.Tensor, bound: dict[str, Any],
                  original: Callable) -> _State:
    """An ``nn.init`` helper's result, from its arguments and the tensor's shape."""
    init = torch.nn.init
    try:
        if name == "normal_":
            mean, std = float(bound.get("mean", 0.0)), float(bound.get("std", 1.0))
            return _fill(mean, mean * mean + std * std, f"normal_(std={std:.4g})",
                         (torch.Tensor.normal_, (mean, std), {}))
        if name == "uniform_":
            a, b = float(bound.get("a", 0.0)), float(bound.get("b", 1.0))
            return _fill((a + b) / 2, (a * a + a * b + b * b) / 3, f"uniform_({a:.4g}, {b:.4g})",
                         (torch.Tensor.uniform_, (a, b), {}))
        if name == "constant_":
            v = float(bound["val"])
            return _fill(v, v * v, f"constant_({v:g})", (torch.Tensor.fill_, (v,), {}))
        if name in ("kaiming_uniform_", "kaiming_normal_"):
            a, mode = float(bound.get("a", 0.0)), bound.get("mode", "fan_in")
            fan = init._calculate_correct_fan(tensor, mode)
            std = init.calculate_gain(bound.get("nonlinearity", "leaky_relu"), a) / math.sqrt(fan)
            bound_ = math.sqrt(3.0) * std
            step = ((torch.Tensor.uniform_, (-bound_, bound_), {}) if name == "kaiming_uniform_"
                    else (torch.Tensor.normal_, (0.0, std), {}))
            return _fill(0.0, std * std, f"{name}(a={a:.3g}, {mode})", step)
        if name == "trunc_normal_":
            mean, std = float(bound.get("mean", 0.0)), float(bound.get("std", 1.0))
            a, b = float(bound.get("a", -2.0)), float(bound.get("b", 2.0))
            m1, m2 = _truncated_normal(mean, std, a, b)
            return _fill(m1, m2, f"trunc_normal_(std={std:.4g}, [{a:g}, {b:g}])",
                         (original, (mean, std, a, b), {}))
        if name == "orthogonal_":
            gain = float(bound.get("gain", 1.0))
            rows = tensor.shape[0] if tensor.dim() else 1
            cols = tensor.numel() // rows if rows else 0
            return _fill(0.0, gain * gain / max(rows, cols, 1), f"orthogonal_(gain={gain:g})",
                         None)
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
        return _Unknown(f"nn.init.{name} with arguments tpcheck cannot read ({exc})")
    return _Unknown(f"nn.init.{name} has no closed form in tpcheck")


def _truncated_normal(mean: float, std: float, a: float, b: float) -> tuple[float, float]:
    """E[w], E[w²] of N(mean, std²) truncated to [a, b] (absolute bounds, as nn.init's)."""
    if std <= 0:
        return mean, mean * mean
    alpha, beta = (a - mean) / std, (b - mean) / std

    def pdf(x: float) -> float:
        return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi) if math.isfinite(x) else 0.0

    def cdf(x: float) -> float:
        return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))

    z = cdf(beta) - cdf(alpha)
    ta = alpha * pdf(alpha) if math.isfinite(alpha) else 0.0
    tb = beta * pdf(beta) if math.isfinite(beta) else 0.0
    shift = (pdf(alpha) - pdf(beta)) / z
    m1 = mean + std * shift
    return m1, std * std * (1.0 + (ta - tb) / z - shift * shift) + m1 * m1


# --- small helpers --------------------------------------------------------------------------


def _sampled(p: torch.Tensor, why: str) -> InitRead:
    """A real tensor's own entries where its init calls cannot be read; else unreadable."""
    if p.is_meta:
        return InitRead(None, "unreadable", why)
    x = p.detach().double()
    return InitRead(float(x.pow(2).mean()), "sampled", why, entries=x.numel())


def _method_args(args: tuple, kwargs: dict, *spec: tuple[str, float]) -> list[float]:
    """Numeric arguments of a Tensor method (``w.normal_(0, 0.02)``), positional or keyword,
    after ``self``; builtins have no signature to bind."""
    values = []
    for i, (name, default) in enumerate(spec):
        value = args[i + 1] if len(args) > i + 1 else kwargs.get(name, default)
        number = _number(value)
        values.append(default if number is None else number)
    return values


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_meta:
        return float(value)
    return None


def _storage_key(t: torch.Tensor) -> tuple[int, float]:
    """The storage a tensor lives in, and the share of the storage the tensor covers."""
    storage = t.untyped_storage()
    nbytes = storage.nbytes()
    fraction = 1.0 if nbytes == 0 else min(1.0, t.numel() * t.element_size() / nbytes)
    return storage._cdata, fraction


def _bind(func: Callable, args: tuple, kwargs: dict) -> dict[str, Any]:
    """Arguments by parameter name (defaults applied); {} when the signature is unknown."""
    signature = _signature(func)
    if signature is None:
        return {}
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError:
        return {}
    bound.apply_defaults()
    return dict(bound.arguments)


@functools.cache
def _signature(func: Callable) -> inspect.Signature | None:
    try:
        return inspect.signature(func)
    except (TypeError, ValueError):
        return None
