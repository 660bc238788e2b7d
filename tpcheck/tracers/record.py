"""The recording tracer: run the model's own forward eagerly and write every torch call into a
``torch.fx.Graph``.

Why not ``torch.export``: export re-traces the forward symbolically, which costs seconds per
width on a 28-block model and refuses data-dependent Python (``nonzero`` on a mask,
``len(set(seq_lengths))``, numpy in the forward). Running the forward itself under a
:class:`~torch.overrides.TorchFunctionMode` sees the same calls at the level users wrote them
(``linear``, ``scaled_dot_product_attention`` with its ``scale``), costs what the forward costs
(nothing on the meta device), and runs whatever Python the model runs.

What is recorded, per call: the op, its arguments (tensors become graph nodes; numbers, shapes
and flags stay values), the output's shape (``meta["val"]``), the module path and class
(``meta["nn_module_stack"]``, from module hooks) and the user's source line
(``meta["stack_trace"]``). Arguments of the ops whose positions the pipeline reads (linear,
conv, norms, embedding, attention, einsum, reductions, ...) are written in ATen's schema order,
the order ``torch.export`` writes, so one reader serves both tracers; keyword-only parameters
(SDPA's ``scale``) stay keywords.

Leaves: parameters, buffers and tensors the graph did not produce (``_tensor_constant*``) are
``get_attr`` nodes, the example inputs are ``placeholder`` nodes; :class:`Recorded` says which
is which.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils import _pytree as pytree

from tpcheck.sources import is_library_file

#: Calls that only ask about a tensor (its shape, dtype, device, ...): never graph nodes.
_QUERIES = {"size", "dim", "numel", "stride", "element_size", "is_contiguous", "is_floating_point",
            "is_complex", "data_ptr", "storage_offset", "get_device", "__len__", "__format__",
            "__repr__", "__bool__", "__int__", "__float__", "__index__", "item", "tolist",
            "__array__", "numpy", "__hash__", "__eq_tensor_metadata__", "has_names",
            "untyped_storage", "_is_view", "is_set_to"}
#: Functional dropouts: traced with p = 0 (μP is about the training graph, minus the noise).
_DROPOUTS = {"dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout",
             "feature_alpha_dropout"}
#: Python operators and what they compute.
_DUNDERS = {"__add__": "add", "__radd__": "add", "__iadd__": "add_", "__sub__": "sub",
            "__isub__": "sub_", "__rsub__": "rsub", "__mul__": "mul", "__rmul__": "mul",
            "__imul__": "mul_", "__truediv__": "div", "__div__": "div", "__itruediv__": "div_",
            "__idiv__": "div_", "__rtruediv__": "rdiv", "__rdiv__": "rdiv", "__matmul__": "matmul",
            "__pow__": "pow", "__rpow__": "rpow", "__ipow__": "pow_", "__neg__": "neg",
            "__abs__": "abs", "__getitem__": "getitem", "__setitem__": "setitem",
            "__floordiv__": "floor_divide", "__mod__": "remainder", "__and__": "bitwise_and",
            "__or__": "bitwise_or", "__xor__": "bitwise_xor", "__invert__": "bitwise_not",
            "__lt__": "lt", "__le__": "le", "__gt__": "gt", "__ge__": "ge", "__eq__": "eq",
            "__ne__": "ne", "__iter__": "unbind"}
#: Tensor properties that compute a tensor, by the op they are.
_PROPERTIES = {"T": "t", "mT": "transpose", "H": "t", "mH": "transpose", "data": "alias",
               "real": "real", "imag": "imag"}

#: Ops whose argument positions the pipeline reads: the Python API's parameter order, then the
#: ATen order the graph is written in (what ``torch.export`` writes).
_SCHEMAS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "linear": (("input", "weight", "bias"),) * 2,
    "bilinear": (("input1", "input2", "weight", "bias"),) * 2,
    **{f"conv{d}d": (("input", "weight", "bias", "stride", "padding", "dilation", "groups"),) * 2
       for d in (1, 2, 3)},
    **{f"conv_transpose{d}d": (("input", "weight", "bias", "stride", "padding", "output_padding",
                                "groups", "dilation"),) * 2 for d in (1, 2, 3)},
    "layer_norm": (("input", "normalized_shape", "weight", "bias", "eps"),) * 2,
    "group_norm": (("input", "num_groups", "weight", "bias", "eps"),) * 2,
    "rms_norm": (("input", "normalized_shape", "weight", "eps"),) * 2,
    "batch_norm": (("input", "running_mean", "running_var", "weight", "bias", "training",
                    "momentum", "eps"),
                   ("input", "weight", "bias", "running_mean", "running_var", "training",
                    "momentum", "eps")),
    "embedding": (("input", "weight", "padding_idx", "max_norm", "norm_type",
                   "scale_grad_by_freq", "sparse"),
                  ("weight", "input", "padding_idx", "scale_grad_by_freq", "sparse")),
    "scaled_dot_product_attention": (("query", "key", "value", "attn_mask", "dropout_p",
                                      "is_causal"),) * 2,
    "matmul": (("input", "other"),) * 2,
    "mm": (("input", "mat2"),) * 2,
    "bmm": (("input", "mat2"),) * 2,
    "addmm": (("input", "mat1", "mat2", "beta", "alpha"),) * 2,
    "baddbmm": (("input", "batch1", "batch2", "beta", "alpha"),) * 2,
    "cat": (("tensors", "dim"),) * 2,
    "stack": (("tensors", "dim"),) * 2,
    **{op: (("input", "dim", "keepdim"),) * 2 for op in ("sum", "mean", "amax", "amin",
                                                          "logsumexp", "nansum", "nanmean")},
    **{op: (("input", "dim"),) * 2 for op in ("softmax", "log_softmax", "cumsum")},
}


@dataclass(frozen=True)
class Recorded:
    """A recorded forward: the graph, and what each leaf node stands for.

    ``leaves[node_name]`` is ``(kind, target)``: ``("param", qualified name)``,
    ``("buffer", qualified name)``, ``("input", argument name)`` or ``("constant", name)``.
    """

    graph: torch.fx.Graph
    leaves: dict[str, tuple[str, str]]


def record(model: torch.nn.Module, args: tuple, kwargs: dict) -> Recorded:
    """Run ``model(*args, **kwargs)`` once and return the graph of every torch call it made."""
    recorder = _Recorder(model)
    recorder.bind_inputs(args, kwargs)
    with recorder.module_hooks(), recorder:
        out = model(*args, **kwargs)
    recorder.finish(out)
    return Recorded(recorder.graph, recorder.leaves)


def op_of(func: Callable) -> str:
    """The op a torch callable computes: ``TensorBase.add`` → ``add``, ``__rsub__`` →
    ``rsub``, the ``T`` property → ``t``. In-place variants keep their trailing ``_``."""
    name = getattr(func, "__name__", None) or type(func).__name__
    if name == "__get__":  # a tensor property such as .T or .data
        prop = getattr(getattr(func, "__self__", None), "__name__", "")
        return _PROPERTIES.get(prop, prop or "property")
    return _DUNDERS.get(name, name)


class _Recorder(TorchFunctionMode):
    """Records torch calls into ``self.graph``; module hooks keep the module stack."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.graph = torch.fx.Graph()
        self.leaves: dict[str, tuple[str, str]] = {}
        self.env: dict[int, torch.fx.Node] = {}  # id(tensor) -> the node holding its value
        self.keep: list[Any] = []  # every tensor seen stays alive: ids must not be reused
        # a tensor registered under several names (tied weights) is known by its first name,
        # as capture's parameter table knows it
        self.params: dict[int, str] = {}
        for name, p in model.named_parameters(remove_duplicate=False):
            self.params.setdefault(id(p), name)
        self.buffers: dict[int, str] = {}
        for name, b in model.named_buffers(remove_duplicate=False):
            self.buffers.setdefault(id(b), name)
        self.paths = {id(m): (path, type(m).__qualname__)
                      for path, m in model.named_modules(remove_duplicate=False)}
        self.stack: list[tuple[str, str]] = []
        self.constants = 0
        self._library: dict[str, bool] = {}

    # --- leaves -------------------------------------------------------------------------

    def bind_inputs(self, args: tuple, kwargs: dict) -> None:
        """A placeholder per tensor in the example inputs, named after its argument."""
        sig_names = [f"arg{i}" for i in range(len(args))]
        for name, value in [*zip(sig_names, args, strict=True), *kwargs.items()]:
            leaves, _ = pytree.tree_flatten(value)
            tensors = [t for t in leaves if isinstance(t, torch.Tensor)]
            for i, t in enumerate(tensors):
                label = name if len(tensors) == 1 else f"{name}_{i}"
                node = self.graph.placeholder(label)
                node.meta["val"] = t
                self.leaves[node.name] = ("input", label)
                self._bind(t, node)

    def _leaf(self, t: torch.Tensor) -> torch.fx.Node:
        """The node of a tensor the graph did not compute: a parameter, buffer or constant."""
        key = id(t)
        if key in self.params:
            kind, target = "param", self.params[key]
        elif key in self.buffers:
            kind, target = "buffer", self.buffers[key]
        else:
            kind, target = "constant", f"_tensor_constant{self.constants}"
            self.constants += 1
        node = self.graph.get_attr(target)
        node.meta["val"] = t
        self.leaves[node.name] = (kind, target)
        self._bind(t, node)
        return node

    def _bind(self, t: torch.Tensor, node: torch.fx.Node) -> None:
        self.env[id(t)] = node
        self.keep.append(t)

    def _arg(self, value: Any) -> Any:
        """An argument as a graph value: tensors become nodes, the rest plain Python."""
        if isinstance(value, torch.Tensor):
            return self.env.get(id(value)) or self._leaf(value)
        if isinstance(value, (list, tuple)):
            items = [self._arg(v) for v in value]
            return items if isinstance(value, list) else tuple(items)
        if isinstance(value, dict):
            return {k: self._arg(v) for k, v in value.items()}
        if value is None or isinstance(value, (bool, int, float, complex, str, slice,
                                               type(Ellipsis), torch.dtype, torch.device,
                                               torch.layout, torch.memory_format)):
            return value
        if isinstance(value, (torch.SymInt, torch.SymFloat)):
            return value.node.hint if hasattr(value.node, "hint") else str(value)
        try:  # numpy scalars and other number-likes
            return float(value) if not isinstance(value, (int,)) else int(value)
        except (TypeError, ValueError):
            return repr(value)

    # --- calls --------------------------------------------------------------------------

    def __torch_function__(self, func: Callable, types: Any, args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        kwargs = dict(kwargs or {})
        op = op_of(func)
        if op in _QUERIES:
            return func(*args, **kwargs)
        if op in _DROPOUTS:
            args, kwargs = _without_dropout(func, args, kwargs)
        elif op == "scaled_dot_product_attention":
            args, kwargs = _sdpa_without_dropout(args, kwargs)
        out = _shape_only(op, args, kwargs)
        if out is None:
            out = func(*args, **kwargs)
        outputs = [t for t in pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]
        mutated = _mutated(op, args, kwargs)
        if not outputs and mutated is None:
            return out
        node_args, node_kwargs = _canonical(op, func, self._arg(args), self._arg(kwargs))
        node = self.graph.create_node("call_function", func, tuple(node_args), node_kwargs,
                                      name=op.strip("_") or "op")
        node.meta["target"] = _target_name(func, op)
        node.meta["val"] = out if outputs else mutated
        node.meta["nn_module_stack"] = {path: (path, cls) for path, cls in self.stack}
        where = self._source_line()
        if where:
            node.meta["stack_trace"] = where
        if mutated is not None:  # x.mul_(2), x[i] = y, x += y: the node is x's new value
            self._bind(mutated, node)
        if isinstance(out, torch.Tensor):
            self._bind(out, node)
        elif outputs:
            self._bind_items(out, node)
        return out

    def _bind_items(self, out: Any, node: torch.fx.Node) -> None:
        """``chunk``/``split``/``unbind`` return several tensors: one ``getitem`` node each."""
        if not isinstance(out, (tuple, list)):
            for t in pytree.tree_leaves(out):
                if isinstance(t, torch.Tensor):
                    self._bind(t, node)
            return
        import operator

        for i, item in enumerate(out):
            if isinstance(item, torch.Tensor):
                get = self.graph.create_node("call_function", operator.getitem, (node, i),
                                             name="getitem")
                get.meta.update(target="getitem", val=item,
                                nn_module_stack=node.meta["nn_module_stack"])
                if "stack_trace" in node.meta:
                    get.meta["stack_trace"] = node.meta["stack_trace"]
                self._bind(item, get)

    def finish(self, out: Any) -> None:
        """The output node: every tensor the forward returned, in pytree order."""
        leaves = [t for t in pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]
        self.graph.output(tuple(self._arg(t) for t in leaves))

    # --- module stack and source lines ----------------------------------------------------

    @contextlib.contextmanager
    def module_hooks(self) -> Iterator[None]:
        """Global module hooks for the duration of the forward: they keep the module stack."""
        from torch.nn.modules import module as nn_module

        def enter(module: torch.nn.Module, args: Any) -> None:
            self.stack.append(self.paths.get(id(module), ("", type(module).__qualname__)))

        def leave(module: torch.nn.Module, args: Any, out: Any) -> None:
            if self.stack:
                self.stack.pop()

        handles = [nn_module.register_module_forward_pre_hook(enter),
                   nn_module.register_module_forward_hook(leave)]
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def _source_line(self) -> str | None:
        """``File "path", line N`` of the innermost frame outside torch and tpcheck."""
        frame = sys._getframe(2)
        while frame is not None:
            path = frame.f_code.co_filename
            library = self._library.get(path)
            if library is None:
                library = self._library[path] = is_library_file(path)
            if not library:
                return f'File "{path}", line {frame.f_lineno}, in {frame.f_code.co_name}'
            frame = frame.f_back
        return None


def _target_name(func: Callable, op: str) -> str:
    """The name the graph reader keys on: ``Tensor.add``, ``linear``, ``getitem``, ..."""
    owner = getattr(func, "__qualname__", "").rpartition(".")[0]
    if owner.endswith("TensorBase") or owner == "Tensor" or op in _PROPERTIES.values():
        return f"Tensor.{op}"
    return op


def _mutated(op: str, args: tuple, kwargs: dict) -> torch.Tensor | None:
    """The tensor an in-place call writes to (``x.mul_(2)``, ``x[i] = y``, ``out=``)."""
    out = kwargs.get("out")
    if isinstance(out, torch.Tensor):
        return out
    in_place = op == "setitem" or (op.endswith("_") and not op.startswith("_"))
    if in_place and args and isinstance(args[0], torch.Tensor):
        return args[0]
    return None


def _canonical(op: str, func: Callable, args: Any, kwargs: dict) -> tuple[list, dict]:
    """Arguments in ATen's schema order for the ops whose positions the pipeline reads."""
    if op == "einsum":  # torch.einsum(eq, a, b) and torch.einsum(eq, [a, b]) → (eq, [a, b])
        operands = args[1] if len(args) == 2 and isinstance(args[1], (list, tuple)) else args[1:]
        return [args[0], list(operands)], kwargs
    schema = _SCHEMAS.get(op)
    if schema is None:
        return list(args), kwargs
    python_order, aten_order = schema
    given = dict(zip(python_order, args, strict=False))
    rest = {}
    for key, value in kwargs.items():
        if key in python_order:
            given[key] = value
        else:
            rest[key] = value
    last = max((aten_order.index(k) for k in given if k in aten_order), default=-1)
    positional = [given.get(k) for k in aten_order[: last + 1]]
    extra = list(args[len(python_order):])  # beyond the schema: keep them
    return positional + extra, {k: v for k, v in rest.items() if k != "out"}


#: Ops whose output has their first input's shape and dtype.
_SAME_SHAPE = {"layer_norm", "rms_norm", "group_norm", "gelu", "silu", "relu", "tanh", "sigmoid",
               "softmax", "log_softmax", "dropout", "neg", "sin", "cos", "exp", "rsqrt", "sqrt",
               "square", "abs"}
_BROADCAST = {"add", "sub", "mul", "div", "rsub"}


def _shape_only(op: str, args: tuple, kwargs: dict) -> torch.Tensor | None:
    """The output of a common op on meta tensors from shape rules alone, else None.

    Meta kernels of norms, attention and activations run through Python decompositions
    (~1–3 ms a call, and over a second to import on first use); the recorder needs only the
    output's shape and dtype. Anything outside the plain cases below runs the real kernel.
    """
    if not args or not isinstance(args[0], torch.Tensor) or not args[0].is_meta:
        return None
    x = args[0]
    tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
    if any(not t.is_meta for t in tensors):
        return None
    if op in _SAME_SHAPE and not kwargs.get("dtype") and "out" not in kwargs:
        return torch.empty(x.shape, dtype=x.dtype, device="meta")
    if op == "linear" and len(tensors) >= 2:
        w = args[1] if len(args) > 1 else kwargs.get("weight")
        if isinstance(w, torch.Tensor) and w.dim() == 2 and x.dim() >= 1 and (
                x.shape[-1] == w.shape[1]):
            return torch.empty((*x.shape[:-1], w.shape[0]), dtype=x.dtype, device="meta")
        return None
    if op == "scaled_dot_product_attention" and len(args) >= 3:
        q, v = args[0], args[2]
        if isinstance(v, torch.Tensor) and q.dim() == v.dim() >= 2:
            return torch.empty((*q.shape[:-1], v.shape[-1]), dtype=q.dtype, device="meta")
        return None
    if op in _BROADCAST and len(args) == 2 and not kwargs:
        other = args[1]
        if isinstance(other, torch.Tensor):
            shape = torch.broadcast_shapes(x.shape, other.shape)
        elif isinstance(other, (int, float)) and not isinstance(other, bool):
            shape = x.shape
        else:
            return None
        return torch.empty(shape, dtype=torch.result_type(x, other), device="meta")
    return None


def _without_dropout(func: Callable, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """``F.dropout(x, p, training)`` with p = 0."""
    try:
        bound = inspect.signature(func).bind(*args, **kwargs)
    except (TypeError, ValueError):
        return args, kwargs
    if "p" in bound.arguments:
        bound.arguments["p"] = 0.0
        return bound.args, bound.kwargs
    return args, {**kwargs, "p": 0.0}


def _sdpa_without_dropout(args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """``scaled_dot_product_attention(..., dropout_p=p)`` with p = 0."""
    if len(args) > 4:
        args = (*args[:4], 0.0, *args[5:])
    elif "dropout_p" in kwargs:
        kwargs = {**kwargs, "dropout_p": 0.0}
    return args, kwargs
