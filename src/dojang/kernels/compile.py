"""The compile machinery of the compiled (numba) kernels, in one module.

numba is a dependency, imported on first use (the first call of a kernel, or of
``enabled()``), never by ``import dojang``. When it cannot be imported, the NumPy
reference kernels run instead, after one ``RuntimeWarning`` that says so. Whether the
compiled kernels are wanted is ``dojang.settings``' question (``DOJANG_JIT``,
``dojang.config.jit(flag)``, ``dojang.config.kernels(variant)``).

Here: the decorator that compiles a kernel on its first call (``kernel``), numba's options
(the disk cache when a cache directory is writable, IEEE division, no fastmath; the
direct-convolution tiles allow FMA contraction and turn LLVM's SLP vectoriser on while
they compile), one parallel launch at a time, the thread count, and the rule every
compiled variant starts from (``usable``: NumPy float32/float64 arrays, compiled kernels
on). The kernels themselves sit beside their NumPy references, in
``kernels/<concept>/numba.py``.

Every kernel splits the batch (or, for flat arrays, fixed blocks) over numba's threads
(``prange``) and each thread writes its own part only, so results do not depend on the
thread count. Reductions over the batch are made per sample first and then added in
sample order, so they do not depend on it either.

Threading layer: numba's default picks OpenMP, whose threads spin after each kernel and
take the cores from OpenBLAS's next GEMM (measured 10-20% slower per step on the seed CNN
with 2 cores); the workqueue pool sleeps instead. numba has one layer per process, so it
is chosen when numba is first loaded here, not at import, and only when nobody chose one
before (neither ``NUMBA_THREADING_LAYER`` nor ``numba.config.THREADING_LAYER`` set).
Workqueue takes one launch at a time: see ``_launch``.
"""

from __future__ import annotations

import math
import os
import threading
import types
import warnings

import numpy as np

from dojang import settings
from dojang.kernels import isa

_numba = None  # the module, once imported; False when it is missing

# What runs slower without numba, for the warning.
_SLOWER = ("convolutions with few channels (direct kernels), im2col, max pooling, "
           "bias + ReLU, ReLU, batch normalisation and Adam")


def _load():
    global _numba
    if _numba is None:
        try:
            import numba
        except ImportError as err:
            numba = False
            warnings.warn(
                f"dojang: numba could not be imported ({err}); the NumPy reference kernels "
                f"run instead. Slower without numba: {_SLOWER}, which NumPy does in several "
                "passes over memory where a compiled loop makes one (about 1.5-3x per "
                "training step). Install numba (`pip install numba`) for the compiled path.",
                RuntimeWarning, stacklevel=3)
        if (numba and "NUMBA_THREADING_LAYER" not in os.environ
                and numba.config.THREADING_LAYER == "default"):
            numba.config.THREADING_LAYER = "workqueue"
        if numba and "avx512f" in isa.target_features():
            _wide_straight_line()
        _numba = numba
    return _numba


def _wide_straight_line() -> None:
    """Let LLVM's SLP vectoriser pack the tiles' sums into 512-bit registers.

    LLVM tunes most Intel AVX-512 CPUs to prefer 256-bit vectors (``prefer-256-bit``), so
    the SLP pass would pack an AVX-512 tile's 16 float32 per row into two ymm registers,
    twice the registers the tile was sized for, and spill (seen in the assembly for
    ``-mcpu=skylake-avx512``: ymm and stack traffic; with this option, zmm). The option
    sets the pass's register width only; it is process-wide, but numba runs the pass
    only where it is switched on, which dojang does for the tiles alone
    (``_StraightLine``). numba's disk cache is keyed by the CPU name and features, and
    this option follows from the features, so a cached build always matches it.
    """
    import llvmlite.binding as ll

    ll.set_option("dojang", "-slp-max-reg-size=512")


def available() -> bool:
    """True when numba imports (the compiled kernels can be used)."""
    return bool(_load())


def enabled() -> bool:
    """True when the ops should use the compiled kernels here: the settings want them
    (``dojang.settings.compiled_wanted``) and numba imports."""
    return settings.compiled_wanted() and bool(_numba or _load())


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def usable(*arrays) -> bool:
    """True when the compiled kernels are on and take these arrays (NumPy, float32/64):
    the rule every compiled variant's rule starts from."""
    return enabled() and all(type(a) is np.ndarray and a.dtype in _FLOATS for a in arrays)


# ``error_model="numpy"``: IEEE division (x / 0 is inf, as in NumPy), not Python's
# ZeroDivisionError check, whose branch stops LLVM vectorising a loop that divides.
_OPTIONS = dict(cache=True, nogil=True, error_model="numpy")


def _njit(fn, **options):
    """``numba.njit`` with the disk cache when a cache directory is writable (numba
    refuses ``cache=True`` when neither ``__pycache__`` nor its user-wide directory is)."""
    numba = _load()
    if fn.__globals__.get("prange") is range:
        fn.__globals__["prange"] = numba.prange
    try:
        return numba.njit(fn, **_OPTIONS, **options)
    except RuntimeError as err:
        if "cannot cache" not in str(err):
            raise
        return numba.njit(fn, **{**_OPTIONS, "cache": False}, **options)


_launch = threading.Lock()  # held while a parallel kernel runs


def threads() -> int:
    """The number of threads a parallel kernel runs on (numba's, 1 without numba)."""
    numba = _load()
    return numba.get_num_threads() if numba else 1


