"""Peak resident memory of W1 training (batch 128) in a fresh process for one framework.

Usage: python bench/memory.py dojang|pytorch [steps]; prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402,F401  (thread settings)


def _peak_mb() -> float:
    """Peak resident memory of this process (VmHWM; unlike ru_maxrss, not inherited from
    the parent that forked us)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def main():
    fw = sys.argv[1]
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    import workloads as wl

    make = wl.dojang_train_step if fw == "dojang" else wl.torch_train_step
    base = _peak_mb()
    step = make("fashion_cnn", 128, (28, 28, 1), "adam")
    for _ in range(steps):
        step()
    peak = _peak_mb()
    print(json.dumps({"framework": fw, "peak_mb": peak, "after_import_mb": base}))


if __name__ == "__main__":
    main()
