"""Record: train each width a few steps and record every activation's size and change.

Hooks sit on the real model (no tracing): what is recorded is what training computes.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from tpcheck.capture import build_model, example_inputs, where_in
from tpcheck.coord.report import Divergence
from tpcheck.errors import TpcheckError
from tpcheck.spec import ModelSpec

OUTPUT = "(output)"  # record name of the model's own output
_CONTAINERS = (nn.ModuleList, nn.ModuleDict, nn.Sequential, nn.ParameterList, nn.ParameterDict,
               nn.Identity, nn.modules.dropout._DropoutNd)


@dataclass
class Run:
    """What one (width, seed) run recorded, per record name, at t = 0..steps."""

    optimizer: str
    size: dict[str, list[float]] = field(default_factory=dict)
    delta: dict[str, list[float]] = field(default_factory=dict)
    kind: dict[str, str] = field(default_factory=dict)
    module_type: dict[str, str] = field(default_factory=dict)
    signature: dict[str, str] = field(default_factory=dict)  # module path -> class(args)
    shape: dict[str, tuple[int, ...]] = field(default_factory=dict)
    calls: Counter = field(default_factory=Counter)  # module path -> calls per forward
    diverged: Divergence | None = None
    #: The step after which every trainable tensor that ever got a gradient has moved.
    all_moved: int = 1
    #: Trainable tensors whose gradient stayed zero in every step (unused, or behind more
    #: zero-initialised layers than there were steps).
    never_moved: tuple[str, ...] = ()
    #: How many parameters the model had: equal at every width means the factory ignores n.
    parameters: int = 0


class Recorder(TorchFunctionMode):
    """Forward hooks on every non-container module, plus an SDPA interceptor for the logits.

    Hooks sit on the real model (no tracing): what is recorded is what training computes.
    The attention logits exist only inside ``F.scaled_dot_product_attention``, so the call is
    intercepted (a TorchFunctionMode, active during the forward only) to record
    ``scale · q kᵀ`` before the real op runs; a module stack names them after the innermost
    module that called SDPA (``blocks.0.attn.logits``).
    """

    def __init__(self, model: nn.Module, run: Run) -> None:
        super().__init__()
        self.run, self.step = run, 0
        self.first: dict[str, torch.Tensor] = {}
        self.stack: list[str] = []
        self.seen: Counter = Counter()  # calls per path in the current forward
        self.bad: str | None = None
        self.handles = []
        for path, module in model.named_modules():
            if not path:
                continue
            self.handles.append(module.register_forward_pre_hook(self._enter(path)))
            self.handles.append(module.register_forward_hook(self._leave(path, module)))

    def _enter(self, path: str) -> Any:
        def hook(module: nn.Module, args: Any) -> None:
            self.stack.append(path)
        return hook

    def _leave(self, path: str, module: nn.Module) -> Any:
        recorded = not isinstance(module, _CONTAINERS)
        kind = type(module).__name__
        self.run.signature[path] = f"{kind}({module.extra_repr()})"

        def hook(module: nn.Module, args: Any, out: Any) -> None:
            self.stack.pop()
            if recorded:
                self.record(self._call_name(path), out, "module", kind)
        return hook

    def _call_name(self, path: str) -> str:
        self.seen[path] += 1
        k = self.seen[path]
        self.run.calls[path] = max(self.run.calls[path], k)
        return path if k == 1 else f"{path}@{k}"

    def __torch_function__(self, func: Any, types: Any, args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            self.record(self._call_name((self.stack[-1] + "." if self.stack else "") + "logits"),
                        _logits(*args, **kwargs), "logits", "attention logits")
        return func(*args, **kwargs)

    def forward(self, model: nn.Module, args: tuple, kwargs: dict) -> Any:
        self.seen.clear()
        self.stack.clear()
        with self:
            out = model(*args, **kwargs)
        self.record(OUTPUT, out, "output", type(model).__name__)
        return out

    def record(self, name: str, out: Any, kind: str, module_type: str) -> None:
        for suffix, x in tensors(out):
            if x.is_floating_point():
                self._stat(name + suffix, x.detach(), kind, module_type)

    def _stat(self, name: str, x: torch.Tensor, kind: str, module_type: str) -> None:
        run = self.run
        x = x.float()
        if self.step == 0:
            self.first[name] = x.clone()
            run.kind[name], run.module_type[name], run.shape[name] = kind, module_type, tuple(
                x.shape)
            run.size[name], run.delta[name] = [], []
        x0 = self.first.get(name)
        if x0 is None or x0.shape != x.shape:  # a record that appeared after init: skip it
            return
        size = float(x.abs().mean())
        delta = float((x - x0).abs().mean()) if self.step else 0.0
        run.size[name].append(size)
        run.delta[name].append(delta)
        if self.bad is None and not (math.isfinite(size) and math.isfinite(delta)):
            self.bad = name

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def _logits(query: torch.Tensor, key: torch.Tensor, *args: Any, scale: float | None = None,
            **kwargs: Any) -> torch.Tensor:
    """``scale · q kᵀ`` as SDPA computes it (mask and dropout aside), key heads repeated for GQA."""
    if scale is None and len(args) > 4:  # (value, attn_mask, dropout_p, is_causal, scale)
        scale = args[4]
    with torch.no_grad():
        q, k = query.detach(), key.detach()
        if k.dim() >= 3 and q.dim() >= 3 and k.shape[-3] != q.shape[-3] and k.shape[-3]:
            k = k.repeat_interleave(q.shape[-3] // k.shape[-3], dim=-3)
        s = q.shape[-1] ** -0.5 if scale is None else scale
        return (q @ k.transpose(-2, -1)) * s


def tensors(out: Any, prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor in a module's output, named ``[i]`` / ``[key]`` inside tuples and dicts."""
    if isinstance(out, torch.Tensor):
        yield prefix, out
    elif isinstance(out, (tuple, list)):
        for i, item in enumerate(out):
            yield from tensors(item, f"{prefix}[{i}]")
    elif isinstance(out, dict):  # includes diffusers' ModelOutput
        for key, item in out.items():
            yield from tensors(item, f"{prefix}[{key}]")


