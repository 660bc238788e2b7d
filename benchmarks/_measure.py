"""Run one callable in a fresh interpreter and report its wall time and peak RSS.

Every measurement gets its own process (multiprocessing's "spawn" context: a new Python,
not a fork), so its peak RSS is its own and not what earlier measurements left behind.

* wall time: ``time.perf_counter()`` around the call, in the child, after the modules in
  ``preload`` were imported (so ``import torch`` is paid by neither side of a comparison);
* peak RSS: ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` in the child after the call
  (KiB on Linux). It includes the interpreter and the preloaded modules; ``baseline()``
  measures that floor on its own.

Linux keeps the larger of the parent's and the child's high-water mark across the
fork/exec that starts the child, so the parent (the benchmark script) must stay small:
benchmark scripts import torch and tpcheck only inside the functions they measure.
``vmhwm_kib`` (``VmHWM`` of ``/proc/self/status``: the child's own address space only)
is returned beside ``ru_maxrss`` as a cross-check.
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import os
import resource
import shlex
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

DEFAULT_PRELOAD = ("torch",)


@dataclass(frozen=True)
class Result:
    """What one measured call cost, and what it returned (``value``, must be picklable)."""

    seconds: float
    peak_rss_kib: int
    vmhwm_kib: int | None
    value: Any = None
    error: str | None = None  # the child's traceback if the callable raised
    #: ``child_cpu_s``: CPU time of the child; ``other_busy_cores``: how many cores other
    #: processes kept busy on average while the child ran (0 on a quiet machine).
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def peak_rss_mb(self) -> float:
        return self.peak_rss_kib / 1024

    @property
    def ok(self) -> bool:
        return self.error is None


def _vmhwm_kib() -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _child(conn: Any, fn: Callable[..., Any], args: tuple, kwargs: dict,
           preload: Sequence[str]) -> None:
    for name in preload:
        importlib.import_module(name)
    value = error = None
    start = time.perf_counter()
    try:
        value = fn(*args, **kwargs)
    except BaseException:  # report, the parent decides what to do
        error = traceback.format_exc()
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak = usage.ru_maxrss
    extra = {"child_cpu_s": usage.ru_utime + usage.ru_stime}
    try:
        conn.send(Result(seconds, peak, _vmhwm_kib(), value, error, extra))
    except Exception:  # an unpicklable return value: keep the measurement
        conn.send(Result(seconds, peak, _vmhwm_kib(), None, error or traceback.format_exc(),
                         extra))
    conn.close()


def _busy_cpu_s() -> float | None:
    """CPU-seconds all cores of this machine have spent busy since boot (/proc/stat)."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    guest = sum(fields[8:10]) if len(fields) > 9 else 0  # already counted in user/nice
    return (sum(fields) - idle - guest) / os.sysconf("SC_CLK_TCK")


def measure(fn: Callable[..., Any], *args: Any, preload: Sequence[str] = DEFAULT_PRELOAD,
            timeout: float | None = None, **kwargs: Any) -> Result:
    """Call ``fn(*args, **kwargs)`` in a fresh spawned process; time it and its peak RSS.

    ``fn`` must be importable by the child (a module-level function) and its arguments and
    return value picklable. If the child dies (killed for memory, a crash) or runs past
    ``timeout`` seconds, the result carries an ``error`` and NaN time.
    """
    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(send, fn, args, kwargs, tuple(preload)))
    busy0, t0 = _busy_cpu_s(), time.perf_counter()
    proc.start()
    send.close()
    result = None
    try:
        if recv.poll(timeout):
            result = recv.recv()
    except EOFError:  # the child died before sending
        result = None
    proc.join(5 if result is None else None)
    if proc.is_alive():
        proc.kill()
        proc.join()
    if result is None:
        why = (f"timed out after {timeout} s" if proc.exitcode in (None, -9) and timeout
               else f"child exited with code {proc.exitcode}")
        return Result(float("nan"), 0, None, None, why)
    busy1, lifetime = _busy_cpu_s(), time.perf_counter() - t0
    if busy0 is not None and busy1 is not None and lifetime > 0:
        # What other processes kept the cores busy with while this child lived (a
        # concurrent test run on a 2-core machine slows every row): average busy cores.
        others = max(0.0, busy1 - busy0 - result.extra.get("child_cpu_s", 0.0))
        result.extra["other_busy_cores"] = round(others / lifetime, 2)
    return result


def _nothing() -> None:
    return None


def baseline(preload: Sequence[str] = DEFAULT_PRELOAD) -> Result:
    """Peak RSS of a child that only imports ``preload``: the floor under every row."""
    return measure(_nothing, preload=preload)


def show(what: str, res: Result) -> None:
    """One measured row in full: time, both peak-memory readings, load, returned values."""
    if not res.ok:
        print(f"  {what}: FAILED\n{res.error}", flush=True)
        return
    hwm = f"{res.vmhwm_kib / 1024:,.0f} MB" if res.vmhwm_kib else "n/a"
    print(f"  {what}: {res.seconds:.2f} s, peak RSS {res.peak_rss_mb:,.0f} MB (VmHWM {hwm}; "
          f"other processes kept {res.extra.get('other_busy_cores', '?')} cores busy)",
          flush=True)
    for key, value in (res.value or {}).items():
        print(f"      {key}: {value}", flush=True)


def command_line() -> str:
    """The command that is running, ready to paste into a shell."""
    return " ".join(shlex.quote(a) for a in [os.path.basename(sys.executable), *sys.argv])


def ram_gib() -> float | None:
    """Total memory of this machine in GiB."""
    try:
        with open("/proc/meminfo") as fh:
            return int(fh.readline().split()[1]) / 2**20
    except OSError:
        return None


def machine() -> str:
    """A one-line description of where the numbers were measured."""
    import platform

    total = ram_gib()
    mem = f", {total:.0f} GiB RAM" if total else ""
    return (f"{platform.machine()}, {os.cpu_count()} CPUs{mem}, "
            f"Python {platform.python_version()}")

