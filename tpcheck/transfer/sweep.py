"""The learning-rate sweep: every (parametrization, width, LR, seed), and the optimum per width.

This is the experiment of TP5's Figure 1 (Yang et al., arXiv 2203.03466): train the same
model family at several widths over one grid of base learning rates, in SP (one global Adam
LR) and in μP, and look at where each width's loss is lowest. μP's promise is that the
optimum stays put as the width grows; in SP it drifts, so the LR tuned on a small model is
wrong for the big one.

Per width, the optimum is estimated on every seed's curve separately (``grid.optimum``) and
reported as mean ± standard deviation over seeds; the shift is the difference of the mean
optima of the widest and the narrowest width, in octaves, with the standard error of that
difference. The optimum of the seed-averaged curve is kept too (it is what the plot shows).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from tpcheck.errors import TpcheckError
from tpcheck.transfer.grid import Optimum, mean_sd, optimum
from tpcheck.transfer.runner import Job, run_jobs
from tpcheck.transfer.task import Task
from tpcheck.transfer.train import PARAMETRIZATIONS, Hyper, RunResult


@dataclass(frozen=True)
class SweepConfig:
    """What to sweep; ``hyper`` holds every base hyperparameter except the swept LR."""

    widths: tuple[int, ...]
    lrs: tuple[float, ...]
    seeds: int = 3
    steps: int = 300
    batch_size: int = 16
    parametrizations: tuple[str, ...] = PARAMETRIZATIONS
    hyper: Hyper = field(default_factory=Hyper)

    def __post_init__(self) -> None:
        widths = tuple(sorted({int(w) for w in self.widths}))
        object.__setattr__(self, "widths", widths)
        object.__setattr__(self, "lrs", tuple(sorted(float(x) for x in self.lrs)))
        if len(widths) < 2 or widths[0] <= 0:
            raise TpcheckError(f"a transfer study needs at least 2 positive widths; got "
                               f"{list(self.widths)}.", fix="e.g. --widths 32,64,128,256")
        if len(self.lrs) < 3 or len(set(self.lrs)) != len(self.lrs):
            raise TpcheckError("the LR grid needs at least 3 distinct learning rates to place "
                               "an optimum inside it.", fix="e.g. --lr-grid -10:-4")
        if self.seeds < 1 or self.steps < 1 or self.batch_size < 1:
            raise TpcheckError(f"seeds, steps and batch size must be at least 1; got "
                               f"seeds={self.seeds}, steps={self.steps}, "
                               f"batch size={self.batch_size}.")
        unknown = set(self.parametrizations) - set(PARAMETRIZATIONS)
        if unknown or not self.parametrizations:
            raise TpcheckError(f"parametrizations must be among {PARAMETRIZATIONS}; got "
                               f"{list(self.parametrizations)}.")

    @property
    def base_width(self) -> int:
        """The μP plan's base width: the smallest, where μP equals the model as written."""
        return self.widths[0]

    def jobs(self) -> list[Job]:
        return [Job(w, p, replace(self.hyper, lr=lr), s, self.steps, self.batch_size)
                for p in self.parametrizations for w in self.widths for lr in self.lrs
                for s in range(self.seeds)]

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "hyper": self.hyper.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SweepConfig:
        return cls(**{**data, "widths": tuple(data["widths"]), "lrs": tuple(data["lrs"]),
                      "parametrizations": tuple(data["parametrizations"]),
                      "hyper": Hyper(**data["hyper"])})


@dataclass(frozen=True)
class WidthOptimum:
    """The optimal LR of one (parametrization, width): per seed, their spread, the mean curve's."""

    width: int
    per_seed: tuple[Optimum | None, ...]
    of_mean: Optimum | None

    @property
    def log2_lr(self) -> float:
        """Mean over seeds of the per-seed optima (log2 LR); NaN if every seed diverged."""
        return mean_sd([o.log2_lr for o in self.per_seed if o is not None])[0]

    @property
    def spread(self) -> float:
        """Standard deviation over seeds of the per-seed optima, in octaves."""
        return mean_sd([o.log2_lr for o in self.per_seed if o is not None])[1]

    @property
    def at_edge(self) -> bool:
        """Some seed's minimum is at an end of the grid: the optimum may lie outside it."""
        return any(o is None or o.at_edge for o in self.per_seed)

    @property
    def seeds(self) -> int:
        return sum(o is not None for o in self.per_seed)


