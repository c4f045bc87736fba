"""dojang against dojang: step times of two commits, alternating window by window.

Usage: python bench/ab.py OLD_REV [NEW_REV] [--windows 9] [--scale 1] [--only train32,dwsep]

PyTorch's own speed moves by up to 40% between runs on a shared machine, so a change
that must not cost speed is compared with the commit before it, not with PyTorch. Each
revision is checked out into a temporary git worktree and imported in its own worker
process (one per revision, started once, so compiled kernels are warm); the workers
then time one window each in turn, on the same workloads and the same data, and the
median over the windows is reported with the new/old ratio (above 1.0 means the new
commit is faster). NEW_REV defaults to the working tree. The workloads are those of
bench/workloads.py (``--only`` takes their keys); each window waits for an idle CPU
first, and the last column counts the windows that did not get one. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import common  # noqa: E402  (the alternating timer and the worker protocol)

# The worker imports bench/workloads.py from this tree and dojang from its revision's src.
WORKER = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import workloads

fns = {}
for line in sys.stdin:
    cmd = json.loads(line)
    if cmd["op"] == "build":
        w = workloads.Workload(**dict(cmd["spec"], shape=tuple(cmd["spec"]["shape"])))
        fn = fns[cmd["name"]] = workloads.dojang_step(w)
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


def checkout(rev: str, where: str) -> str:
    subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", where, rev],
                   check=True, capture_output=True)
    return os.path.join(where, "src")


def _window(worker, name: str, steps: int):
    """A callable that has ``worker`` time one window of ``steps`` steps of ``name``."""
    return lambda: worker.ask(op="time", name=name, steps=steps)["sec"]


def main(argv=None) -> None:
    """Start one worker per revision and print old vs new per workload."""
    import workloads as wl

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new", nargs="?", default=None)
    parser.add_argument("--windows", type=int, default=9)
    parser.add_argument("--scale", type=int, default=1, help="steps per window, times")
    parser.add_argument("--only", default=",".join(wl.BY_KEY),
                        help=f"comma-separated, of {', '.join(wl.BY_KEY)}")
    args = parser.parse_args(argv)
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
        workers = {k: common.Worker([sys.executable, "-c", WORKER, HERE],
                                    dict(os.environ, PYTHONPATH=src))
                   for k, src in (("old", old_src), ("new", new_src))}
        pids = [w.pid for w in workers.values()]
        print(f"old={args.old} new={args.new or 'working tree'}  windows={args.windows}")
        print(f"{'workload':<10} {'old ms':>9} {'new ms':>9} {'new/old speed':>14}  busy")
        for name in args.only.split(","):
            spec, steps = wl.BY_KEY[name].spec(), wl.BY_KEY[name].steps * args.scale
            for w in workers.values():
                w.ask(op="build", name=name, spec=spec)
            t = common.alternate({k: _window(w, name, steps) for k, w in workers.items()},
                                 args.windows, pids)
            print(f"{name:<10} {t['old'] * 1e3:9.2f} {t['new'] * 1e3:9.2f} "
                  f"{t['old'] / t['new']:13.3f}x  {t.busy}/{t.windows}", flush=True)
        for w in workers.values():
            w.close()
    finally:
        for tree in trees:
            subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", tree],
                           capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
