"""``tpcheck transfer``: the μTransfer study (tpcheck.transfer.cli owns its options and run)."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    from tpcheck.transfer.cli import add_arguments, run

    p = sub.add_parser("transfer", help="μTransfer study: does the best learning rate of a "
                                        "small proxy stay put across width?",
                       description="Sweep learning rates at several widths under standard "
                                   "parametrization and μP, search the proxy's optimum with "
                                   "Optuna, and transfer it to the widest model "
                                   "(docs/mutransfer.md). Needs tpcheck[transfer].")
    add_arguments(p)
    p.set_defaults(run=run)
