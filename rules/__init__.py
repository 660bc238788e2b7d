"""The rule catalogue: every check tpcheck makes, with its code, condition and docs.

Rules live as data in ``catalogue.toml`` (what is checked: code, name, severity, scope, the
SymPy relation that flags a violation, the message) and ``docs.toml`` (why: the sections of
each rule's documentation). Keeping conditions as SymPy text makes the catalogue readable as
a table of the theory and lets the docs quote the exact condition.
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

import sympy

from tpcheck.errors import TpcheckError

SEVERITIES = ("error", "warning", "info")
DOC_SECTIONS = ("what", "why", "example", "use_instead", "references")
DOC_TITLES = {"what": "What it does", "why": "Why is this bad?", "example": "Example",
              "use_instead": "Use instead", "references": "References"}


@dataclass(frozen=True)
class Rule:
    """One catalogue entry."""

    code: str
    name: str
    severity: str
    scope: str
    found: str
    expected: str
    violation: str
    message: str
    fix: str
    source: str
    roles: tuple[str, ...] = ()
    docs: dict[str, str] = field(default_factory=dict)

    @property
    def condition(self) -> sympy.Basic:
        """The violation as a SymPy relation over the subject's facts."""
        return _parse(self.violation)

    def matches(self, selector: str) -> bool:
        """``TP1``, ``TP101`` or ``sp-readout`` select this rule; ``ALL`` selects every rule."""
        return selector == "ALL" or self.code.startswith(selector) or selector == self.name


@cache
def _parse(text: str) -> sympy.Basic:
    return sympy.sympify(text, locals={"oo": sympy.oo})


@cache
def catalogue() -> tuple[Rule, ...]:
    """Every rule, in code order, with its docs attached."""
    root = resources.files("tpcheck.rules")
    rules_data = tomllib.loads(root.joinpath("catalogue.toml").read_text(encoding="utf-8"))
    docs_path = root.joinpath("docs.toml")
    docs = tomllib.loads(docs_path.read_text(encoding="utf-8")) if docs_path.is_file() else {}
    rules = []
    for entry in rules_data["rule"]:
        entry = dict(entry)
        entry["roles"] = tuple(entry.get("roles", ()))
        rules.append(Rule(docs=docs.get(entry["code"], {}), **entry))
    return tuple(sorted(rules, key=lambda r: r.code))


def by_code() -> dict[str, Rule]:
    return {r.code: r for r in catalogue()}


def get(code_or_name: str) -> Rule:
    """Look a rule up by code (``TP101``) or name (``sp-readout``)."""
    for rule in catalogue():
        if code_or_name.upper() == rule.code or code_or_name == rule.name:
            return rule
    raise TpcheckError(f"no rule {code_or_name!r}.",
                       fix="see `tpcheck explain --all` for the catalogue")


def selected(select: list[str] | None = None, ignore: list[str] | None = None
             ) -> tuple[Rule, ...]:
    """Rules chosen by ``--select`` / ``--ignore`` (codes, code prefixes or names)."""
    for sel in [*(select or []), *(ignore or [])]:
        if not any(r.matches(sel) for r in catalogue()):
            raise TpcheckError(f"--select/--ignore {sel!r} matches no rule.",
                               fix="use a code (TP101), a prefix (TP1) or a name (sp-readout)")
    chosen = [r for r in catalogue() if not select or any(r.matches(s) for s in select)]
    return tuple(r for r in chosen if not any(r.matches(s) for s in ignore or []))


def glob_match(name: str, pattern: str) -> bool:
    """Per-tensor ignores match qualified names with shell globs."""
    return fnmatch.fnmatchcase(name, pattern)


def render_docs(rule: Rule) -> str:
    """The rule's documentation page (Markdown)."""
    lines = [f"# {rule.code} {rule.name}", "",
             f"Severity: **{rule.severity}** · scope: {rule.scope}"
             + (f" · roles: {', '.join(rule.roles)}" if rule.roles else ""), "",
             f"Condition: `{rule.violation}` with found = `{rule.found}`, "
             f"expected = `{rule.expected}`.", ""]
    for key in DOC_SECTIONS:
        text = rule.docs.get(key, "").strip()
        lines.append(f"## {DOC_TITLES[key]}")
        lines.append("")
        if key in ("example", "use_instead"):
            lines += ["```python", text, "```"]
        else:
            lines.append(text)
        lines.append("")
    lines += ["## Fix", "", rule.fix, "", f"Source: {rule.source}", ""]
    return "\n".join(lines)
