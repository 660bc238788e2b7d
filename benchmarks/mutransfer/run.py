"""Reproduce docs/mutransfer.md: the full μTransfer study with its documented settings.

Runs ``tpcheck transfer`` (through ``python -m tpcheck.transfer``, the same code) with the
defaults, writes every result into ``benchmarks/mutransfer/results/`` and copies the two
figures to ``docs/mutransfer-lr-curves.png`` and ``docs/mutransfer-widths.png``. Extra
arguments are passed through (e.g. ``--workers 1``; ``--stages report`` redraws the report
and figures from the saved results without training). The wall time, the CPU time of this
process and its workers, and the machine's load average before and after go into
``results/timing.json``: the study shares its cores with whatever else runs, so the wall time
depends on the neighbours, while CPU time / cores is what it takes on an idle machine.

    python benchmarks/mutransfer/run.py
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import sys
import time
from pathlib import Path

from tpcheck.transfer.__main__ import main as transfer_main

HERE = Path(__file__).resolve().parent
DOCS = HERE.parents[1] / "docs"


def main(argv: list[str]) -> int:
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    if "--stages" not in argv:  # the full study: fresh, not resumed from an earlier run
        for state in ("optuna.db", "runs.jsonl"):
            (out / state).unlink(missing_ok=True)
    load_before = os.getloadavg()
    start = time.perf_counter()
    code = transfer_main(["--output", str(out), *argv])
    seconds = time.perf_counter() - start
    cpu = sum(getattr(resource.getrusage(who), field)
              for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
              for field in ("ru_utime", "ru_stime"))
    cores = len(os.sched_getaffinity(0))
    if "--stages" in argv:  # a partial run: keep the full run's timing
        _copy_figures(out)
        return code
    timing = {"seconds": seconds, "minutes": seconds / 60, "exit_code": code,
              "cpu_seconds": cpu, "cpu_minutes_per_core": cpu / cores / 60,
              "cores": cores, "cpu": platform.processor(),
              "load_average_before": load_before, "load_average_after": os.getloadavg(),
              "argv": argv}
    (out / "timing.json").write_text(json.dumps(timing, indent=1) + "\n", encoding="utf-8")
    _copy_figures(out)
    print(f"wall time {seconds / 60:.1f} min, CPU time {cpu / 60:.1f} min "
          f"({cpu / cores / 60:.1f} min per core; load average {load_before[0]:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after); exit code {code}", file=sys.stderr)
    return code


def _copy_figures(out: Path) -> None:
    for name in ("lr-curves.png", "widths.png"):
        if (out / name).is_file():
            shutil.copyfile(out / name, DOCS / f"mutransfer-{name}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
