"""Capture + classify at realistic widths: the recorder against ``torch.export``, and against
the mup workflow that gives the same facts.

    python benchmarks/bench_capture.py                     # DiT-XL/2 rows + SD3 at full widths
    python benchmarks/bench_capture.py --rows sd3-reduced  # SD3 rows at widths mup fits

Ours: ``tpcheck.analyze(spec, device="meta", tracer=...)`` (``tpcheck.pipeline.analyze``):
build the model on the meta device at each traced width (reading its inits), trace one
forward — with the recorder (the default) or ``torch.export`` (``--tracer export``) — fit
every dim in ``n``, classify every parameter. No weight is ever allocated.

The alternative a user has today for "which dims of which tensor grow with the width":
mup's ``set_base_shapes(target, base, delta=delta)``, which needs the base, delta and
target models instantiated for real (on the CPU here).

a) DiT-XL/2-shaped: depth 28, patch 2, 4 × 32 × 32 latent, head_dim 72 (heads = n / 72),
   widths 288, 576, 1152; mup with base 288, delta 576, target 1152.
b) SD3-shaped MMDiT: depth 24, head_dim 64, 16 × 128 × 128 latent, 333 text tokens of
   4096, pooled 2048, widths 1536, 3072, 4608. mup at those widths would hold
   2.0 + 8.1 + 18.2 billion fp32 parameters (~113 GB): skipped. ``--rows sd3-reduced`` runs
   both sides at widths 384, 768, 1152 (the same 1 : 2 : 3 ratios, the largest such triple
   of multiples of 64 under 8 GB: 1.8 billion parameters, ~7.2 GB for mup).

Every row runs in its own fresh process (``_measure.measure``): wall time of the call after
``import torch``, peak RSS of that process. This script imports neither torch nor tpcheck
at the top, so the parent stays small and does not inflate the children's ru_maxrss.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _measure

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DIT_WIDTHS = (288, 576, 1152)
SD3_WIDTHS = (1536, 3072, 4608)
SD3_SMALL_WIDTHS = (384, 768, 1152)
SD3_DEPTH = 24
SD3_CONTEXT_TOKENS = 333  # 77 CLIP (padded to 4096 channels) + 256 T5-XXL tokens
TIMEOUT_S = 300.0
ROWS = ("dit", "sd3", "sd3-reduced")
DEFAULT_ROWS = ("dit", "sd3")  # ~1.6 min on 2 busy cores; sd3-reduced ~1.3 min more

#: The issue's acceptance targets for DiT-XL/2 capture + classify.
TARGET_S = 15.0
TARGET_RSS_BYTES = 1.5e9

#: Memory the mup alternative may use before we refuse to run it (fp32 weights only).
MUP_LIMIT_BYTES = 8 * 10**9


# --------------------------------------------------------------------------- specs
# Module-level so that the spawned child can import them; torch is imported inside.

def dit_xl_2_spec(widths: tuple[int, ...] = DIT_WIDTHS, depth: int = 28):
    """DiT-XL/2-shaped spec: the built-in DiT at DiT-XL/2's patch 2, 4 × 32 × 32 latent and
    1000 classes, head_dim 72 fixed (heads = n / 72)."""
    from dataclasses import replace

    from tpcheck.models.dit import dit_spec

    spec = dit_spec(depth, input_size=32, num_classes=1000, head_dim=72)
    return replace(spec, widths=widths, base_width=None,
                   name=f"DiT-XL/2-shaped (depth {depth})")


def sd3_spec(widths: tuple[int, ...] = SD3_WIDTHS, depth: int = SD3_DEPTH):
    """SD3-shaped MMDiT spec: the built-in MMDiT at SD3-medium's config (head_dim 64,
    1024 px: 128 × 128 × 16 latent) with SD3's text tokens."""
    from dataclasses import replace

    from tpcheck.models.mmdit import MMDiTConfig, mmdit_spec

    sd3 = MMDiTConfig()  # the defaults are SD3-medium's
    spec = mmdit_spec(depth, context_length=SD3_CONTEXT_TOKENS, head_dim=sd3.head_dim,
                      input_size=sd3.input_size, in_channels=sd3.in_channels,
                      joint_dim=sd3.joint_dim, pooled_dim=sd3.pooled_dim)
    return replace(spec, widths=widths, base_width=None,
                   name=f"SD3-shaped MMDiT (depth {depth})")


SPECS = {"dit": dit_xl_2_spec, "sd3": sd3_spec}
TABLES = {"dit": "DIT", "sd3": "MMDIT"}  # hand-written expected roles in tests/expected_roles.py


# --------------------------------------------------------------------------- measured calls

