"""``make bench``: dojang vs PyTorch on the workloads of issue 5, printed as one table.

Usage: python bench/run.py [--quick] [--only W1,W3]
A benchmark, not a test: it reports ratios and never fails on a missed goal.
DOJANG_JIT=0 times dojang's NumPy kernels instead of the compiled ones (``kernels.*/numba.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (sets the thread count before NumPy loads)
import workloads as wl  # noqa: E402


def _row(workload, metric, d, t, goal=""):
    ratio = d / t if d and t else None
    return {"workload": workload, "metric": metric, "dojang": d, "pytorch": t, "ratio": ratio,
            "goal": goal}


def train_rows(name, model, batch, shape, optimizer, goal, steps, windows):
    sec = common.time_alternating({
        "dojang": wl.dojang_train_step(model, batch, shape, optimizer),
        "pytorch": wl.torch_train_step(model, batch, shape, optimizer),
    }, steps=steps, windows=windows)
    return _row(name, f"train img/s, batch {batch}", batch / sec["dojang"],
                batch / sec["pytorch"], goal)


def w1(args):
    rows = [train_rows("W1 seed CNN", "fashion_cnn", 32, (28, 28, 1), "adam", ">= 0.9x",
                       args.steps * 4, args.windows),
            train_rows("W1 seed CNN", "fashion_cnn", 128, (28, 28, 1), "adam", ">= 1.0x",
                       args.steps, args.windows)]
    sec = common.time_alternating({
        "dojang": wl.dojang_inference("fashion_cnn", 1000, (28, 28, 1)),
        "pytorch": wl.torch_inference("fashion_cnn", 1000, (28, 28, 1)),
    }, steps=1, windows=args.windows)
    rows.append(_row("W1 seed CNN", "inference img/s, batch 1000", 1000 / sec["dojang"],
                     1000 / sec["pytorch"], ">= 1.0x"))
    rows += memory_rows(args)
    return rows


def w2(args):
    return [train_rows("W2 LeNet-5", "lenet5", 64, (28, 28, 1), "sgd", "", args.steps * 2,
                       args.windows)]


def w3(args):
    import conv

    (r,) = conv.run(repeats=args.windows * 2 + 1, layers=["cifar 32x32x64->64"])
    return [_row("W3 conv 64x32x32x64", "fwd+bwd GFLOP/s", r["dojang_gflops"],
                 r["torch_gflops"], "info"),
            {"workload": "W3 conv 64x32x32x64", "metric": "share of NumPy GEMM GFLOP/s",
             "dojang": r["pct_of_gemm"] / 100, "pytorch": r["torch_gflops"] / r["gemm_gflops"],
             "ratio": None, "goal": f">= 0.70 (GEMM {r['gemm_gflops']:.1f} GFLOP/s)"}]


def w4(args):
    return [train_rows("W4 ResNet-20", "resnet20", 128, (32, 32, 3), "sgd", ">= 0.8x",
                       max(args.steps // 2, 1), args.windows)]


def memory_rows(args):
    peaks = {}
    for fw in ("dojang", "pytorch"):
        out = subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__),
                                                           "memory.py"), fw],
                             capture_output=True, text=True, check=True)
        peaks[fw] = json.loads(out.stdout.strip().splitlines()[-1])
    d, t = peaks["dojang"]["peak_mb"], peaks["pytorch"]["peak_mb"]
    return [{"workload": "W1 seed CNN", "metric": "peak RSS MB, train batch 128 (ratio d/t)",
             "dojang": d, "pytorch": t, "ratio": d / t, "goal": "<= 1.5x"}]


WORKLOADS = {"W1": w1, "W2": w2, "W3": w3, "W4": w4}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default="W1,W2,W3,W4", help="comma-separated workloads")
    p.add_argument("--steps", type=int, default=8, help="steps per timed window (base)")
    p.add_argument("--windows", type=int, default=7, help="timed windows (median taken)")
    p.add_argument("--quick", action="store_true", help="fewer steps, for a smoke run")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.windows = 2, 3
    rows = []
    for key in args.only.split(","):
        rows += WORKLOADS[key.strip().upper()](args)
    import torch

    print(f"dojang vs PyTorch {torch.__version__}, {common.THREADS} threads, float32, "
          f"median of {args.windows} windows")
    common.print_table(rows)
    return rows


if __name__ == "__main__":
    main()
