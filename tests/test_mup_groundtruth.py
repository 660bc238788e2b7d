"""Ground truth from a real third-party μP implementation: Microsoft's ``mup`` package.

The μP versions of the reference models (tests/mup_models.py: ``MuReadout``,
``set_base_shapes``, ``mup.init``, ``MuAdamW``) must lint with zero errors; the SP reference
models with one global AdamW LR must get errors for the hidden LR (TP201) and the readout
(TP101 / TP202), DiT a warning for adaLN-Zero (TP105), and a growing head dim with the
default 1/√d attention scale an error (TP301). Invariants: docs/theory.md §3.

Each model is linted once: the SP references in this process (through conftest's session
cache), the μP versions meanwhile in one worker process: on 2 cores the file takes about as
long as the SP lints alone instead of twice that.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from fnmatch import fnmatch

import mup
import mup_models
import pytest
from conftest import report_of
from mup_models import MUP_SPECS, lint_mup, readout_weight

from tpcheck.report import Report, TensorRow

FAMILIES = ["dit", "uvit", "pixart", "mmdit"]
RESULT_TIMEOUT_S = 900


class _InProcess(Executor):
    """Runs each job when submitted (one core: a worker process would only add start-up)."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:  # surfaces in the test that reads it
            future.set_exception(exc)
        return future


@pytest.fixture(scope="module")
def mup_reports() -> Iterator[dict[str, Future]]:
    """The μP lint reports, computed in a worker process while the SP tests run."""
    if (os.cpu_count() or 1) < 2:
        yield {name: _InProcess().submit(lint_mup, name) for name in MUP_SPECS}
        return
    ctx = multiprocessing.get_context("spawn")  # never fork a process that has run torch
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        yield {name: pool.submit(lint_mup, name) for name in MUP_SPECS}


def _mup(mup_reports: dict[str, Future], name: str) -> Report:
    return mup_reports[name].result(timeout=RESULT_TIMEOUT_S)


def _listing(report: Report, severity: str | None = None) -> str:
    return "\n".join(f"  {f.rule} [{f.severity}] {f.subject}: {f.message}"
                     for f in report.findings if severity in (None, f.severity))


def _row(report: Report, name: str) -> TensorRow:
    rows = {t.name: t for t in report.tensors}
    assert name in rows, f"{name} not in the report's tensors: {sorted(rows)}"
    return rows[name]


def _num(value: object) -> float:
    """A TensorRow invariant (JSON: int, float or "inf") as a float."""
    return float("inf") if value == "inf" else float(value)


# --------------------------------------------------------------------------- SP references
# First in the file: they run in this process while the worker lints the μP versions (the
# first test asks for ``mup_reports`` only to start that worker).

@pytest.mark.parametrize("family", FAMILIES)
def test_sp_reference_has_hidden_lr_and_readout_errors(family: str, mup_reports) -> None:
    report = report_of(family)
    hidden = {t.name for t in report.tensors if t.role == "hidden" and t.trainable}
    tp201 = {f.tensor for f in report.findings if f.rule == "TP201" and f.severity == "error"}
    assert hidden, f"no trainable hidden tensor in {family}"
    # One global AdamW LR: every hidden weight has U = 0 < 1, and only hidden weights.
    assert tp201 == hidden, (f"TP201 missing on {sorted(hidden - tp201)}, unexpected on "
                             f"{sorted(tp201 - hidden)}\n{_listing(report)}")
    readout = readout_weight(family)
    assert _row(report, readout).role == "output"
    readout_errors = [f for f in report.findings if f.rule in ("TP101", "TP202")
                      and f.severity == "error" and f.tensor == readout]
    assert readout_errors, f"no TP101/TP202 error on {readout}:\n{_listing(report)}"


def test_sp_dit_warns_adaln_zero() -> None:
    report = report_of("dit")
    blocks = {t.name for t in report.tensors
              if fnmatch(t.name, "blocks.*.adaLN_modulation.1.weight")}
    tp105 = {f.tensor for f in report.findings if f.rule == "TP105"
             and f.severity == "warning" and fnmatch(f.tensor or "",
                                                     "blocks.*.adaLN_modulation.1.weight")}
    assert blocks and tp105 == blocks, (f"TP105 on {sorted(tp105)}, adaLN weights "
                                        f"{sorted(blocks)}\n{_listing(report)}")


def test_sp_growing_head_dim_needs_1_over_d_attention() -> None:
    growing = report_of("dit-growing-head-dim")
    assert any(f.rule == "TP301" for f in growing.findings), _listing(growing)
    fixed = report_of("dit")
    assert not [f for f in fixed.findings if f.rule == "TP301"], _listing(fixed)


# --------------------------------------------------------------------------- μP versions

@pytest.mark.parametrize("name", list(MUP_SPECS))
def test_mup_version_is_built_with_mup(name: str) -> None:
    """The ground truth is what it claims: MuReadout, infshapes, MuAdamW's LR ÷ m, 1/d."""
    build, family = MUP_SPECS[name]
    spec = build()
    model = spec.factory(128)  # width multiplier m = 2
    readout = model.get_submodule(readout_weight(family).removesuffix(".weight"))
    assert isinstance(readout, mup.MuReadout) and readout.width_mult() == 2.0
    assert all(hasattr(p, "infshape") for p in model.parameters())
    lrs = {id(p): g["lr"] for g in spec.build_optimizer(model).param_groups for p in g["params"]}
    for pname, p in model.named_parameters():
        expected = mup_models.LR / 2 if p.infshape.ninf() == 2 else mup_models.LR
        assert lrs[id(p)] == pytest.approx(expected), pname
    for attn in (m for m in model.modules() if hasattr(m, "scale") and hasattr(m, "head_dim")):
        grows = spec.meta["head_dim"] == "grows"
        assert attn.scale == (1 / attn.head_dim if grows else None), name


@pytest.mark.parametrize("name", list(MUP_SPECS))
def test_mup_version_lints_without_errors(name: str, mup_reports) -> None:
    report = _mup(mup_reports, name)
    assert report.counts["error"] == 0, (
        f"μP {name} (built with mup) got {report.counts['error']} error(s):\n"
        f"{_listing(report, 'error')}")


def test_mup_dit_invariants(mup_reports) -> None:
    """docs/theory.md §3: MuReadout (a = 1, b = 0, c = 0) has I = U = 1; a hidden weight with
    mup's init and MuAdamW's LR ÷ m has I = 1/2, U = 1."""
    report = _mup(mup_reports, "dit")
    readout = _row(report, readout_weight("dit"))
    assert readout.role == "output"
    assert (_num(readout.I), _num(readout.U)) == (1.0, 1.0), readout
    hidden = ["t_embedder.mlp.2.weight",  # normal(0.02) in the reference: re-initialised
              "blocks.0.attn.qkv.weight", "blocks.0.attn.proj.weight",
              "blocks.1.mlp.fc1.weight", "blocks.1.mlp.fc2.weight"]
    for name in hidden:
        row = _row(report, name)
        assert row.role == "hidden", row
        assert (_num(row.I), _num(row.U)) == (0.5, 1.0), row


def test_mup_growing_head_dim_has_no_attention_finding(mup_reports) -> None:
    report = _mup(mup_reports, "dit-growing-head-dim")
    assert report.attention and all(a["head_dim_grows"] for a in report.attention)
    assert not [f for f in report.findings if f.rule == "TP301"], _listing(report)

