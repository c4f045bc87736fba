"""Backends and devices: which array library holds an array, and on which device.

The backend follows the data: ``backend_of(array)`` looks the array's type up (one dict
lookup on the hot path), so nothing decides CPU or GPU at import time. Device names:

- ``"cpu"``: NumPy (``numpy_backend``);
- ``"gpu"``, ``"gpu:N"`` (aliases ``"cuda"``, ``"cuda:N"``): CuPy (``cupy_backend``),
  imported only when a CuPy array or a GPU device is asked for;
- ``"strict"``: the test-only stand-in whose arrays refuse implicit conversion to NumPy
  (``strict``); it exists only after ``dojang.backends.strict.enable()``.

Example:
    >>> import numpy as np
    >>> from dojang import backends
    >>> backends.device_of(np.zeros(2)), backends.get("cpu").name
    ('cpu', 'numpy')
    >>> backends.check_device("CPU")
    'cpu'
"""

from __future__ import annotations

from contextvars import ContextVar

import numpy as np

from dojang import settings
from dojang.backends.base import Backend
from dojang.backends.cupy_backend import CUPY, gpu_count
from dojang.backends.numpy_backend import NUMPY

# type -> its backend, or None for types that are not arrays (scalars, lists): filled on
# first sight, so each later lookup is one dict access
_BY_TYPE: dict[type, Backend | None] = {np.ndarray: NUMPY, float: None, int: None, bool: None}
_UNSEEN = object()
_BY_DEVICE: dict[str, Backend] = {"cpu": NUMPY, "gpu": CUPY}


def register(backend: Backend, array_type: type) -> None:
    """Make ``backend`` the owner of arrays of ``array_type`` and of its device name."""
    _BY_TYPE[array_type] = backend
    _BY_DEVICE[backend.device] = backend


def _lookup(array) -> Backend | None:
    """The backend of an array of a type not seen yet (remembered); None for non-arrays."""
    tp = type(array)
    if tp.__module__.startswith("cupy") and hasattr(array, "device"):
        backend = CUPY
    else:
        backend = NUMPY if isinstance(array, np.ndarray) else None
    _BY_TYPE[tp] = backend
    return backend


def backend_of(array) -> Backend:
    """The backend that owns ``array``; NumPy for anything that is not a device array
    (scalars, lists).

    Example:
        >>> import numpy as np
        >>> backend_of(np.ones(1)).name
        'numpy'
    """
    backend = _BY_TYPE.get(type(array), _UNSEEN)
    if backend is _UNSEEN:
        backend = _lookup(array)
    return backend or NUMPY


def array_module(*arrays):
    """The array module of the first device array among ``arrays`` (``numpy`` if none).

    Example:
        >>> import numpy as np
        >>> array_module(np.zeros(2), 1.0) is np
        True
    """
    for a in arrays:
        backend = _BY_TYPE.get(type(a), _UNSEEN)
        if backend is _UNSEEN:
            backend = _lookup(a)
        if backend is not None and backend is not NUMPY:
            return backend.xp
    return np


def device_of(array) -> str:
    """The device name of ``array``: ``"cpu"``, ``"gpu"``, ``"gpu:N"`` or ``"strict"``."""
    return backend_of(array).device_of(array)


def _names() -> tuple[str, ...]:
    return tuple(_BY_DEVICE) + ("gpu:N",)


def check_device(device) -> str:
    """Validate a device name and return it normalized.

    ``"cuda"`` and ``"cuda:N"`` are aliases of ``"gpu"`` and ``"gpu:N"``; ``"gpu:0"`` is
    ``"gpu"``. Case does not matter.

    Raises:
        TypeError: ``device`` is not a string.
        ValueError: an unknown name, or a GPU that CuPy does not see.
    """
    if not isinstance(device, str):
        raise TypeError(f"Expected device to be one of {_names()}. Received: device={device!r}")
    name = device.strip().lower()
    prefix, colon, index = name.partition(":")
    if prefix == "cuda":
        prefix = "gpu"
    if prefix not in _BY_DEVICE or (colon and (prefix != "gpu" or not index.isdigit())):
        raise ValueError(f"Expected device to be one of {_names()}. Received: device={device!r}")
    if prefix != "gpu":
        return prefix
    n = int(index) if colon else 0
    count = gpu_count()
    if n >= count:
        found = ("CuPy is not installed or sees no GPU. Install the extra with "
                 "`pip install dojang[gpu]`." if count == 0 else f"CuPy sees {count} GPUs.")
        raise ValueError(f"Expected a CUDA device for device={device!r}, but {found}")
    return "gpu" if n == 0 else f"gpu:{n}"


_default_device: ContextVar[str] = ContextVar("dojang_default_device", default="cpu")


def default_device() -> str:
    """The device new layers create their weights on (``"cpu"`` outside ``device``)."""
    return _default_device.get()


def device(name: str):
    """Create new layers and models on device ``name`` inside a ``with`` block.

    Layers made inside the block create their weights there and move the arrays they are
    given there; ``model.to(name)`` moves an existing model.

    Raises:
        TypeError, ValueError: as ``check_device``.

    Example:
        >>> import dojang as dj
        >>> with dj.device("cpu"):
        ...     dj.layers.Dense(2)._device
        'cpu'
    """
    return settings.scoped(_default_device, check_device(name))


def get(device: str) -> Backend:
    """The backend of a device name (validated with ``check_device``).

    Example:
        >>> get("cpu").name
        'numpy'
    """
    return _BY_DEVICE[check_device(device).partition(":")[0]]


def to_device(array, device: str):
    """``array`` on ``device``; the same array when it is already there."""
    device = check_device(device)
    return _BY_DEVICE[device.partition(":")[0]].move(array, backend_of(array), device)


def to_numpy(array) -> np.ndarray:
    """A NumPy array with the values of ``array`` (copied to the host when on a device)."""
    return backend_of(array).to_numpy(array)


def check_same_device(arrays, op: str) -> None:
    """Raise when the arrays (scalars and non-arrays aside) live on two devices.

    Called for every operation, so it compares backend objects found by type, and only
    builds the device names for the message.

    Raises:
        ValueError: naming the operation and both devices.
    """
    first = first_array = None
    for a in arrays:
        backend = _BY_TYPE.get(type(a), _UNSEEN)
        if backend is _UNSEEN:
            backend = _lookup(a)
        if backend is None:
            continue
        if first is None:
            first, first_array = backend, a
        elif backend is not first:
            raise ValueError(
                f"{op}: Expected all arrays on one device. Received: arrays on device "
                f"{device_of(first_array)!r} and on device {device_of(a)!r}; move them with "
                f"Tensor.to(device) or model.to(device) first")


__all__ = ["Backend", "array_module", "backend_of", "check_device", "check_same_device",
           "default_device", "device", "device_of", "get", "register", "to_device",
           "to_numpy"]
