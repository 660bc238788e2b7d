"""μTransfer proper: search the base hyperparameters on the proxy with Optuna.

The seed paper's recipe (Zheng et al., arXiv 2505.15270, the PixArt-α and MMDiT experiments,
following TP5's μTransfer, arXiv 2203.03466): convert the model to μP with the smallest width
as the base, search the base hyperparameters on that small proxy, then train the large model
once with them (``target.py``). Here the search covers the learning rate, the warm-up fraction
and Adam's β₂: all optimisation hyperparameters, which TP5 (Table 1) lists as μTransferable.
Gradient clipping is left out: a global-norm threshold is compared against a gradient norm
that itself depends on the width, so its meaning does not carry over.

Storage: Optuna keeps trials in a storage. ``storage=None`` is an in-memory study in this
process. A URL shares one search: ``sqlite:///study.db`` between the worker processes of
one machine (the CLI's default, inside its output folder), or a database server
(``postgresql://…``, ``mysql://…``) between machines, each running the same command with the
same ``study_name``; every worker stops when the study holds ``trials`` trials in total.
"""

from __future__ import annotations

import math
import multiprocessing
import pickle
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import torch

from tpcheck.errors import TpcheckError
from tpcheck.transfer.runner import progress_bar
from tpcheck.transfer.task import Task
from tpcheck.transfer.train import Hyper, train

#: the objective of a trial that diverged or collapsed (Optuna's TPE only ranks values)
PENALTY = 1e3


@dataclass(frozen=True)
class SearchSpace:
    """Ranges of the searched base hyperparameters (β₂ is sampled as log10(1 − β₂))."""

    log2_lr: tuple[float, float] = (-12.0, -3.0)
    warmup: tuple[float, float] = (0.0, 0.4)
    beta2: tuple[float, float] = (0.9, 0.999)

    def suggest(self, trial: Any, base: Hyper) -> Hyper:
        log2_lr = trial.suggest_float("log2_lr", *self.log2_lr)
        warmup = trial.suggest_float("warmup", *self.warmup)
        lo, hi = (math.log10(1.0 - b) for b in reversed(self.beta2))
        beta2 = 1.0 - 10.0 ** trial.suggest_float("log10_one_minus_beta2", lo, hi)
        return Hyper(lr=2.0 ** log2_lr, warmup=warmup, beta1=base.beta1, beta2=beta2,
                     weight_decay=base.weight_decay, eps=base.eps, clip=base.clip)


@dataclass
class SearchResult:
    """The finished study: every trial, and the best base hyperparameters."""

    study_name: str
    storage: str  # without credentials
    width: int
    steps: int
    seeds: int
    trials: list[dict[str, Any]]
    best: Hyper
    best_value: float
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "best": self.best.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SearchResult:
        return cls(**{**data, "best": Hyper(**data["best"])})


def require_optuna() -> Any:
    try:
        import optuna
    except ImportError as exc:
        raise TpcheckError("the hyperparameter search needs optuna, which is not installed.",
                           fix="pip install 'tpcheck[transfer]'") from exc
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def redact(url: str | None) -> str:
    """A storage URL fit to print or save: ``user:password@`` removed."""
    if not url:
        return "in-memory"
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        rest = rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}"


def _objective(task: Task, plan: Any, space: SearchSpace, base: Hyper, width: int, steps: int,
               batch_size: int, seeds: int) -> Any:
    def objective(trial: Any) -> float:
        hyper = space.suggest(trial, base)
        runs = [train(task, width, "mup", hyper, seed, steps, batch_size, plan,
                      give_up=getattr(task, "give_up_loss", None)) for seed in range(seeds)]
        trial.set_user_attr("status", ",".join(r.status for r in runs))
        if any(r.diverged for r in runs):
            return PENALTY
        return math.fsum(r.heldout for r in runs) / len(runs)

    return objective


def _study(optuna: Any, storage: str | None, study_name: str, seed: int) -> Any:
    sampler = optuna.samplers.TPESampler(seed=seed)
    try:
        return optuna.create_study(study_name=study_name, storage=storage, sampler=sampler,
                                   direction="minimize", load_if_exists=True)
    except Exception as exc:  # a wrong URL, a missing driver, a locked file
        raise TpcheckError(f"cannot open the Optuna study {study_name!r} at "
                           f"{redact(storage)}: {type(exc).__name__}: {exc}",
                           fix="check --storage (e.g. sqlite:///study.db or "
                               "postgresql://user@host/db) and that its driver is installed"
                           ) from exc


def _search_worker(task_bytes: bytes, plan_json: dict, space: SearchSpace, base: Hyper,
                   width: int, steps: int, batch_size: int, seeds: int, trials: int,
                   storage: str, study_name: str, seed: int, threads: int) -> None:
    torch.set_num_threads(threads)
    optuna = require_optuna()
    from tpcheck import Plan

    task, plan = pickle.loads(task_bytes), Plan.from_json(plan_json)
    study = _study(optuna, storage, study_name, seed)
    _optimize(optuna, study, _objective(task, plan, space, base, width, steps, batch_size,
                                        seeds), trials)


