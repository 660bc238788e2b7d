"""Capture: build the model at every traced width, read its inits, trace one forward, and keep
what later stages need as plain, picklable values.

Per width, in one pass and with no real weights where the model allows it:

1. the spec's factory runs under ``torch.device("meta")`` and an
   :class:`~tpcheck.inits.InitRecorder`, which reads every parameter's init size from its init
   calls (:mod:`tpcheck.inits`);
2. one forward is traced in train mode with every dropout probability at 0 (μP is about the
   training graph), by the recorder (default) or ``torch.export`` (:mod:`tpcheck.tracers`);
   modes and dropout probabilities are restored afterwards;
3. the spec's optimizer is built on that model, and each parameter's param-group settings are
   kept (learning rate, weight decay, ε, ...).

A model whose construction or forward cannot run on meta (``nonzero`` on a mask, ``.tolist()``,
numpy in the forward) is traced on the CPU with real values instead, at every width, so that
all widths take the same path. Every failure in the user's code becomes a
:class:`~tpcheck.errors.TpcheckError` naming the width and the user's source line.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._pytree import tree_map

from tpcheck.errors import TpcheckError
from tpcheck.inits import InitRead, InitRecorder
from tpcheck.sources import (
    definition_site,
    last_user_line,
    recording_sites,
    remember_sites,
    user_frame,
)
from tpcheck.spec import ModelSpec
from tpcheck.tracers import TRACERS
from tpcheck.tracers.record import Recorded

DEVICES = ("auto", "meta", "cpu")
#: Float attributes of modules that hold a dropout probability (diffusers' LabelEmbedding has
#: ``dropout_prob``; DiT's label dropout ``class_dropout_prob``): zeroed while tracing.
_DROPOUT_ATTRS = ("dropout_prob", "class_dropout_prob", "drop_prob", "dropout_p",
                  "attention_dropout", "attn_dropout", "proj_dropout", "dropout")


@dataclass(frozen=True)
class Ref:
    """An argument that is another node of the graph (by node name)."""

    name: str

    def __repr__(self) -> str:
        return f"%{self.name}"


@dataclass(frozen=True)
class OpNode:
    """One node of a traced graph, with torch objects replaced by plain values.

    ``kind`` is ``param``, ``buffer``, ``input``, ``constant``, ``call`` or ``output``;
    ``target`` is the op's name as the tracer wrote it (``aten.linear.default``, ``linear``,
    ``getitem``) for calls, the qualified name for ``param`` and ``buffer``. ``shape`` is the
    shape of the (first) tensor output.
    """

    name: str
    kind: str
    target: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    shape: tuple[int, ...] | None = None
    module: str = ""
    module_type: str = ""
    source: str | None = None

    def refs(self) -> Iterator[tuple[str, Ref]]:
        """Every node this node reads, with the argument position it is read at."""
        for pos, arg in enumerate(self.args):
            yield from _refs_in(str(pos), arg)
        for key, arg in self.kwargs.items():
            yield from _refs_in(key, arg)


def _refs_in(pos: str, arg: Any) -> Iterator[tuple[str, Ref]]:
    if isinstance(arg, Ref):
        yield pos, arg
    elif isinstance(arg, (list, tuple)):
        for i, item in enumerate(arg):
            yield from _refs_in(f"{pos}.{i}", item)


@dataclass(frozen=True)
class ParamInfo:
    """A trainable or frozen parameter as registered in the model."""

    name: str
    shape: tuple[int, ...]
    requires_grad: bool
    aliases: tuple[str, ...] = ()  # other qualified names of the same tensor (tied weights)
    defined_at: str | None = None  # file:line of the assignment that creates it


@dataclass(frozen=True)
class Trace:
    """Everything captured at one width: graph, parameters, inits, optimizer settings."""

    width: int
    params: dict[str, ParamInfo]
    nodes: tuple[OpNode, ...]
    device: str  # "meta" or "cpu": where the model was built for this trace
    seconds: float
    inits: dict[str, InitRead] = field(default_factory=dict)
    #: Each trainable parameter's param-group settings (lr, weight_decay, eps, ...), by name,
    #: plus ``_optimizer`` (index into ``optimizers``) and ``_group`` ("optimizer.group");
    #: a parameter in no group is absent. None: the optimizers could not be built here.
    groups: dict[str, dict[str, Any]] | None = None
    optimizers: tuple[type, ...] = ()
    optimizer_error: str | None = None
    tracer: str = "record"


@dataclass(frozen=True)
class Capture:
    """The traces of one ModelSpec at every traced width."""

    spec: ModelSpec
    traces: dict[int, Trace]

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(sorted(self.traces))

    @property
    def devices(self) -> tuple[str, ...]:
        return tuple(sorted({t.device for t in self.traces.values()}))


def capture(spec: ModelSpec, *, tracer: str = "record", device: str = "auto",
            progress: Callable[[str], None] | None = None) -> Capture:
    """Build and trace ``spec`` at every width.

    ``device="meta"`` requires that the model and its forward run on meta, ``"cpu"`` builds
    real weights, ``"auto"`` uses meta and falls back to the CPU (at every width) when the
    factory or the forward needs real values.
    """
    if tracer not in TRACERS:
        raise TpcheckError(f"unknown tracer {tracer!r}.", fix="use " + " or ".join(TRACERS))
    if device not in DEVICES:
        raise TpcheckError(f"unknown capture device {device!r}.", fix="use auto, meta or cpu")
    widths = sorted(set(spec.widths))
    where = "cpu" if device == "cpu" else "meta"
    traces: dict[int, Trace] = {}
    for w in widths:
        if progress:
            progress(f"tracing width {w} on {where}")
        try:
            traces[w] = trace_width(spec, w, tracer=tracer, device=where)
        except _NeedsRealValues as exc:
            if device == "meta":
                cause = exc.__cause__ or exc
                raise TpcheckError(
                    f"the model cannot be built or traced on the meta device at width {w}: "
                    f"{type(cause).__name__}: {str(cause).strip()[:300]}",
                    where=where_in(spec, w, cause),
                    fix="use --device auto (falls back to the CPU) or --device cpu") from cause
            where = "cpu"  # every width on the CPU, so that all take the same path
            for done in [*traces, w]:
                if progress:
                    progress(f"tracing width {done} on cpu (the forward needs real values)")
                traces[done] = trace_width(spec, done, tracer=tracer, device="cpu")
    return Capture(spec=spec, traces=dict(sorted(traces.items())))


class _NeedsRealValues(Exception):
    """The model could not be built or run on meta: retry on the CPU."""


def trace_width(spec: ModelSpec, width: int, *, tracer: str = "record",
                device: str = "meta") -> Trace:
    """Build ``spec``'s model at ``width`` on ``device``, read its inits, trace its forward."""
    start = time.perf_counter()
    # the user's RNG stream is left as it was; the model's own warnings (autocast on the CPU,
    # deprecations) say nothing about its parametrization
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(0)
        try:
            model, inits = build_with_inits(spec, width, device)
            args, kwargs = example_inputs(spec, width, device)
        except TpcheckError as exc:
            if device == "meta":
                raise _NeedsRealValues from (exc.__cause__ or exc)
            raise
        recorded = _trace(spec, model, args, kwargs, width, tracer, device)
        groups, optimizers, error = optimizer_settings(spec, model, width)
    trace = read(recorded, model, width, device, start, tracer)
    return Trace(width=trace.width, params=trace.params, nodes=trace.nodes, device=device,
                 seconds=time.perf_counter() - start, inits=inits, groups=groups,
                 optimizers=optimizers, optimizer_error=error, tracer=tracer)


