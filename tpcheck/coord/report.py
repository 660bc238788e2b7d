"""Coord results: what a coordinate check measured and concluded, as data, JSON and text."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import sympy

from tpcheck import __version__
from tpcheck.fold import fold
from tpcheck.sizes import FAR_WIDTHS

VERDICTS = ("disagree", "agree", "not measured", "not predicted")  # by precedence


@dataclass(frozen=True)
class Slope:
    """``d log(value) / d log(n)``: mean and standard deviation over seeds.

    ``-inf`` when the value is exactly zero at every width (a zero-initialised output, an
    activation nothing trainable feeds); NaN when it cannot be fitted (zero at some widths
    only, or too few widths left after a divergence).
    """

    mean: float
    spread: float

    def to_json(self) -> dict[str, Any]:
        return {"mean": num(self.mean), "spread": num(self.spread)}

    def __str__(self) -> str:
        if math.isnan(self.mean):
            return "?"
        if self.mean == -math.inf:
            return "zero"
        return f"{self.mean:+.2f}±{self.spread:.2f}"


@dataclass(frozen=True)
class Prediction:
    """The static exponents of the graph node that computes a recorded activation.

    ``s`` and ``u`` are the leading exponents (n → ∞). ``s_here`` is the slope the init
    constants predict over the measured widths (:mod:`tpcheck.sizes`): where a growing term
    still sits below a Θ(1) one, it differs from ``s``, and ``s_from`` is the width from which
    the measured slope would come within the tolerance of ``s``.
    """

    node: str | None  # None: no node of the exported graph maps to this activation
    s: sympy.Expr | None = None
    u: sympy.Expr | None = None
    why: str | None = None  # why there is no prediction
    s_here: float | None = None
    s_from: int | None = None


@dataclass(frozen=True)
class Record:
    """One recorded activation at every width: sizes, updates, slopes, prediction, verdict.

    ``size[t][i]`` is mean ``|x_t|`` at ``widths[i]`` after ``t`` steps (t = 0..steps) and
    ``update[t-1][i]`` is mean ``|x_t − x_0|`` (t = 1..steps), both averaged over seeds (NaN
    once a run diverged). ``update_slopes[t-1]`` is the slope after ``t`` steps; the verdict on
    ``u`` uses the result's ``verdict_step``.
    """

    name: str
    kind: str  # "module", "logits" or "output"
    module_type: str
    shape: tuple[int, ...]  # at the smallest width
    size: tuple[tuple[float, ...], ...]
    update: tuple[tuple[float, ...], ...]
    size_slope: Slope
    update_slopes: tuple[Slope, ...]
    prediction: Prediction
    size_verdict: str
    update_verdict: str
    #: Class and constructor arguments (``Linear(in_features=256, out_features=64, ...)``):
    #: rows fold over blocks only when this matches, never a Sequential's different layers.
    signature: str = ""
    #: Enclosing modules whose output is this one's, value for value (``blocks.0.attn`` for
    #: ``blocks.0.attn.proj``): recorded once, so a wrapper does not count twice.
    aliases: tuple[str, ...] = ()

    @property
    def verdict(self) -> str:
        """One verdict per activation: a single disagreement (size or update) counts."""
        both = (self.size_verdict, self.update_verdict)
        return next(v for v in VERDICTS if v in both)

    def to_json(self) -> dict[str, Any]:
        p = self.prediction
        return {
            "name": self.name, "kind": self.kind, "module_type": self.module_type,
            "signature": self.signature,
            "shape": list(self.shape),
            "size": [[num(v) for v in row] for row in self.size],
            "update": [[num(v) for v in row] for row in self.update],
            "slopes": {"size": self.size_slope.to_json(),
                       "update": [s.to_json() for s in self.update_slopes]},
            "predicted": {"node": p.node, "s": exp_json(p.s), "s_here": num(p.s_here),
                          "s_from_width": p.s_from, "u": exp_json(p.u), "why": p.why},
            "verdict": self.verdict,
            "size_verdict": self.size_verdict, "update_verdict": self.update_verdict,
            "aliases": list(self.aliases),
        }


@dataclass(frozen=True)
class Divergence:
    """A run that produced NaN/inf: at which width, seed and step, first seen where."""

    width: int
    seed: int
    step: int  # optimizer steps taken before the non-finite forward (0: at init)
    where: str  # the first record (or "loss") that was not finite

    def __str__(self) -> str:
        return (f"width {self.width} diverged at step {self.step} (seed {self.seed}): "
                f"{self.where} is NaN/inf")


@dataclass(frozen=True)
class CoordResult:
    """Everything one coord check measured and concluded about one model.

    ``verdict_step`` is the step whose update slopes are judged: the first step after which
    every trainable tensor has moved. The static ``u`` describes a step in which every weight
    moves, but a zero-initialised readout or gate blocks the gradient of everything upstream
    of it at step 1 (TP5 App. D.2): DiT's zero readout and adaLN-Zero gates need 3 steps.
    """

    model: str
    widths: tuple[int, ...]
    steps: int
    seeds: int
    lr: float | None
    optimizer: str
    tolerance: float
    verdict_step: int
    records: tuple[Record, ...]
    divergences: tuple[Divergence, ...] = ()
    seconds: float = 0.0
    notes: tuple[str, ...] = field(default=())

    @property
    def counts(self) -> dict[str, int]:
        c = Counter(r.verdict for r in self.records)
        return {v: c.get(v, 0) for v in VERDICTS}

    @property
    def agreement_rate(self) -> float | None:
        """agree / (agree + disagree): the share of predicted activations that agree."""
        c = self.counts
        judged = c["agree"] + c["disagree"]
        return c["agree"] / judged if judged else None

    @property
    def exit_code(self) -> int:
        return 1 if self.divergences else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "tpcheck": __version__, "check": "coord", "model": self.model,
            "widths": list(self.widths), "steps": self.steps, "seeds": self.seeds,
            "lr": self.lr, "optimizer": self.optimizer, "tolerance": self.tolerance,
            "verdict_step": self.verdict_step, "records": [r.to_json() for r in self.records],
            "divergences": [vars(d) for d in self.divergences],
            "summary": {"records": len(self.records), **{
                v.replace(" ", "_"): k for v, k in self.counts.items()},
                "agreement_rate": self.agreement_rate},
            "seconds": round(self.seconds, 2), "notes": list(self.notes),
        }

    def to_text(self) -> str:
        """The agreement table, repeated blocks folded into one row, then the summary line."""
        lr = "spec's" if self.lr is None else f"{self.lr:g}"
        lines = [f"tpcheck coord {self.model}: widths {'/'.join(map(str, self.widths))}, "
                 f"{self.steps} steps, {self.seeds} seeds, {self.optimizer} lr {lr} "
                 f"({self.seconds:.1f} s)"]
        lines += [f"  note: {note}" for note in self.notes]
        lines += [f"  DIVERGED: {d}" for d in self.divergences]
        at, last = self.verdict_step, self.steps
        shown = (at, last) if last != at else (at,)  # the judged step, then the last one
        header = ("activation", "type", "s (n→∞)", "s here", "s meas", "u (n→∞)",
                  *(f"u meas t={t}" for t in shown), "verdict")
        rows = [header]
        for label, members in fold(self.records, lambda r: r.name, _fold_key):
            first = members[0]
            p = first.prediction
            rows.append((label, first.module_type, _pretty(p.s), _here(p, self.tolerance),
                         _folded(members, "size", 0), _pretty(p.u),
                         *(_folded(members, "update", t - 1) for t in shown), first.verdict))
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        lines.append("")
        for row in rows:
            lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        lines.append("")
        wrapped = sum(len(r.aliases) for r in self.records)
        if wrapped:
            lines.append(f"{wrapped} wrapper outputs equal to an inner module's output are shown "
                         "once (JSON: aliases).")
        if any(r.prediction.s_from for r in self.records):
            lines.append("s here: the init-size slope the static analysis predicts over these "
                         "widths, constants included; (s from n≈W): the width where s shows.")
        lines.append(self._summary())
        return "\n".join(lines)

    def _summary(self) -> str:
        c = self.counts
        rate = self.agreement_rate
        head = "agreement: n/a" if rate is None else f"agreement: {100 * rate:.1f}%"
        return (f"{head} ({c['agree']} agree, {c['disagree']} disagree; {c['not predicted']} not "
                f"predicted, {c['not measured']} not measured; {len(self.records)} activations, "
                f"tolerance ±{self.tolerance:g})")


def _fold_key(r: Record) -> tuple:
    p = r.prediction
    return (r.kind, r.signature, str(p.s), str(p.u), r.verdict)


def _folded(members: list[Record], what: str, step: int) -> str:
    """Mean slope over the folded rows (blocks), with the largest seed spread among them."""
    slopes = [m.size_slope if what == "size" else m.update_slopes[step] for m in members]
    means = [s.mean for s in slopes]
    if any(math.isnan(v) for v in means):
        return "?"
    if all(v == -math.inf for v in means):
        return "zero"
    if any(v == -math.inf for v in means):
        return "zero/" + str(Slope(statistics.fmean(v for v in means if v > -math.inf), 0.0))
    spread = max(max(s.spread for s in slopes), max(means) - statistics.fmean(means))
    return str(Slope(statistics.fmean(means), spread))


def num(x: float | None) -> float | str | None:
    """A float for JSON: None or NaN → null, ±∞ → "inf" / "-inf"."""
    if x is None or math.isnan(x):
        return None
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def exp_json(x: sympy.Expr | None) -> float | int | str | None:
    if x is None:
        return None
    if x is sympy.nan:
        return "nan"
    if x == sympy.oo or x == -sympy.oo:
        return "inf" if x == sympy.oo else "-inf"
    return int(x) if isinstance(x, sympy.Integer) else float(x)


def _here(p: Prediction, tolerance: float) -> str:
    """``s_here`` for the table, with the width where the leading exponent takes over."""
    if p.s_here is None or math.isnan(p.s_here):
        return "—"
    if p.s_here == -math.inf:
        return "zero"
    text = f"{p.s_here:+.2f}"
    if p.s_from:
        text += f" (s from n≈{_short(p.s_from)})"
    elif p.s is not None and p.s.is_finite and abs(p.s_here - float(p.s)) > tolerance:
        text += f" (s beyond n≈{_short(FAR_WIDTHS[-1])})"
    return text


def _short(width: int) -> str:
    return f"{width / 1000:.0f}k" if width >= 10_000 else f"{width:,}"


def _pretty(x: sympy.Expr | None) -> str:
    if x is None:
        return "—"
    if x == -sympy.oo:
        return "zero"
    return str(x).replace("oo", "∞")
