"""``tpcheck transfer``: the μTransfer study from the command line.

``add_arguments`` fills the subcommand's parser and ``run`` executes it; the main CLI wires
them in (and ``python -m tpcheck.transfer`` runs them on their own). Exit codes: 0 the study
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

DEFAULTS = {"widths": "32,64,128,256", "lr_grid": "-9:-4.5", "seeds": 3, "steps": 400,
            "batch_size": 16, "trials": 24, "warmup": 0.2}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``tpcheck transfer`` options (defaults: the study in docs/mutransfer.md)."""
    parser.add_argument("--task", default="digits", metavar="TASK",
                        help="'digits' (built-in: DiT + flow matching on scikit-learn's 8x8 "
                             "digits) or package.module:attr, a tpcheck.transfer Task or a "
                             "zero-argument callable returning one")
    parser.add_argument("--widths", default=DEFAULTS["widths"],
                        help=f"comma-separated widths; the smallest is the proxy and the μP "
                             f"base width (default {DEFAULTS['widths']})")
    parser.add_argument("--lr-grid", default=DEFAULTS["lr_grid"], metavar="LOW:HIGH[:STEP]",
                        help="log2 learning rates, half-octave steps unless STEP is given; "
                             "write it with '=' (--lr-grid=-10:-4), as it starts with '-' "
                             f"(default {DEFAULTS['lr_grid']}: 2^-9 … 2^-4.5)")
    parser.add_argument("--seeds", type=int, default=DEFAULTS["seeds"],
                        help=f"seeds per (width, LR) and for the transfer (default "
                             f"{DEFAULTS['seeds']})")
    parser.add_argument("--steps", type=int, default=DEFAULTS["steps"],
                        help=f"optimizer steps of every run (default {DEFAULTS['steps']})")
    parser.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"],
                        help=f"training batch size (default {DEFAULTS['batch_size']})")
    parser.add_argument("--warmup", type=float, default=DEFAULTS["warmup"],
                        help=f"warm-up fraction of the sweep's runs (default "
                             f"{DEFAULTS['warmup']})")
    parser.add_argument("--trials", type=int, default=DEFAULTS["trials"],
                        help=f"Optuna trials on the proxy, all workers and machines together "
                             f"(default {DEFAULTS['trials']})")
    parser.add_argument("--search-seeds", type=int, default=1,
                        help="seeds averaged per Optuna trial (default 1)")
    parser.add_argument("--storage", default=None, metavar="URL",
                        help="Optuna storage shared by every worker: sqlite:///file.db, or "
                             "postgresql://… / mysql://… for many machines (default: "
                             "sqlite in the output folder; 'memory' for in-memory)")
    parser.add_argument("--study-name", default="tpcheck-transfer",
                        help="Optuna study name; machines sharing --storage use the same one")
    parser.add_argument("--search-seed", type=int, default=0,
                        help="TPE sampler seed (worker i uses seed + i; give each machine "
                             "its own)")
    parser.add_argument("--stages", default="sweep,search,transfer",
                        help="comma-separated subset of sweep,search,transfer (default: all "
                             "three); 'report' trains nothing and redraws the report and plots "
                             "from the JSON in -o DIR")
    parser.add_argument("--zero-readout", action="store_true",
                        help="convert with zero-initialised output weights (DiT's readout is "
                             "zero already)")
    parser.add_argument("--depth", type=int, default=2, help="digits task: DiT blocks (2)")
    parser.add_argument("--head-dim", type=int, default=16,
                        help="digits task: fixed head dim, so width grows by heads (16)")
    parser.add_argument("--image-size", type=int, default=8,
                        help="digits task: 8 (as shipped) or an upsampled multiple of 8")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes (default: one per core)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per worker (default: cores / workers)")
    parser.add_argument("--max-shift", type=float, default=0.5,
                        help="exit 1 if μP's optimum moves more octaves than this (0.5)")
    parser.add_argument("-o", "--output", default="mutransfer", metavar="DIR",
                        help="folder for the JSON results, report and plots (mutransfer)")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG figures")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--format", choices=("text", "json", "markdown"), default="text",
                        help="what to print when done (the files are written either way)")


def run(args: argparse.Namespace) -> int:
    """Run the study ``args`` describe; see the module docstring for the exit codes."""
    from tpcheck.transfer.grid import parse_grid
    from tpcheck.transfer.runner import default_workers
    from tpcheck.transfer.study import StudyConfig, run_study
    from tpcheck.transfer.sweep import SweepConfig
    from tpcheck.transfer.train import Hyper

    task = load_task(args.task, depth=args.depth, head_dim=args.head_dim,
                     image_size=args.image_size)
    sweep = SweepConfig(widths=_widths(args.widths), lrs=parse_grid(args.lr_grid),
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


def _widths(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(w) for w in text.replace(" ", "").split(",") if w)
    except ValueError:
        raise TpcheckError(f"--widths {text!r} is not a comma-separated list of integers.",
                           fix="e.g. --widths 32,64,128,256") from None


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
