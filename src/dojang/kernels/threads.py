"""Split NumPy array work along the batch axis over a few threads.

NumPy releases the GIL inside its ufunc and copy loops, so large elementwise work
(pooling, im2col copies, fused activations) runs in parallel when each thread takes a
contiguous slice of the batch. Every slice is computed exactly as the whole would be
(no reduction crosses slices), so results do not depend on the thread count.

The thread count is ``DOJANG_NUM_THREADS`` (at most 8; ``dojang.settings``), by default 1: NumPy's
OpenBLAS keeps its worker threads spinning for a long while after each GEMM
(``OPENBLAS_THREAD_TIMEOUT``, default 2^28 cycles), so a second thread of ours mostly
competes with them. Measured on the seed CNN with 2 cores: with OpenBLAS's default,
2 threads here are 0-7% slower; with ``OPENBLAS_THREAD_TIMEOUT=4`` set before NumPy is
imported, 2 threads are 10-20% faster per training step. Small work (under
``MIN_ITEMS`` elements) stays on the calling thread, where a thread hand-off (tens of
microseconds) would cost more than it saves. CuPy arrays never use threads.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from dojang.settings import get_num_threads

MIN_ITEMS = 1 << 17

_lock = threading.Lock()
_state: dict = {"pid": None, "pool": None, "size": 0}


def num_threads() -> int:
    """Threads used for splittable array work (``settings.get_num_threads``:
    ``DOJANG_NUM_THREADS``, 1 to 8, else 1)."""
    return get_num_threads()


def _executor(workers: int) -> ThreadPoolExecutor:
    """The process's worker pool (a new one after ``fork``: threads do not survive it)."""
    with _lock:
        if _state["pid"] != os.getpid() or _state["size"] < workers:
            _state.update(pid=os.getpid(), size=workers,
                          pool=ThreadPoolExecutor(workers, thread_name_prefix="dojang"))
        return _state["pool"]


def split_batch(fn: Callable[[slice], None], n: int, items: int, like=None) -> None:
    """Call ``fn(s)`` for contiguous slices ``s`` that cover ``range(n)``, in parallel.

    Args:
        fn: writes the results of batch slice ``s``; slices never overlap.
        n: batch size.
        items: total number of elements the work touches (decides whether to split).
        like: an array of the work; non-NumPy arrays run on the calling thread.
    """
    t = min(num_threads(), n)
    if t <= 1 or items < MIN_ITEMS or (like is not None and not isinstance(like, np.ndarray)):
        fn(slice(0, n))
        return
    bounds = [n * i // t for i in range(t + 1)]
    pool = _executor(t - 1)
    futures = [pool.submit(fn, slice(bounds[i], bounds[i + 1])) for i in range(1, t)]
    try:
        fn(slice(bounds[0], bounds[1]))
    finally:
        for f in futures:
            f.result()