def train(spec: ModelSpec, width: int, seed: int, steps: int, lr: float | None) -> Run:
    """Build ``width`` with ``seed``; record a fixed batch at init and after every step.

    Eval mode throughout (dropout off): ``x_t − x_0`` must come from the weights alone. The
    loss is the mean squared error of every floating output against a fixed random target
    of its shape, drawn from ``seed`` only, so the target is the same at every width.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(spec, width, "cpu")
        args, kwargs = example_inputs(spec, width, "cpu")
        opt = _optimizer(spec, model, width, lr)
        run = Run(optimizer=opt.name,
                  parameters=sum(p.numel() for p in model.parameters()))
        model.eval()
        recorder = Recorder(model, run)
        gen = torch.Generator().manual_seed(10_000 + seed)
        targets: list[torch.Tensor] | None = None
        names = {id(p): name for name, p in model.named_parameters()}
        waiting = {names.get(id(p), "?"): p for g in opt.param_groups for p in g["params"]
                   if p.requires_grad}
        step = 0
        try:
            for step in range(steps + 1):
                recorder.step = step
                out = recorder.forward(model, args, kwargs)
                outs = [x for _, x in tensors(out) if x.is_floating_point() and x.requires_grad]
                if recorder.bad:
                    run.diverged = Divergence(width, seed, step, recorder.bad)
                    break
                if step == steps:
                    break
                if targets is None:
                    targets = [torch.randn(x.shape, generator=gen) for x in outs]
                loss = sum((F.mse_loss(x.float(), t) for x, t in zip(outs, targets, strict=True)),
                           torch.zeros(()))
                if not torch.isfinite(loss):
                    run.diverged = Divergence(width, seed, step, "loss")
                    break
                opt.zero_grad(set_to_none=True)
                loss.backward()
                moved = [k for k, p in waiting.items() if p.grad is not None and bool(p.grad.any())]
                for k in moved:  # trainable tensors whose gradient had been zero so far
                    del waiting[k]
                    run.all_moved = step + 1
                opt.step()
        except TpcheckError:
            raise
        except Exception as exc:  # the user's model: report with the width and step
            raise TpcheckError(
                f"training raised {type(exc).__name__} at width {width}, step {step}: {exc}",
                where=where_in(spec, width, exc),
                fix="make factory(width), inputs(width) and optimizer(model) train on the CPU; "
                    "the model's output must depend on trainable parameters") from exc
        finally:
            recorder.remove()
        run.never_moved = tuple(waiting)
    return run


class _Optimizers:
    """The spec's optimizers stepped together (Muon for the matrices, AdamW for the rest)."""

    def __init__(self, opts: tuple[torch.optim.Optimizer, ...]) -> None:
        self.opts = opts
        self.param_groups = [g for o in opts for g in o.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.opts:
            o.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for o in self.opts:
            o.step()

    @property
    def name(self) -> str:
        return "+".join(type(o).__name__ for o in self.opts)


def _optimizer(spec: ModelSpec, model: nn.Module, width: int, lr: float | None) -> _Optimizers:
    """The spec's optimizers; with ``lr``, every group scaled by ``lr / base LR``."""
    opts = spec.build_optimizers(model, width)
    if lr is not None:
        for opt in opts:
            base = float(opt.defaults.get("lr") or 0.0)
            for group in opt.param_groups:  # keep μP's per-tensor ratios, move the base LR
                group["lr"] = (group["lr"] or 0.0) * lr / base if base else lr
    return _Optimizers(opts)
