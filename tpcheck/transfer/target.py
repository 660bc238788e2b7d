"""The target run of μTransfer: the largest width trained once with the proxy's search result.

Beside it, at the same width and for the same steps and seeds: SP with DiT's default recipe,
SP with the proxy's hyperparameters (what one would do without μP), and the proxy itself, so
the report shows what the transfer bought and what it would have cost to get there in SP.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from tpcheck.transfer.grid import mean_sd
from tpcheck.transfer.runner import Job, run_jobs
from tpcheck.transfer.task import Task
from tpcheck.transfer.train import Hyper

#: DiT's published recipe (Peebles & Xie, arXiv 2212.09748): AdamW, LR 1e-4, no warm-up,
#: no weight decay, β = (0.9, 0.999). The study's schedule (cosine decay) applies to it too.
SP_DEFAULT = Hyper(lr=1e-4, warmup=0.0, beta2=0.999)



@dataclass(frozen=True)
class TransferRow:
    """One configuration trained at one width over several seeds."""

    label: str
    parametrization: str
    width: int
    hyper: Hyper
    heldout: tuple[float, ...]  # per seed (NaN: diverged)

    @property
    def mean(self) -> float:
        return mean_sd(self.heldout)[0]

    @property
    def sd(self) -> float:
        return mean_sd(self.heldout)[1]

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "hyper": self.hyper.to_json(), "mean": self.mean,
                "sd": self.sd}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TransferRow:
        return cls(data["label"], data["parametrization"], data["width"],
                   Hyper(**data["hyper"]),
                   tuple(math.nan if v is None else v for v in data["heldout"]))


@dataclass
class Transfer:
    """Same steps, same seeds: the target trained several ways, plus the proxy for scale."""

    steps: int
    seeds: int
    rows: list[TransferRow] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"steps": self.steps, "seeds": self.seeds, "seconds": self.seconds,
                "rows": [r.to_json() for r in self.rows]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Transfer:
        return cls(data["steps"], data["seeds"],
                   [TransferRow.from_json(r) for r in data["rows"]], data.get("seconds", 0.0))


def transfer(task: Task, plan: Any, best: Hyper, *, proxy: int, target: int, steps: int,
             batch_size: int, seeds: int, sp_default: Hyper = SP_DEFAULT, workers: int = 1,
             threads: int | None = None, progress: bool = True,
             extra: Sequence[tuple[str, str, int, Hyper]] = ()) -> Transfer:
    """Train ``target`` with the proxy's best hyperparameters in μP, and the baselines.

    Rows: μP at the target with the searched hyperparameters (the μTransfer); SP at the target
    with DiT's default recipe; SP at the target with the proxy's hyperparameters (what one
    would do without μP); the proxy itself with them (the loss the search saw). ``extra``
    adds rows as ``(label, parametrization, width, hyper)``.
    """
    configs = [(f"μP n={target}, searched on n={proxy}", "mup", target, best),
               (f"SP n={target}, DiT default (lr 1e-4)", "sp", target, sp_default),
               (f"SP n={target}, proxy's hyperparameters", "sp", target, best),
               (f"proxy n={proxy}, searched", "mup", proxy, best), *extra]
    jobs = [Job(width, param, hyper, s, steps, batch_size)
            for _, param, width, hyper in configs for s in range(seeds)]
    start = time.perf_counter()
    results = run_jobs(task, jobs, plan=plan, workers=workers, threads=threads,
                       progress=progress, desc="transfer")
    rows = []
    for k, (label, param, width, hyper) in enumerate(configs):
        mine = results[k * seeds:(k + 1) * seeds]
        rows.append(TransferRow(label, param, width, hyper, tuple(r.heldout for r in mine)))
    return Transfer(steps, seeds, rows, time.perf_counter() - start)
