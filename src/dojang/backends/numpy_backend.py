"""The NumPy backend: arrays in host memory, the reference every other backend matches.

Allocation goes through the recycler (``dojang.kernels.alloc``: large temporaries reuse
kept blocks instead of faulting fresh pages in every step) and splittable work through
the batch-splitting thread pool (``dojang.kernels.threads``). Both modules are plain
NumPy; they are imported when first used, so this module stays at the bottom of the
house.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from dojang.backends.base import Backend

_math_erf = np.frompyfunc(math.erf, 1, 1)


class NumpyBackend(Backend):
    """NumPy arrays on the CPU (device ``"cpu"``).

    Example:
        >>> from dojang import backends
        >>> b = backends.get("cpu")
        >>> b.zeros((2,), "float32")
        array([0., 0.], dtype=float32)
    """

    name = "numpy"
    device = "cpu"

    @property
    def xp(self):
        return np

    def owns(self, array) -> bool:
        return isinstance(array, np.ndarray)

    def asarray(self, x, dtype=None) -> np.ndarray:
        return np.asarray(x, dtype=dtype)

    def to_numpy(self, a) -> np.ndarray:
        return np.asarray(a)

    def from_numpy(self, a: np.ndarray, device: str | None = None) -> np.ndarray:
        return np.asarray(a)

    def erf(self, a) -> np.ndarray:
        # NumPy has no vectorized erf; math.erf (correctly rounded in practice) is mapped
        return np.asarray(_math_erf(a), dtype=a.dtype)

    def empty(self, shape, dtype) -> np.ndarray:
        from dojang.kernels import alloc

        return alloc.empty(shape, dtype)

    def zeros(self, shape, dtype) -> np.ndarray:
        from dojang.kernels import alloc

        return alloc.zeros(shape, dtype)

    def kept_bytes(self) -> int:
        from dojang.kernels import alloc

        return alloc.kept_bytes()

    def clear_kept(self) -> None:
        from dojang.kernels import alloc

        alloc.clear()

    def num_threads(self) -> int:
        from dojang.kernels import threads

        return threads.num_threads()

    def split_batch(self, fn: Callable[[slice], None], n: int, items: int) -> None:
        from dojang.kernels import threads

        threads.split_batch(fn, n, items)

    def stage(self, batches, device: str):
        """Host batches are already where the NumPy backend computes."""
        return iter(batches)


NUMPY = NumpyBackend()
