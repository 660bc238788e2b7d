"""Capture: export the model at every traced width into a plain, picklable op list.

We use non-strict ``torch.export`` (design.md: ``fx.symbolic_trace`` fails on every diffusers
transformer, export traces them all). Models are built under ``torch.device("meta")`` so
that structure at realistic widths costs no weight memory; a model whose construction or
forward cannot run on meta is rebuilt on the CPU at that width. The exported graph is read
as is: ``run_decompositions()`` would turn ``linear`` into ``addmm`` and SDPA into
``softmax + bmm``, losing the ops and the attention scale the rules need.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._pytree import tree_map

from tpcheck.errors import TpcheckError
from tpcheck.spec import ModelSpec


@dataclass(frozen=True)
class Ref:
    """An argument that is another node of the graph (by node name)."""

    name: str

    def __repr__(self) -> str:
        return f"%{self.name}"


@dataclass(frozen=True)
class OpNode:
    """One node of an exported graph, with torch objects replaced by plain values.

    ``kind`` is ``param``, ``buffer``, ``input``, ``call`` or ``output``; ``target`` is the
    op's qualified name (``aten.linear.default``) for calls, the parameter's qualified name
    for ``param`` and ``buffer``. ``shape`` is the shape of the (first) tensor output.
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
    """The model's exported graph at one width."""

    width: int
    params: dict[str, ParamInfo]
    nodes: tuple[OpNode, ...]
    device: str  # "meta" or "cpu": where the model was built for this trace
    seconds: float


@dataclass(frozen=True)
class Capture:
    """The exported graphs of one ModelSpec at every traced width."""

    spec: ModelSpec
    traces: dict[int, Trace]

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(sorted(self.traces))


def capture(spec: ModelSpec, *, device: str = "auto") -> Capture:
    """Export ``spec``'s model at every width.

    ``device="meta"`` requires that model and forward run on the meta device,
    ``"cpu"`` builds real weights, ``"auto"`` tries meta and falls back to the CPU.
    """
    if device not in ("auto", "meta", "cpu"):
        raise TpcheckError(f"unknown capture device {device!r}", fix="use auto, meta or cpu")
    traces = {w: trace_width(spec, w, device=device) for w in sorted(set(spec.widths))}
    return Capture(spec=spec, traces=traces)


def trace_width(spec: ModelSpec, width: int, *, device: str = "auto") -> Trace:
    """Build ``spec``'s model at ``width`` and export its forward."""
    start = time.perf_counter()
    if device in ("auto", "meta"):
        try:
            model, args, kwargs = _build(spec, width, "meta")
            program = _export(model, args, kwargs, spec, width)
            return _read(program, model, width, "meta", start)
        except TpcheckError:
            if device == "meta":
                raise
        except Exception:
            if device == "meta":
                raise
    model, args, kwargs = _build(spec, width, "cpu")
    program = _export(model, args, kwargs, spec, width)
    return _read(program, model, width, "cpu", start)


def build_model(spec: ModelSpec, width: int, device: str = "cpu") -> torch.nn.Module:
    """Call the spec's factory at ``width``; the user's errors become TpcheckErrors."""
    ctx = torch.device("meta") if device == "meta" else contextlib.nullcontext()
    try:
        with ctx:
            model = spec.factory(width)
    except Exception as exc:
        raise TpcheckError(
            f"the model factory raised {type(exc).__name__} at width {width}: {exc}",
            where=_where(spec, width, exc),
            fix="make factory(width) build the model for every traced width "
                "(check that the width divides by the head dim)",
        ) from exc
    if not isinstance(model, torch.nn.Module):
        raise TpcheckError(
            f"the model factory returned {type(model).__name__}, not a torch.nn.Module.",
            where=f"{spec.label}, width {width}", fix="return the model from factory(width)")
    return model


