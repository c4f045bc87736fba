"""Direct convolution (``kernels.conv.direct``) against im2col + GEMM, per layer shape.

For each shape: forward, input gradient and filter gradient, each timed with the direct
kernels on and off (alternating, median of 5), and which path ``kernels.plan`` picks.
The marks show the rules alone: in training, a forward whose filter gradient stays on
im2col keeps im2col too (its columns serve both passes).

``--calibrate`` measures this host's row of ``kernels.plan.ISA_TABLES`` and prints it, in
CPU seconds per call (``BENCH_THREADS=1 NUMBA_NUM_THREADS=1`` make that contention-proof:
a loaded machine slows OpenBLAS's threads far more than the direct kernels' in wall time):
each forward and filter tile of the host's ISA family against the first (alternating, on
rows that every tile divides, so that no padding counts), and where the direct kernels
stop beating im2col + GEMM by 5%: the largest C_out (forward), C_in * C_out (filter gradient)
and block of filters (forward at C_out = 64, C_in growing) up to which direct was faster
every time.

Usage: python bench/direct.py [--calibrate]
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import time
from functools import partial

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (sets the thread count before NumPy loads)
import numpy as np  # noqa: E402

from dojang.kernels import compile, isa, plan  # noqa: E402
from dojang.kernels.conv import direct  # noqa: E402
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


def _layer(n, h, c, co):
    """x, w, gy, y of a 3x3 'same' layer."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, h, h, c), dtype=np.float32)
    w = rng.standard_normal((3, 3, c, co), dtype=np.float32)
    gy = rng.standard_normal((n, h, h, co), dtype=np.float32)
    return x, w, gy, np.empty_like(gy)


_SAME = ((1, 1), (1, 1)), (1, 1)


def _tile_speeds(tiles, forward: bool) -> list[float]:
    """Each tile's speed relative to the first, on a layer whose width every tile's R
    (forward) or C_in every tile's RC (filter gradient) divides."""
    lcm_r, lcm_b = math.lcm(*(t[0] for t in tiles)), math.lcm(*(t[1] for t in tiles))
    pads, one = _SAME
    if forward:
        x, w, _, y = _layer(64, lcm_r * max(1, 16 // lcm_r), 32, lcm_b)
        fns = {t: partial(direct.forward, x, w, y, one, one, pads, tile=t) for t in tiles}
    else:
        x, w, gy, _ = _layer(64, 16, lcm_r * max(1, 16 // lcm_r), lcm_b)
        fns = {t: partial(direct.filters, x, gy, w.shape, one, one, pads, tile=t)
               for t in tiles}
    times = common.time_alternating(fns, steps=2, windows=9, clock=time.process_time)
    return [round(times[tiles[0]] / times[t], 2) for t in tiles]


# Direct must beat im2col + GEMM by this much to take a shape: closer calls are within
# the noise of one calibration, and im2col's kept columns may serve the filter gradient.
_MARGIN = 1.05


def _direct_wins(cases, run) -> object:
    """The last case's key up to which the direct kernel beat im2col + GEMM by
    ``_MARGIN`` every time (``run(case, on)`` runs one; None when it lost the first)."""
    best = None
    for key, case in cases:
        times = common.time_alternating({on: partial(run, case, on) for on in (False, True)},
                                        steps=1, windows=7, clock=time.process_time)
        print(f"  {key}: direct {times[False] / times[True]:.2f}x im2col", flush=True)
        if times[True] * _MARGIN > times[False]:
            break
        best = key
    return best


def _forward(case, on: bool) -> None:
    x, w, _, y = case
    pads, one = _SAME
    if on:
        direct.forward(x, w, y, one, one, pads)
    else:
        with _Forced(False):
            kc.conv_forward(x, w, one, one, 1, pads)


def _filters(case, on: bool) -> None:
    x, w, gy, _ = case
    pads, one = _SAME
    if on:
        direct.filters(x, gy, w.shape, one, one, pads)
    else:
        with _Forced(False):
            kc.conv_backward_filter(x, gy, w.shape, one, one, 1, pads)


def calibrate() -> None:
    """Measure and print this host's ``IsaTable`` (see the module docstring)."""
    family = isa.family()
    t = plan.table()
    print(f"calibrating {family!r} ({common.THREADS} BLAS threads, "
          f"{compile.threads()} numba threads; CPU seconds)", flush=True)
    forward = [f[:2] for f in t.forward]
    speeds = _tile_speeds(forward, True)
    filters = sorted(t.filters, key=dict(zip(t.filters, _tile_speeds(t.filters, False),
                                             strict=True)).get, reverse=True)
    print("forward C_out (C_in = 32, 16x16, batch 128):")
    c_out = _direct_wins([(co, _layer(128, 16, 32, co)) for co in (16, 32, 64, 128)], _forward)
    print("filter gradient C_in * C_out (16x16, batch 128):")
    cc = _direct_wins([(ci * co, _layer(128, 16, ci, co)) for ci, co in
                       ((16, 16), (16, 32), (32, 32), (32, 64), (64, 64))], _filters)
    smallest = min(b for _, b in forward)
    print(f"forward block of {smallest} channels' filters, bytes (C_out = 64, 8x8, "
          "batch 128):")
    block = _direct_wins([(9 * ci * smallest * 4, _layer(128, 8, ci, 64))
                          for ci in (32, 64, 96, 128, 192)], _forward)
    host = common.host_info()["cpu"]
    print(f'''    "{family}": IsaTable(
        forward={tuple((r, b, s) for (r, b), s in zip(forward, speeds, strict=True))},
        filters={tuple(filters)}, max_c_out={c_out},
        max_single_channel={t.max_single_channel},  # the table's: not calibrated here
        max_filter_cc={cc}, max_block_bytes={block},
        source="measured: bench/direct.py --calibrate on {host}, {time.strftime('%Y-%m-%d')}"),''')


if __name__ == "__main__":
    calibrate() if "--calibrate" in sys.argv[1:] else main()