def _trace(spec: ModelSpec, model: torch.nn.Module, args: tuple, kwargs: dict, width: int,
           tracer: str, device: str) -> Recorded:
    if tracer == "export":
        from tpcheck.tracers.export import export as run
    else:
        from tpcheck.tracers.record import record as run
    try:
        with training_graph(model):
            return run(model, args, kwargs)
    except Exception as exc:
        if device == "meta":
            raise _NeedsRealValues from exc
        summary = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        if tracer == "export":
            raise TpcheckError(
                f"torch.export could not trace the model at width {width}: "
                f"{type(exc).__name__}: {summary[:400]}",
                where=where_in(spec, width, exc),
                fix="trace with the recorder (the default, --tracer record), or make forward "
                    "traceable by torch.export(strict=False): no Python control flow on "
                    "tensor values, no .item()/.tolist() on activations") from exc
        raise TpcheckError(
            f"the model's forward raised {type(exc).__name__} at width {width}: {summary[:400]}",
            where=where_in(spec, width, exc),
            fix="make forward(*inputs(width)) run at every traced width (check the example "
                "inputs' shapes and dtypes against the forward's signature)") from exc


# --- building ---------------------------------------------------------------------------------


def build_model(spec: ModelSpec, width: int, device: str = "cpu") -> torch.nn.Module:
    """Call the spec's factory at ``width``; the user's errors become TpcheckErrors."""
    ctx = torch.device("meta") if device == "meta" else contextlib.nullcontext()
    try:
        with ctx:
            model = spec.factory(width)
    except Exception as exc:
        raise TpcheckError(
            f"the model factory raised {type(exc).__name__} at width {width}: {exc}",
            where=where_in(spec, width, exc),
            fix="make factory(width) build the model for every traced width "
                "(check that the width divides by the head dim)",
        ) from exc
    if not isinstance(model, torch.nn.Module):
        raise TpcheckError(
            f"the model factory returned {type(model).__name__}, not a torch.nn.Module.",
            where=f"{spec.label}, width {width}", fix="return the model from factory(width)")
    return model


