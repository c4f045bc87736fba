"""The CuPy backend: arrays in the memory of an NVIDIA GPU.

CuPy is imported on first use (it is an optional extra, ``pip install dojang[gpu]``);
this module imports without it, and the backend is chosen only when a CuPy array or a
``"gpu"`` device is asked for. CuPy's own memory pool plays the recycler's part.
Device names: ``"gpu"`` is GPU 0, ``"gpu:N"`` GPU N.
"""

from __future__ import annotations

import os

import numpy as np

from dojang.backends.base import Backend


def load_cupy():
    """The ``cupy`` module, or None when it is not installed.

    With ``DOJANG_GPU_TF32=1`` CuPy is told (before it loads: it reads ``CUPY_TF32`` then)
    to run float32 GEMMs on TF32 tensor cores. Off by default: float32 results then agree
    with the CPU's to float32 rounding.
    """
    from dojang import settings

    if settings.GPU_TF32:
        os.environ.setdefault("CUPY_TF32", "1")
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

    def stage(self, batches, device: str):  # pragma: no cover - needs a GPU
        """Yield batches on the GPU, copying batch k+1 while batch k computes.

        Each host array is copied into pinned (page-locked) memory, from which the DMA
        engine copies it on a second, non-blocking stream; the compute stream waits on
        that copy's event only when the batch is handed out. The pinned buffers of a
        batch stay referenced until its copy is done.
        """
        import cupyx

        cp = load_cupy()
        with cp.cuda.Device(_index(device)):
            copier = cp.cuda.Stream(non_blocking=True)

            def upload(batch):
                out, keep = [], []
                with copier:
                    for a in batch:
                        if a is None:
                            out.append(None)
                            continue
                        a = np.ascontiguousarray(a)
                        host = cupyx.empty_pinned(a.shape, a.dtype)
                        host[...] = a
                        dev = cp.empty(a.shape, a.dtype)
                        dev.set(host, stream=copier)
                        out.append(dev)
                        keep.append(host)
                    done = copier.record()
                return tuple(out), done, keep

            pending = None
            for batch in batches:
                ready, pending = pending, upload(batch)
                if ready is not None:
                    cp.cuda.get_current_stream().wait_event(ready[1])
                    yield ready[0]
            if pending is not None:
                cp.cuda.get_current_stream().wait_event(pending[1])
                yield pending[0]

    def move(self, array, source: Backend, device: str):  # pragma: no cover - needs a GPU
        if source is self:
            if self.device_of(array) == device:
                return array
            cp = load_cupy()
            with cp.cuda.Device(_index(device)):
                return cp.asarray(array)  # a peer copy, not through the host
        return super().move(array, source, device)


CUPY = CupyBackend()
