"""``make bench-peers``: dojang against Keras 3 on TensorFlow (and PyTorch), every workload.

Usage: python bench/peers.py [--peer-python .venv-peers/bin/python] [--quick]
       [--only W1,W6 or keys] [--no-pytorch] [--out DIR]

TensorFlow lives in its own virtual environment (``make bench-peers`` makes .venv-peers),
so it runs in a worker process (bench/peer_keras.py) while dojang and PyTorch run in this
one. Every framework and way of running (PyTorch's two layouts, Keras's modes, see
peer_keras.py) gets one timed window in turn, the order reversing every round, each
after the idle check of common.py (which leaves out this process and the worker), so all
see the same load. A peer's figure is its fastest layout or mode, and the table says
which. Written to DIR/<UTC time>.json too (default build/bench), with the host (ISA,
NumPy's BLAS kernel) and the versions. A benchmark, not a test: goals are 1.0x.
TensorFlow turns its oneDNN kernels on by default only on some CPUs (the table's header
says which); ``TF_ENABLE_ONEDNN_OPTS=1 make bench-peers`` times them where it does not.
"""

from __future__ import annotations

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import common  # noqa: E402  (sets the thread count before NumPy loads)
import run  # noqa: E402  (workload selection)
import workloads as wl  # noqa: E402
from peer_keras import MODES  # noqa: E402  (plain data: the module imports TF lazily)

COLUMNS = [("group", "group"), ("workload", "workload"), ("unit", "unit"),
           ("dojang", "dojang"), ("keras", "keras"), ("keras mode", "keras_mode"),
           ("pytorch", "pytorch"), ("pytorch layout", "pytorch_layout"),
           ("dojang speed / keras", lambda r: run.ratio_label(r["speed_vs_keras"])),
           ("dojang speed / pytorch", lambda r: run.ratio_label(r.get("speed_vs_pytorch"))),
           ("busy windows", run.busy_label)]


def _remote_window(worker, name: str, steps: int):
    """A window callable: ``worker`` times ``steps`` steps of ``name``."""
    return lambda: worker.ask(op="time", name=name, steps=steps)["sec"]


def measure(w, worker, steps: int, windows: int, pytorch: bool) -> dict:
    """Time ``w`` in dojang, Keras (each mode) and PyTorch (each layout); one table row."""
    local = {"dojang": wl.dojang_step(w)}
    if pytorch:
        for layout in wl.LAYOUTS:
            local[f"pytorch {layout}"] = wl.torch_step(w, layout)
    for fn in local.values():  # the warm-up; the worker warms up on build
        fn()
        fn()
    fns = {name: common.local_window(fn, steps) for name, fn in local.items()}
    for mode in MODES[w.kind]:
        worker.ask(op="build", name=f"{w.key} {mode}", spec=w.spec(), mode=mode)
        fns[f"keras {mode}"] = _remote_window(worker, f"{w.key} {mode}", steps)
    t = common.alternate(fns, windows, exclude_pids=[worker.pid])
    mode = min(MODES[w.kind], key=lambda m: t[f"keras {m}"])
    keras_s = t[f"keras {mode}"]
    row = {"key": w.key, "group": w.group, "workload": w.title, "unit": w.unit,
           "dojang": w.figure(t["dojang"]), "keras": w.figure(keras_s), "keras_mode": mode,
           "speed_vs_keras": keras_s / t["dojang"], "seconds_per_step": dict(t),
           "steps": steps, "windows": t.windows, "busy_windows": t.busy,
           "reliable": t.reliable, "idle_before_windows": t.idle}
    if pytorch:
        layout = min(wl.LAYOUTS, key=lambda lay: t[f"pytorch {lay}"])
        row.update(pytorch=w.figure(t[f"pytorch {layout}"]), pytorch_layout=layout,
                   speed_vs_pytorch=t[f"pytorch {layout}"] / t["dojang"])
    return row


def main(argv=None):
    """Start the Keras worker, run the chosen workloads, print the table, write the JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    run.add_arguments(p)
    p.add_argument("--peer-python", default=os.path.join(ROOT, ".venv-peers", "bin", "python"),
                   help="the Python that has tensorflow and keras")
    p.add_argument("--no-pytorch", dest="pytorch", action="store_false",
                   help="time dojang and Keras only")
    args = p.parse_args(argv)
    chosen = run.selected(args.only)
    if not os.path.exists(args.peer_python):
        raise SystemExit(f"no {args.peer_python}: `make bench-peers` makes the peers' venv")
    host = run.start(args, args.pytorch)
    worker = common.Worker([args.peer_python, os.path.join(HERE, "peer_keras.py")])
    try:
        peer = worker.ask(op="info")
        print(f"Keras {peer['keras']} on TensorFlow {peer['tensorflow']} (oneDNN "
              f"{'on' if peer['onednn'] else 'off'}, {peer['intra_op_threads']} intra-op "
              f"threads) from {args.peer_python}", flush=True)
        rows = []
        for w in chosen:
            rows.append(measure(w, worker, run.steps_for(w, args.quick), args.windows,
                                args.pytorch))
            print(f"  {w.title}: done", flush=True)
    finally:
        worker.close()
    columns = COLUMNS if args.pytorch else [c for c in COLUMNS if "pytorch" not in c[0]]
    run.finish(rows, columns, {"tool": "bench/peers.py", "host": host, "keras": peer,
                               "windows": args.windows, "quick": args.quick}, args.out)
    return rows


if __name__ == "__main__":
    main()
