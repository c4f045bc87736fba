"""Benchmark: conv2d forward+backward in dojang and PyTorch, and a NumPy GEMM, in one run.

Layers (3x3, SAME, float32, with bias): the seed's Fashion-MNIST CNN (batch 128,
28x28x1 -> 32 and 14x14x32 -> 64) and a CIFAR-sized layer (batch 64, 32x32x64 -> 64).
The first layer's input gradient is not computed (as in training). All run with 2
threads, alternating window by window after a warm-up (common.time_alternating, with its
idle check); each time is the median of ``repeats`` windows. PyTorch runs in NCHW and in
channels_last, and the faster counts. GFLOP/s counts 2 FLOPs per multiply-accumulate of
the GEMMs done (forward, filter gradient and, except for the first layer, input
gradient). "GEMM" is a float32 NumPy matmul of the forward GEMM's shape,
(N*OH*OW, KH*KW*C) @ (KH*KW*C, C_out), the machine's practical limit.

Run: ``python bench/conv.py [--repeats 7] [--quick]``.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import argparse  # noqa: E402

import common  # noqa: E402  (sets the thread counts before NumPy loads)
import numpy as np  # noqa: E402
import workloads as wl  # noqa: E402

LAYERS = [  # (name, N, H, W, C, C_out, needs input grad)
    ("fmnist conv1 28x28x1->32", 128, 28, 28, 1, 32, False),
    ("fmnist conv2 14x14x32->64", 128, 14, 14, 32, 64, True),
    ("cifar 32x32x64->64", 64, 32, 32, 64, 64, True),
]


def run(repeats: int = 7, warmup: int = 2, seed: int = 0, layers=None) -> list[dict]:
    """Time every layer (or those named in ``layers``); return one dict per layer."""
    rng = np.random.default_rng(seed)
    rows = []
    for name, n, h, w_, c, cout, needs_input in LAYERS:
        if layers is not None and name not in layers:
            continue
        x, k, b = common.conv_data(n, (h, w_, c), cout, seed)
        m, kk = n * h * w_, 9 * c
        flops = 2 * m * kk * cout * (3 if needs_input else 2)
        a_ = rng.standard_normal((m, kk), dtype=np.float32)
        b_ = rng.standard_normal((kk, cout), dtype=np.float32)
        out = np.empty((m, cout), np.float32)
        steps = {"dojang": wl.dojang_conv_step(x, k, b, needs_input),
                 "gemm": lambda a_=a_, b_=b_, out=out: np.matmul(a_, b_, out=out)}
        for layout in wl.LAYOUTS:
            steps[layout] = wl.torch_conv_step(x, k, b, needs_input, layout)
        t = common.time_alternating(steps, 1, repeats, warmup)
        best = min(wl.LAYOUTS, key=t.get)
        gemm_gflops = 2 * m * kk * cout / t["gemm"] / 1e9
        dj_gflops, torch_gflops = flops / t["dojang"] / 1e9, flops / t[best] / 1e9
        rows.append(dict(
            layer=name, dojang_s=t["dojang"], torch_s=t[best], torch_layout=best,
            gemm_s=t["gemm"], dojang_gflops=dj_gflops, torch_gflops=torch_gflops,
            gemm_gflops=gemm_gflops, ratio_vs_torch=t[best] / t["dojang"],
            pct_of_gemm=100 * dj_gflops / gemm_gflops, busy=f"{t.busy}/{t.windows}",
        ))
    return rows


def main(argv=None) -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="3 repeats: a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats = 3
        common.smoke_run()
    for line in common.host_lines(common.host_info()):
        print(line)
    rows = run(repeats=args.repeats)
    print(f"{'layer':28s} {'dojang ms':>9s} {'torch ms':>9s} {'dj GF/s':>8s} {'pt GF/s':>8s} "
          f"{'GEMM GF/s':>9s} {'dj/pt':>6s} {'%GEMM':>6s}  torch layout   busy")
    for r in rows:
        print(f"{r['layer']:28s} {1e3 * r['dojang_s']:9.1f} {1e3 * r['torch_s']:9.1f} "
              f"{r['dojang_gflops']:8.1f} {r['torch_gflops']:8.1f} {r['gemm_gflops']:9.1f} "
              f"{r['ratio_vs_torch']:6.2f} {r['pct_of_gemm']:5.0f}%  {r['torch_layout']:<13s}  "
              f"{r['busy']}")


if __name__ == "__main__":
    main()
