"""The one exception type tpcheck raises for problems the user can fix.

The CLI turns a :class:`TpcheckError` into a message on stderr and exit code 2; every
other exception is a bug in tpcheck. Messages follow one shape: *what* went wrong,
*where* (target, width, parameter, graph node, source line), and *how to fix it*.
We never use ``assert`` for user errors: ``python -O`` strips asserts.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


class TpcheckError(Exception):
    """A problem with the user's target, model or configuration (CLI exit code 2)."""

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None) -> None:
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(self.render())

    def render(self) -> str:
        """Multi-line message: what / where / fix, omitting the parts that are unknown."""
        lines = [self.what]
        if self.where:
            lines.append(f"  where: {self.where}")
        if self.fix:
            lines.append(f"  fix:   {self.fix}")
        return "\n".join(lines)


#: Where users report a bug in tpcheck itself.
ISSUES_URL = "https://github.com/tpcheck/tpcheck/issues"


class InternalError(TpcheckError):
    """A bug in tpcheck, not in the user's model: still exit 2 and one readable message, with
    the stage it happened in and how to report it (``TPCHECK_DEBUG=1`` shows the traceback)."""

    @classmethod
    def during(cls, stage: str, exc: BaseException, target: str | None = None) -> InternalError:
        import traceback

        frames = [f for f in traceback.extract_tb(exc.__traceback__)
                  if f"{os.sep}tpcheck{os.sep}" in f.filename]
        at = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "unknown"
        where = f"the {stage} stage ({at})" + (f", target {target}" if target else "")
        return cls(f"internal error in tpcheck: {type(exc).__name__}: {exc}", where=where,
                   fix=f"this is a bug in tpcheck, not in your model: please report it at "
                       f"{ISSUES_URL} with the command you ran and this message "
                       f"(TPCHECK_DEBUG=1 prints the traceback)")


@contextlib.contextmanager
def stage(name: str, target: str | None = None) -> Iterator[None]:
    """Run a pipeline stage: an unexpected exception becomes an :class:`InternalError`."""
    try:
        yield
    except (TpcheckError, KeyboardInterrupt):
        raise
    except Exception as exc:
        raise InternalError.during(name, exc, target) from exc
