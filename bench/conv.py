"""Benchmark: conv2d forward+backward in dojang and PyTorch, and a NumPy GEMM, in one run.

Layers (3x3, SAME, float32, with bias): the seed's Fashion-MNIST CNN (batch 128,
28x28x1 -> 32 and 14x14x32 -> 64) and a CIFAR-sized layer (batch 64, 32x32x64 -> 64).
The first layer's input gradient is not computed (as in training). Both frameworks run
with 2 threads, alternating, after a warm-up; each time is the median of ``repeats``.
GFLOP/s counts 2 FLOPs per multiply-accumulate of the GEMMs done (forward, filter
gradient and, except for the first layer, input gradient). "GEMM" is a float32 NumPy
matmul of the forward GEMM's shape, (N*OH*OW, KH*KW*C) @ (KH*KW*C, C_out), the machine's
practical limit.

Run: ``python bench/conv.py [--repeats 7]``, or ``from bench.conv import run``.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import argparse  # noqa: E402
import time  # noqa: E402

import common  # noqa: E402  (sets the thread counts before NumPy loads)
import numpy as np  # noqa: E402

THREADS = common.THREADS
LAYERS = [  # (name, N, H, W, C, C_out, needs input grad)
    ("fmnist conv1 28x28x1->32", 128, 28, 28, 1, 32, False),
    ("fmnist conv2 14x14x32->64", 128, 14, 14, 32, 64, True),
    ("cifar 32x32x64->64", 64, 32, 32, 64, 64, True),
]


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _dojang_step(x, w, b):
    import dojang as dj

    def step():
        y = dj.functional.conv2d(x, w, padding="SAME", bias=b)
        y.backward(y.detach())  # gy = y, as PyTorch's y.backward(y)

    return step


def _torch_step(x, w, b, needs_input):
    import torch
    import torch.nn.functional as F

    tx = torch.tensor(np.ascontiguousarray(x.data.transpose(0, 3, 1, 2)),
                      requires_grad=needs_input)
    tw = torch.tensor(np.ascontiguousarray(w.data.transpose(3, 2, 0, 1)), requires_grad=True)
    tb = torch.tensor(b.data, requires_grad=True)

    def step():
        y = F.conv2d(tx, tw, tb, padding=1)
        y.backward(y.detach())

    return step


def run(repeats: int = 7, warmup: int = 2, seed: int = 0, layers=None) -> list[dict]:
    """Time every layer (or those named in ``layers``); return one dict per layer."""
    import torch
    from threadpoolctl import threadpool_limits

    import dojang as dj

    torch.set_num_threads(THREADS)
    rng = np.random.default_rng(seed)
    rows = []
    with threadpool_limits(THREADS):
        for name, n, h, w_, c, cout, needs_input in LAYERS:
            if layers is not None and name not in layers:
                continue
            x = dj.Tensor(rng.standard_normal((n, h, w_, c), dtype=np.float32),
                          requires_grad=needs_input)
            w = dj.Tensor(rng.standard_normal((3, 3, c, cout), dtype=np.float32) * 0.1,
                          requires_grad=True)
            b = dj.Tensor(np.zeros(cout, np.float32), requires_grad=True)
            m, k = n * h * w_, 9 * c
            flops = 2 * m * k * cout * (3 if needs_input else 2)
            a_ = rng.standard_normal((m, k), dtype=np.float32)
            b_ = rng.standard_normal((k, cout), dtype=np.float32)
            out = np.empty((m, cout), np.float32)
            steps = {
                "dojang": _dojang_step(x, w, b),
                "torch": _torch_step(x, w, b, needs_input),
                "gemm": lambda a_=a_, b_=b_, out=out: np.matmul(a_, b_, out=out),
            }
            for fn in steps.values():
                for _ in range(warmup):
                    fn()
            times = {key: [] for key in steps}
            for _ in range(repeats):  # alternate so both see the same machine load
                for key, fn in steps.items():
                    times[key].append(_median_time(fn, 1))
            t = {key: float(np.median(v)) for key, v in times.items()}
            gemm_gflops = 2 * m * k * cout / t["gemm"] / 1e9
            dj_gflops, torch_gflops = flops / t["dojang"] / 1e9, flops / t["torch"] / 1e9
            rows.append(dict(
                layer=name, dojang_s=t["dojang"], torch_s=t["torch"], gemm_s=t["gemm"],
                dojang_gflops=dj_gflops, torch_gflops=torch_gflops, gemm_gflops=gemm_gflops,
                ratio_vs_torch=t["torch"] / t["dojang"], pct_of_gemm=100 * dj_gflops / gemm_gflops,
            ))
    return rows


def main(argv=None) -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    rows = run(repeats=args.repeats)
    print(f"{'layer':28s} {'dojang ms':>9s} {'torch ms':>9s} {'dj GF/s':>8s} {'pt GF/s':>8s} "
          f"{'GEMM GF/s':>9s} {'dj/pt':>6s} {'%GEMM':>6s}")
    for r in rows:
        print(f"{r['layer']:28s} {1e3 * r['dojang_s']:9.1f} {1e3 * r['torch_s']:9.1f} "
              f"{r['dojang_gflops']:8.1f} {r['torch_gflops']:8.1f} {r['gemm_gflops']:9.1f} "
              f"{r['ratio_vs_torch']:6.2f} {r['pct_of_gemm']:5.0f}%")


if __name__ == "__main__":
    main()