def ours(kind: str, widths: tuple[int, ...], tracer: str = "record") -> dict[str, Any]:
    """capture + classify on the meta device; returns what a table row and checks need."""
    from collections import Counter

    import sympy

    import tpcheck
    from tpcheck.symbols import n

    spec = SPECS[kind](widths)
    classification = tpcheck.analyze(spec, device="meta", tracer=tracer)
    capture = classification.graph.shapes.capture
    shapes = classification.graph.shapes.param_shapes
    count = sympy.expand(sum(sympy.Mul(*shape) for shape in shapes.values()))
    roles = Counter(t.role for t in classification.tensors.values())
    return {
        "tensors": len(classification.tensors),
        "roles": dict(roles),
        "unused": sorted(name for name, t in classification.tensors.items() if t.role == "unused"),
        "mismatches": _check_roles(kind, {k: t.role for k, t in classification.tensors.items()}),
        "params_poly": str(count),
        "params": {w: int(count.subs(n, w)) for w in widths},
        "params_traced": {w: sum(math.prod(p.shape) for p in tr.params.values())
                          for w, tr in capture.traces.items()},
        "Trace.seconds (build + inits + trace)": {w: round(tr.seconds, 2)
                                                  for w, tr in capture.traces.items()},
        "trace_device": {w: tr.device for w, tr in capture.traces.items()},
        "attention": len(classification.attention),
    }