def _optimize(optuna: Any, study: Any, objective: Any, trials: int, bar: Any = None) -> None:
    """Run trials until the study holds ``trials`` of them (counting every worker's)."""
    from optuna.study import MaxTrialsCallback

    callbacks = [MaxTrialsCallback(trials, states=None)]
    if bar is not None:
        callbacks.append(lambda study, trial: bar.update(1))
    if len(study.trials) < trials:
        study.optimize(objective, n_trials=trials, callbacks=callbacks)


def search(task: Task, plan: Any, *, width: int, steps: int, batch_size: int, trials: int,
           seeds: int = 1, space: SearchSpace | None = None, base: Hyper | None = None,
           storage: str | None = None, study_name: str = "tpcheck-transfer",
           workers: int = 1, threads: int | None = None, seed: int = 0,
           progress: bool = True) -> SearchResult:
    """Search the base hyperparameters of the μP model at the proxy ``width``.

    Resumes a study that already exists under ``study_name`` in ``storage`` (trials it holds
    count towards ``trials``). With ``workers > 1`` the storage must be a URL, which the
    worker processes share.
    """
    optuna = require_optuna()
    space, base = space or SearchSpace(), base or Hyper()
    if trials < 1:
        raise TpcheckError(f"the search needs at least 1 trial; got {trials}.")
    if workers > 1 and storage is None:
        workers = 1  # an in-memory study lives in this process only
    start = time.perf_counter()
    study = _study(optuna, storage, study_name, seed)
    done = len(study.trials)
    bar = progress_bar(max(0, trials - done), "Optuna search", progress)
    try:
        if workers == 1:
            objective = _objective(task, plan, space, base, width, steps, batch_size, seeds)
            previous = torch.get_num_threads()
            torch.set_num_threads(threads or 1)
            try:
                _optimize(optuna, study, objective, trials, bar)
            finally:
                torch.set_num_threads(previous)
        else:
            _parallel(task, plan, space, base, width, steps, batch_size, seeds, trials, storage,
                      study_name, workers, threads or 1, seed, study, bar, done)
    finally:
        bar.close()
    return _result(study, space, base, storage, width, steps, seeds,
                   time.perf_counter() - start)


def load_search(storage: str, study_name: str, *, width: int, steps: int, seeds: int = 1,
                space: SearchSpace | None = None, base: Hyper | None = None) -> SearchResult:
    """The best hyperparameters of a study in ``storage``, without running a trial.

    For the machine that trains the target after other machines have searched.
    """
    optuna = require_optuna()
    study = _study(optuna, storage, study_name, 0)
    return _result(study, space or SearchSpace(), base or Hyper(), storage, width, steps, seeds,
                   0.0)


def _result(study: Any, space: SearchSpace, base: Hyper, storage: str | None, width: int,
            steps: int, seeds: int, seconds: float) -> SearchResult:
    complete = [t for t in study.trials if t.value is not None]
    if not complete:
        raise TpcheckError(f"the Optuna study {study.study_name!r} at {redact(storage)} has "
                           "no finished trial.", fix="run the search stage first")
    best = min(complete, key=lambda t: t.value)
    return SearchResult(study.study_name, redact(storage), width, steps, seeds,
                        [_trial_json(t) for t in study.trials],
                        space.suggest(_FixedTrial(best.params), base), float(best.value),
                        seconds)


def _parallel(task: Task, plan: Any, space: SearchSpace, base: Hyper, width: int, steps: int,
              batch_size: int, seeds: int, trials: int, storage: str, study_name: str,
              workers: int, threads: int, seed: int, study: Any, bar: Any, done: int) -> None:
    """Worker processes share the study through its storage; the bar polls the storage."""
    context = multiprocessing.get_context("spawn")
    args = (pickle.dumps(task), plan.to_json(), space, base, width, steps, batch_size, seeds,
            trials, storage, study_name)
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = [pool.submit(_search_worker, *args, seed + i, threads)
                   for i in range(workers)]
        shown = done
        while not all(f.done() for f in futures):
            time.sleep(1.0)
            count = len(study.get_trials(deepcopy=False))
            finished = count - sum(t.state.name == "RUNNING"
                                   for t in study.get_trials(deepcopy=False))
            if finished > shown:
                bar.update(finished - shown)
                shown = finished
        for f in futures:
            f.result()  # re-raise a worker's error here


class _FixedTrial:
    """Replays a finished trial's params through ``SearchSpace.suggest``."""

    def __init__(self, params: dict[str, float]) -> None:
        self.params = params

    def suggest_float(self, name: str, low: float, high: float) -> float:
        del low, high
        return float(self.params[name])


def _trial_json(trial: Any) -> dict[str, Any]:
    return {"number": trial.number, "state": trial.state.name, "value": trial.value,
            "params": dict(trial.params), "status": trial.user_attrs.get("status")}
