"""One training run: a task at one width, in SP or μP, with one set of base hyperparameters.

SP is what most training scripts do: AdamW with one global learning rate over
``model.parameters()``. μP is the tpcheck plan through its public methods only:
``plan.apply(model)`` rescales the model's own init for its width, and
``plan.param_groups(model, lr=..., weight_decay=..., eps=...)`` gives each tensor its LR,
weight decay and ε. Everything else (schedule, clipping, β₂, batches) is the same code for
both, so the two differ by exactly what the plan changes.

The schedule is a linear warm-up over ``warmup`` of the steps then a cosine decay to zero:
the LR multiplies every group's own LR, so μP's per-tensor ratios hold at every step.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch

from tpcheck.errors import TpcheckError
from tpcheck.transfer.task import Task

PARAMETRIZATIONS = ("sp", "mup")
#: a run is never stopped as collapsed before this many steps (short runs are still descending)
GIVE_UP_AFTER = 100


@dataclass(frozen=True)
class Hyper:
    """The base hyperparameters a study sweeps or searches (their meaning at the base width).

    ``clip`` is a global gradient-norm threshold (0 turns it off); ``warmup`` is a fraction of
    the steps. The defaults are DiT's recipe (AdamW, β = (0.9, 0.999), no weight decay) with a
    20 % warm-up, which the sweeps use at every learning rate (near what the search picks on
    the proxy; a short warm-up makes the narrowest widths collapse sooner, see
    docs/mutransfer.md).
    """

    lr: float = 1e-4
    warmup: float = 0.2
    beta1: float = 0.9
    beta2: float = 0.999
    weight_decay: float = 0.0
    eps: float = 1e-8
    clip: float = 0.0

    def __post_init__(self) -> None:
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise TpcheckError(f"learning rate {self.lr} is not a positive number.")
        if not 0.0 <= self.warmup < 1.0:
            raise TpcheckError(f"warm-up fraction {self.warmup} is not in [0, 1).")
        if not (0.0 <= self.beta1 < 1.0 and 0.0 <= self.beta2 < 1.0):
            raise TpcheckError(f"Adam betas ({self.beta1}, {self.beta2}) must be in [0, 1).")
        if self.clip < 0 or self.weight_decay < 0 or self.eps <= 0:
            raise TpcheckError("clip and weight_decay must be ≥ 0 and eps > 0; got "
                               f"clip={self.clip}, weight_decay={self.weight_decay}, "
                               f"eps={self.eps}.")

    def to_json(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class RunResult:
    """The outcome of one run; ``heldout`` is NaN when the run diverged."""

    parametrization: str
    width: int
    lr: float
    seed: int
    steps: int
    batch_size: int
    heldout: float
    train: float  # mean training loss over the last tenth of the steps
    status: str  # "ok", "diverged" (NaN/inf loss) or "collapsed" (see ``train``)
    seconds: float
    hyper: dict[str, float]
    curve: list[float]  # mean training loss in each tenth of the run (what happened when)

    @property
    def diverged(self) -> bool:
        """The run did not finish training (its loss counts as infinitely bad)."""
        return self.status != "ok"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunResult:
        """Inverse of ``to_json``; null (a NaN written as strict JSON) reads back as NaN."""
        return cls(**{**data, "heldout": _nan(data["heldout"]), "train": _nan(data["train"]),
                      "curve": [_nan(v) for v in data["curve"]]})


def _nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def build(task: Task, width: int, parametrization: str, plan: Any, seed: int
          ) -> torch.nn.Module:
    """The model at ``width`` in its own init (SP) or with the plan applied (μP)."""
    torch.manual_seed(seed)
    model = task.build(width)
    if parametrization == "mup":
        plan.apply(model, width=width)
    return model


def optimizer(model: torch.nn.Module, parametrization: str, hyper: Hyper, plan: Any,
              width: int) -> torch.optim.AdamW:
    """AdamW: one global LR (SP), or the plan's per-tensor groups (μP)."""
    betas = (hyper.beta1, hyper.beta2)
    fused = {"fused": True} if _FUSED else {}  # one kernel per step: 3× faster than foreach
    if parametrization == "sp":
        params = [p for p in model.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=hyper.lr, betas=betas, eps=hyper.eps,
                                 weight_decay=hyper.weight_decay, **fused)
    if parametrization == "mup":
        groups = plan.param_groups(model, lr=hyper.lr, weight_decay=hyper.weight_decay,
                                   eps=hyper.eps, width=width)
        return torch.optim.AdamW(groups, lr=hyper.lr, betas=betas, eps=hyper.eps, **fused)
    raise TpcheckError(f"parametrization {parametrization!r} is not one of "
                       f"{PARAMETRIZATIONS}.")


