"""``tpcheck transfer``: the μTransfer study (docs/mutransfer.md). The options live here, with
the rest of the command line, range-checked; ``tpcheck.transfer.cli.run`` runs the study
(imported only when the command runs: torch and the study load then, not for ``--help``)."""

from __future__ import annotations

import argparse
from typing import Any

from tpcheck.cli.common import fraction, parse_widths, positive_float, positive_int

DEFAULTS = {"widths": "32,64,128,256", "lr_grid": "-9:-4.5", "seeds": 3, "steps": 400,
            "batch_size": 16, "trials": 24, "warmup": 0.2}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``tpcheck transfer`` options (defaults: the study in docs/mutransfer.md)."""
    parser.add_argument("--task", default="digits", metavar="TASK",
                        help="'digits' (built-in: DiT + flow matching on scikit-learn's 8x8 "
                             "digits) or package.module:attr, a tpcheck.transfer Task or a "
                             "zero-argument callable returning one")
    parser.add_argument("--widths", type=parse_widths, default=parse_widths(DEFAULTS["widths"]),
                        help=f"comma-separated widths; the smallest is the proxy and the μP "
                             f"base width (default {DEFAULTS['widths']})")
    parser.add_argument("--lr-grid", default=DEFAULTS["lr_grid"], metavar="LOW:HIGH[:STEP]",
                        help="log2 learning rates, half-octave steps unless STEP is given; "
                             "write it with '=' (--lr-grid=-10:-4), as it starts with '-' "
                             f"(default {DEFAULTS['lr_grid']}: 2^-9 … 2^-4.5)")
    parser.add_argument("--seeds", type=positive_int, default=DEFAULTS["seeds"],
                        help=f"seeds per (width, LR) and for the transfer (default "
                             f"{DEFAULTS['seeds']})")
    parser.add_argument("--steps", type=positive_int, default=DEFAULTS["steps"],
                        help=f"optimizer steps of every run (default {DEFAULTS['steps']})")
    parser.add_argument("--batch-size", type=positive_int, default=DEFAULTS["batch_size"],
                        help=f"training batch size (default {DEFAULTS['batch_size']})")
    parser.add_argument("--warmup", type=fraction, default=DEFAULTS["warmup"],
                        help=f"warm-up fraction of the sweep's runs (default "
                             f"{DEFAULTS['warmup']})")
    parser.add_argument("--trials", type=positive_int, default=DEFAULTS["trials"],
                        help=f"Optuna trials on the proxy, all workers and machines together "
                             f"(default {DEFAULTS['trials']})")
    parser.add_argument("--search-seeds", type=positive_int, default=1,
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
    parser.add_argument("--depth", type=positive_int, default=2, help="digits task: DiT blocks (2)")
    parser.add_argument("--head-dim", type=positive_int, default=16,
                        help="digits task: fixed head dim, so width grows by heads (16)")
    parser.add_argument("--image-size", type=positive_int, default=8,
                        help="digits task: 8 (as shipped) or an upsampled multiple of 8")
    parser.add_argument("--workers", type=positive_int, default=None,
                        help="processes (default: one per core)")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch threads per worker (default: cores / workers)")
    parser.add_argument("--max-shift", type=positive_float, default=0.5,
                        help="exit 1 if μP's optimum moves more octaves than this (0.5)")
    parser.add_argument("-o", "--output", default="mutransfer", metavar="DIR",
                        help="folder for the JSON results, report and plots (mutransfer)")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG figures")
    parser.add_argument("-q", "--quiet", "--no-progress", dest="no_progress", action="store_true",
                        help="no progress bars (on stderr)")
    parser.add_argument("--format", choices=("text", "json", "markdown"), default="text",
                        help="what to print when done (the files are written either way)")



def register(sub: Any) -> None:
    p = sub.add_parser("transfer", help="μTransfer study: does the best learning rate of a "
                                        "small proxy stay put across width?",
                       description="Sweep learning rates at several widths under standard "
                                   "parametrization and μP, search the proxy's optimum with "
                                   "Optuna, and transfer it to the widest model "
                                   "(docs/mutransfer.md). Needs tpcheck[transfer]. Exit 0: "
                                   "μP's optimum moved at most --max-shift octaves; 1: more, "
                                   "or an optimum at the edge of the LR grid; 2: bad input.")
    add_arguments(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tpcheck.transfer.cli import run as run_study

    return run_study(args)
