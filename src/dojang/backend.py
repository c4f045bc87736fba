"""Array backends: NumPy on the CPU, CuPy on an NVIDIA GPU.

The backend follows the data: every kernel asks ``get_array_module(x)`` for the module
that owns its arrays. Nothing here decides CPU or GPU at import time; CuPy is imported
only when a GPU array or device is asked for.
"""

from __future__ import annotations

import numpy as np

_DEVICES = ("cpu", "gpu")


def _cupy():
    try:
        import cupy
    except ImportError:  # pragma: no cover - depends on the machine
        return None
    return cupy


def gpu_available() -> bool:
    """Return True when CuPy is installed and sees at least one CUDA device."""
    cp = _cupy()
    if cp is None:
        return False
    try:  # pragma: no cover - needs a GPU
        return cp.cuda.runtime.getDeviceCount() > 0
    except Exception:  # pragma: no cover - driver missing
        return False


def get_array_module(*arrays):
    """Return ``cupy`` if any argument is a CuPy array, else ``numpy``.

    Example:
        >>> import numpy as np
        >>> get_array_module(np.zeros(2)) is np
        True
    """
    for a in arrays:
        mod = type(a).__module__
        if mod.startswith("cupy"):
            return _cupy()
    return np


def device_of(array) -> str:
    """Return ``"gpu"`` for a CuPy array and ``"cpu"`` otherwise."""
    return "gpu" if get_array_module(array) is not np else "cpu"


def check_device(device) -> str:
    """Validate a device name and return it normalized (``"cpu"`` or ``"gpu"``)."""
    if not isinstance(device, str):
        raise TypeError(f"Expected device to be one of {_DEVICES}. Received: device={device!r}")
    name = device.lower()
    if name in ("cuda", "gpu") or name.startswith("cuda:"):
        name = "gpu"
    if name not in _DEVICES:
        raise ValueError(f"Expected device to be one of {_DEVICES}. Received: device={device!r}")
    if name == "gpu" and not gpu_available():
        raise ValueError(
            "Expected a CUDA device for device='gpu', but CuPy is not installed or sees no GPU. "
            "Install the extra with `pip install dojang[gpu]`."
        )
    return name


def to_device(array, device: str):
    """Return ``array`` on ``device`` (copying only when it lives elsewhere)."""
    device = check_device(device)
    if device == "cpu":
        return to_numpy(array)
    cp = _cupy()  # pragma: no cover - needs a GPU
    return cp.asarray(array)  # pragma: no cover


def to_numpy(array) -> np.ndarray:
    """Return a NumPy array holding the same values (copies from the GPU if needed)."""
    if get_array_module(array) is not np:  # pragma: no cover - needs a GPU
        return array.get()
    return np.asarray(array)


def all_finite(a) -> bool:
    """True when array ``a`` has no NaN or infinity: its sum is finite (one reduction, no
    temporary; a finite array whose sum overflows only reads as not finite, which sends
    the caller down its general path)."""
    return bool(get_array_module(a).isfinite(a.sum()))
