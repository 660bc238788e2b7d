"""The one exception type tpcheck raises for problems the user can fix.

The CLI turns a :class:`TpcheckError` into a message on stderr and exit code 2; every
other exception is a bug in tpcheck. Messages follow one shape: *what* went wrong,
*where* (target, width, parameter, graph node, source line), and *how to fix it*.
We never use ``assert`` for user errors: ``python -O`` strips asserts.
"""

from __future__ import annotations


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