class _Lazy:
    """A Python function compiled by ``numba.njit`` on its first call.

    ``serial(*args)`` runs a second compilation without threads (``prange`` as
    ``range``): for small arrays, where waking the thread pool costs more than the work;
    ``sized(tasks, work)`` picks one of the two by ``threaded``.
    """

    def __init__(self, fn, parallel: bool, slp: bool = False):
        self.fn, self.parallel, self.slp = fn, parallel, slp
        # the tiles also let LLVM fuse a * b + c into one FMA (one rounding instead of
        # two; NaN, infinity and signed zeros are unaffected), as BLAS kernels do
        self.options = {"fastmath": {"contract"}} if slp else {}
        self.compiled = self.compiled_serial = None
        self.__doc__, self.__name__ = fn.__doc__, fn.__name__

    def __call__(self, *args):
        if not self.parallel:
            return self.serial(*args)
        if self.compiled is None:
            self.compiled = _njit(self.fn, parallel=True, **self.options)
        # numba's workqueue pool takes one parallel launch at a time (a second, from
        # another Python thread, aborts the process): a thread that finds it busy runs
        # the serial variant instead of waiting
        if not _launch.acquire(blocking=False):
            return self.serial(*args)
        try:
            if not self.slp:
                return self.compiled(*args)
            with _StraightLine():
                return self.compiled(*args)
        finally:
            _launch.release()

    def sized(self, tasks: int, work: int):
        """This kernel, or its serial twin where ``threaded(tasks, work)`` says threads
        cannot pay: a choice fixed by the shapes (both give the same results)."""
        return self if self.parallel and threaded(tasks, work) else self.serial

    def serial(self, *args):
        if self.compiled_serial is None:
            # a copy under another name: numba's disk cache is keyed by the function's
            # name and signature, not by the ``parallel`` flag
            fn = types.FunctionType(self.fn.__code__, self.fn.__globals__,
                                    self.fn.__name__ + "_serial", self.fn.__defaults__)
            fn.__qualname__ = self.fn.__qualname__ + "_serial"
            self.compiled_serial = _njit(fn, **self.options)
        if not self.slp:  # most kernels: no context to enter on every call
            return self.compiled_serial(*args)
        with _StraightLine():
            return self.compiled_serial(*args)


# calls inside ``_StraightLine()`` now, over all threads, and numba's setting
# from before the first of them
_slp = {"users": 0, "saved": 0}
_slp_lock = threading.Lock()


class _StraightLine:
    """A compilation inside runs LLVM's SLP (straight-line) vectoriser.

    numba turns that pass off by default (``NUMBA_SLP_VECTORIZE=0``) and reads the
    setting when it builds a pass pipeline, i.e. at each compilation, so it is set
    only while a kernel that needs it is called (and so compiled): the register tiles
    of ``kernels.conv._tiles``, whose named partial sums only that pass packs into vector
    registers (measured 3-6x faster). The pass changes no result. A count of the
    calls in flight keeps it on until the last one, whatever the threads do. A class,
    not a generator: it is entered on every call of a tile.
    """

    def __enter__(self) -> None:
        config = _load().config
        with _slp_lock:
            if _slp["users"] == 0:
                _slp["saved"], config.SLP_VECTORIZE = config.SLP_VECTORIZE, 1
            _slp["users"] += 1

    def __exit__(self, *exc) -> None:
        with _slp_lock:
            _slp["users"] -= 1
            if _slp["users"] == 0:
                _load().config.SLP_VECTORIZE = _slp["saved"]


def kernel(parallel: bool = True, slp: bool = False):
    """Decorator: compile with numba on first call (``prange`` splits over threads);
    ``slp``: with LLVM's straight-line vectoriser (see ``_StraightLine``)."""
    return lambda fn: _Lazy(fn, parallel, slp)


_BLOCK = 1 << 14  # elements per thread task of the flat elementwise kernels
MIN_ELEMENTWISE = 1 << 16  # smaller arrays stay with NumPy (a thread hand-off costs more)


def threaded(tasks: int, work: int) -> bool:
    """Whether a kernel runs over threads when its ``prange`` has ``tasks`` iterations and
    the call does ``work`` units (elements, or multiply-adds for a convolution).

    One task cannot be split, yet a parallel launch still wakes the pool and waits for
    it; under ``MIN_ELEMENTWISE`` units the hand-off costs more than a second thread
    saves. On a 2-core host a single image's max pooling, or bias + ReLU, took 3-7x
    longer parallel than serial (the wake-up, not the work); at batch 1 every such
    launch in the seed CNN's forward ran on one thread anyway.
    """
    return tasks > 1 and work >= MIN_ELEMENTWISE


# The flat kernels slice each block and index the slice from 0: with computed bounds
# (``range(lo, hi)``) numba cannot prove the index non-negative, keeps its negative-index
# wraparound check, and LLVM does not vectorise the loop (measured 7x slower).


# The kernels' modules import ``prange`` from here: ``range`` for the interpreter (and
# without numba); ``_njit`` binds numba's ``prange`` into a kernel's module when it
# compiles one, which is when numba rewrites those loops to run over its threads.
prange = range




# ------------------------------------------------------------ layouts the kernels share
def as_samples(a):
    """The (N, P, C) view of a contiguous channels-last array (P = pixels per sample)."""
    return a.reshape(a.shape[0], math.prod(a.shape[1:-1]), a.shape[-1])


def samples(a):
    """A contiguous (N, P, C) view of a channels-last array (a copy if it is strided)."""
    return as_samples(np.ascontiguousarray(a))


def as2d(x_shape, kernel, strides, dilations, pads, ranges):
    """The arguments of a rank-1 or rank-2 window kernel as 2-d ones (rank 1: height 1)."""
    if len(kernel) == 1:
        return ((x_shape[0], 1) + tuple(x_shape[1:]), (1,) + tuple(kernel), (1,) + tuple(strides),
                (1,) + tuple(dilations), ((0, 0),) + tuple(pads), ((0, 1),) + tuple(ranges))
    return tuple(x_shape), kernel, strides, dilations, pads, ranges
