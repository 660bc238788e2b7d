"""``python -m tpcheck.transfer``: the same as ``tpcheck transfer``."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from tpcheck.cli import main as tpcheck_main

    return tpcheck_main(["transfer", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
