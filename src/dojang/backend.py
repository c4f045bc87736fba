"""The array-module facade: what kernels and ops ask about their arrays.

A thin layer over ``dojang.backends`` (the backend objects, device names and moves):
every kernel starts with ``xp = get_array_module(x)``, so the same code runs on NumPy,
CuPy and the test-only strict device. Nothing here decides CPU or GPU at import time.
"""

from __future__ import annotations

from dojang.backends import array_module, check_device, device_of, to_device, to_numpy
from dojang.backends.cupy_backend import gpu_count


def gpu_available() -> bool:
    """Return True when CuPy is installed and sees at least one CUDA device."""
    return gpu_count() > 0


get_array_module = array_module  # every kernel's first line: xp = get_array_module(x)


def all_finite(a) -> bool:
    """True when array ``a`` has no NaN or infinity: its sum is finite (one reduction, no
    temporary; a finite array whose sum overflows only reads as not finite, which sends
    the caller down its general path)."""
    return bool(get_array_module(a).isfinite(a.sum()))


__all__ = ["all_finite", "check_device", "device_of", "get_array_module", "gpu_available",
           "to_device", "to_numpy"]
