"""Run dojang's CUDA kernels on the CPU: the same source, compiled by g++ under a shim.

The kernels (``dojang.kernels.cuda.source``) use no shared memory, atomics or
synchronisation: each thread computes its own outputs in a grid-stride loop. So running
every (block, thread) of a launch one after another on the host computes exactly what
the GPU computes, and the kernels' index arithmetic can be tested against the NumPy
reference without a GPU. ``HostEngine`` has the interface of ``engine.CupyEngine``
(NumPy as ``xp``); a deliberately small grid makes every thread loop several times.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess

import numpy as np

from dojang.kernels.cuda import source

SHIM = """
#include <cmath>
#define DJ_INF HUGE_VAL
#define __global__
using std::exp; using std::log; using std::sqrt;
struct dim3_ { long long x; };
static dim3_ blockIdx, threadIdx, blockDim, gridDim;
"""

_CTYPES = {"long long": ctypes.c_longlong, "int": ctypes.c_int, "float": ctypes.c_float,
           "double": ctypes.c_double}


def compiler() -> str | None:
    """The host C++ compiler, or None when the machine has none."""
    return shutil.which(os.environ.get("CXX", "g++"))


def _launcher(k) -> str:
    params = ", ".join(f"{c} {n}" for c, n in k.params)
    names = ", ".join(n for _, n in k.params)
    return (f'extern "C" void launch_{k.name}(long long grid, long long block, {params}) {{\n'
            "    gridDim.x = grid; blockDim.x = block;\n"
            "    for (long long dj_b = 0; dj_b < grid; ++dj_b)\n"
            "        for (long long dj_t = 0; dj_t < block; ++dj_t) {\n"
            f"            blockIdx.x = dj_b; threadIdx.x = dj_t; {k.name}({names});\n"
            "        }\n}\n")


class HostEngine:
    """Compiles the given kernels into one shared library and launches them serially."""

    xp = np

    def __init__(self, kernels, build_dir: str, grid: int = 3, block: int = 5):
        text = SHIM + "".join(k.source + _launcher(k) for k in kernels)
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        lib = os.path.join(build_dir, f"dojang_cuda_host_{digest}.so")
        if not os.path.exists(lib):
            src = lib[:-3] + ".cpp"
            with open(src, "w") as f:
                f.write(text)
            done = subprocess.run([compiler(), "-O1", "-shared", "-fPIC", "-o", lib, src],
                                  capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"g++ failed on {src}:\n{done.stderr[-3000:]}")
        self.lib = ctypes.CDLL(lib)
        self.grid, self.block = grid, block
        self.launches = []

    def launch(self, kernel, total: int, args) -> None:
        fn = getattr(self.lib, f"launch_{kernel.name}")
        converted = [ctypes.c_longlong(self.grid), ctypes.c_longlong(self.block)]
        for (ctype, name), a in zip(kernel.params, args, strict=True):
            if ctype.endswith("*"):
                if not isinstance(a, np.ndarray):
                    raise TypeError(f"{kernel.name}: parameter {name} needs an array")
                converted.append(ctypes.c_void_p(a.ctypes.data))
            else:
                converted.append(_CTYPES[ctype](a))
        self.launches.append(kernel.name)
        fn(*converted)


def every_kernel():
    return source.every_kernel()
