"""Compile and launch the kernels of ``source``: CuPy's ``RawKernel`` on a GPU.

An engine has an array module ``xp`` and ``launch(kernel, total, args)``. Arguments are
converted from the kernel's parameter list: arrays are passed as device pointers (a
view's own start, so strided views work where the kernel takes strides), integers as
``long long`` or ``int`` and scalars in the kernel's float type. ``ops`` asks
``engine_for(array)`` which engine owns an array; tests can put another engine in scope
with ``use(engine)`` (``tests/cuda_host.py`` runs the same sources on the CPU).
"""

from __future__ import annotations

from contextvars import ContextVar

import numpy as np

from dojang import settings
from dojang.kernels.cuda import launch as _launch

_SCALARS = {"long long": np.int64, "int": np.int32, "float": np.float32, "double": np.float64}
_override: ContextVar = ContextVar("dojang_cuda_engine", default=None)


def scalar(ctype: str, value):
    """``value`` as the NumPy scalar of C type ``ctype`` (a pointer parameter: None)."""
    if ctype.endswith("*"):
        return None
    return _SCALARS[ctype](value)


class CupyEngine:
    """Compiles each kernel once per process (NVRTC through ``cupy.RawKernel``)."""

    def __init__(self):
        import cupy

        self.xp = cupy
        self._kernels = {}
        device = cupy.cuda.Device()
        self.multiprocessors = device.attributes["MultiProcessorCount"]

    def launch(self, kernel, total: int, args) -> None:
        fn = self._kernels.get(kernel.name)
        if fn is None:
            fn = self._kernels[kernel.name] = self.xp.RawKernel(
                kernel.source, kernel.name, options=("--std=c++14",))
        converted = tuple(a if ctype.endswith("*") else scalar(ctype, a)
                          for (ctype, _), a in zip(kernel.params, args, strict=True))
        blocks = _launch.grid(total, self.multiprocessors)
        fn((blocks,), (_launch.BLOCK,), converted)


_cupy_engine: list = []


def engine_for(array):
    """The engine in scope (``use``), else CuPy's for a CuPy array.

    Raises:
        TypeError: for an array no engine owns (a NumPy array outside ``use``).
    """
    override = _override.get()
    if override is not None:
        return override
    if type(array).__module__.startswith("cupy"):
        if not _cupy_engine:
            _cupy_engine.append(CupyEngine())
        return _cupy_engine[0]
    raise TypeError(f"Expected a CuPy array for a CUDA kernel. Received: "
                    f"{type(array).__name__}")


def use(engine):
    """Run the CUDA kernels on ``engine`` inside a ``with`` block (tests: the host shim)."""
    return settings.scoped(_override, engine)
