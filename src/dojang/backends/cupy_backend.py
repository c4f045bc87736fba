"""The CuPy backend: arrays in the memory of an NVIDIA GPU.

CuPy is imported on first use (it is an optional extra, ``pip install dojang[gpu]``);
this module imports without it, and the backend is chosen only when a CuPy array or a
``"gpu"`` device is asked for. CuPy's own memory pool plays the recycler's part.
Device names: ``"gpu"`` is GPU 0, ``"gpu:N"`` GPU N.
"""

from __future__ import annotations

import numpy as np

from dojang.backends.base import Backend


def load_cupy():
    """The ``cupy`` module, or None when it is not installed."""
    try:
        import cupy
    except ImportError:
        return None
    return cupy


def gpu_count() -> int:
    """Number of CUDA devices CuPy sees (0 without CuPy or a driver)."""
    cp = load_cupy()
    if cp is None:
        return 0
    try:  # pragma: no cover - needs a GPU
        return int(cp.cuda.runtime.getDeviceCount())
    except Exception:  # pragma: no cover - driver missing
        return 0


def _index(device: str | None) -> int:
    _, _, n = (device or "gpu").partition(":")
    return int(n) if n else 0


class CupyBackend(Backend):
    """CuPy arrays on a CUDA device (``"gpu"`` or ``"gpu:N"``)."""

    name = "cupy"
    device = "gpu"

    @property
    def xp(self):
        return load_cupy()

    def owns(self, array) -> bool:
        return type(array).__module__.startswith("cupy")

    def device_of(self, array) -> str:  # pragma: no cover - needs a GPU
        n = array.device.id
        return "gpu" if n == 0 else f"gpu:{n}"

    def to_numpy(self, a) -> np.ndarray:  # pragma: no cover - needs a GPU
        return a.get()

    def from_numpy(self, a, device: str | None = None):  # pragma: no cover - needs a GPU
        cp = load_cupy()
        with cp.cuda.Device(_index(device)):
            return cp.asarray(a)

    def erf(self, a):  # pragma: no cover - needs a GPU
        from cupyx.scipy.special import erf

        return erf(a)

    def move(self, array, source: Backend, device: str):  # pragma: no cover - needs a GPU
        if source is self:
            if self.device_of(array) == device:
                return array
            cp = load_cupy()
            with cp.cuda.Device(_index(device)):
                return cp.asarray(array)  # a peer copy, not through the host
        return super().move(array, source, device)


CUPY = CupyBackend()
