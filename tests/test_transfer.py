"""tpcheck transfer: the μTransfer pipeline end to end, small enough for the test suite.

Real digits, a real DiT, real AdamW and a real Optuna study; only the sizes are tiny (widths
16 and 32, a few steps), so these tests check the bookkeeping a user relies on — one result
per (parametrization, width, LR, seed), a sorted half-octave grid, optima inside the grid,
the files written, strict JSON, SP = μP at the base width — not the science, which needs the
full study (docs/mutransfer.md).
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest
import torch

from tpcheck.errors import TpcheckError
from tpcheck.transfer import (
    DigitsTask,
    Hyper,
    StudyConfig,
    StudyResult,
    SweepConfig,
    lr_grid,
    make_plan,
    optimum,
    parse_grid,
    run_study,
    train,
)
from tpcheck.transfer.__main__ import main

WIDTHS = (16, 32)
GRID = (-7.0, -6.0)  # 2^-7, 2^-6.5, 2^-6
SEEDS, STEPS, BATCH = 2, 12, 8


def small_task() -> DigitsTask:
    return DigitsTask(heldout=64, draws=2)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread, as each sweep worker uses: these models are too small for two, and
    two spin-waiting threads on a loaded 2-core machine make a 1-second run take 40."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[StudyResult, Path]:
    out = tmp_path_factory.mktemp("study")
    config = StudyConfig(sweep=SweepConfig(widths=WIDTHS, lrs=lr_grid(*GRID), seeds=SEEDS,
                                           steps=STEPS, batch_size=BATCH),
                         trials=2, transfer_seeds=2, storage=None)
    return run_study(small_task(), config, out=out, workers=1, threads=1, progress=False), out


def test_lr_grid_is_sorted_and_half_octave_spaced() -> None:
    grid = lr_grid(-14, -5)
    logs = [math.log2(x) for x in grid]
    assert len(grid) == 19 and logs[0] == -14 and logs[-1] == -5
    assert all(b - a == pytest.approx(0.5) for a, b in itertools.pairwise(logs))
    assert parse_grid("-12:-10:0.25") == lr_grid(-12, -10, 0.25)


@pytest.mark.parametrize("text", ["-4:-10", "-10:-4:0.7", "a:b", "-10"])
def test_bad_grid_is_a_tpcheck_error(text: str) -> None:
    with pytest.raises(TpcheckError):
        parse_grid(text)


def test_optimum_is_the_parabola_vertex_and_flags_the_grid_edge() -> None:
    lrs = lr_grid(-10, -4)
    bowl = [(math.log2(x) + 6.7) ** 2 for x in lrs]
    found = optimum(lrs, bowl)
    assert found is not None and found.log2_lr == pytest.approx(-6.7)
    assert not found.at_edge
    assert optimum(lrs, [-math.log2(x) for x in lrs]).at_edge  # still falling at 2^-4
    assert optimum(lrs, [math.nan] * len(lrs)) is None  # every run diverged


def test_one_result_per_width_lr_seed_and_parametrization(study) -> None:
    result, _ = study
    sweep = result.sweep
    keys = [(r.parametrization, r.width, r.lr, r.seed) for r in sweep.results]
    assert len(keys) == len(set(keys)) == 2 * len(WIDTHS) * 3 * SEEDS
    assert set(keys) == {(p, w, lr, s) for p in ("sp", "mup") for w in WIDTHS
                         for lr in lr_grid(*GRID) for s in range(SEEDS)}
    assert all(r.status == "ok" and math.isfinite(r.heldout) for r in sweep.results)
    assert list(sweep.config.lrs) == sorted(sweep.config.lrs)


def test_every_optimum_lies_inside_the_grid(study) -> None:
    sweep = study[0].sweep
    for param in ("sp", "mup"):
        for opt in sweep.optima(param):
            assert len(opt.per_seed) == SEEDS
            assert GRID[0] <= opt.log2_lr <= GRID[1]
            assert opt.spread >= 0.0
        shift, err = sweep.shift(param)
        assert abs(shift) <= GRID[1] - GRID[0] and err >= 0.0


def test_sp_and_mup_agree_at_the_base_width(study) -> None:
    """The plan keeps the model as written at the base width: same losses, run for run."""
    sweep = study[0].sweep
    for lr in sweep.config.lrs:
        for seed in range(SEEDS):
            sp, mup = (sweep.result(p, WIDTHS[0], lr, seed).heldout for p in ("sp", "mup"))
            assert sp == pytest.approx(mup, rel=1e-6)


def test_files_are_written_and_json_is_strict(study) -> None:
    result, out = study
    for name in ("sweep.json", "search.json", "transfer.json", "study.json", "report.txt",
                 "lr-curves.png", "widths.png"):
        assert (out / name).is_file(), name
    for name in ("lr-curves.png", "widths.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    def no_nan(token: str) -> None:
        raise AssertionError(f"non-standard JSON constant {token}")

    data = json.loads((out / "study.json").read_text(), parse_constant=no_nan)
    again = StudyResult.from_json(data)
    assert len(again.sweep.results) == len(result.sweep.results)
    assert again.search.best == result.search.best
    report = (out / "report.txt").read_text()
    assert "Optimal log2 LR per width" in report and "Transfer" in report


def test_search_and_transfer_bookkeeping(study) -> None:
    result = study[0]
    search = result.search
    assert len(search.trials) == 2 and search.width == WIDTHS[0]
    assert GRID[0] <= math.log2(search.best.lr) <= GRID[1]
    assert 0.9 <= search.best.beta2 <= 0.999 and 0.0 <= search.best.warmup <= 0.4
    rows = result.transfer.rows
    assert [r.width for r in rows] == [WIDTHS[-1], WIDTHS[-1], WIDTHS[-1], WIDTHS[0]]
    assert [r.parametrization for r in rows] == ["mup", "sp", "sp", "mup"]
    assert all(len(r.heldout) == 2 and math.isfinite(r.mean) for r in rows)


def test_heldout_loss_is_a_fixed_measurement() -> None:
    """Same weights, same number: fixed split, noise and timesteps, whatever ran before."""
    task = small_task()
    torch.manual_seed(0)
    model = task.build(32)
    first = task.evaluate(model)
    torch.manual_seed(123)
    task.batch(torch.Generator().manual_seed(5), 8)
    assert task.evaluate(model) == first
    assert task.evaluate(model) == small_task().evaluate(model)


def test_a_collapsed_run_is_stopped_and_counted_as_failed() -> None:
    """Far too large an LR: no better than a constant prediction after half the steps."""
    task = small_task()
    run = train(task, 16, "sp", Hyper(lr=0.25, warmup=0.0), 0, 200, 8,
                give_up=task.give_up_loss)
    assert run.status == "collapsed" and run.diverged and math.isnan(run.heldout)
    assert sum(math.isfinite(c) for c in run.curve) == 5  # stopped at step 100 of 200
    fine = train(task, 16, "sp", Hyper(lr=2 ** -5), 0, 200, 8, give_up=task.give_up_loss)
    assert fine.status == "ok" and math.isfinite(fine.heldout)


def test_cli_runs_a_sweep_on_two_workers(tmp_path: Path, capsys) -> None:
    code = main(["--widths", "16,32", "--lr-grid=-7:-6", "--seeds", "1", "--steps", "6",
                 "--batch-size", "4", "--stages", "sweep", "--workers", "2", "--no-plot",
                 "--no-progress", "--format", "json", "-o", str(tmp_path)])
    summary = json.loads(capsys.readouterr().out)
    assert code in (0, 1)  # 1: μP's optimum moved more than 0.5 octave in 6 steps
    assert set(summary) == {"sp", "mup"}
    assert set(summary["mup"]["optimum_log2_lr"]) == {"16", "32"}
    assert (tmp_path / "sweep.json").is_file()


@pytest.mark.parametrize("argv, message", [
    (["--widths", "16,x"], "--widths"),
    (["--lr-grid=-4:-10"], "LR grid"),
    (["--stages", "sweep,train"], "unknown stage"),
    (["--task", "no_such_module:task"], "cannot import"),
    (["--widths", "24,48"], "head dim"),
])
def test_bad_input_exits_2_with_a_message(argv: list[str], message: str, tmp_path: Path,
                                          capsys) -> None:
    assert main([*argv, "-o", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_the_plan_base_width_must_be_the_smallest_width() -> None:
    from tpcheck.transfer import sweep

    task = small_task()
    plan = make_plan(task, (32, 64, 128))
    config = SweepConfig(widths=(16, 32), lrs=lr_grid(-7, -6), seeds=1, steps=2, batch_size=2)
    with pytest.raises(TpcheckError, match="base width"):
        sweep(task, config, plan=plan, progress=False)


class MlpTask:
    """A user's own task: a width-n MLP regressing a fixed random map, no DiT involved."""

    name = "mlp"

    def __init__(self) -> None:
        gen = torch.Generator().manual_seed(0)
        self.w = torch.randn(8, 4, generator=gen)
        self.x_test = torch.randn(64, 8, generator=gen)

    def build(self, width: int) -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Linear(8, width), torch.nn.Tanh(),
                                   torch.nn.Linear(width, width), torch.nn.Tanh(),
                                   torch.nn.Linear(width, 4))

    def spec(self, widths):
        from tpcheck import ModelSpec

        return ModelSpec(self.build, lambda n: (torch.randn(2, 8),), widths)

    def batch(self, generator: torch.Generator, size: int):
        return torch.randn(size, 8, generator=generator)

    def loss(self, model: torch.nn.Module, batch) -> torch.Tensor:
        return (model(batch) - torch.sin(batch @ self.w)).pow(2).mean()

    def evaluate(self, model: torch.nn.Module) -> float:
        with torch.no_grad():
            return float(self.loss(model, self.x_test))