def build_with_inits(spec: ModelSpec, width: int, device: str
                     ) -> tuple[torch.nn.Module, dict[str, InitRead]]:
    """The model at ``width`` and every parameter's init read from its init calls."""
    with InitRecorder() as recorder, recording_sites() as sites:
        model = build_model(spec, width, device)
    remember_sites(model, sites)
    return model, recorder.read(model)


def example_inputs(spec: ModelSpec, width: int, device: str = "cpu") -> tuple[tuple, dict]:
    """The spec's example inputs at ``width`` as ``(args, kwargs)`` on ``device``."""
    try:
        raw = spec.inputs(width)
    except Exception as exc:
        raise TpcheckError(f"inputs({width}) raised {type(exc).__name__}: {exc}",
                           where=where_in(spec, width, exc),
                           fix="make inputs(width) return example forward inputs") from exc
    if isinstance(raw, dict):
        args, kwargs = (), dict(raw)
    elif isinstance(raw, (tuple, list)):
        args, kwargs = tuple(raw), {}
    elif isinstance(raw, torch.Tensor):
        args, kwargs = (raw,), {}
    else:
        raise TpcheckError(f"inputs({width}) returned {type(raw).__name__}.",
                           where=spec.label,
                           fix="return a tuple of positional inputs or a dict of keyword inputs")

    def move(x: Any) -> Any:
        return x.to(device) if isinstance(x, torch.Tensor) else x

    return tree_map(move, args), tree_map(move, kwargs)


@contextlib.contextmanager
def training_graph(model: torch.nn.Module) -> Iterator[None]:
    """Train mode with every dropout probability at 0, undone afterwards.

    μP is about the training graph: ``eval()`` can take inference-only paths (cached
    projections, numpy routing). Dropout off keeps the traced forward deterministic. A factory
    may hand back an object the user still holds, so everything is restored.
    """
    modes = {m: m.training for m in model.modules()}
    saved: list[tuple[Any, str, Any]] = []
    for module in model.modules():
        if isinstance(module, torch.nn.modules.dropout._DropoutNd):
            saved.append((module, "p", module.p))
            module.p = 0.0
        for attr in _DROPOUT_ATTRS:
            value = module.__dict__.get(attr)
            if isinstance(value, float) and 0.0 < value < 1.0:
                saved.append((module, attr, value))
                setattr(module, attr, 0.0)
    model.train()
    try:
        yield
    finally:
        for module, attr, value in saved:
            setattr(module, attr, value)
        for module, mode in modes.items():
            module.training = mode


def optimizer_settings(spec: ModelSpec, model: torch.nn.Module, width: int, *,
                       strict: bool = False
                       ) -> tuple[dict[str, dict[str, Any]] | None, tuple[type, ...], str | None]:
    """Each parameter's param-group settings in the spec's optimizers, by qualified name.

    Not ``strict`` (on a meta model): a failure is returned as text, to retry on the CPU.
    """
    try:
        opts = spec.build_optimizers(model, width)
    except TpcheckError as exc:
        if strict:
            raise
        return None, (), exc.render()
    by_id: dict[int, dict[str, Any]] = {}
    for k, opt in enumerate(opts):
        try:
            for i, group in enumerate(opt.param_groups):
                settings = {key: v for key, v in group.items() if key != "params"}
                settings.update(_optimizer=k, _group=f"{k}.{i}")
                for p in group["params"]:
                    by_id.setdefault(id(p), settings)
        except Exception as exc:  # the user's optimizer class: its param groups are its API
            raise TpcheckError(
                f"reading the param groups of the spec's {type(opt).__name__} raised "
                f"{type(exc).__name__}: {exc}", where=where_in(spec, width, exc),
                fix="param_groups must be a list of dicts with a 'params' list, as in "
                    "torch.optim.Optimizer") from exc
    groups = {name: by_id[id(p)] for name, p in model.named_parameters() if id(p) in by_id}
    return groups, tuple(type(o) for o in opts), None


def where_in(spec: ModelSpec, width: int, exc: BaseException) -> str:
    """Target and width, plus the innermost source line of the user's code in ``exc``."""
    where = f"{spec.label}, width {width}"
    line = user_frame(exc)
    return f"{where}, {line}" if line else where


# --- reading a traced graph into OpNodes ------------------------------------------------------


