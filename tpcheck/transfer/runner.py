"""Run many training jobs on the local cores, with a progress bar on stderr.

A study is hundreds of independent small runs. Small models on a CPU are bound by Python
overhead rather than by matrix multiplies, so one process per core with one torch thread each
beats one process using every core (measured on 2 cores: a width-256 step takes about the same
time with 1 thread as with 2, and width-32 steps are overhead). Workers are started with
``spawn``, never ``fork``: forking a process whose OpenMP pool is already running can hang.

Each worker receives a pickled copy of the task and the plan as JSON, once, in its initializer.
Jobs go out largest width first so the long runs do not end up alone at the end.
``workers=1`` runs everything in this process: no start-up cost, any task object.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import pickle
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

import torch

from tpcheck.errors import TpcheckError
from tpcheck.transfer.task import Task
from tpcheck.transfer.train import Hyper, RunResult, train


@dataclass(frozen=True)
class Job:
    """One run to do: what ``train`` needs besides the task and the plan."""

    width: int
    parametrization: str
    hyper: Hyper
    seed: int
    steps: int
    batch_size: int

    def key(self) -> str:
        """What identifies the run (a result with the same key can stand in for it)."""
        return json.dumps([self.width, self.parametrization, self.hyper.to_json(), self.seed,
                           self.steps, self.batch_size], sort_keys=True)

    @staticmethod
    def key_of(result: RunResult) -> str:
        return json.dumps([result.width, result.parametrization, result.hyper, result.seed,
                           result.steps, result.batch_size], sort_keys=True)

    def cost(self) -> float:
        """Relative cost for scheduling: steps × width² (the matmuls), plus overhead."""
        return self.steps * self.batch_size * (self.width ** 2 + 64 ** 2)


_WORKER: dict[str, Any] = {}


def _init(task_bytes: bytes, plan_json: dict | None, threads: int) -> None:
    torch.set_num_threads(threads)
    _WORKER["task"] = pickle.loads(task_bytes)
    _WORKER["plan"] = _plan(plan_json)


def _plan(plan_json: dict | None) -> Any:
    if plan_json is None:
        return None
    from tpcheck import Plan

    return Plan.from_json(plan_json)


def _run(job: Job) -> RunResult:
    task = _WORKER["task"]
    return train(task, job.width, job.parametrization, job.hyper, job.seed, job.steps,
                 job.batch_size, _WORKER["plan"], give_up=getattr(task, "give_up_loss", None))


def default_workers() -> int:
    """One worker per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def progress_bar(total: int, desc: str, enabled: bool) -> Any:
    """A tqdm bar on stderr (a no-op object when disabled or tqdm is missing)."""
    try:
        from tqdm import tqdm
    except ImportError:
        enabled = False
    if not enabled:
        return _NoBar()
    return tqdm(total=total, desc=desc, file=sys.stderr, unit="run", dynamic_ncols=True)


class _NoBar:
    def update(self, n: int = 1) -> None:
        del n

    def set_postfix_str(self, text: str) -> None:
        del text

    def close(self) -> None:
        pass


def run_jobs(task: Task, jobs: Sequence[Job], *, plan: Any = None, workers: int = 1,
             threads: int | None = None, progress: bool = True, desc: str = "runs",
             on_result: Callable[[RunResult], None] | None = None) -> list[RunResult]:
    """Every job's result, in the order of ``jobs``."""
    if workers < 1:
        raise TpcheckError(f"workers must be at least 1; got {workers}.")
    plan_json = plan.to_json() if plan is not None else None
    threads = threads or max(1, default_workers() // workers)
    order = sorted(range(len(jobs)), key=lambda i: -jobs[i].cost())
    results: list[RunResult | None] = [None] * len(jobs)
    bar = progress_bar(len(jobs), desc, progress)
    try:
        if workers == 1:
            previous = torch.get_num_threads()
            torch.set_num_threads(threads)
            try:
                local_plan = _plan(plan_json)  # the same JSON round trip as the workers
                for i in order:
                    j = jobs[i]
                    results[i] = train(task, j.width, j.parametrization, j.hyper, j.seed,
                                       j.steps, j.batch_size, local_plan,
                                       give_up=getattr(task, "give_up_loss", None))
                    _done(bar, results[i], on_result)
            finally:
                torch.set_num_threads(previous)
        else:
            try:
                task_bytes = pickle.dumps(task)
            except Exception as exc:
                raise TpcheckError(f"the task {type(task).__name__} cannot be sent to worker "
                                   f"processes: {exc}", fix="define the task as a module-level "
                                   "class with picklable attributes, or use workers=1") from exc
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=context, initializer=_init,
                                     initargs=(task_bytes, plan_json, threads)) as pool:
                futures = {pool.submit(_run, jobs[i]): i for i in order}
                try:
                    for future in as_completed(futures):
                        results[futures[future]] = future.result()
                        _done(bar, results[futures[future]], on_result)
                except BaseException:
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
    finally:
        bar.close()
    return [r for r in results if r is not None]


def _done(bar: Any, result: RunResult | None, on_result: Callable | None) -> None:
    bar.update(1)
    if result is not None:
        bar.set_postfix_str(f"{result.parametrization} n={result.width} "
                            f"lr=2^{math.log2(result.lr):.1f}")
        if on_result is not None:
            on_result(result)
