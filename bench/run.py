"""``make bench``: dojang vs PyTorch on the workloads of issues 5 and 17, printed as one table.

Usage: python bench/run.py [--quick] [--only W1,W6 or keys such as latency1] [--out DIR]
A benchmark, not a test: it reports ratios and never fails on a missed goal (every
workload's goal is 1.0x PyTorch). PyTorch runs each workload in NCHW and in
channels_last, and the faster counts; the table says which. A figure whose timed windows
were not all on an idle CPU is marked unreliable (see common.py). The table and the host
(ISA, NumPy's BLAS kernel) are also written to DIR/<UTC time>.json (default build/bench).
DOJANG_JIT=0 times dojang's NumPy kernels instead of the compiled ones (``kernels.*/numba.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import common  # noqa: E402  (sets the thread count before NumPy loads)
import workloads as wl  # noqa: E402


def ratio_label(v):
    """A speed ratio as '1.23x' (None stays None: printed as '-')."""
    return None if v is None else f"{v:.2f}x"


def busy_label(row):
    """'busy/windows' of a row, with UNRELIABLE when any window found the CPU busy."""
    if "windows" not in row:
        return None
    return f"{row['busy_windows']}/{row['windows']}" + ("" if row["reliable"] else " UNRELIABLE")


COLUMNS = [("group", "group"), ("workload", "workload"), ("unit", "unit"),
           ("dojang", "dojang"), ("pytorch", "pytorch"), ("pytorch layout", "pytorch_layout"),
           ("dojang speed / pytorch", lambda r: ratio_label(r.get("speed"))),
           ("busy windows", busy_label), ("note", "note")]


def selected(only: str) -> list:
    """The workloads named in ``only``: groups (W1) or keys (latency1), comma-separated."""
    names = {s.strip().lower() for s in only.split(",") if s.strip()}
    known = {w.group.lower() for w in wl.WORKLOADS} | {w.key for w in wl.WORKLOADS}
    if names - known:
        raise SystemExit(f"unknown workloads {sorted(names - known)}; known: "
                         f"{', '.join(w.group + ' ' + w.key for w in wl.WORKLOADS)}")
    return [w for w in wl.WORKLOADS if w.group.lower() in names or w.key in names]


def steps_for(w, quick: bool) -> int:
    """Steps per window: the workload's own, a quarter of it in a quick run."""
    return max(w.steps // 4, 1) if quick else w.steps


def measure(w, steps: int, windows: int) -> dict:
    """Time ``w`` in dojang and in both PyTorch layouts, alternating; one table row."""
    fns = {"dojang": wl.dojang_step(w)}
    for layout in wl.LAYOUTS:
        fns[f"pytorch {layout}"] = wl.torch_step(w, layout)
    t = common.time_alternating(fns, steps, windows)
    best = min(wl.LAYOUTS, key=lambda layout: t[f"pytorch {layout}"])
    return {"key": w.key, "group": w.group, "workload": w.title, "unit": w.unit,
            "dojang": w.figure(t["dojang"]), "pytorch": w.figure(t[f"pytorch {best}"]),
            "pytorch_layout": best, "speed": t[f"pytorch {best}"] / t["dojang"],
            "seconds_per_step": dict(t), "steps": steps, "windows": t.windows,
            "busy_windows": t.busy, "reliable": t.reliable, "idle_before_windows": t.idle}


def memory_row() -> dict:
    """Peak resident memory of seed-CNN training at batch 128, each framework in a fresh
    process (bench/memory.py)."""
    peaks = {}
    for fw in ("dojang", "pytorch"):
        out = subprocess.run([sys.executable, os.path.join(HERE, "memory.py"), fw],
                             capture_output=True, text=True, check=True)
        peaks[fw] = json.loads(out.stdout.strip().splitlines()[-1])["peak_mb"]
    return {"key": "memory128", "group": "W1", "workload": "seed CNN training peak memory",
            "unit": "MB", "dojang": peaks["dojang"], "pytorch": peaks["pytorch"],
            "pytorch_layout": "NCHW",
            "note": f"dojang/pytorch {peaks['dojang'] / peaks['pytorch']:.2f}x (goal <= 1.5x)"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options that run.py and peers.py share."""
    p.add_argument("--only", default="W1,W2,W3,W4,W5,W6",
                   help="comma-separated groups (W1) or workload keys (latency1)")
    p.add_argument("--windows", type=int, default=7, help="timed windows (median taken)")
    p.add_argument("--quick", action="store_true", help="fewer steps and windows: a smoke run")
    p.add_argument("--out", default=os.path.join(os.path.dirname(HERE), "build", "bench"),
                   help="folder for the JSON record")


def start(args, pytorch: bool = True) -> dict:
    """Apply ``--quick``; print and return the host facts (with PyTorch's, if used)."""
    if args.quick:
        args.windows = 3
        common.smoke_run()
    host = common.host_info()
    if pytorch:
        import torch

        host["pytorch"] = {"version": torch.__version__,
                           "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    for line in common.host_lines(host):
        print(line)
    if pytorch:
        print(f"PyTorch {host['pytorch']['version']} (kernels: "
              f"{host['pytorch']['cpu_capability']}), float32")
    print(f"median of {args.windows} windows; idle check: >= {common.IDLE_MIN:.0%} idle "
          f"over {common.IDLE_SAMPLE_S} s before each window, waiting <= "
          f"{common.IDLE_WAIT_S} s", flush=True)
    return host


def finish(rows: list, columns: list, record: dict, folder: str) -> str:
    """Print the table and the busy-window count; write ``record`` + rows as JSON."""
    busy = sum(r.get("busy_windows", 0) for r in rows)
    total = sum(r.get("windows", 0) for r in rows)
    common.print_table(rows, columns)
    print(f"busy windows: {busy} of {total}" + (
        "; figures marked UNRELIABLE were timed while other work ran" if busy else ""))
    path = common.write_json(dict(record, argv=sys.argv[1:], idle_min=common.IDLE_MIN,
                                  busy_windows=busy, total_windows=total, rows=rows), folder)
    print(f"written: {os.path.relpath(path)}")
    return path


def main(argv=None):
    """Run the chosen workloads, print the table, write the JSON record."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(p)
    args = p.parse_args(argv)
    chosen = selected(args.only)
    host = start(args)
    rows = []
    for w in chosen:
        rows.append(measure(w, steps_for(w, args.quick), args.windows))
        print(f"  {w.title}: done", flush=True)
        if w.key == "train128":
            rows.append(memory_row())
    finish(rows, COLUMNS, {"tool": "bench/run.py", "host": host, "windows": args.windows,
                           "quick": args.quick}, args.out)
    return rows


if __name__ == "__main__":
    main()
