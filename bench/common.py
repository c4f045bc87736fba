"""Shared harness of the benchmarks: thread settings, alternating timing, table printing.

dojang and PyTorch are timed in the same process, alternating window by window, so both
see the same machine load. Each figure is the median over the timed windows.
"""

from __future__ import annotations

import os
import statistics
import time

THREADS = int(os.environ.get("BENCH_THREADS", "2"))
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = str(THREADS)
# OpenBLAS keeps its worker threads spinning for a long while after each GEMM; in an
# alternating run that spin steals the next PyTorch window's cores. A short spin is fair
# to both (and makes dojang itself faster too).
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")


def torch_setup():
    import torch

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    return torch


def time_alternating(fns: dict, steps: int, windows: int = 5, warmup: int = 2,
                     sync=None, clock=time.perf_counter) -> dict:
    """Time each callable ``steps`` times per window, alternating; return median seconds/step.

    ``sync``: called after the warm-up and to end each window (a GPU's device
    synchronisation, so that queued work is inside the window that launched it).
    ``clock``: ``time.process_time`` counts this process's CPU seconds instead of wall
    seconds (on one thread, what other processes' load changes least).
    """
    sync = sync or (lambda: None)
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync()
    samples = {name: [] for name in fns}
    for _ in range(windows):
        for name, fn in fns.items():
            t0 = clock()
            for _ in range(steps):
                fn()
            sync()
            samples[name].append((clock() - t0) / steps)
    return {name: statistics.median(v) for name, v in samples.items()}


def print_table(rows: list[dict], print_fn=print) -> str:
    """Rows of {workload, metric, dojang, pytorch, ratio, note} as an aligned table."""
    header = ("workload", "metric", "dojang", "pytorch", "dojang/pytorch", "goal")
    lines = [header]
    for r in rows:
        lines.append((r["workload"], r["metric"], _fmt(r.get("dojang")), _fmt(r.get("pytorch")),
                      _fmt(r.get("ratio"), "x"), r.get("goal", "")))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    out = []
    for j, line in enumerate(lines):
        out.append("  ".join(str(c).ljust(w) for c, w in zip(line, widths)))
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    text = "\n".join(out)
    print_fn(text)
    return text


def _fmt(v, suffix=""):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    return f"{v:,.2f}{suffix}" if v < 100 else f"{v:,.0f}{suffix}"
