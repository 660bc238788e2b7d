"""What every subcommand shares: argument types that range-check their values, the target
options of model-class targets, output files checked before the work starts, progress."""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tpcheck.errors import TpcheckError

EXIT_CLEAN, EXIT_FINDINGS, EXIT_TOOL_ERROR = 0, 1, 2


# --- argument types (argparse turns their errors into exit 2 with the usage line) --------------


def _number(text: str, read: Callable[[str], float], ok: Callable[[float], bool],
            expected: str, bounds: str) -> Any:
    """``read(text)`` if it parses and is ``ok``, else argparse's error saying what was
    ``expected`` (unparsable) or the ``bounds`` it breaks."""
    try:
        value = read(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"{bounds}, got {text}")
    return value


def positive_int(text: str) -> int:
    return _number(text, int, lambda v: v > 0, "a positive integer",
                   "expected a positive integer")


def positive_float(text: str) -> float:
    return _number(text, float, lambda v: 0 < v < float("inf"), "a positive number",
                   "expected a positive, finite number")


def fraction(text: str) -> float:
    """A fraction in [0, 1): a share of a run (warm-up)."""
    return _number(text, float, lambda v: 0.0 <= v < 1.0, "a fraction such as 0.2",
                   "a fraction lies in [0, 1)")


def rate(text: str) -> float:
    """A fraction in [0, 1]; ``95%`` is read as 0.95."""
    def read(raw: str) -> float:
        return float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)

    return _number(text, read, lambda v: 0.0 <= v <= 1.0, "a rate such as 0.95 or 95%",
                   "a rate lies in [0, 1] (or 0%–100%)")


def parse_widths(text: str) -> tuple[int, ...]:
    """``--widths 64,128,256`` → (64, 128, 256): positive integers, at least three distinct."""
    try:
        widths = tuple(int(w) for w in text.replace(" ", "").split(",") if w)
    except ValueError:
        raise argparse.ArgumentTypeError(f"widths must be integers separated by commas, "
                                         f"got {text!r}") from None
    if any(w <= 0 for w in widths):
        raise argparse.ArgumentTypeError(f"widths must be positive, got {text!r}")
    return widths


def split(values: list[str] | None) -> list[str] | None:
    """Repeatable, comma-separated options (``--select TP1,TP2 --select TP5``) as one list."""
    if values is None:
        return None
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


# --- model-class targets ---------------------------------------------------------------------


def target_arguments(parser: argparse.ArgumentParser) -> None:
    """How a model class becomes a spec (``diffusers:SD3Transformer2DModel``, ``f.py:MyDiT``)."""
    group = parser.add_argument_group("model-class targets (diffusers:Class, module:Class)")
    group.add_argument("--config", default=None, metavar="CONFIG.json",
                       help="the class's config.json as save_pretrained writes it (default: "
                            "the class's own defaults, with less depth)")
    group.add_argument("--width-arg", default=None, metavar="NAME",
                       help="constructor argument that holds the width (default: guessed from "
                            "hidden_size, dim, d_model, width, embed_dim, inner_dim)")
    group.add_argument("--heads-arg", default=None, metavar="NAME",
                       help="constructor argument that holds the number of heads")
    group.add_argument("--head-dim", type=positive_int, default=None, metavar="N",
                       help="head dimension kept fixed as the width grows (default: the "
                            "config's)")
    group.add_argument("--inputs", default=None, metavar="MODULE:FN",
                       help="function width -> example forward inputs (module:fn or file.py:fn)")


def target_options(args: argparse.Namespace, widths: tuple[int, ...] | None = None) -> Any:
    from tpcheck.targets import TargetOptions

    return TargetOptions(config=args.config, width_arg=args.width_arg, heads_arg=args.heads_arg,
                         head_dim=args.head_dim, inputs=args.inputs,
                         widths=widths or getattr(args, "widths", None))


def quiet_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress line on stderr (it is off anyway when stderr is not "
                             "a terminal, or CI is set)")


def progress(args: argparse.Namespace) -> Any:
    from tpcheck.progress import Progress

    return Progress(enabled=False if getattr(args, "quiet", False) else None)


# --- output files ----------------------------------------------------------------------------


class Output:
    """A file a command will write: checked before any work starts (a run of minutes must not
    end in "permission denied"), written at the end in one piece (a reader never sees half of
    it)."""

    def __init__(self, path: str | None, what: str) -> None:
        self.path = Path(path) if path else None
        if self.path is None:
            return
        where = f"-o {path}"
        if self.path.is_dir():
            raise TpcheckError(f"the {what} path {path!r} is a directory.", where=where,
                               fix="give a file name, e.g. -o report.json")
        folder = self.path.parent if str(self.path.parent) else Path(".")
        if not folder.is_dir():
            raise TpcheckError(f"the folder of the {what} path {path!r} does not exist.",
                               where=where, fix=f"create {str(folder)!r} first")
        try:  # the real test: create a file beside it (read-only mounts, quotas, /proc)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{self.path.name}."):
                pass
            writable = not self.path.exists() or os.access(self.path, os.W_OK)
        except OSError:
            writable = False
        if not writable:
            raise TpcheckError(f"cannot write the {what} to {path!r}: permission denied.",
                               where=where, fix="write it to a folder you can write to")
        self.what = what

    def write(self, text: str) -> None:
        assert self.path is not None
        folder = self.path.parent if str(self.path.parent) else Path(".")
        try:
            with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=folder, delete=False,
                                             prefix=f".{self.path.name}.") as fh:
                fh.write(text)
                temp = fh.name
            os.chmod(temp, _file_mode(self.path))
            os.replace(temp, self.path)
        except OSError as exc:
            raise TpcheckError(f"cannot write the {self.what} to {str(self.path)!r}: "
                               f"{exc.strerror or exc}.", where=f"-o {self.path}",
                               fix="write it to a folder you can write to") from exc


def _file_mode(path: Path) -> int:
    """The mode a plain ``open(path, "w")`` would give: the existing file's, else 0o666 less
    the umask (a temporary file is created 0o600, which CI artifact uploads may not read)."""
    if path.exists():
        return path.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask
