"""A whole μTransfer study: plan, LR sweep, Optuna search on the proxy, transfer, files.

Stages run in order and each writes its JSON into the output folder, so they can also run
separately: ``sweep`` (SP and μP over the LR grid at every width), ``search`` (Optuna on the
smallest width, which can be spread over machines through a shared storage) and ``transfer``
(the largest width trained with the searched hyperparameters, against SP). A stage that needs
an earlier one's result and did not run it reads it from the folder (or, for the search, from
the storage). ``report`` alone trains nothing: it rebuilds the report and the figures from
the folder's JSON.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tpcheck.errors import TpcheckError
from tpcheck.transfer.report import StudyResult
from tpcheck.transfer.search import SearchResult, SearchSpace, load_search, search
from tpcheck.transfer.sweep import Sweep, SweepConfig, base_grid, strict_json
from tpcheck.transfer.sweep import sweep as run_sweep
from tpcheck.transfer.target import SP_DEFAULT, Transfer, transfer
from tpcheck.transfer.task import Task

#: the training stages, in order, and "report" (nothing trains: the report and figures are
#: made again from the JSON in the output folder)
STAGES = ("sweep", "search", "transfer", "report")


@dataclass(frozen=True)
class StudyConfig:
    """The sweep, plus how much searching and how many seeds for the transfer."""

    sweep: SweepConfig
    trials: int = 24
    search_seeds: int = 1
    transfer_seeds: int = 3
    storage: str | None = None
    study_name: str = "tpcheck-transfer"
    search_seed: int = 0
    space: SearchSpace | None = None
    zero_readout: bool = False
    stages: tuple[str, ...] = STAGES[:3]

    def __post_init__(self) -> None:
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown or not self.stages:
            raise TpcheckError(f"unknown stage(s) {unknown}; stages are {', '.join(STAGES)}.",
                               fix="e.g. --stages sweep,search,transfer")

    def search_space(self) -> SearchSpace:
        """The given space, else the sweep's LR range with the default warm-up and β₂."""
        if self.space is not None:
            return self.space
        return SearchSpace(log2_lr=base_grid(self.sweep.lrs))


def make_plan(task: Task, widths: tuple[int, ...], zero_readout: bool = False) -> Any:
    """The μP plan of ``task`` with the smallest width as the base (traced at ≥ 3 widths)."""
    from tpcheck import convert

    base = min(widths)
    trace = tuple(sorted(set(widths))) if len(set(widths)) >= 3 else (base, 2 * base, 4 * base)
    return convert(task.spec(trace), base_width=base, zero_readout=zero_readout)


def run_study(task: Task, config: StudyConfig, *, out: str | Path | None = None,
              workers: int = 1, threads: int | None = None, progress: bool = True,
              plot: bool = True) -> StudyResult:
    """Run ``config.stages`` and write every result and figure into ``out`` (if given)."""
    start = time.perf_counter()
    folder = Path(out) if out is not None else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    sc = config.sweep
    trains = any(stage in config.stages for stage in STAGES[:3])
    plan = make_plan(task, sc.widths, config.zero_readout) if trains else None
    result = StudyResult(getattr(task, "name", type(task).__name__))
    common = {"workers": workers, "threads": threads, "progress": progress}

    if "sweep" in config.stages:
        journal = folder / "runs.jsonl" if folder is not None else None
        result.sweep = run_sweep(task, sc, plan=plan, journal=journal, **common)
        _save(folder, "sweep.json", result.sweep.to_json(), result)
    else:
        result.sweep = _load(folder, "sweep.json", Sweep.from_json)

    if "search" in config.stages:
        result.search = search(task, plan, width=sc.widths[0], steps=sc.steps,
                               batch_size=sc.batch_size, trials=config.trials,
                               seeds=config.search_seeds, space=config.search_space(),
                               base=sc.hyper, storage=config.storage,
                               study_name=config.study_name, seed=config.search_seed,
                               **common)
        _save(folder, "search.json", result.search.to_json(), result)
    else:
        result.search = _load(folder, "search.json", SearchResult.from_json)
        if result.search is None and "transfer" in config.stages:
            result.search = _from_storage(config)

    if "transfer" in config.stages:
        if result.search is None:
            raise TpcheckError("the transfer stage needs a finished search.",
                               fix="run the search stage first, or point --storage and "
                                   "--study-name at a study that has trials")
        result.transfer = transfer(task, plan, result.search.best, proxy=sc.widths[0],
                                   target=sc.widths[-1], steps=sc.steps,
                                   batch_size=sc.batch_size, seeds=config.transfer_seeds,
                                   sp_default=SP_DEFAULT, **common)
        _save(folder, "transfer.json", result.transfer.to_json(), result)
    else:
        result.transfer = _load(folder, "transfer.json", Transfer.from_json)

    result.seconds = (time.perf_counter() - start if trains else
                      sum(part.seconds for part in (result.sweep, result.search, result.transfer)
                          if part is not None))
    if folder is not None:
        if plot and result.sweep is not None:
            _figures(result, folder)
        (folder / "report.txt").write_text(result.to_text() + "\n", encoding="utf-8")
        result.files.append(str(folder / "report.txt"))
        _save(folder, "study.json", result.to_json(), result)
    return result


def _figures(result: StudyResult, folder: Path) -> None:
    from tpcheck.transfer.plot import plot_curves, plot_widths

    c = result.sweep.config
    title = (f"{result.task}: held-out loss after {c.steps} steps (batch {c.batch_size}), "
             f"mean and range over {c.seeds} seeds")
    result.files.append(str(plot_curves(result.sweep, folder / "lr-curves.png", title)))
    result.files.append(str(plot_widths(result.sweep, folder / "widths.png",
                                        result.transfer)))


def _save(folder: Path | None, name: str, data: dict, result: StudyResult) -> None:
    if folder is None:
        return
    path = folder / name
    path.write_text(json.dumps(strict_json(data), indent=1) + "\n", encoding="utf-8")
    if str(path) not in result.files:
        result.files.append(str(path))


def _load(folder: Path | None, name: str, parse: Any) -> Any:
    if folder is None or not (folder / name).is_file():
        return None
    try:
        return parse(json.loads((folder / name).read_text(encoding="utf-8")))
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise TpcheckError(f"{folder / name} is not a result of tpcheck transfer: {exc}",
                           fix="delete it, or run the stage that writes it again") from exc


def _from_storage(config: StudyConfig) -> SearchResult | None:
    """The finished study in ``config.storage`` (no new trials are run)."""
    if config.storage is None:
        return None
    sc = config.sweep
    return load_search(config.storage, config.study_name, width=sc.widths[0], steps=sc.steps,
                       seeds=config.search_seeds, space=config.search_space(), base=sc.hyper)
