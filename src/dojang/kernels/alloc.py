"""Recycled memory for the large arrays a training step makes anew every time.

A step allocates the same big temporaries on every call (conv outputs, pooling and
ReLU outputs, their gradients: megabytes each). glibc serves such blocks with a fresh
``mmap`` and unmaps them on free (or trims its heap back to the OS), so every step
faults their pages in again, one 4 KiB page at a time. On the 2-core development VM
that cost more than the arithmetic: the compiled ReLU-gradient kernel of the seed
CNN took 1.0-2.1 ms instead of 0.2-0.4 ms, and the whole batch-32 step went from 13.6 to
10.2 ms once the memory was kept mapped.

``empty(shape, dtype)`` hands out a view of a kept block of the same size whose only
references are this module's (NumPy collapses view chains: every array derived from a
handed-out one has the block itself as ``base``, so the block's reference count says
whether anything still uses it). Blocks under ``MIN_BYTES`` are left to malloc, at most
``MAX_PER_SIZE`` blocks of one size and ``MAX_BYTES`` in all are kept (a network saves
many activations of one size for backward: ResNet-20 keeps about 30 at 8 MB each);
past those it is a plain ``np.empty``. Nothing process-wide is changed (glibc's own
thresholds stay as they are), and ``DOJANG_RECYCLE=0`` (or ``settings.recycling(False)``)
turns recycling off. Like a
caching allocator, it holds on to the peak of what was in use at once; when a new size
would pass ``MAX_BYTES``, free blocks of other sizes are dropped first.
"""

from __future__ import annotations

import math
import sys
import threading

import numpy as np

from dojang.settings import get_recycling

MIN_BYTES = 1 << 18
MAX_PER_SIZE = 64
MAX_BYTES = 1 << 30

_lock = threading.Lock()
_blocks: dict[int, list[np.ndarray]] = {}
_kept = [0]


def _count_free_refs() -> int:
    """The reference count a free block shows inside ``empty``'s loop (the list's, the
    loop variable's and getrefcount's own argument on CPython 3.10-3.13), measured with
    the same loop rather than assumed, since interpreters may count a loop variable or
    an argument differently."""
    blocks = [np.empty(1, dtype=np.uint8)]
    for block in blocks:
        return sys.getrefcount(block)
    raise AssertionError  # pragma: no cover


_FREE_REFS = _count_free_refs()


def empty(shape, dtype) -> np.ndarray:
    """``np.empty(shape, dtype)``, from a recycled block when one of this size is free."""
    dtype = np.dtype(dtype)
    shape = tuple(shape)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < MIN_BYTES or not get_recycling():
        return np.empty(shape, dtype)
    with _lock:
        free = _blocks.setdefault(nbytes, [])
        for block in free:
            if sys.getrefcount(block) <= _FREE_REFS:
                return block.view(dtype).reshape(shape)
        if _kept[0] + nbytes > MAX_BYTES:
            _evict(_kept[0] + nbytes - MAX_BYTES)
        if len(free) < MAX_PER_SIZE and _kept[0] + nbytes <= MAX_BYTES:
            block = np.empty(nbytes, dtype=np.uint8)
            free.append(block)
            _kept[0] += nbytes
            return block.view(dtype).reshape(shape)
    return np.empty(shape, dtype)


def _evict(need: int) -> None:
    """Drop free blocks (of any size) until ``need`` bytes are released, or none is left."""
    for size, blocks in list(_blocks.items()):
        keep = []
        for block in blocks:
            if need > 0 and sys.getrefcount(block) <= _FREE_REFS:
                need -= size
                _kept[0] -= size
            else:
                keep.append(block)
        blocks[:] = keep  # in place: ``empty`` may hold this very list
        if need <= 0:
            return


def zeros(shape, dtype) -> np.ndarray:
    """``np.zeros(shape, dtype)`` through ``empty`` (a recycled block is filled with 0)."""
    out = empty(shape, dtype)
    out.fill(0)
    return out


def kept_bytes() -> int:
    """Bytes held by the recycler (free or in use)."""
    return _kept[0]


def clear() -> None:
    """Forget every kept block (those still in use stay alive through their arrays)."""
    with _lock:
        _blocks.clear()
        _kept[0] = 0
