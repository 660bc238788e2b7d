"""convert: training-step cost of a converted model, and convert + apply at DiT-XL/2 size.

    python benchmarks/bench_convert.py            # both parts
    python benchmarks/bench_convert.py --steps 30 # more timed steps per side

1. Step time. One AdamW training step (forward, backward, optimizer) of the reference DiT
   (depth 4, width 256, batch 8) in standard parametrization with one global LR, against the
   same model converted with the default ``init-lr`` style and the plan's per-tensor param
   groups. The two run interleaved in one process (A, B, A, B, ...) so drift hits both; the
   ratio converted/original is reported as the median over pairs with its interquartile
   range. ``init-lr`` changes no forward code, so the ratio should be 1 within noise.
2. convert + apply. ``convert`` of a DiT-XL/2-shaped spec (depth 28, head dim 72) at proxy
   widths 72/144/288, then ``Plan.apply`` and ``Plan.param_groups`` on the full-size model
   (width 1152, 675 M parameters), each in a fresh process for its own peak RSS, beside
   building the full-size model alone (the floor every workflow pays).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _measure
from bench_capture import dit_xl_2_spec

PROXY_WIDTHS = (72, 144, 288)
FULL_WIDTH = 1152


def step_times(steps: int) -> dict[str, Any]:
    import time

    import torch
    from tpcheck.models.dit import dit_spec

    from tpcheck import convert

    torch.set_num_threads(2)
    spec = dit_spec(depth=4)
    plan = convert(spec)
    width, batch = 256, 8
    torch.manual_seed(0)
    original = spec.factory(width)
    converted = plan.spec().factory(width)
    opt_a = torch.optim.AdamW(original.parameters(), lr=1e-4)
    opt_b = plan.build_optimizer(converted)
    x = torch.randn(batch, 4, 8, 8)
    t = torch.rand(batch) * 1000
    y = torch.randint(0, 10, (batch,))
    target = torch.randn(batch, 8, 8, 8)

    def step(model: torch.nn.Module, opt: torch.optim.Optimizer) -> float:
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        (model(x, t, y) - target).square().mean().backward()
        opt.step()
        return time.perf_counter() - start

    for _ in range(3):  # warm-up: allocator, Adam state
        step(original, opt_a)
        step(converted, opt_b)
    ratios, a_times, b_times = [], [], []
    for _ in range(steps):
        a = step(original, opt_a)
        b = step(converted, opt_b)
        a_times.append(a)
        b_times.append(b)
        ratios.append(b / a)
    q = statistics.quantiles(ratios, n=4)
    return {"original_ms": 1000 * statistics.median(a_times),
            "converted_ms": 1000 * statistics.median(b_times),
            "ratio": statistics.median(ratios), "q1": q[0], "q3": q[2],
            "groups": len(opt_b.param_groups)}


def build_full() -> int:
    from bench_capture import dit_xl_2_spec as make

    model = make((FULL_WIDTH, FULL_WIDTH * 2, FULL_WIDTH * 3)).factory(FULL_WIDTH)
    return sum(p.numel() for p in model.parameters())


def convert_and_apply() -> dict[str, Any]:
    import time

    import torch

    from tpcheck import convert

    start = time.perf_counter()
    plan = convert(dit_xl_2_spec(PROXY_WIDTHS, 28))
    made = time.perf_counter() - start
    model = dit_xl_2_spec(PROXY_WIDTHS, 28).factory(FULL_WIDTH)
    built = time.perf_counter() - start - made
    plan.apply(model)
    groups = plan.param_groups(model, lr=1e-4, weight_decay=0.0)
    torch.optim.AdamW(groups)
    applied = time.perf_counter() - start - made - built
    return {"convert_s": made, "build_s": built, "apply_s": applied,
            "params": sum(p.numel() for p in model.parameters()), "groups": len(groups)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--skip-full", action="store_true")
    args = parser.parse_args()
    print(f"$ {_measure.command_line()}")
    r = _measure.measure(step_times, args.steps, preload=("torch", "tpcheck"), timeout=600)
    if not r.ok:
        print(r.error)
        return 1
    v = r.value
    print(f"\n1. training step, DiT depth 4, width 256, batch 8 ({args.steps} interleaved pairs)")
    print(f"   original (one global AdamW LR): {v['original_ms']:.1f} ms")
    print(f"   converted (init-lr plan, {v['groups']} param groups): {v['converted_ms']:.1f} ms")
    print(f"   converted / original: {v['ratio']:.3f} (IQR {v['q1']:.3f} to {v['q3']:.3f})")
    if args.skip_full:
        return 0
    floor = _measure.measure(build_full, preload=("torch", "tpcheck"), timeout=600)
    ours = _measure.measure(convert_and_apply, preload=("torch", "tpcheck"), timeout=900)
    if not ours.ok:
        print(ours.error)
        return 1
    o = ours.value
    print(f"\n2. DiT-XL/2-shaped: convert at widths {PROXY_WIDTHS} (depth 28), apply at "
          f"{FULL_WIDTH} ({o['params'] / 1e6:.0f} M parameters)")
    print(f"   {'what':<44}{'wall (s)':>10}{'peak RSS (MB)':>16}")
    print(f"   {'build the full model alone (floor)':<44}{floor.seconds:>10.1f}"
          f"{floor.peak_rss_mb:>16,.0f}")
    print(f"   {'convert + build + apply + param_groups':<44}{ours.seconds:>10.1f}"
          f"{ours.peak_rss_mb:>16,.0f}")
    print(f"     of which convert {o['convert_s']:.1f} s, build {o['build_s']:.1f} s, apply + "
          f"groups {o['apply_s']:.2f} s ({o['groups']} groups)")
    print(f"   overhead over the floor: {ours.seconds / floor.seconds:.2f}x time, "
          f"{ours.peak_rss_mb / floor.peak_rss_mb:.2f}x peak RSS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
