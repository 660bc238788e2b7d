"""The study's numbers as a plain-text (or Markdown) report and as JSON.

Everything the acceptance of a μTransfer study looks at, in one place: the optimal LR per
width with its spread over seeds, the shift of the optimum across the width range, the
held-out loss per width at the LR found on the proxy, and the Optuna transfer rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tpcheck.transfer.grid import mean_sd
from tpcheck.transfer.search import SearchResult
from tpcheck.transfer.sweep import Sweep
from tpcheck.transfer.target import Transfer
from tpcheck.transfer.train import Hyper

NAMES = {"sp": "SP", "mup": "μP"}


@dataclass
class StudyResult:
    """What ``tpcheck transfer`` produced; any part may be missing if its stage did not run."""

    task: str
    sweep: Sweep | None = None
    search: SearchResult | None = None
    transfer: Transfer | None = None
    files: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"task": self.task, "seconds": self.seconds, "files": self.files,
                "sweep": self.sweep.to_json() if self.sweep else None,
                "search": self.search.to_json() if self.search else None,
                "transfer": self.transfer.to_json() if self.transfer else None,
                "summary": summary(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StudyResult:
        return cls(data["task"],
                   Sweep.from_json(data["sweep"]) if data.get("sweep") else None,
                   SearchResult.from_json(data["search"]) if data.get("search") else None,
                   Transfer.from_json(data["transfer"]) if data.get("transfer") else None,
                   list(data.get("files", [])), data.get("seconds", 0.0))

    def to_text(self, markdown: bool = False) -> str:
        return "\n".join(_lines(self, markdown))


def summary(result: StudyResult) -> dict[str, Any]:
    """The headline numbers (what a script or a CI check reads)."""
    out: dict[str, Any] = {}
    sweep = result.sweep
    if sweep is not None:
        for p in sweep.config.parametrizations:
            shift, err = sweep.shift(p)
            out[p] = {"optimum_log2_lr": {str(o.width): [o.log2_lr, o.spread, o.at_edge]
                                          for o in sweep.optima(p)},
                      "shift_octaves": shift, "shift_stderr": err, "drift": sweep.drift(p),
                      "octaves_per_doubling": sweep.slope(p),
                      "heldout_at_proxy_lr": _at_proxy_lr(sweep, p)}
    if result.search is not None:
        out["search_best"] = {**result.search.best.to_json(), "value": result.search.best_value}
    if result.transfer is not None:
        out["transfer"] = {r.label: [r.mean, r.sd] for r in result.transfer.rows}
    return out


def _at_proxy_lr(sweep: Sweep, param: str) -> dict[str, list[float]]:
    lr = 2.0 ** sweep.optimum(param, sweep.config.widths[0]).log2_lr
    if not math.isfinite(lr):
        return {}
    return {str(w): list(sweep.at_lr(param, w, lr)) for w in sweep.config.widths}


def _table(header: list[str], rows: list[list[str]], markdown: bool) -> list[str]:
    if markdown:
        return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
                *("| " + " | ".join(r) + " |" for r in rows)]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in [header, *rows]]


def _pm(mean: float, sd: float, digits: int = 2) -> str:
    if not math.isfinite(mean):
        return "—"
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def _sp_oracle(sweep: Sweep) -> list[str] | None:
    """SP at the widest width at its own best grid LR: what tuning at full width buys."""
    oracle = sweep.sp_oracle()
    if oracle is None:
        return None
    width, lr = oracle
    values = sweep.heldout_at("sp", width, lr)
    h = sweep.config.hyper
    return [f"SP n={width}, best LR of the sweep at n={width}",
            _hyper(Hyper(lr=lr, warmup=h.warmup, beta1=h.beta1, beta2=h.beta2)),
            _row_loss(values)]


def _storage(url: str) -> str:
    """A SQLite file under the working directory by its relative path: the report stays the
    same on every machine that reruns it from the repository root."""
    prefix = "sqlite:///"
    if url.startswith(prefix):
        path = Path(url.removeprefix(prefix))
        if path.is_absolute() and path.is_relative_to(Path.cwd()):
            return prefix + str(path.relative_to(Path.cwd()))
    return url


def _row_loss(values: tuple[float, ...]) -> str:
    """mean ± sd over the seeds that finished, and how many did not."""
    failed = sum(not math.isfinite(v) for v in values)
    text = _pm(*mean_sd(values), 4)
    if failed:
        text += f" ({failed} of {len(values)} seeds diverged or collapsed)"
    return text


def _hyper(h: Hyper) -> str:
    return (f"lr 2^{math.log2(h.lr):.2f} ({h.lr:.3g}), warm-up {h.warmup:.2f}, "
            f"β₂ {h.beta2:.4f}")


def _lines(result: StudyResult, markdown: bool) -> list[str]:
    lines: list[str] = []
    sweep = result.sweep
    if sweep is not None:
        lines += _sweep_lines(sweep, markdown)
    if result.search is not None:
        s = result.search
        lines += ["", f"Optuna search on the proxy (n={s.width}, {len(s.trials)} trials × "
                      f"{s.seeds} seed(s), {s.steps} steps, storage {_storage(s.storage)}, "
                      f"{s.seconds / 60:.1f} min): best {_hyper(s.best)}, held-out loss "
                      f"{s.best_value:.4f}"]
    if result.transfer is not None:
        t = result.transfer
        lines += ["", f"Transfer: held-out loss after {t.steps} steps, mean ± sd over "
                      f"{t.seeds} seeds ({t.seconds / 60:.1f} min)", ""]
        rows = [[r.label, _hyper(r.hyper), _row_loss(r.heldout)] for r in t.rows]
        oracle = _sp_oracle(sweep) if sweep is not None else None
        if oracle is not None:
            rows.append(oracle)
        lines += _table(["run", "hyperparameters", "held-out loss"], rows, markdown)
    if result.seconds:
        lines += ["", f"wall time {result.seconds / 60:.1f} min (all stages)"]
    return lines


def _sweep_lines(sweep: Sweep, markdown: bool) -> list[str]:
    c = sweep.config
    params = c.parametrizations
    lo, hi = math.log2(c.lrs[0]), math.log2(c.lrs[-1])
    step = (hi - lo) / (len(c.lrs) - 1)
    lines = [f"LR sweep · widths {', '.join(map(str, c.widths))} "
             f"({c.widths[-1] / c.widths[0]:g}×) · LR 2^{lo:g} … 2^{hi:g} in {step:g}-octave "
             f"steps ({len(c.lrs)} points) · {c.seeds} seeds · {c.steps} steps × batch "
             f"{c.batch_size} · {len(sweep.results)} runs in {sweep.seconds / 60:.1f} min",
             "", "Optimal log2 LR per width (mean ± sd of the per-seed optima; * some seed's "
             "minimum at the grid's edge)", ""]
    optima = {p: sweep.optima(p) for p in params}
    rows = []
    for i, w in enumerate(c.widths):
        rows.append([str(w)] + [_pm(optima[p][i].log2_lr, optima[p][i].spread)
                                + ("*" if optima[p][i].at_edge else "") for p in params])
    rows.append(["shift"] + [_pm(*sweep.shift(p)) for p in params])
    rows.append(["per doubling"] + [f"{sweep.slope(p):+.2f}" for p in params])
    lines += _table(["width"] + [NAMES.get(p, p) for p in params], rows, markdown)
    lines += ["", "shift: widest minus narrowest width's optimum, in octaves (± standard "
                  "error); per doubling: least-squares slope of the optimum against log2 width"]
    lines += ["", "Held-out loss at the proxy's optimal LR (the grid point nearest it), "
                  "mean ± sd over seeds", ""]
    rows = []
    for w in c.widths:
        rows.append([str(w)] + [_row_loss(sweep.heldout_at(p, w, 2.0 ** optima[p][0].log2_lr))
                                if math.isfinite(optima[p][0].log2_lr) else "—"
                                for p in params])
    head = [f"{NAMES.get(p, p)} at 2^{optima[p][0].log2_lr:.1f}" for p in params]
    lines += _table(["width", *head], rows, markdown)
    best = {p: [min((y for y in sweep.mean_curve(p, w) if math.isfinite(y)), default=math.nan)
                for w in c.widths] for p in params}
    lines += ["", "Best held-out loss on the grid per width (seed-mean curve): "
              + "; ".join(f"{NAMES.get(p, p)} " + ", ".join(f"{v:.4f}" for v in best[p])
                          for p in params)]
    if sweep.reused:
        lines += ["", f"{sweep.reused} of the runs were read from the journal (runs.jsonl) "
                      "of an earlier invocation, not run again"]
    failed = sweep.failed()
    if failed:
        lines += ["", "Runs stopped early: " + ", ".join(f"{v} {k}" for k, v in failed.items())
                  + " (counted as infinitely bad; crosses in the plot)"]
    return lines