def example_inputs(spec: ModelSpec, width: int, device: str = "cpu") -> tuple[tuple, dict]:
    """The spec's example inputs at ``width`` as ``(args, kwargs)`` on ``device``."""
    try:
        raw = spec.inputs(width)
    except Exception as exc:
        raise TpcheckError(f"inputs({width}) raised {type(exc).__name__}: {exc}",
                           where=_where(spec, width, exc),
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


def _build(spec: ModelSpec, width: int, device: str) -> tuple[torch.nn.Module, tuple, dict]:
    model = build_model(spec, width, device)
    args, kwargs = example_inputs(spec, width, device)
    return model, args, kwargs


def _export(model: torch.nn.Module, args: tuple, kwargs: dict, spec: ModelSpec,
            width: int) -> torch.export.ExportedProgram:
    try:
        with _quiet(), _prepared(model):
            return torch.export.export(model, args, kwargs, strict=False)
    except Exception as exc:
        summary = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise TpcheckError(
            f"torch.export could not trace the model at width {width}: "
            f"{type(exc).__name__}: {summary[:400]}",
            where=_where(spec, width, exc),
            fix="make forward traceable by torch.export(strict=False): no Python control flow "
                "on tensor values, no .item()/.tolist() on activations, no data-dependent shapes",
        ) from exc


@contextlib.contextmanager
def _prepared(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode and pinned width multipliers for the trace, undone afterwards.

    A factory may hand back an object the user still holds; tracing must leave it as it was.
    """
    modes = {m: m.training for m in model.modules()}
    pinned = pin_width_mults(model)
    model.eval()  # dropout and label dropout off: the graph we analyse is deterministic
    try:
        yield
    finally:
        for module in pinned:
            del module.width_mult
        for module, mode in modes.items():
            module.training = mode


def pin_width_mults(model: torch.nn.Module) -> list[torch.nn.Module]:
    """Freeze mup's ``width_mult()`` into a Python float on every module that has one.

    mup's ``MuReadout.forward`` divides by ``self.weight.infshape.width_mult()``, an attribute
    that the fake parameters of ``torch.export`` do not carry (mup issue #60), so such models
    do not export as they are. The value is a constant per width, which is all export needs;
    the model is tpcheck's own instance, built by the spec's factory for this trace.
    """
    pinned = []
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if callable(getattr(module, "width_mult", None)) and hasattr(weight, "infshape"):
            value = float(module.width_mult())
            module.width_mult = lambda value=value: value  # instance attribute shadows method
            pinned.append(module)
    return pinned


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence export's warnings and log dumps: a failure is reported by us, in one message."""
    import logging
    import warnings

    loggers = [logging.getLogger(name) for name in ("torch", "torch.export",
                                                    "torch.fx.experimental.symbolic_shapes",
                                                    "torch._dynamo", "torch._export")]
    levels = [lg.level for lg in loggers]
    import io

    sink = io.StringIO()  # export prints the partial graph of a failed trace to stdout
    with warnings.catch_warnings(), contextlib.redirect_stdout(sink), \
            contextlib.redirect_stderr(sink):
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.CRITICAL)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)


def _where(spec: ModelSpec, width: int, exc: BaseException) -> str:
    """Target and width, plus the innermost source line of the user's code in ``exc``."""
    where = f"{spec.label}, width {width}"
    line = user_frame(exc)
    return f"{where}, {line}" if line else where


def user_frame(exc: BaseException) -> str | None:
    """The innermost traceback frame outside torch, tpcheck and the standard library."""
    torch_dir = os.path.dirname(torch.__file__)
    own_dir = os.path.dirname(__file__)
    skip = (torch_dir, own_dir, os.path.dirname(os.__file__))
    best = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename.startswith(skip) or "site-packages/torch" in frame.filename:
            continue
        if frame.filename.startswith("<"):
            continue
        best = f"{frame.filename}:{frame.lineno} ({frame.line or frame.name})"
    return best


# --- reading an ExportedProgram into OpNodes ---------------------------------------------


def _read(program: torch.export.ExportedProgram, model: torch.nn.Module, width: int,
          device: str, start: float) -> Trace:
    sig = program.graph_signature
    to_param = dict(sig.inputs_to_parameters)
    to_buffer = dict(sig.inputs_to_buffers)
    user_inputs = set(sig.user_inputs)
    params = _params(model)
    nodes: list[OpNode] = []
    for node in program.graph.nodes:
        shape = _shape(node.meta.get("val"))
        stack = node.meta.get("nn_module_stack") or {}
        module, module_type = ("", "")
        if stack:
            module, module_type = list(stack.values())[-1]
            module = _clean_module_path(module)
            module_type = module_type if isinstance(module_type, str) else getattr(
                module_type, "__qualname__", str(module_type))
        source = _last_line(node.meta.get("stack_trace"))
        if node.op == "placeholder":
            if node.name in to_param:
                kind, target = "param", to_param[node.name]
            elif node.name in to_buffer:
                kind, target = "buffer", to_buffer[node.name]
            else:
                kind = "input" if node.name in user_inputs else "constant"
                target = node.name
            nodes.append(OpNode(node.name, kind, target, shape=shape))
        elif node.op == "call_function":
            nodes.append(OpNode(
                name=node.name, kind="call", target=_target_name(node.target),
                args=tuple(_plain(a) for a in node.args),
                kwargs={k: _plain(v) for k, v in node.kwargs.items()},
                shape=shape, module=module, module_type=module_type, source=source))
        elif node.op == "output":
            nodes.append(OpNode(node.name, "output", "output",
                                args=tuple(_plain(a) for a in node.args)))
        else:  # get_attr / call_module do not appear in export's ATen graphs; keep them visible
            nodes.append(OpNode(node.name, node.op, str(node.target), shape=shape))
    return Trace(width=width, params=params, nodes=tuple(nodes), device=device,
                 seconds=time.perf_counter() - start)


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
    return arg


def _shape(val: Any) -> tuple[int, ...] | None:
    if isinstance(val, torch.Tensor):
        return tuple(int(s) for s in val.shape)
    if isinstance(val, (list, tuple)):
        for v in val:
            if isinstance(v, torch.Tensor):
                return tuple(int(s) for s in v.shape)
    return None


def _clean_module_path(path: str) -> str:
    """export writes ``L['self'].blocks[0].attn``-style paths in some versions; normalise."""
    path = path.replace("L['self'].", "").replace("L['self']", "")
    out = []
    for part in path.replace("[", ".").replace("]", "").split("."):
        if part:
            out.append(part.strip("'\""))
    return ".".join(out)


def _last_line(stack: str | None) -> str | None:
    """``file:line`` of the innermost frame of a node's stack trace in the model's own code.

    Frames inside torch (``nn.Linear.forward``) say nothing to the user: the line that
    called the module does.
    """
    if not stack:
        return None
    last = None
    for line in stack.splitlines():
        line = line.strip()
        if line.startswith('File "'):
            try:
                fname = line.split('"')[1]
                lineno = line.split("line ")[1].split(",")[0]
            except IndexError:
                continue
            if _is_library_file(fname):
                continue
            last = f"{fname}:{lineno}"
    return last


def _is_library_file(path: str) -> bool:
    torch_dir = os.path.dirname(torch.__file__)
    return path.startswith(torch_dir) or (os.sep + "torch" + os.sep in path and (
        "site-packages" in path or "dist-packages" in path))


def definition_site(model: torch.nn.Module, name: str) -> str | None:
    """``file:line`` where the parameter, or the module holding it, is assigned in its
    parent's ``__init__`` (``self.qkv = nn.Linear(...)``): where a user fixes its init."""
    parts = name.split(".")
    owner: Any = model
    chain = [model]
    for part in parts[:-1]:
        owner = getattr(owner, part, None)
        if owner is None:
            return None
        chain.append(owner)
    # walk up until an attribute assignment is found in user code (skips nn.Linear itself)
    for depth in range(len(parts) - 1, -1, -1):
        parent = chain[depth]
        attr = parts[depth]
        site = _assignment_line(type(parent), attr)
        if site is not None:
            return site
    return None


@functools.cache
def _assignment_line(cls: type, attr: str) -> str | None:
    """Cached per (class, attribute): reading a class's source parses its whole module."""
    import inspect
    import re

    if attr.isdigit():  # an item of an nn.ModuleList / Sequential: no attribute to find
        return None
    pattern = re.compile(rf"self\.{re.escape(attr)}\s*(:[^=]+)?=")
    for klass in cls.__mro__:
        if klass in (torch.nn.Module, object):
            break
        try:
            lines, start = inspect.getsourcelines(klass)
            path = inspect.getsourcefile(klass)
        except (OSError, TypeError):
            continue
        if path is None or _is_library_file(path):
            continue
        for offset, text in enumerate(lines):
            if pattern.search(text):
                return f"{path}:{start + offset}"
    return None