def read(recorded: Recorded, model: torch.nn.Module, width: int, device: str, start: float,
         tracer: str = "record") -> Trace:
    """The plain-value form of a traced graph, the same for both tracers."""
    nodes: list[OpNode] = []
    for node in recorded.graph.nodes:
        try:
            shape = _shape(node.meta.get("val"))
        except _DataDependentSize as exc:  # export's unbacked symbols: sizes set by values
            raise TpcheckError(
                f"torch.export traced the forward at width {width} with sizes that depend on "
                f"the data ({exc}, at node {node.name!r}): they cannot be fitted in n.",
                where=last_user_line(node.meta.get("stack_trace")) or node.name,
                fix="trace with the recorder (the default, --tracer record), which runs the "
                    "forward with real values") from None
        stack = node.meta.get("nn_module_stack") or {}
        module, module_type = ("", "")
        if stack:
            module, module_type = list(stack.values())[-1]
            module = _clean_module_path(module)
            module_type = module_type if isinstance(module_type, str) else getattr(
                module_type, "__qualname__", str(module_type))
        source = last_user_line(node.meta.get("stack_trace"))
        if node.op in ("placeholder", "get_attr"):
            kind, target = recorded.leaves.get(node.name, ("constant", node.name))
            nodes.append(OpNode(node.name, kind, target, shape=shape))
        elif node.op == "call_function":
            nodes.append(OpNode(
                name=node.name, kind="call",
                target=node.meta.get("target") or _target_name(node.target),
                args=tuple(_plain(a) for a in node.args),
                kwargs={k: _plain(v) for k, v in node.kwargs.items()},
                shape=shape, module=module, module_type=module_type, source=source))
        elif node.op == "output":
            nodes.append(OpNode(node.name, "output", "output",
                                args=tuple(_plain(a) for a in node.args)))
        else:  # call_module / call_method do not appear in either tracer's graphs
            nodes.append(OpNode(node.name, node.op, str(node.target), shape=shape))
    return Trace(width=width, params=_params(model), nodes=tuple(nodes), device=device,
                 seconds=time.perf_counter() - start, tracer=tracer)


def _params(model: torch.nn.Module) -> dict[str, ParamInfo]:
    """Parameters by qualified name; a tensor registered under several names is one entry."""
    first: dict[int, str] = {}
    aliases: dict[str, list[str]] = {}
    shapes: dict[str, tuple[tuple[int, ...], bool]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        key = id(p)
        if key in first:
            aliases[first[key]].append(name)
            continue
        first[key] = name
        aliases[name] = []
        shapes[name] = (tuple(p.shape), p.requires_grad)
    return {name: ParamInfo(name, shape, grad, tuple(aliases[name]),
                            definition_site(model, name))
            for name, (shape, grad) in shapes.items()}


def _target_name(target: Any) -> str:
    if isinstance(target, torch._ops.OpOverload):
        return f"{target.namespace}.{target._opname}.{target._overloadname}"
    name = getattr(target, "__name__", None)
    return name or str(target)


def _plain(arg: Any) -> Any:
    """Replace fx Nodes by Refs and torch scalars by Python values, recursively."""
    if isinstance(arg, torch.fx.Node):
        return Ref(arg.name)
    if isinstance(arg, (list, tuple)):
        return type(arg)(_plain(a) for a in arg) if isinstance(arg, list) else tuple(
            _plain(a) for a in arg)
    if isinstance(arg, dict):
        return {k: _plain(v) for k, v in arg.items()}
    if isinstance(arg, (torch.dtype, torch.device, torch.layout, torch.memory_format)):
        return str(arg)
    if isinstance(arg, (torch.SymInt, torch.SymFloat, torch.SymBool)):
        return str(arg)
    if isinstance(arg, slice):
        return slice(_plain(arg.start), _plain(arg.stop), _plain(arg.step))
    return arg


class _DataDependentSize(Exception):
    pass


def _shape(val: Any) -> tuple[int, ...] | None:
    if isinstance(val, (list, tuple)):
        val = next((v for v in val if isinstance(v, torch.Tensor)), None)
    if not isinstance(val, torch.Tensor):
        return None
    try:
        return tuple(int(s) for s in val.shape)
    except Exception as exc:  # torch.export's unbacked SymInts: no value to give
        raise _DataDependentSize(str(tuple(val.shape))) from exc


def _clean_module_path(path: str) -> str:
    """export writes ``L['self'].blocks[0].attn``-style paths in some versions; normalise."""
    path = path.replace("L['self'].", "").replace("L['self']", "")
    out = []
    for part in path.replace("[", ".").replace("]", "").split("."):
        if part:
            out.append(part.strip("'\""))
    return ".".join(out)
