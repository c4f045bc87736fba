"""The ``Backend`` interface: what dojang needs from an array library and its device.

A backend owns one kind of array: its array module (``xp``: ``numpy``, ``cupy`` or the
strict stand-in's namespace), moves to and from the host, allocation (with the recycler
where the backend has one) and the threads splittable work may use. Everything above asks
the data for its backend (``dojang.backends.backend_of(array)``), so no import-time global
decides CPU or GPU.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


class Backend:
    """One array library on one kind of device.

    Attributes:
        name: ``"numpy"``, ``"cupy"`` or ``"strict"``.
        device: the device prefix of its arrays: ``"cpu"``, ``"gpu"`` or ``"strict"``.

    Subclasses implement ``xp``, ``owns``, ``to_numpy`` and ``from_numpy``; the rest has
    array-module defaults.

    Example:
        >>> import numpy as np
        >>> from dojang import backends
        >>> b = backends.backend_of(np.zeros(3))
        >>> b.name, b.device, b.xp is np
        ('numpy', 'cpu', True)
    """

    name = "base"
    device = "none"

    @property
    def xp(self):
        """The array module (``numpy``-like namespace) of this backend's arrays."""
        raise NotImplementedError

    def owns(self, array) -> bool:
        """True when ``array`` is one of this backend's arrays."""
        raise NotImplementedError

    def device_of(self, array) -> str:
        """The device name of one of this backend's arrays (``"gpu:1"`` on a second GPU)."""
        return self.device

    def asarray(self, x, dtype=None):
        """``x`` as one of this backend's arrays (no copy when it already is one)."""
        return self.xp.asarray(x, dtype=dtype)

    def to_numpy(self, a) -> np.ndarray:
        """A NumPy array with the values of ``a`` (an explicit copy to the host if needed)."""
        raise NotImplementedError

    def from_numpy(self, a: np.ndarray, device: str | None = None):
        """One of this backend's arrays holding the values of NumPy array ``a``."""
        raise NotImplementedError

    def move(self, array, source: Backend, device: str):
        """``array``, one of ``source``'s arrays, on ``device`` (a device of this backend)."""
        if source is self and self.device_of(array) == device:
            return array
        return self.from_numpy(source.to_numpy(array), device)

    def erf(self, a):
        """The error function of array ``a``, in its dtype (no array module has one)."""
        raise NotImplementedError

    def empty(self, shape, dtype):
        """An uninitialized array (recycled memory where the backend keeps some)."""
        return self.xp.empty(shape, dtype=dtype)

    def zeros(self, shape, dtype):
        """An array of zeros (recycled memory where the backend keeps some)."""
        return self.xp.zeros(shape, dtype=dtype)

    def kept_bytes(self) -> int:
        """Bytes the backend's recycler holds (0 for a backend without one)."""
        return 0

    def clear_kept(self) -> None:
        """Release what the recycler holds (arrays still in use stay alive)."""

    def num_threads(self) -> int:
        """Threads that splittable array work uses on this backend (1: the caller's)."""
        return 1

    def split_batch(self, fn: Callable[[slice], None], n: int, items: int) -> None:
        """Call ``fn(s)`` over slices ``s`` covering ``range(n)``; one call by default."""
        fn(slice(0, n))

    def stage(self, batches, device: str):
        """Yield each batch (a tuple of host arrays, None allowed) with its arrays on
        ``device``; a backend that can copy while the previous batch computes overrides
        this (CuPy: pinned memory and a second stream)."""
        for batch in batches:
            yield tuple(a if a is None else self.from_numpy(np.asarray(a), device)
                        for a in batch)

    def __repr__(self) -> str:
        return f"<dojang backend {self.name!r} on {self.device!r}>"
