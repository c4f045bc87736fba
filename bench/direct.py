"""Direct convolution (``kernels.conv.direct``) against im2col + GEMM, per layer shape.

For each shape: forward, input gradient and filter gradient, each timed with the direct
kernels on and off (alternating, median of 5), and which path ``kernels.plan`` picks.
The rules in ``kernels/plan.py`` (C_out <= 64, C_in >= 2; filters C_in * C_out <= 1024)
come from this table. The marks show the rules alone: in training, a forward whose
filter gradient stays on im2col keeps im2col too (its columns serve both passes).

Usage: python bench/direct.py
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from functools import partial

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402,F401  (sets the thread count before NumPy loads)
import numpy as np  # noqa: E402

from dojang.kernels import plan  # noqa: E402
from dojang.kernels.conv import reference as kc  # noqa: E402

# (batch, height = width, C_in, C_out, kernel): ResNet-20's stages, the seed CNN's
# layers, and a few in between
SHAPES = [(128, 32, 16, 16, 3), (128, 16, 32, 32, 3), (128, 8, 64, 64, 3),
          (128, 32, 3, 16, 3), (128, 16, 16, 16, 3), (128, 16, 32, 16, 3),
          (128, 14, 16, 32, 3), (64, 32, 16, 48, 3), (128, 28, 1, 32, 3),
          (128, 14, 32, 64, 3), (32, 14, 32, 64, 3), (128, 7, 64, 64, 3),
          (128, 8, 128, 128, 3)]


class _Forced:
    """``with _Forced(False):`` makes ``kernels.plan`` take im2col + GEMM everywhere."""

    def __init__(self, on: bool):
        self.on = on

    def __enter__(self):
        self.saved = plan.direct_forward, plan.direct_filters
        if not self.on:
            plan.direct_forward = plan.direct_filters = lambda *a, **k: False

    def __exit__(self, *exc):
        plan.direct_forward, plan.direct_filters = self.saved


def _time(fn, on: bool, repeats: int = 3) -> float:
    with _Forced(on):
        fn()
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        return (time.perf_counter() - t0) / repeats


def main() -> None:
    rng = np.random.default_rng(0)
    print("direct conv vs im2col + GEMM (ms, median of 5 alternating windows; >1x: direct"
          " faster; * marks the path kernels.plan takes)")
    for n, h, c, co, k in SHAPES:
        x = rng.standard_normal((n, h, h, c), dtype=np.float32)
        w = rng.standard_normal((k, k, c, co), dtype=np.float32)
        gy = rng.standard_normal((n, h, h, co), dtype=np.float32)
        pads, one = ((k // 2, k // 2),) * 2, (1, 1)
        flipped = w.shape[:2] + (co, c)
        runs = {
            "forward": (partial(kc.conv_forward, x, w, one, one, 1, pads),
                        plan.direct_forward(x, w.shape, 1, w)),
            "input grad": (partial(kc.conv_backward_input, gy, w, x.shape, one, one, 1, pads),
                           plan.direct_forward(gy, flipped, 1, w)),
            "filter grad": (partial(kc.conv_backward_filter, x, gy, w.shape, one, one, 1, pads),
                            plan.direct_filters(x, gy, w.shape, 1)),
        }
        cells = []
        for name, (fn, picked) in runs.items():
            off, on = [], []
            for _ in range(5):
                off.append(_time(fn, False))
                on.append(_time(fn, True))
            a, b = statistics.median(off), statistics.median(on)
            mark = "*" if picked else " "
            cells.append(f"{name} {a * 1e3:6.2f} -> {b * 1e3:6.2f}{mark} ({a / b:4.2f}x)")
        print(f"N{n:<4d}{h:>3d}x{h:<3d}{c:>3d}->{co:<3d}k{k}  " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
