"""One report per run, whatever the number of targets: text, JSON (docs/report.schema.json)
and SARIF 2.1.0 (one run holding every target's results, for code-scanning UIs), with one
combined summary and exit code.

A run over two targets used to print two documents, which is not JSON and not SARIF; here
every format is one document, and the exit code is the worst target's.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from tpcheck import __version__
from tpcheck.report import Report

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
REPORT_SCHEMA = "https://github.com/tpcheck/tpcheck/blob/main/docs/report.schema.json"
_LEVEL = {"error": "error", "warning": "warning", "info": "note"}
FORMATS = ("text", "json", "sarif")


@dataclass(frozen=True)
class RunReport:
    """Every target's report of one ``tpcheck lint`` run."""

    reports: tuple[Report, ...]

    @property
    def counts(self) -> dict[str, int]:
        out = {"error": 0, "warning": 0, "info": 0}
        for r in self.reports:
            for k, v in r.counts.items():
                out[k] += v
        return out

    @property
    def exit_code(self) -> int:
        """0: no errors (warnings allowed); 1: errors in some target (2: tool errors, CLI)."""
        return max((r.exit_code for r in self.reports), default=0)

    # --- JSON -------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "$schema": REPORT_SCHEMA,
            "tpcheck": __version__,
            "targets": [r.to_json() for r in self.reports],
            "summary": {**self.counts, "targets": len(self.reports),
                        "suppressed": sum(len(r.suppressed) for r in self.reports),
                        "seconds": round(sum(r.seconds for r in self.reports), 3)},
            "exit_code": self.exit_code,
        }

    # --- text -------------------------------------------------------------------------

    def to_text(self, *, tensors: bool = True) -> str:
        parts = [r.to_text(tensors=tensors) for r in self.reports]
        if len(self.reports) > 1:
            c = self.counts
            parts.append(f"{len(self.reports)} targets: {c['error']} error(s), {c['warning']} "
                         f"warning(s), {c['info']} info in all.")
        return "\n\n".join(parts)

    # --- SARIF ------------------------------------------------------------------------

    def to_sarif(self) -> dict[str, Any]:
        """One SARIF run: the tool's rule catalogue and every target's results."""
        from tpcheck.rules import catalogue

        rules = list(catalogue())
        index = {r.code: i for i, r in enumerate(rules)}
        driver = {
            "name": "tpcheck",
            "version": __version__,
            "informationUri": "https://github.com/tpcheck/tpcheck",
            "rules": [{
                "id": r.code,
                "name": "".join(w.capitalize() for w in r.name.split("-")),
                "shortDescription": {"text": r.name},
                "fullDescription": {"text": r.docs.get("what", r.fix).strip() or r.name},
                "help": {"text": r.fix},
                "defaultConfiguration": {"level": _LEVEL[r.severity]},
                "properties": {"source": r.source},
            } for r in rules],
        }
        results = [_result(f, report, index[f.rule], suppressed=None)
                   for report in self.reports for f in report.findings]
        results += [_result(x.finding, report, index[x.finding.rule], suppressed=x)
                    for report in self.reports for x in report.suppressed]
        return {"$schema": SARIF_SCHEMA, "version": "2.1.0",
                "runs": [{"tool": {"driver": driver}, "results": results,
                          "properties": {"targets": [
                              {"model": r.model, "widths": list(r.widths),
                               "exit_code": r.exit_code} for r in self.reports]}}]}

    def render(self, fmt: str, *, tensors: bool = True) -> str:
        if fmt == "json":
            return json.dumps(self.to_json(), indent=2)
        if fmt == "sarif":
            return json.dumps(self.to_sarif(), indent=2)
        return self.to_text(tensors=tensors)


def _result(f: Any, report: Report, rule_index: int, suppressed: Any) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": f.rule,
        "ruleIndex": rule_index,
        "level": _LEVEL[f.severity],
        "message": {"text": f"{f.subject}: {f.message}" if f.subject else f.message},
        "properties": {"expected": f.expected, "found": f.found, "target": report.model},
    }
    location: dict[str, Any] = {}
    if f.source:
        path, _, line = f.source.rpartition(":")
        location["physicalLocation"] = {
            "artifactLocation": {"uri": _uri(path)},
            "region": {"startLine": int(line) if line.isdigit() else 1},
        }
    logical = [{"fullyQualifiedName": f.tensor, "kind": "member"}] if f.tensor else []
    if f.node:
        logical.append({"name": f.node, "fullyQualifiedName": f.module or f.node,
                        "kind": "function"})
    if logical:
        location["logicalLocations"] = logical
    if location:
        result["locations"] = [location]
    if suppressed is not None:  # shown as suppressed in code scanning, with the reason
        result["suppressions"] = [{"kind": "inSource" if suppressed.by == "inline"
                                   else "external", "justification": suppressed.reason}]
    return result


def _uri(path: str) -> str:
    """A path relative to the working directory (the repository root in CI), else a file URI:
    code scanning maps relative URIs onto the repository's files."""
    rel = os.path.relpath(path) if os.path.isabs(path) else path
    if rel.startswith(".."):
        return "file://" + os.path.abspath(path)
    return rel.replace(os.sep, "/")