@dataclass
class Sweep:
    """Every run of a sweep, indexed by (parametrization, width, lr, seed)."""

    config: SweepConfig
    results: list[RunResult]
    seconds: float = 0.0
    reused: int = 0  # runs taken from the journal instead of run again

    def __post_init__(self) -> None:
        self._index = {(r.parametrization, r.width, r.lr, r.seed): r for r in self.results}

    def result(self, parametrization: str, width: int, lr: float, seed: int) -> RunResult:
        return self._index[parametrization, width, lr, seed]

    def curve(self, parametrization: str, width: int, seed: int) -> list[float]:
        """Held-out loss over the LR grid for one seed (NaN where the run did not finish)."""
        return [self.result(parametrization, width, lr, seed).heldout for lr in self.config.lrs]

    def mean_curve(self, parametrization: str, width: int) -> list[float]:
        """Seed-averaged held-out loss over the grid; NaN where any seed failed."""
        out = []
        for lr in self.config.lrs:
            values = [self.result(parametrization, width, lr, s).heldout
                      for s in range(self.config.seeds)]
            out.append(math.fsum(values) / len(values) if all(map(math.isfinite, values))
                       else math.nan)
        return out

    def best_grid_lr(self, parametrization: str, width: int) -> float | None:
        """The grid LR with the lowest seed-mean held-out loss (None: every LR failed): what a
        sweep at that width buys."""
        curve = self.mean_curve(parametrization, width)
        finite = [i for i, y in enumerate(curve) if math.isfinite(y)]
        return self.config.lrs[min(finite, key=curve.__getitem__)] if finite else None

    def sp_oracle(self) -> tuple[int, float] | None:
        """``(width, lr)``: SP at the widest width at its own best grid LR, what tuning at full
        width buys (None without an SP sweep or a finished SP run there)."""
        if "sp" not in self.config.parametrizations:
            return None
        width = self.config.widths[-1]
        lr = self.best_grid_lr("sp", width)
        return None if lr is None else (width, lr)

    def optimum(self, parametrization: str, width: int) -> WidthOptimum:
        lrs = self.config.lrs
        return WidthOptimum(width, tuple(optimum(lrs, self.curve(parametrization, width, s))
                                         for s in range(self.config.seeds)),
                            optimum(lrs, self.mean_curve(parametrization, width)))

    def optima(self, parametrization: str) -> list[WidthOptimum]:
        return [self.optimum(parametrization, w) for w in self.config.widths]

    def shift(self, parametrization: str) -> tuple[float, float]:
        """(octaves, standard error): widest width's optimum minus the narrowest's."""
        first, last = self.optimum(parametrization, self.config.widths[0]), \
            self.optimum(parametrization, self.config.widths[-1])
        err = math.sqrt(first.spread ** 2 / max(1, first.seeds)
                        + last.spread ** 2 / max(1, last.seeds))
        return last.log2_lr - first.log2_lr, err

    def drift(self, parametrization: str) -> float:
        """Largest minus smallest mean optimum over all widths, in octaves."""
        values = [o.log2_lr for o in self.optima(parametrization) if math.isfinite(o.log2_lr)]
        return max(values) - min(values) if values else math.nan

    def slope(self, parametrization: str) -> float:
        """Least-squares slope of the mean optimum against log2 width: octaves per doubling."""
        points = [(math.log2(o.width), o.log2_lr) for o in self.optima(parametrization)
                  if math.isfinite(o.log2_lr)]
        if len(points) < 2:
            return math.nan
        mx = math.fsum(x for x, _ in points) / len(points)
        my = math.fsum(y for _, y in points) / len(points)
        sxx = math.fsum((x - mx) ** 2 for x, _ in points)
        return math.fsum((x - mx) * (y - my) for x, y in points) / sxx

    def heldout_at(self, parametrization: str, width: int, lr: float) -> tuple[float, ...]:
        """Per-seed held-out losses at the grid LR nearest ``lr`` (in octaves); NaN: failed."""
        nearest = min(self.config.lrs, key=lambda x: abs(math.log2(x) - math.log2(lr)))
        return tuple(self.result(parametrization, width, nearest, s).heldout
                     for s in range(self.config.seeds))

    def at_lr(self, parametrization: str, width: int, lr: float) -> tuple[float, float]:
        """Held-out loss (mean, sd over the seeds that finished) at the grid LR nearest ``lr``."""
        return mean_sd(self.heldout_at(parametrization, width, lr))

    def failed(self) -> dict[str, int]:
        """How many runs ended "diverged" or "collapsed"."""
        counts: dict[str, int] = {}
        for r in self.results:
            if r.diverged:
                counts[r.status] = counts.get(r.status, 0) + 1
        return counts

    def to_json(self) -> dict[str, Any]:
        return {"config": self.config.to_json(), "seconds": self.seconds,
                "reused": self.reused, "results": [r.to_json() for r in self.results]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Sweep:
        config = SweepConfig.from_json(data["config"])
        return cls(config, [RunResult.from_json({"batch_size": config.batch_size, **r})
                            for r in data["results"]], data.get("seconds", 0.0),
                   data.get("reused", 0))


def sweep(task: Task, config: SweepConfig, *, plan: Any = None, workers: int = 1,
          threads: int | None = None, progress: bool = True,
          journal: str | Path | None = None) -> Sweep:
    """Run every job of ``config``; μP runs need ``plan`` (made with base width = smallest).

    ``journal``: a JSON-lines file every finished run is appended to as it finishes. Runs it
    already holds for the same task and settings are not run again, so an interrupted sweep
    resumes where it stopped, and a sweep extended by a width or a few LRs runs only those.
    """
    if "mup" in config.parametrizations:
        if plan is None:
            raise TpcheckError("the μP half of the sweep needs a plan.",
                               fix="plan = tpcheck.convert(task.spec(widths), "
                                   "base_width=min(widths))")
        if plan.base_width != config.base_width:
            raise TpcheckError(
                f"the plan's base width is {plan.base_width}, the sweep's smallest width is "
                f"{config.base_width}.",
                fix="convert with base_width=min(widths): the proxy is where μP equals the "
                    "model as written, so its LR means the same as SP's there")
    start = time.perf_counter()
    jobs = config.jobs()
    done = _read_journal(journal, task) if journal is not None else {}
    todo = [j for j in jobs if j.key() not in done]
    append = _journal_writer(journal, task) if journal is not None else None
    fresh = run_jobs(task, todo, plan=plan, workers=workers, threads=threads,
                     progress=progress, desc="LR sweep", on_result=append)
    done.update((Job.key_of(r), r) for r in fresh)
    return Sweep(config, [done[j.key()] for j in jobs], time.perf_counter() - start,
                 len(jobs) - len(todo))


def _task_id(task: Task) -> str:
    """The task's repr: a dataclass's names its settings; a repr with an address never
    matches another process's, so such a task's journal is never reused (safe)."""
    return repr(task)


def _read_journal(path: str | Path, task: Task) -> dict[str, RunResult]:
    path = Path(path)
    if not path.is_file():
        return {}
    found: dict[str, RunResult] = {}
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            if entry["task"] == _task_id(task):
                result = RunResult.from_json(entry["run"])
                found[Job.key_of(result)] = result
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            if number == len(lines):
                continue  # the last line of an interrupted write
            raise TpcheckError(f"{path}:{number} is not a run of tpcheck transfer: {exc}",
                               fix="delete the journal to start the sweep afresh") from exc
    return found


def _journal_writer(path: str | Path, task: Task) -> Any:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    task_id = _task_id(task)

    def append(result: RunResult) -> None:
        line = json.dumps(strict_json({"task": task_id, "run": result.to_json()}))
        with path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    return append


def strict_json(value: Any) -> Any:
    """``value`` with NaN and ±inf replaced by null (JSON has no NaN; readers restore it)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def base_grid(lrs: Sequence[float]) -> tuple[float, float]:
    """(low, high) of a grid in log2 LR, the range the search explores."""
    return math.log2(min(lrs)), math.log2(max(lrs))