def _check_roles(kind: str, roles: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Parameters whose role differs from the hand-written table: name -> (ours, expected)."""
    sys.path.insert(0, os.path.join(REPO, "tests"))
    import expected_roles

    table = getattr(expected_roles, TABLES[kind])
    out = {}
    for name, role in roles.items():
        try:
            expected = expected_roles.role_of(name, table)
        except KeyError as exc:
            out[name] = (role, f"no single pattern: {exc}")
            continue
        if role != expected:
            out[name] = (role, expected)
    return out


def alternative(kind: str, widths: tuple[int, ...]) -> dict[str, Any]:
    """mup's workflow: instantiate base, delta and target on the CPU, then set_base_shapes."""
    from collections import Counter

    from mup import set_base_shapes

    spec = SPECS[kind](widths)
    base_w, delta_w, target_w = sorted(widths)
    base = spec.factory(base_w)
    delta = spec.factory(delta_w)
    target = spec.factory(target_w)
    assertion = None
    try:
        set_base_shapes(target, base, delta=delta)
    except AssertionError as exc:
        # mup refuses a Linear with infinite fan-in and finite fan-out that is not its
        # MuReadout (every SP readout); the infshapes need do_assert=False.
        assertion = str(exc).splitlines()[0][:200]
        set_base_shapes(target, base, delta=delta, do_assert=False)
    ninf = Counter(p.infshape.ninf() for p in target.parameters())
    return {
        "tensors": sum(1 for _ in target.parameters()),
        "infinite_dims": {f"{k} inf dims": v for k, v in sorted(ninf.items())},
        "params": {w: sum(p.numel() for p in m.parameters())
                   for w, m in ((base_w, base), (delta_w, delta), (target_w, target))},
        "assertion": assertion,
    }


def import_pipeline() -> None:
    """Import tpcheck's pipeline module (``tpcheck.pipeline``; ``tpcheck.lint`` before 0.1.0's
    rename), which ``tpcheck.analyze`` / ``tpcheck.lint`` import lazily."""
    import importlib

    try:
        importlib.import_module("tpcheck.pipeline")
    except ModuleNotFoundError:
        importlib.import_module("tpcheck.lint")


def imports_only() -> dict[str, str]:
    """The floor: a child that has imported torch, tpcheck's pipeline and mup (and what
    versions they are)."""
    import mup  # noqa: F401 - mup 1.0.0 has no __version__
    import torch

    import tpcheck

    import_pipeline()
    return {"torch": torch.__version__, "tpcheck": tpcheck.__version__,
            "threads": str(torch.get_num_threads())}


# --------------------------------------------------------------------------- report

def fmt_row(what: str, widths: str, res: _measure.Result | None, ours_res=None,
            note: str = "") -> str:
    if res is None or not res.ok:
        return f"| {what} | {widths} | — | — | — | — | — | {note} |"
    t, m = f"{res.seconds:.1f}", f"{res.peak_rss_mb:,.0f}"
    rt = rm = "1 (ours)" if ours_res is None else "—"
    if ours_res is not None and ours_res.ok:
        rt = f"{res.seconds / ours_res.seconds:.1f}×"
        rm = f"{res.peak_rss_kib / ours_res.peak_rss_kib:.1f}×"
    others = res.extra.get("other_busy_cores", "?")
    return f"| {what} | {widths} | {t} | {m} | {rt} | {rm} | {others} | {note} |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", choices=ROWS, default=list(DEFAULT_ROWS),
                        help="which pairs to run (default: %(default)s; each pair is "
                             "ours then mup, each in a fresh process)")
    args = parser.parse_args()

    print(f"$ {_measure.command_line()}")
    floor = info = _measure.measure(imports_only)
    print(f"machine: {_measure.machine()}; " + ", ".join(f"{k} {v}" for k, v in info.value.items()))
    print(f"floor (fresh child after import torch, tpcheck's pipeline, mup): peak RSS "
          f"{floor.peak_rss_mb:,.0f} MB\n", flush=True)

    rows = []
    problems = []
    dit_ours = None
    w = lambda ws: "/".join(map(str, ws))  # noqa: E731

    def run_pair(kind: str, label: str, widths: tuple[int, ...]) -> _measure.Result:
        print(f"{label}, widths {w(widths)}", flush=True)
        mine = _measure.measure(ours, kind, widths, timeout=TIMEOUT_S)
        _measure.show("ours  capture+classify (meta, recorder)", mine)
        exported = _measure.measure(ours, kind, widths, "export", timeout=TIMEOUT_S)
        _measure.show("ours  capture+classify (meta, torch.export)", exported)
        note = ""
        alt, alt_note = True, ""
        if mine.ok:
            v = mine.value
            top = max(widths)
            note = f"{v['tensors']} tensors, {v['params'][top] / 1e9:.2f} B params at n={top}"
            if v["unused"]:
                problems.append(f"{label}: role 'unused' for {v['unused']}")
            if v["mismatches"]:
                problems.append(f"{label}: roles differ from tests/expected_roles.py: "
                                f"{v['mismatches']}")
            if v["params"] != v["params_traced"]:
                problems.append(f"{label}: symbolic parameter count {v['params']} != traced "
                                f"{v['params_traced']}")
            # What mup would allocate: base + delta + target in fp32, from the traced shapes.
            need = 4 * sum(v["params"].values())
            if need > MUP_LIMIT_BYTES:
                alt = False
                alt_note = (f"skipped: base+delta+target need {need / 1e9:.0f} GB of fp32 "
                            f"weights (limit {MUP_LIMIT_BYTES / 1e9:.0f} GB; this machine has "
                            f"{_measure.ram_gib():.0f} GiB)")
                if kind == "sd3" and widths != SD3_SMALL_WIDTHS:
                    alt_note += "; measured at smaller widths by --rows sd3-reduced"
        else:
            problems.append(f"{label}: analyze failed:\n{mine.error}")
        rows.append(fmt_row(f"{label}: tpcheck analyze (meta, recorder)", w(widths), mine,
                            note=note))
        rows.append(fmt_row(f"{label}: tpcheck analyze (meta, --tracer export)", w(widths),
                            exported, mine, note="the same roles" if exported.ok and mine.ok
                            and exported.value["roles"] == mine.value["roles"] else ""))
        if not alt:
            rows.append(fmt_row(f"{label}: mup set_base_shapes (CPU)", w(widths), None,
                                note=alt_note))
            print(f"  mup set_base_shapes: {alt_note}\n", flush=True)
            return mine
        other = _measure.measure(alternative, kind, widths, timeout=TIMEOUT_S)
        _measure.show("mup   set_base_shapes (CPU, real weights)", other)
        alt_note = ""
        if other.ok:
            total = sum(other.value["params"].values())
            alt_note = f"{total / 1e9:.2f} B params instantiated"
            if other.value["assertion"]:
                alt_note += "; default do_assert raised on the SP readout"
        rows.append(fmt_row(f"{label}: mup set_base_shapes (CPU)", w(widths), other, mine,
                            note=alt_note))
        print(flush=True)
        return mine

    if "dit" in args.rows:
        dit_ours = run_pair("dit", "DiT-XL/2-shaped", DIT_WIDTHS)
    if "sd3" in args.rows:
        run_pair("sd3", "SD3-shaped", SD3_WIDTHS)
    if "sd3-reduced" in args.rows:
        run_pair("sd3", "SD3-shaped (reduced)", SD3_SMALL_WIDTHS)

    print(f"$ {_measure.command_line()}")
    print(f"machine: {_measure.machine()}; " + ", ".join(f"{k} {v}" for k, v in info.value.items()))
    print(f"floor (fresh child after import torch, tpcheck's pipeline, mup): "
          f"{floor.peak_rss_mb:,.0f} MB peak RSS; every row's RSS includes it")
    print("'others' = cores kept busy by other processes while the row ran (0 = quiet "
          "machine)\n")
    print("| what | widths | wall (s) | peak RSS (MB) | time alt/ours | RSS alt/ours | others "
          "| notes |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(row)
    if dit_ours is not None and dit_ours.ok:
        t_ok = "met" if dit_ours.seconds < TARGET_S else "MISSED"
        m_ok = "met" if dit_ours.peak_rss_kib * 1024 < TARGET_RSS_BYTES else "MISSED"
        print(f"\nDiT-XL/2 capture+classify: {dit_ours.seconds:.1f} s (target < {TARGET_S:.0f} s: "
              f"{t_ok}), peak RSS {dit_ours.peak_rss_kib * 1024 / 1e9:.2f} GB (target < "
              f"{TARGET_RSS_BYTES / 1e9:.1f} GB: {m_ok})")
    if problems:
        print("\nPROBLEMS:")
        for p in problems:
            print(f"- {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
