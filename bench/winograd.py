"""Winograd F(4x4, 3x3) and F(2x2, 3x3) (``kernels.conv.winograd``) against the planned
direct / im2col paths, per 3x3 layer shape, and their float32 error.

For each shape: the forward, the input gradient and the filter gradient through the
kernel ops, timed with Winograd off (``kernels("numba")``: the direct kernels and the
compiled im2col, as the plan picks them) and forced on (``kernels("winograd")``, for
the forward and the stride-1 input gradient), alternating window by window in this one
process (``common.time_alternating``; the median over the windows, or with ``--best``
the best window, the least disturbed on a shared machine); the forward also as
F(2x2, 3x3). ``BENCH_THREADS=1 NUMBA_NUM_THREADS=1`` times one core. The filter
gradient does not use Winograd: it is timed as the plan runs it, for its share of the
step. ``*`` marks the path ``kernels.plan`` takes. Then the
error of each path against a float64 result, relative to the output's largest
magnitude (the figures in ``kernels/conv/winograd.py``'s docstring).

Usage: python bench/winograd.py [--windows 7] [--best]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from functools import partial

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (sets the thread count before NumPy loads)
import numpy as np  # noqa: E402

import dojang as dj  # noqa: E402
from dojang.kernels.conv import reference as kc  # noqa: E402
from dojang.kernels.conv import winograd  # noqa: E402

# (batch, height = width, C_in, C_out): the seed CNN's second conv, ResNet-20's three
# stages, a 64-channel 32x32 layer, and a wide one
SHAPES = [(128, 14, 32, 64), (128, 32, 16, 16), (128, 16, 32, 32), (128, 8, 64, 64),
          (64, 32, 64, 64), (32, 16, 128, 128)]
ONE, SAME = (1, 1), ((1, 1), (1, 1))


def _in_scope(variant, fn):
    """``fn`` run inside ``dj.config.kernels(variant)``."""
    def run():
        with dj.config.kernels(variant):
            fn()
    return run


def timings(n, h, c, co, windows, stat):
    """{pass: (ms planned without Winograd, ms F(4x4), ms F(2x2) or None, plan picks F(4x4))}."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, h, h, c), dtype=np.float32)
    w = rng.standard_normal((3, 3, c, co), dtype=np.float32)
    gy = rng.standard_normal((n, h, h, co), dtype=np.float32)
    y = np.empty(gy.shape, np.float32)
    fwd = partial(kc.conv_forward, x, w, ONE, ONE, 1, SAME, True)
    bwd = partial(kc.conv_backward_input, gy, w, x.shape, ONE, ONE, 1, SAME)
    flt = partial(kc.conv_backward_filter, x, gy, w.shape, ONE, ONE, 1, SAME)
    p = dj.kernels.plan(dj.layers.Conv2D(co, 3, padding="same"), x.shape)
    out = {}
    for name, fn, f2, picked in (
            ("forward", fwd, partial(winograd.forward, x, w, y, SAME, 2),
             p.forward == "winograd"),
            ("input grad", bwd, None, "winograd" in p.input_gradient),
            ("filter grad", flt, None, False)):
        fns = {"off": _in_scope("numba", fn)}
        if name != "filter grad":
            fns["F4"] = _in_scope("winograd", fn)
        if f2 is not None:
            fns["F2"] = f2
        t = common.time_alternating(fns, steps=2, windows=windows, stat=stat)
        out[name] = (t["off"] * 1e3, t.get("F4", 0) * 1e3, t.get("F2", 0) * 1e3, picked)
    return out


def errors(n=4, h=16, c=64, co=64):
    """{path: (max, mean)} error of float32 results against float64, relative to the
    largest output magnitude (inputs standard normal, filters scaled by 1/sqrt(9 C))."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, h, h, c))
    w = rng.standard_normal((3, 3, c, co)) / np.sqrt(9 * c)
    with dj.config.kernels("reference"):
        exact, _ = kc.conv_forward(x, w, ONE, ONE, 1, SAME)
    x32, w32 = x.astype(np.float32), w.astype(np.float32)
    results = {}
    with dj.config.kernels("numba"):
        results["direct/im2col"], _ = kc.conv_forward(x32, w32, ONE, ONE, 1, SAME)
    for m in (2, 4):
        results[f"F({m}x{m},3x3)"] = y = np.empty(exact.shape, np.float32)
        winograd.forward(x32, w32, y, SAME, m)
    scale = np.abs(exact).max()
    return {k: (np.abs(v - exact).max() / scale, np.abs(v - exact).mean() / scale)
            for k, v in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=7)
    parser.add_argument("--best", action="store_true", help="the best window, not the median")
    args = parser.parse_args()
    stat, what = (min, "best") if args.best else (statistics.median, "median")
    print(f"3x3 stride-1 convs, ms ({what} of {args.windows} alternating windows, "
          f"{common.THREADS} thread(s)): planned "
          "without Winograd -> F(4x4,3x3) [F(2x2,3x3)]; >1x: Winograd faster; * the plan's "
          "pick (none unless forced)")
    for n, h, c, co in SHAPES:
        cells = []
        for name, (off, f4, f2, picked) in timings(n, h, c, co, args.windows, stat).items():
            if not f4:
                cells.append(f"{name} {off:7.2f}")
                continue
            extra = f" [F2 {f2:7.2f}]" if f2 else ""
            cells.append(f"{name} {off:7.2f} -> {f4:7.2f}{'*' if picked else ' '} "
                         f"({off / f4:4.2f}x){extra}")
        print(f"N{n:<4d}{h:>3d}x{h:<3d}{c:>4d}->{co:<4d} " + " | ".join(cells), flush=True)
    print("float32 error against float64 (relative to the largest output), 16x16x64->64:")
    for k, (mx, mean) in errors().items():
        print(f"  {k:15s} max {mx:.1e}  mean {mean:.1e}")


if __name__ == "__main__":
    main()