def _fused_on_cpu() -> bool:
    """Whether this torch has the fused AdamW kernel for CPU tensors (torch ≥ 2.4)."""
    try:
        torch.optim.AdamW([torch.zeros(1, requires_grad=True)], fused=True)
    except (RuntimeError, TypeError, ValueError):
        return False
    return True


_FUSED = _fused_on_cpu()


def schedule(step: int, steps: int, warmup: float) -> float:
    """LR factor at ``step``: linear warm-up, then cosine decay to zero at ``steps``."""
    ramp = round(warmup * steps)
    if step < ramp:
        return (step + 1) / ramp
    progress = (step - ramp) / max(1, steps - ramp)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def train(task: Task, width: int, parametrization: str, hyper: Hyper, seed: int, steps: int,
          batch_size: int, plan: Any = None, give_up: float | None = None) -> RunResult:
    """Train one model for ``steps`` steps and measure its held-out loss.

    A non-finite training loss stops the run ("diverged", held-out NaN) instead of wasting
    the remaining steps. ``give_up`` (the task's ``give_up_loss``, if it has one) stops a run
    whose mean training loss over a tenth of the steps is still at least that high once a
    quarter of the steps, and at least ``GIVE_UP_AFTER``, are done ("collapsed"): at too
    large a learning rate a model often settles on an input-independent prediction and never
    leaves it, and finishing such runs would cost a third of a sweep's time for points far
    above the optimum. The seed fixes the
    init and the stream of batches, so SP and μP with the same seed see the same data in the
    same order.
    """
    if parametrization == "mup" and plan is None:
        raise TpcheckError("a μP run needs the plan (tpcheck.convert(task.spec(widths))).")
    start = time.perf_counter()
    model = build(task, width, parametrization, plan, seed)
    model.train()
    opt = optimizer(model, parametrization, hyper, plan, width)
    base_lrs = [g["lr"] for g in opt.param_groups]
    params = [p for g in opt.param_groups for p in g["params"]]
    gen = torch.Generator().manual_seed(10_000 + seed)
    status = "ok"
    sums = [0.0] * 10
    counts = [0] * 10
    for step in range(steps):
        factor = schedule(step, steps, hyper.warmup)
        for group, lr in zip(opt.param_groups, base_lrs, strict=True):
            group["lr"] = lr * factor
        loss = task.loss(model, task.batch(gen, batch_size))
        if not torch.isfinite(loss):
            status = "diverged"
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if hyper.clip > 0:
            torch.nn.utils.clip_grad_norm_(params, hyper.clip)
        opt.step()
        tenth = step * 10 // steps
        sums[tenth] += float(loss.detach())
        counts[tenth] += 1
        tenth_done = step + 1 == steps or (step + 1) * 10 // steps != tenth
        if (give_up is not None and tenth_done and 4 * (step + 1) >= steps
                and step + 1 >= GIVE_UP_AFTER and sums[tenth] / counts[tenth] >= give_up):
            status = "collapsed"
            break
    curve = [s / c if c else math.nan for s, c in zip(sums, counts, strict=True)]
    heldout = task.evaluate(model) if status == "ok" else math.nan
    if not math.isfinite(heldout):
        status, heldout = ("diverged" if status == "ok" else status), math.nan
    return RunResult(parametrization=parametrization, width=width, lr=hyper.lr, seed=seed,
                     steps=steps, batch_size=batch_size, heldout=heldout,
                     train=curve[-1] if status == "ok" else math.nan, status=status,
                     seconds=time.perf_counter() - start, hyper=hyper.to_json(), curve=curve)
