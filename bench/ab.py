"""dojang against dojang: step times of two commits, alternating window by window.

Usage: python bench/ab.py OLD_REV [NEW_REV] [--windows 9] [--only train32,resnet20]

PyTorch's own speed moves by up to 40% between runs on a shared machine, so a change
that must not cost speed is compared with the commit before it, not with PyTorch. Each
revision is checked out into a temporary git worktree and imported in its own worker
process (one per revision, started once, so compiled kernels are warm); the workers
then time one window each in turn, on the same workloads and the same data, and the
median over the windows is reported with the new/old ratio (above 1.0 means the new
commit is faster). NEW_REV defaults to the working tree. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# name -> (model, batch, input shape, optimizer or None for inference, steps per window)
WORKLOADS = {
    "train32": ("fashion_cnn", 32, (28, 28, 1), "adam", 40),
    "train128": ("fashion_cnn", 128, (28, 28, 1), "adam", 12),
    "infer1000": ("fashion_cnn", 1000, (28, 28, 1), None, 4),
    "infer1": ("fashion_cnn", 1, (28, 28, 1), None, 400),
    "lenet64": ("lenet5", 64, (28, 28, 1), "sgd", 40),
    "resnet20": ("resnet20", 128, (32, 32, 3), "sgd", 2),
}

WORKER = r"""
import json, sys, time
import numpy as np
import dojang as dj
from dojang import zoo

def build(model_name, batch, shape, optimizer):
    dj.random.set_seed(0)
    model = zoo.get(model_name, input_shape=tuple(shape))
    rng = np.random.default_rng(0)
    x = rng.random((batch, *shape), dtype=np.float32)
    y = rng.integers(0, 10, size=batch)
    if optimizer is None:
        return lambda: model.predict(x, batch_size=batch, verbose=0)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    return lambda: model.train_step(x, y)

fns = {}
for line in sys.stdin:
    cmd = json.loads(line)
    if cmd["op"] == "build":
        fn = fns[cmd["name"]] = build(*cmd["args"])
        for _ in range(2):
            fn()
        print(json.dumps({"ok": True}), flush=True)
    else:
        fn, steps = fns[cmd["name"]], cmd["steps"]
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        print(json.dumps({"sec": (time.perf_counter() - t0) / steps}), flush=True)
"""


class Worker:
    """One process importing dojang from ``src``; answers build and time requests."""

    def __init__(self, src: str):
        env = dict(os.environ, PYTHONPATH=src)
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER], env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def ask(self, **cmd) -> dict:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("benchmark worker died")
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def checkout(rev: str, where: str) -> str:
    subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", where, rev],
                   check=True, capture_output=True)
    return os.path.join(where, "src")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new", nargs="?", default=None)
    parser.add_argument("--windows", type=int, default=9)
    parser.add_argument("--only", default=",".join(WORKLOADS))
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
    tmp = tempfile.mkdtemp(prefix="dojang-ab-")
    trees = []
    try:
        old_src = checkout(args.old, os.path.join(tmp, "old"))
        trees.append(os.path.join(tmp, "old"))
        if args.new is None:
            new_src = os.path.join(ROOT, "src")
        else:
            new_src = checkout(args.new, os.path.join(tmp, "new"))
            trees.append(os.path.join(tmp, "new"))
        workers = {"old": Worker(old_src), "new": Worker(new_src)}
        print(f"old={args.old} new={args.new or 'working tree'}  windows={args.windows}")
        print(f"{'workload':<10} {'old ms':>9} {'new ms':>9} {'new/old speed':>14}")
        for name in args.only.split(","):
            model, batch, shape, opt, steps = WORKLOADS[name]
            for w in workers.values():
                w.ask(op="build", name=name, args=[model, batch, list(shape), opt])
            samples = {k: [] for k in workers}
            for i in range(args.windows):
                order = list(workers) if i % 2 == 0 else list(reversed(workers))
                for k in order:
                    samples[k].append(workers[k].ask(op="time", name=name, steps=steps)["sec"])
            old, new = (statistics.median(samples[k]) for k in ("old", "new"))
            print(f"{name:<10} {old * 1e3:9.2f} {new * 1e3:9.2f} {old / new:13.3f}x",
                  flush=True)
        for w in workers.values():
            w.close()
    finally:
        for tree in trees:
            subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", tree],
                           capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