def test_a_users_own_task_runs_through_the_same_sweep() -> None:
    from tpcheck.transfer import Task, sweep

    task = MlpTask()
    assert isinstance(task, Task)
    config = SweepConfig(widths=(16, 64), lrs=lr_grid(-8, -7), seeds=1, steps=5, batch_size=8)
    result = sweep(task, config, plan=make_plan(task, config.widths), progress=False)
    assert len(result.results) == 2 * 2 * 3
    assert all(math.isfinite(r.heldout) for r in result.results)
    # μP changed the wide model's optimizer (hidden LR / 4), not the base width's
    assert result.result("sp", 16, 2 ** -8, 0).heldout == pytest.approx(
        result.result("mup", 16, 2 ** -8, 0).heldout, rel=1e-6)
    assert result.result("sp", 64, 2 ** -8, 0).heldout != result.result(
        "mup", 64, 2 ** -8, 0).heldout


def test_an_interrupted_sweep_resumes_from_its_journal(tmp_path: Path) -> None:
    from tpcheck.transfer import sweep

    task = MlpTask()
    config = SweepConfig(widths=(16, 32), lrs=lr_grid(-8, -7), seeds=1, steps=3, batch_size=4,
                         parametrizations=("sp",))
    journal = tmp_path / "runs.jsonl"
    first = sweep(task, config, journal=journal, progress=False)
    lines = journal.read_text().splitlines()
    assert len(lines) == 6 and first.reused == 0
    journal.write_text("\n".join(lines[:4]) + "\n" + lines[4][:20])  # killed mid-write
    again = sweep(task, config, journal=journal, progress=False)
    assert again.reused == 4
    assert [r.heldout for r in again.results] == [r.heldout for r in first.results]


@pytest.mark.slow
def test_mup_keeps_the_optimum_where_sp_moves_it() -> None:
    """The science at a reduced scale (widths 32 and 128, one seed, ~2 min on 2 cores): SP's
    optimum falls by more than an octave over 4×, μP's stays within about half an octave."""
    from tpcheck.transfer import sweep

    task = DigitsTask()
    config = SweepConfig(widths=(32, 128), lrs=lr_grid(-8.5, -5), seeds=1, steps=400,
                         batch_size=16)
    result = sweep(task, config, plan=make_plan(task, config.widths), workers=2,
                   progress=False)
    sp, _ = result.shift("sp")
    mup, _ = result.shift("mup")
    assert not any(o.at_edge for p in ("sp", "mup") for o in result.optima(p))
    assert sp < -1.0 and abs(mup) < 0.6
