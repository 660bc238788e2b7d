"""``python -m tpcheck.transfer``: the ``tpcheck transfer`` command on its own."""

from __future__ import annotations

import argparse
import sys

from tpcheck.errors import TpcheckError
from tpcheck.transfer.cli import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tpcheck.transfer",
                                     description="μTransfer study: LR sweep over widths in SP "
                                                 "and μP, Optuna search on the proxy, transfer")
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except TpcheckError as exc:
        print(f"tpcheck: error: {exc.render()}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
