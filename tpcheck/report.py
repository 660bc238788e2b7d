"""Report: one target's lint result as text (one screen for a 28-block model) and JSON (the
contract in docs/report.schema.json), plus the exit code CI relies on. A run over several
targets is :class:`tpcheck.runreport.RunReport`, which also writes SARIF."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import sympy

from tpcheck import __version__
from tpcheck.check import Finding
from tpcheck.classify import Classification
from tpcheck.exponents import as_json
from tpcheck.fold import fold, pattern
from tpcheck.propagate import Propagation
from tpcheck.suppress import Suppressed
from tpcheck.widths import describe, is_infinite


@dataclass(frozen=True)
class TensorRow:
    """One parameter as reported: shape and fans in ``n``, role, invariants."""

    name: str
    shape: tuple[str, ...]
    role: str
    fan_in: str
    fan_out: str
    trainable: bool
    uses: tuple[dict[str, Any], ...] = ()
    aliases: tuple[str, ...] = ()
    a: Any = None
    b: Any = None
    c: Any = None
    I: Any = None
    U: Any = None
    init: str | None = None  # how the init size was known: read, probed or sampled
    family: str | None = None  # the optimizer family that trains it
    roles: tuple[str, ...] = ()  # a tied tensor's roles, one per use (empty: one role)

    def to_json(self) -> dict[str, Any]:
        out = {"name": self.name, "shape": list(self.shape), "role": self.role,
               "fan_in": self.fan_in, "fan_out": self.fan_out, "trainable": self.trainable}
        if self.I is not None or self.b is not None:
            out.update(a=self.a, b=self.b, c=self.c, I=self.I, U=self.U, init=self.init,
                       family=self.family)
        out["uses"] = list(self.uses)
        if self.aliases:
            out["aliases"] = list(self.aliases)
        if self.roles:
            out["roles"] = list(self.roles)
        return out


@dataclass(frozen=True)
class Report:
    """Everything one lint run found about one model."""

    model: str
    widths: tuple[int, ...]
    base_width: int
    traced_on: str
    tensors: tuple[TensorRow, ...]
    findings: tuple[Finding, ...] = ()
    optimizer: dict[str, Any] | None = None
    attention: tuple[dict[str, Any], ...] = ()
    seconds: float = 0.0
    notes: tuple[str, ...] = field(default=())
    #: Findings a suppression hid (inline ``# tpcheck: ignore[...]`` or the config), and why.
    suppressed: tuple[Suppressed, ...] = ()
    #: The spec's free-form facts (an autospec'd class: what scales, the depth kept, ...).
    meta: dict[str, Any] = field(default_factory=dict)

    # --- construction ---------------------------------------------------------------

    @classmethod
    def from_classification(cls, classification: Classification, *, seconds: float = 0.0,
                            findings: tuple[Finding, ...] = (),
                            propagation: Propagation | None = None,
                            suppressed: tuple[Suppressed, ...] = ()) -> Report:
        capture = classification.graph.shapes.capture
        spec = capture.spec
        measured = propagation.measurement.tensors if propagation else {}
        sources = propagation.measurement.init_sources if propagation else {}
        rows = []
        for name, t in classification.tensors.items():
            m = measured.get(name)
            uses = tuple({"node": u.node, "op": u.op, "role": u.role, "fan_in": str(u.fan_in),
                          "fan_out": str(u.fan_out), "module": u.module} for u in t.uses)
            extra: dict[str, Any] = {}
            if m is not None:
                extra = {"a": as_json(m.a), "b": as_json(m.b),
                         "c": None if m.c is None else as_json(m.c),
                         "I": as_json(m.I), "U": None if m.U is None else as_json(m.U),
                         "init": sources.get(name), "family": m.family}
                uses = tuple({**d, "I": as_json(ue.I),
                              "U": None if ue.U is None else as_json(ue.U),
                              "expected_I": as_json(ue.expected_I),
                              "expected_U": as_json(ue.expected_U)}
                             for d, ue in zip(uses, m.uses, strict=True))
            rows.append(TensorRow(name, tuple(describe(t.shape, t.rounded)), t.role, str(t.fan_in),
                                  str(t.fan_out), t.trainable, uses, t.aliases,
                                  roles=t.roles if len(t.roles) > 1 else (), **extra))
        attention = tuple({"node": a.node, "module": a.module, "head_dim": str(a.head_dim),
                           "head_dim_grows": is_infinite(a.head_dim),
                           "scales": {str(w): s for w, s in a.scales.items()}}
                          for a in classification.attention)
        optimizer = None
        if propagation is not None:
            opts = propagation.measurement.optimizers
            optimizer = {"name": "+".join(o.name for o in opts),
                         "kind": "+".join(dict.fromkeys(o.family for o in opts)),
                         "optimizers": [{"name": o.name, "family": o.family, "known": o.known,
                                         "decoupled_weight_decay": o.decoupled_weight_decay}
                                        for o in opts]}
        devices = sorted({t.device for t in capture.traces.values()})
        notes = []
        if propagation is not None:
            sampled = sorted(n for n, how in propagation.measurement.init_sources.items()
                             if how == "sampled")
            if sampled:
                notes.append(f"init sizes sampled from real weights (their init calls could "
                             f"not be read): {', '.join(sampled[:6])}"
                             + (f" and {len(sampled) - 6} more" if len(sampled) > 6 else ""))
        return cls(model=spec.label, widths=capture.widths, base_width=spec.base,
                   traced_on="+".join(devices), tensors=tuple(rows), findings=tuple(findings),
                   optimizer=optimizer, attention=attention, seconds=seconds,
                   notes=tuple(notes), suppressed=tuple(suppressed), meta=dict(spec.meta))

    @classmethod
    def from_propagation(cls, propagation: Propagation, findings: list[Finding], *,
                         seconds: float = 0.0,
                         suppressed: tuple[Suppressed, ...] = ()) -> Report:
        return cls.from_classification(propagation.measurement.classification, seconds=seconds,
                                       findings=tuple(findings), propagation=propagation,
                                       suppressed=suppressed)

    # --- verdict ----------------------------------------------------------------------

    @property
    def counts(self) -> dict[str, int]:
        c = Counter(f.severity for f in self.findings)
        return {"error": c["error"], "warning": c["warning"], "info": c["info"]}

    @property
    def exit_code(self) -> int:
        """0: no errors (warnings allowed); 1: errors found (2 is for tool errors, in the CLI)."""
        return 1 if self.counts["error"] else 0

    # --- JSON -------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        roles = Counter(t.role for t in self.tensors)
        return {
            "tpcheck": __version__,
            "model": self.model,
            "widths": list(self.widths),
            "base_width": self.base_width,
            "traced_on": self.traced_on,
            "optimizer": self.optimizer,
            "tensors": [t.to_json() for t in self.tensors],
            "attention": list(self.attention),
            "findings": [finding_json(f) for f in self.findings],
            "suppressed": [{**finding_json(x.finding), "by": x.by, "reason": x.reason,
                            "at": x.where} for x in self.suppressed],
            "notes": [*self.notes, *self.meta.get("notes", ())],
            "spec_source": self.meta.get("spec_source"),
            "summary": {**self.counts, "tensors": len(self.tensors),
                        "roles": dict(sorted(roles.items())),
                        "suppressed": len(self.suppressed),
                        "seconds": round(self.seconds, 3)},
        }

    # --- text -------------------------------------------------------------------------

    def to_text(self, *, tensors: bool = True) -> str:
        lines = [self._header()]
        lines += [f"  note: {note}" for note in (*self.notes, *self.meta.get("notes", ()))]
        lines.append("")
        if tensors:
            lines += self._tensor_table()
            lines.append("")
        lines += self._finding_lines()
        lines += self._suppressed_lines()
        lines.append(self._summary())
        source = self.meta.get("spec_source")
        if source:
            lines += ["", "The spec tpcheck built for this target (paste it into a file to edit "
                          "it, then lint file.py:spec):", "", source.rstrip()]
        return "\n".join(lines)

    def _suppressed_lines(self) -> list[str]:
        if not self.suppressed:
            return []
        groups: dict[tuple[str, str, str], list[str]] = {}
        for x in self.suppressed:
            groups.setdefault((x.finding.rule, x.by, x.reason), []).append(x.finding.subject)
        out = [f"Suppressed: {len(self.suppressed)} finding(s)"]
        for (rule, by, reason), subjects in groups.items():
            shown = ", ".join(label for label, _ in fold(subjects, lambda s: s, lambda s: 0))
            out.append(f"  {rule} ({by}) {shown}: {reason}")
        out.append("")
        return out

    def _header(self) -> str:
        opt = f" · {self.optimizer['name']} ({self.optimizer['kind']})" if self.optimizer else ""
        widths = ", ".join(map(str, self.widths))
        return (f"tpcheck {__version__} · {self.model} · widths {widths} (base "
                f"{self.base_width}) · traced on {self.traced_on}{opt} · {self.seconds:.1f} s")

    def _tensor_table(self) -> list[str]:
        measured = any(t.I is not None for t in self.tensors)

        def key(t: TensorRow) -> tuple:
            return (t.shape, t.role, t.fan_in, t.fan_out, t.trainable, str(t.I), str(t.U))

        groups = fold(self.tensors, lambda t: t.name, key)
        header = ["tensor", "shape", "role", "fan_in", "fan_out"]
        if measured:
            header += ["I", "U"]
        rows = []
        for label, members in groups:
            t = members[0]
            shape = "(" + ", ".join(_pretty(s) for s in t.shape) + ")"
            role = "+".join(t.roles or (t.role,)) + ("" if t.trainable else " (frozen)")
            if t.aliases:  # a tied tensor: every name it is registered under
                label = " = ".join((label, *t.aliases))
            row = [label, shape, role, _pretty(t.fan_in), _pretty(t.fan_out)]
            if measured:
                row += [_exp(t.I), _exp(t.U) if t.trainable else "-"]
            rows.append(row)
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        out = [f"Tensors: {len(self.tensors)} in {len(rows)} rows"]
        out.append("  " + "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
        out += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                for r in rows]
        return out

    def _finding_lines(self, *, names_shown: int = 3) -> list[str]:
        """One line per (rule, found, expected): repeated blocks fold into ``{0..27}`` and
        different tensors with the same verdict share a line, up to ``names_shown`` names."""
        if not self.findings:
            return []
        groups: dict[tuple, list[tuple[str, list[Finding]]]] = {}
        for label, members in fold(self.findings, lambda f: f.subject,
                                   lambda f: (f.rule, f.found, f.expected)):
            f = members[0]
            # tensor verdicts share a line across tensors; a finding about an activation
            # keeps its own line, since its message names the node; a suppression, its own
            place = (f.message if f.scope == "suppression"
                     else pattern(f.module)[0] if f.scope != "tensor" else "")
            groups.setdefault((f.rule, f.found, f.expected, place), []).append((label, members))
        order = {"error": 0, "warning": 1, "info": 2}
        lines = []
        for entries in groups.values():
            first_label, first_members = entries[0]
            f = first_members[0]
            labels = [label for label, _ in entries]
            shown = ", ".join(labels[:names_shown])
            if len(labels) > names_shown:
                shown += f" and {len(labels) - names_shown} more"
            message = f.message.replace(f.subject, first_label) if f.subject else f.message
            where = _relpath(f.source) if f.source else (f.module or "-")
            lines.append((order[f.severity], f.rule,
                          f"  {where}: {f.rule} [{f.severity}] {shown}: {message}"))
        lines.sort(key=lambda x: (x[0], x[1]))
        plural = "" if len(lines) == 1 else "s"
        out = [f"Findings: {len(self.findings)} in {len(lines)} line{plural}"]
        out += [text for _, _, text in lines]
        out.append("")
        return out

    def _summary(self) -> str:
        c = self.counts
        hidden = f"; {len(self.suppressed)} suppressed" if self.suppressed else ""
        if not self.findings:
            return f"No findings from the selected rules{hidden}."
        return (f"Found {c['error']} error(s), {c['warning']} warning(s), {c['info']} info "
                f"({len(self.findings)} findings{hidden}). `tpcheck explain CODE` explains a "
                "rule.")

def finding_json(f: Finding) -> dict[str, Any]:
    out = {"rule": f.rule, "name": f.name, "severity": f.severity, "message": f.message,
           "expected": f.expected, "found": f.found}
    if f.tensor:
        out["tensor"] = f.tensor
    if f.node:
        out["node"] = f.node
    if f.module:
        out["module"] = f.module
    if f.source:
        out["source"] = f.source
    return out


def _pretty(expr: str) -> str:
    """``3*n`` → ``3n`` for the text table (JSON keeps SymPy syntax)."""
    return expr.replace("*n", "n").replace(" ", "")


def _exp(value: Any) -> str:
    if value is None:
        return "-"
    if value in ("inf", "-inf"):
        return value.replace("inf", "∞")
    if isinstance(value, float):
        return str(sympy.nsimplify(value))
    return str(value)


def _relpath(source: str) -> str:
    path, _, line = source.rpartition(":")
    try:
        rel = os.path.relpath(path)
    except ValueError:
        rel = path
    if rel.startswith(".." + os.sep + ".."):
        rel = path
    return f"{rel}:{line}"
