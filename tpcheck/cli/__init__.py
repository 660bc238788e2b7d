"""The ``tpcheck`` command line: ``lint``, ``convert``, ``coord``, ``transfer``, ``explain``,
``targets``; one module per command.

Exit codes (the CI contract): 0 no errors (warnings allowed), 1 errors found (findings, a
diverged coord run, a coord agreement under ``--fail-under``), 2 the input could not be
used — always with a message saying what, where and how to fix it, never a traceback. A bug
in tpcheck itself is exit 2 too, with how to report it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from tpcheck import __version__
from tpcheck.cli import convert, coord, explain, lint, transfer
from tpcheck.cli.common import EXIT_CLEAN, EXIT_FINDINGS, EXIT_TOOL_ERROR
from tpcheck.errors import InternalError, TpcheckError

__all__ = ["EXIT_CLEAN", "EXIT_FINDINGS", "EXIT_TOOL_ERROR", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a value an argument's type rejected (2)
        return exc.code if isinstance(exc.code, int) else EXIT_TOOL_ERROR
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_TOOL_ERROR
    try:
        return args.run(args)
    except TpcheckError as exc:
        print(f"tpcheck: error: {exc.render()}", file=sys.stderr)
        return EXIT_TOOL_ERROR
    except KeyboardInterrupt:
        print("\ntpcheck: interrupted (Ctrl-C): nothing was written, no verdict",
              file=sys.stderr)
        return EXIT_TOOL_ERROR
    except BrokenPipeError:  # `tpcheck explain --all | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_CLEAN
    except Exception as exc:  # a bug in tpcheck: one message and exit 2, never a traceback
        if os.environ.get("TPCHECK_DEBUG"):
            raise
        error = InternalError.during(args.command, exc)
        print(f"tpcheck: error: {error.render()}", file=sys.stderr)
        return EXIT_TOOL_ERROR


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tpcheck", description="μP parametrization checker for "
                                "diffusion transformers.")
    p.add_argument("--version", action="version", version=f"tpcheck {__version__}")
    sub = p.add_subparsers(dest="command")
    for module in (lint, convert, coord, transfer, explain):
        module.register(sub)
    return p


if __name__ == "__main__":
    sys.exit(main())
