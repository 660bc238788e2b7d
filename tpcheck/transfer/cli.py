"""``tpcheck transfer``: the μTransfer study from the command line.

``run`` executes the study the parsed options describe; the options themselves are defined
with the rest of the command line, in ``tpcheck/cli/transfer.py`` (so ``tpcheck --help``
imports no torch). Exit codes: 0 the study
ran and μP's optimum moved at most ``--max-shift`` octaves across the widths (or no sweep
ran); 1 it moved more, or some width's optimum sits at the edge of the LR grid, so the shift
is not measured; 2 bad input (a TpcheckError).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
from typing import Any

from tpcheck.errors import TpcheckError


def run(args: argparse.Namespace) -> int:
    """Run the study ``args`` describe; see the module docstring for the exit codes."""
    from tpcheck.transfer.grid import parse_grid
    from tpcheck.transfer.runner import default_workers
    from tpcheck.transfer.study import StudyConfig, run_study
    from tpcheck.transfer.sweep import SweepConfig
    from tpcheck.transfer.train import Hyper

    task = load_task(args.task, depth=args.depth, head_dim=args.head_dim,
                     image_size=args.image_size)
    sweep = SweepConfig(widths=tuple(args.widths), lrs=parse_grid(args.lr_grid),
                        seeds=args.seeds, steps=args.steps, batch_size=args.batch_size,
                        hyper=Hyper(warmup=args.warmup))
    storage = args.storage
    if storage is None:
        os.makedirs(args.output, exist_ok=True)
        storage = f"sqlite:///{os.path.abspath(os.path.join(args.output, 'optuna.db'))}"
    elif storage == "memory":
        storage = None
    config = StudyConfig(sweep=sweep, trials=args.trials, search_seeds=args.search_seeds,
                         transfer_seeds=args.seeds, storage=storage,
                         study_name=args.study_name, search_seed=args.search_seed,
                         zero_readout=args.zero_readout,
                         stages=tuple(s.strip() for s in args.stages.split(",") if s.strip()))
    workers = args.workers or default_workers()
    result = run_study(task, config, out=args.output, workers=workers, threads=args.threads,
                       progress=not args.no_progress, plot=not args.no_plot)
    if args.format == "json":
        from tpcheck.transfer.sweep import strict_json

        print(json.dumps(strict_json(result.to_json()["summary"]), indent=2))
    else:
        print(result.to_text(markdown=args.format == "markdown"))
        print("\nfiles: " + ", ".join(result.files))
    return _exit_code(result, args.max_shift)


def _exit_code(result: Any, max_shift: float) -> int:
    sweep = result.sweep
    if sweep is None or "mup" not in sweep.config.parametrizations:
        return 0
    optima = sweep.optima("mup")
    if any(o.at_edge for o in optima):
        print("tpcheck: a μP optimum is at the edge of the LR grid; widen --lr-grid",
              file=sys.stderr)
        return 1
    shift, _ = sweep.shift("mup")
    if not math.isfinite(shift) or abs(shift) > max_shift:
        print(f"tpcheck: μP's optimum moved {shift:+.2f} octaves (> {max_shift})",
              file=sys.stderr)
        return 1
    return 0




def load_task(name: str, **digits: Any) -> Any:
    """'digits' or ``package.module:attr`` (a Task, or a zero-argument callable making one).

    The current directory goes on ``sys.path`` first, so a ``mytask.py`` beside the command
    works; worker processes import the task's module by name, hence no ``path/file.py`` form.
    """
    from tpcheck.transfer.task import Task

    if name == "digits":
        from tpcheck.transfer.digits import DigitsTask

        return DigitsTask(**digits)
    module_name, _, attr = name.partition(":")
    if not module_name or not attr or "/" in module_name or module_name.endswith(".py"):
        raise TpcheckError(f"--task {name!r} is not 'digits' or package.module:attr.",
                           fix="e.g. --task mytasks:make_task (mytasks.py in the current "
                               "directory or an installed package)")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise TpcheckError(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}",
                           where=name) from exc
    obj = getattr(module, attr, None)
    if obj is None:
        raise TpcheckError(f"{module_name!r} has no attribute {attr!r}.", where=name)
    if isinstance(obj, type) or (not isinstance(obj, Task) and callable(obj)):
        try:
            obj = obj()
        except Exception as exc:
            raise TpcheckError(f"calling {attr}() raised {type(exc).__name__}: {exc}",
                               where=name) from exc
    if not isinstance(obj, Task):
        raise TpcheckError(f"{name} is a {type(obj).__name__}, not a tpcheck.transfer Task.",
                           where=name, fix="give it name, build, spec, batch, loss and "
                                           "evaluate (see tpcheck.transfer.task.Task)")
    return obj
