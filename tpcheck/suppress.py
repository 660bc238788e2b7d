"""Suppress: the findings a user has decided to live with, and why — inline or in the config.

* **Inline**: ``# tpcheck: ignore[TP105] adaLN-Zero is deliberate`` on the line a finding
  points at (the assignment that defines a parameter, or the forward line of an activation),
  like ruff's ``noqa``. Codes, prefixes (``TP1``) or rule names, comma-separated; the reason is
  the rest of the comment.
* **Config**: ``[[tool.tpcheck.per-tensor-ignores]]`` entries (a glob over tensor names, the
  rules, a reason).

A suppression that suppresses nothing is reported (TP003), as is an inline code no rule has
(TP004): a stale or mistyped suppression would otherwise hide the next real finding or none.
Every suppressed finding is kept in the report with its reason, and counted.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tpcheck.check import Finding
from tpcheck.rules import Rule, by_code, catalogue, glob_match

#: ``# tpcheck: ignore[TP105, TP2] reason``
_INLINE = re.compile(r"#\s*tpcheck:\s*ignore\[([^\]]*)\]\s*(.*)$")


@dataclass(frozen=True)
class Ignore:
    """A per-tensor ignore from the config: a glob over tensor names, the rules, a reason."""

    pattern: str
    rules: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class Suppressed:
    """A finding that a suppression hid, with who hid it and why."""

    finding: Finding
    by: str  # "inline" or "config"
    reason: str
    where: str  # file:line of the comment, or the config's pattern


@dataclass(frozen=True)
class Suppressions:
    """What the stage kept, what it hid, and what it found wrong with the suppressions."""

    findings: tuple[Finding, ...]
    suppressed: tuple[Suppressed, ...]


@dataclass(frozen=True)
class _Inline:
    path: str
    line: int
    codes: tuple[str, ...]
    reason: str

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def suppress(findings: list[Finding], ignores: tuple[Ignore, ...] = (),
             lines: dict[str, str | None] | None = None, active: tuple[Rule, ...] = ()
             ) -> Suppressions:
    """Apply inline and config suppressions to ``findings``.

    ``lines`` maps every ``file:line`` where the model defines a parameter (to its name) or
    runs an op (to None): the suppressions on those lines are this model's. One that hid
    nothing is stale (TP003) when all its rules were ``active`` (a suppression of a rule not
    run this time is not stale); one naming a code no rule has is TP004. A comment on a line
    this model does not reach belongs to another model or variant in the same file.
    """
    lines = lines or {}
    _inlines_in.cache_clear()  # files may have changed since the last run in this process
    kept: list[Finding] = []
    hidden: list[Suppressed] = []
    used_inline: set[str] = set()
    used_config: set[int] = set()
    for f in findings:
        comment = _inline_at(f.source) if f.source else None
        if comment is not None and any(_matches(f, code) for code in comment.codes):
            hidden.append(Suppressed(f, "inline", comment.reason, comment.where))
            used_inline.add(comment.where)
            continue
        config = next((i for i, ig in enumerate(ignores) if _config_matches(f, ig)), None)
        if config is not None:
            hidden.append(Suppressed(f, "config", ignores[config].reason,
                                     f"per-tensor-ignores {ignores[config].pattern!r}"))
            used_config.add(config)
            continue
        kept.append(f)
    kept += _problems(lines, used_inline, ignores, used_config, active)
    return Suppressions(tuple(kept), tuple(hidden))


def _problems(lines: dict[str, str | None], used_inline: set[str], ignores: tuple[Ignore, ...],
              used_config: set[int], active: tuple[Rule, ...]) -> list[Finding]:
    """TP003 for suppressions that hid nothing, TP004 for inline codes no rule has."""
    rules = by_code()
    out = []
    files = sorted({where.rpartition(":")[0] for where in lines})
    for comment in (c for path in files for c in _inlines_in(path)):
        if comment.where not in lines:  # another model's or variant's line in the same file
            continue
        tensor = lines[comment.where]
        unknown = [code for code in comment.codes if not _known(code)]
        if unknown and "TP004" in rules:
            out.append(_meta_finding("TP004", comment.where, tensor, unknown))
        elif (comment.where not in used_inline and "TP003" in rules
              and all(_covers(code, active) for code in comment.codes)):
            out.append(_meta_finding("TP003", comment.where, tensor, comment.codes))
    for i, ig in enumerate(ignores):
        if i not in used_config and "TP003" in rules and all(_covers(code, active)
                                                             for code in ig.rules):
            out.append(_meta_finding("TP003", f"per-tensor-ignores {ig.pattern!r}", None,
                                     ig.rules, config=True))
    return out


def _meta_finding(code: str, where: str, tensor: str | None, codes: Sequence[str],
                  config: bool = False) -> Finding:
    """A finding about a suppression, worded by the catalogue's message for ``code``."""
    rule = by_code()[code]
    listed = ", ".join(codes)
    return Finding(rule.code, rule.name, rule.severity,
                   rule.message.format(codes=listed, where=where), rule.expected, listed,
                   tensor=tensor, source=None if config else where, scope="suppression")


def _matches(finding: Finding, code: str) -> bool:
    return code == "ALL" or finding.rule.startswith(code) or code == finding.name


def _config_matches(finding: Finding, ignore: Ignore) -> bool:
    return (finding.tensor is not None and glob_match(finding.tensor, ignore.pattern)
            and any(_matches(finding, r) for r in ignore.rules))


def _covers(code: str, active: tuple[Rule, ...]) -> bool:
    """Every rule ``code`` selects was run (so a suppression of it that hid nothing is stale)."""
    chosen = [r for r in catalogue() if code == "ALL" or r.matches(code)]
    codes = {r.code for r in active}
    return bool(chosen) and all(r.code in codes for r in chosen)


def _known(code: str) -> bool:
    return code == "ALL" or any(r.matches(code) for r in catalogue())


def _inline_at(source: str) -> _Inline | None:
    path, _, line = source.rpartition(":")
    if not line.isdigit():
        return None
    return next((c for c in _inlines_in(path) if c.line == int(line)), None)


@functools.lru_cache(maxsize=256)
def _inlines_in(path: str) -> tuple[_Inline, ...]:
    """Every inline suppression in a source file (cached: a file is read once per run)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ()
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        match = _INLINE.search(line)
        if match:
            codes = tuple(c.strip() for c in match.group(1).split(",") if c.strip())
            out.append(_Inline(path, number, codes, match.group(2).strip()))
    return tuple(out)
