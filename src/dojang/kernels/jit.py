"""Compiled loops (numba) for the few kernels NumPy cannot do in one pass over memory.

Optional: numba is the ``fast`` extra, not a dependency. When it imports (and
``DOJANG_JIT`` is not ``0``) the ops call these kernels for NumPy float32/float64 arrays;
otherwise, and for CuPy arrays, the NumPy kernels run. The NumPy kernels stay the
reference: every kernel here is tested against them (``tests/test_jit.py``), and
``dojang.config.jit(False)`` turns this module off inside a ``with`` block.

What is here, and why NumPy alone is slow at it (layout channels-last, as everywhere
in ``dojang.kernels``):

- max pooling (rank 1 and 2) with the argmax of each window, and its backward. NumPy
  needs one pass over the input per window offset plus the comparisons; here each input
  element is read once and the window's pick (its tap index, row-major, first maximum)
  is stored in an int16 array the size of the output.
- im2col and col2im (rank 1 and 2, one group, C > 1) with the zero padding written
  inline: NumPy copies C floats at a time through a strided window view, from a padded
  copy of the input.
- the fused bias + ReLU after a convolution's GEMM, and its backward, which masks
  ``gy`` with ``y > 0`` and sums it per channel (the bias gradient) in the same pass.
- batch normalisation's statistics and normalise-scale-shift (training and inference)
  and its backward, two passes over the data each way.
- ReLU and the Adam step: one pass instead of NumPy's several temporaries.

Every kernel splits the batch (or, for flat arrays, fixed blocks) over numba's threads
(``prange``) and each thread writes its own part only, so results do not depend on the
thread count. Reductions over the batch (bias gradient, batch-norm sums) are made per
sample first and then added in sample order, so they do not depend on it either.
Kernels are compiled on first use and cached on disk (``cache=True``); no fastmath
(the direct-convolution tiles allow FMA contraction only) and ``error_model="numpy"``,
so NaN, infinity and division behave as in NumPy. Their
large outputs come from ``kernels.alloc`` (recycled memory).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import types

import numpy as np

from dojang.config import get_jit
from dojang.kernels import alloc

_numba = None  # the module, once imported; False when it is missing


def _load():
    global _numba
    if _numba is None:
        try:
            import numba
        except ImportError:  # the optional extra is not installed
            numba = False
        if numba and "NUMBA_THREADING_LAYER" not in os.environ:
            # numba's default picks OpenMP, whose threads spin after each kernel and
            # take the cores from OpenBLAS's next GEMM (measured 10-20% slower per step
            # on the seed CNN with 2 cores); the workqueue pool sleeps instead. This is
            # process-wide (numba has one layer per process): set NUMBA_THREADING_LAYER
            # to choose another. Workqueue takes one launch at a time: see ``_launch``.
            numba.config.THREADING_LAYER = "workqueue"
        _numba = numba
    return _numba


_default: list[bool] = []  # DOJANG_JIT and numba's presence, read once per process


def available() -> bool:
    """True when numba imports (the compiled kernels can be used)."""
    return bool(_load())


def _default_on() -> bool:
    if not _default:
        _default.append(os.environ.get("DOJANG_JIT", "1") != "0" and available())
    return _default[0]


def enabled() -> bool:
    """True when the ops should use the compiled kernels here.

    ``dojang.config.jit(flag)`` decides inside a ``with`` block; otherwise the
    environment variable ``DOJANG_JIT`` (``0`` turns them off; read on first use), else
    whether numba imports.
    """
    flag = get_jit()
    if flag is None:
        return _default_on()
    return flag and available()


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def usable(*arrays) -> bool:
    """True when the compiled kernels are on and take these arrays (NumPy, float32/64)."""
    return enabled() and all(type(a) is np.ndarray and a.dtype in _FLOATS for a in arrays)


# ``error_model="numpy"``: IEEE division (x / 0 is inf, as in NumPy), not Python's
# ZeroDivisionError check, whose branch stops LLVM vectorising a loop that divides.
_OPTIONS = dict(cache=True, nogil=True, error_model="numpy")


def _njit(fn, **options):
    """``numba.njit`` with the disk cache when a cache directory is writable (numba
    refuses ``cache=True`` when neither ``__pycache__`` nor its user-wide directory is)."""
    numba = _load()
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
    ``range``): for small arrays, where waking the thread pool costs more than the work.
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
            with _straight_line(self.slp):
                return self.compiled(*args)
        finally:
            _launch.release()

    def serial(self, *args):
        if self.compiled_serial is None:
            # a copy under another name: numba's disk cache is keyed by the function's
            # name and signature, not by the ``parallel`` flag
            fn = types.FunctionType(self.fn.__code__, self.fn.__globals__,
                                    self.fn.__name__ + "_serial", self.fn.__defaults__)
            fn.__qualname__ = self.fn.__qualname__ + "_serial"
            self.compiled_serial = _njit(fn, **self.options)
        with _straight_line(self.slp):
            return self.compiled_serial(*args)


# calls inside ``_straight_line(True)`` now, over all threads, and numba's setting
# from before the first of them
_slp = {"users": 0, "saved": 0}
_slp_lock = threading.Lock()


@contextlib.contextmanager
def _straight_line(on: bool):
    """With ``on``, a compilation inside runs LLVM's SLP (straight-line) vectoriser.

    numba turns that pass off by default (``NUMBA_SLP_VECTORIZE=0``) and reads the
    setting when it builds a pass pipeline, i.e. at each compilation, so it is set
    only while a kernel that needs it is called (and so compiled): the register tiles
    of ``kernels._tiles``, whose named partial sums only that pass packs into vector
    registers (measured 3-6x faster). The pass changes no result. A count of the
    calls in flight keeps it on until the last one, whatever the threads do.
    """
    if not on:
        yield
        return
    config = _load().config
    with _slp_lock:
        if _slp["users"] == 0:
            _slp["saved"], config.SLP_VECTORIZE = config.SLP_VECTORIZE, 1
        _slp["users"] += 1
    try:
        yield
    finally:
        with _slp_lock:
            _slp["users"] -= 1
            if _slp["users"] == 0:
                config.SLP_VECTORIZE = _slp["saved"]


def kernel(parallel: bool = True, slp: bool = False):
    """Decorator: compile with numba on first call (``prange`` splits over threads);
    ``slp``: with LLVM's straight-line vectoriser (see ``_straight_line``)."""
    return lambda fn: _Lazy(fn, parallel, slp)


try:  # ``prange`` is ``range`` for the interpreter; numba rewrites it when compiling
    from numba import prange
except ImportError:  # pragma: no cover - numba missing: these kernels are never called
    prange = range


# ---------------------------------------------------------------------------- max pooling
# ``pick`` holds each window's tap (row-major index in the window) of its FIRST maximum,
# or -1 for a window whose maximum is NaN (NaN propagates, as ``np.maximum``): such a
# window passes no gradient, as in the NumPy kernel. Inner loops run over the
# contiguous channels with selects instead of branches, so LLVM vectorises them.

@kernel()
def _max_pool2d(x, y, pick, kh, kw, sh, sw, ph, pw):
    """Two passes per window, one store stream each (LLVM vectorises those): the
    maximum, then the first tap equal to it (none for NaN, which equals nothing)."""
    n_, h_, w_, c_ = x.shape
    oh_, ow_ = y.shape[1], y.shape[2]
    for n in prange(n_):
        for i in range(oh_):
            for j in range(ow_):
                out, pk = y[n, i, j], pick[n, i, j]
                out[:] = -np.inf
                pk[:] = -1
                for a in range(kh):
                    h = i * sh - ph + a
                    if 0 <= h < h_:
                        for b in range(kw):
                            w = j * sw - pw + b
                            if 0 <= w < w_:
                                src = x[n, h, w]
                                for c in range(c_):
                                    v, best = src[c], out[c]
                                    out[c] = v if v > best or v != v else best
                for a in range(kh):
                    h = i * sh - ph + a
                    if 0 <= h < h_:
                        for b in range(kw):
                            w = j * sw - pw + b
                            if 0 <= w < w_:
                                src, tap = x[n, h, w], a * kw + b
                                for c in range(c_):
                                    pk[c] = tap if pk[c] < 0 and src[c] == out[c] else pk[c]


@kernel()
def _max_pool2d_backward(gy, pick, gx, kh, kw, sh, sw, ph, pw):
    n_, h_, w_, c_ = gx.shape
    oh_, ow_ = gy.shape[1], gy.shape[2]
    for n in prange(n_):
        gx[n] = 0
        for i in range(oh_):
            for j in range(ow_):
                g, pk = gy[n, i, j], pick[n, i, j]
                for a in range(kh):
                    h = i * sh - ph + a
                    if h < 0 or h >= h_:
                        continue
                    for b in range(kw):
                        w = j * sw - pw + b
                        if w < 0 or w >= w_:
                            continue
                        dst, tap = gx[n, h, w], a * kw + b
                        for c in range(c_):
                            dst[c] += g[c] if pk[c] == tap else 0


@kernel()
def _max_pool2x2(x, y, pick):
    """2x2 windows, stride 2, no padding (the common case) unrolled."""
    n_, c_ = x.shape[0], x.shape[3]
    oh_, ow_ = y.shape[1], y.shape[2]
    for n in prange(n_):
        for i in range(oh_):
            for j in range(ow_):
                r0, r1 = x[n, 2 * i, 2 * j], x[n, 2 * i, 2 * j + 1]
                r2, r3 = x[n, 2 * i + 1, 2 * j], x[n, 2 * i + 1, 2 * j + 1]
                out, pk = y[n, i, j], pick[n, i, j]
                for c in range(c_):
                    v0, v1, v2, v3 = r0[c], r1[c], r2[c], r3[c]
                    best, t = v0, 0
                    if v1 > best:
                        best, t = v1, 1
                    if v2 > best:
                        best, t = v2, 2
                    if v3 > best:
                        best, t = v3, 3
                    nan = (v0 != v0) | (v1 != v1) | (v2 != v2) | (v3 != v3)
                    out[c] = np.nan if nan else best
                    pk[c] = -1 if nan else t


@kernel()
def _max_pool2x2_backward(gy, pick, gx):
    """Each input of a 2x2 tile is written once (no zero fill), one tap per loop; an odd
    last row or column, seen by no window, gets 0."""
    n_, h_, w_, c_ = gx.shape
    oh_, ow_ = gy.shape[1], gy.shape[2]
    for n in prange(n_):
        for i in range(oh_):
            for a in range(2):
                for j in range(ow_):
                    g, pk = gy[n, i, j], pick[n, i, j]
                    for b in range(2):
                        dst, tap = gx[n, 2 * i + a, 2 * j + b], 2 * a + b
                        for c in range(c_):
                            dst[c] = g[c] if pk[c] == tap else 0
        if h_ > 2 * oh_:
            gx[n, 2 * oh_:] = 0
        if w_ > 2 * ow_:
            gx[n, :, 2 * ow_:] = 0


def _is_2x2(ksize, strides, pads) -> bool:
    return tuple(ksize) == (2, 2) and tuple(strides) == (2, 2) and all(
        p == (0, 0) for p in pads)


def max_pool(x, ksize, strides, pads, out):
    """Max pooling of ``x`` (N, *spatial, C), rank 1 or 2, into ``(y, pick)``: ``y`` is
    (N, *out, C); ``pick`` is kept in the 2-d layout for ``max_pool_backward``."""
    x = np.ascontiguousarray(x)
    shape, k, s, _, p, r = _as2d(x.shape, ksize, strides, (1,) * len(ksize), pads,
                                 tuple((0, o) for o in out))
    y = alloc.empty((x.shape[0],) + tuple(out) + x.shape[-1:], x.dtype)
    y2 = y.reshape((x.shape[0], r[0][1], r[1][1], x.shape[-1]))
    pick = alloc.empty(y2.shape, np.int16)
    if _is_2x2(k, s, p):
        _max_pool2x2(x.reshape(shape), y2, pick)
    else:
        _max_pool2d(x.reshape(shape), y2, pick, k[0], k[1], s[0], s[1], p[0][0], p[1][0])
    return y, pick


def max_pool_backward(gy, pick, x_shape, ksize, strides, pads):
    """Gradient of ``max_pool`` w.r.t. its input (shape ``x_shape``)."""
    gy = np.ascontiguousarray(gy).reshape(pick.shape)
    shape, k, s, _, p, _ = _as2d(x_shape, ksize, strides, (1,) * len(ksize), pads,
                                 ((0, 1),) * len(ksize))
    gx = alloc.empty(x_shape, gy.dtype)
    if _is_2x2(k, s, p):
        _max_pool2x2_backward(gy, pick, gx.reshape(shape))
    else:
        _max_pool2d_backward(gy, pick, gx.reshape(shape), k[0], k[1], s[0], s[1], p[0][0],
                             p[1][0])
    return gx


# ------------------------------------------------------------ bias + ReLU after a conv GEMM
@kernel()
def _bias_relu(y, b, relu):
    """``y`` (N, P, C) in place: ``y + b`` then, if ``relu``, ``max(y, 0)`` (NaN stays)."""
    for n in prange(y.shape[0]):
        for p in range(y.shape[1]):
            row = y[n, p]
            for c in range(y.shape[2]):
                v = row[c] + b[c]
                row[c] = 0 if relu and v <= 0 else v  # NaN stays, -0 becomes 0


@kernel()
def _relu_grad_sums(gy, y, g, sums):
    """``g = gy where y > 0, else 0`` and ``sums[n] = sum over p of g[n, p]`` (per
    sample, in float64: a float32 running sum over a megapixel loses 3 digits).

    Two loops per pixel, one store stream each: with the mask and the sum in one loop
    LLVM cannot rule out that they alias and does not vectorise (measured 8x slower).
    """
    for n in prange(gy.shape[0]):
        acc = sums[n]
        acc[:] = 0
        for p in range(gy.shape[1]):
            src, ref, dst = gy[n, p], y[n, p], g[n, p]
            for c in range(gy.shape[2]):
                dst[c] = src[c] if ref[c] > 0 else 0
            for c in range(gy.shape[2]):
                acc[c] += dst[c]


def _as_samples(a):
    """The (N, P, C) view of a contiguous channels-last array (P = pixels per sample)."""
    return a.reshape(a.shape[0], math.prod(a.shape[1:-1]), a.shape[-1])


def _samples(a):
    """A contiguous (N, P, C) view of a channels-last array (a copy if it is strided)."""
    return _as_samples(np.ascontiguousarray(a))


def bias_relu_(y, b, relu: bool) -> None:
    """In place on a contiguous channels-last ``y``: add ``b`` (C,) (None: no bias), ReLU."""
    b = np.zeros(y.shape[-1], y.dtype) if b is None else b.astype(y.dtype, copy=False)
    _bias_relu(_as_samples(y), b, relu)


def relu_grad_bias(gy, y):
    """``(gy * (y > 0), its sum over every axis but the last)`` for channels-last arrays.

    The per-sample sums are added in sample order, so the result does not depend on
    how the batch was split over threads.
    """
    g = alloc.empty(y.shape, gy.dtype)
    sums = np.empty((y.shape[0], y.shape[-1]), dtype=np.float64)
    _relu_grad_sums(_samples(gy), _samples(y), _as_samples(g), sums)
    return g, np.add.reduce(sums, axis=0).astype(gy.dtype)


# ---------------------------------------------------------------------------- im2col
# Rank 1 and 2, one group, C > 1 (``kernels.conv`` keeps the other cases). Zero padding
# is written inline: no padded copy of the input is made.

@kernel()
def _im2col2d(x, cols, kh, kw, sh, sw, dh, dw, ph, pw, oh0, oh1, ow0, ow1):
    """``cols[(n, i, j), (a, b, c)] = x[n, i*sh + a*dh - ph, j*sw + b*dw - pw, c]``
    (0 outside ``x``) for the outputs ``oh0 <= i < oh1``, ``ow0 <= j < ow1``."""
    n_, h_, w_, c_ = x.shape
    rows, ow_ = oh1 - oh0, ow1 - ow0
    for n in prange(n_):
        for i in range(oh0, oh1):
            for j in range(ow0, ow1):
                dst = cols[(n * rows + i - oh0) * ow_ + j - ow0]
                for a in range(kh):
                    h = i * sh + a * dh - ph
                    for b in range(kw):
                        w = j * sw + b * dw - pw
                        base = (a * kw + b) * c_
                        if 0 <= h < h_ and 0 <= w < w_:
                            src = x[n, h, w]
                            for c in range(c_):
                                dst[base + c] = src[c]
                        else:
                            for c in range(c_):
                                dst[base + c] = 0


@kernel()
def _col2im2d(dcols, gx, kh, kw, sh, sw, dh, dw, ph, pw, oh0, oh1, ow0, ow1):
    """The adjoint of ``_im2col2d``: add each column entry back into ``gx`` (in place)."""
    n_, h_, w_, c_ = gx.shape
    rows, ow_ = oh1 - oh0, ow1 - ow0
    for n in prange(n_):
        for i in range(oh0, oh1):
            for j in range(ow0, ow1):
                src = dcols[(n * rows + i - oh0) * ow_ + j - ow0]
                for a in range(kh):
                    h = i * sh + a * dh - ph
                    if 0 <= h < h_:
                        for b in range(kw):
                            w = j * sw + b * dw - pw
                            if 0 <= w < w_:
                                dst, base = gx[n, h, w], (a * kw + b) * c_
                                for c in range(c_):
                                    dst[c] += src[base + c]


def _as2d(x_shape, kernel, strides, dilations, pads, ranges):
    """The arguments of a rank-1 or rank-2 lowering as 2-d ones (rank 1: height 1)."""
    if len(kernel) == 1:
        return ((x_shape[0], 1) + tuple(x_shape[1:]), (1,) + tuple(kernel), (1,) + tuple(strides),
                (1,) + tuple(dilations), ((0, 0),) + tuple(pads), ((0, 1),) + tuple(ranges))
    return tuple(x_shape), kernel, strides, dilations, pads, ranges


def im2col_usable(x, rank: int, groups: int) -> bool:
    """True when ``im2col``/``col2im`` here take this lowering."""
    return rank <= 2 and groups == 1 and x.shape[-1] > 1 and usable(x)


def im2col(x, cols, kernel, strides, dilations, pads, ranges) -> None:
    """Fill ``cols`` (n * prod(rows of ranges), KK*C), C-contiguous, with the columns of
    the outputs in ``ranges`` (one ``[a, b)`` per spatial dim) of ``x`` (n, *spatial, C)."""
    shape, k, s, d, p, r = _as2d(x.shape, kernel, strides, dilations, pads, ranges)
    _im2col2d(np.ascontiguousarray(x).reshape(shape), cols, k[0], k[1], s[0], s[1], d[0],
              d[1], p[0][0], p[1][0], r[0][0], r[0][1], r[1][0], r[1][1])


def col2im(dcols, gx, kernel, strides, dilations, pads, ranges) -> None:
    """Add ``dcols`` (n * rows, KK*C) into the C-contiguous ``gx`` (n, *spatial, C)."""
    shape, k, s, d, p, r = _as2d(gx.shape, kernel, strides, dilations, pads, ranges)
    _col2im2d(dcols, gx.reshape(shape), k[0], k[1], s[0], s[1], d[0], d[1], p[0][0],
              p[1][0], r[0][0], r[0][1], r[1][0], r[1][1])


# --------------------------------------------------------------------- batch normalisation
# Channels-last data as (N, P, C). Sums are accumulated in float64 per sample, then
# added in sample order by NumPy: exact enough for a two-pass variance, and independent
# of the thread count.

@kernel()
def _sample_sums(x, mean, squares, out):
    """``out[n] = sum_p x[n, p]``, or ``sum_p (x[n, p] - mean)**2`` when ``squares``."""
    for n in prange(x.shape[0]):
        acc = out[n]
        acc[:] = 0
        for p in range(x.shape[1]):
            row = x[n, p]
            if squares:
                for c in range(x.shape[2]):
                    d = np.float64(row[c] - mean[c])
                    acc[c] += d * d
            else:
                for c in range(x.shape[2]):
                    acc[c] += row[c]


@kernel()
def _normalize(x, mean, scale, shift, y):
    """``y = (x - mean) * scale + shift`` per channel."""
    for n in prange(x.shape[0]):
        for p in range(x.shape[1]):
            src, dst = x[n, p], y[n, p]
            for c in range(x.shape[2]):
                dst[c] = (src[c] - mean[c]) * scale[c] + shift[c]


@kernel()
def _bn_grad_sums(gy, x, mean, s_gy, s_gyxc):
    """Per sample: ``sum_p gy`` and ``sum_p gy * (x - mean)``."""
    for n in prange(gy.shape[0]):
        a, b = s_gy[n], s_gyxc[n]
        a[:] = 0
        b[:] = 0
        for p in range(gy.shape[1]):
            g, row = gy[n, p], x[n, p]
            for c in range(gy.shape[2]):
                a[c] += g[c]
            for c in range(gy.shape[2]):
                b[c] += np.float64(g[c] * (row[c] - mean[c]))


@kernel()
def _bn_grad_apply(gy, x, mean, a, b, c0, gx):
    """``gx = a * gy + b * (x - mean) + c0`` per channel."""
    for n in prange(gy.shape[0]):
        for p in range(gy.shape[1]):
            g, row, dst = gy[n, p], x[n, p], gx[n, p]
            for c in range(gy.shape[2]):
                dst[c] = a[c] * g[c] + b[c] * (row[c] - mean[c]) + c0[c]


def batch_norm_usable(x, axis: int) -> bool:
    """True for channels-last (``axis`` last) NumPy float data of rank >= 2."""
    return x.ndim >= 2 and axis == x.ndim - 1 and usable(x)


def _folded(x3, mean, squares):
    out = np.empty((x3.shape[0], x3.shape[2]), dtype=np.float64)
    _sample_sums(x3, mean, squares, out)
    return np.add.reduce(out, axis=0)


def batch_norm_stats(x):
    """``(mean, biased variance)`` over every axis but the last (two passes), in x's dtype."""
    x3 = _samples(x)
    n = x3.shape[0] * x3.shape[1]
    mean = (_folded(x3, np.zeros(x3.shape[2], x.dtype), False) / n).astype(x.dtype)
    var = (_folded(x3, mean, True) / n).astype(x.dtype)
    return mean, var


def normalize(x, mean, scale, shift):
    """``(x - mean) * scale + shift`` with per-channel vectors (channels last)."""
    x3 = _samples(x)
    y = alloc.empty(x.shape, x.dtype)
    cast = [v.astype(x.dtype, copy=False) for v in (mean, scale, shift)]
    _normalize(x3, *cast, y.reshape(x3.shape))
    return y


def batch_norm_grad_sums(gy, x, mean):
    """``(sum gy, sum gy * (x - mean))`` over every axis but the last, as float64."""
    gy3, x3 = _samples(gy), _samples(x)
    s_gy = np.empty((gy3.shape[0], gy3.shape[2]), dtype=np.float64)
    s_gyxc = np.empty_like(s_gy)
    _bn_grad_sums(gy3, x3, mean, s_gy, s_gyxc)
    return np.add.reduce(s_gy, axis=0), np.add.reduce(s_gyxc, axis=0)


def batch_norm_grad(gy, x, mean, a, b, c0):
    """``a * gy + b * (x - mean) + c0`` with per-channel vectors (channels last)."""
    gy3 = _samples(gy)
    gx = alloc.empty(gy.shape, gy.dtype)
    cast = [v.astype(gy.dtype, copy=False) for v in (mean, a, b, c0)]
    _bn_grad_apply(gy3, _samples(x), cast[0], *cast[1:], gx.reshape(gy3.shape))
    return gx


# ---------------------------------------------------------------------------- ReLU
_BLOCK = 1 << 14  # elements per thread task of the flat elementwise kernels
MIN_ELEMENTWISE = 1 << 16  # smaller arrays stay with NumPy (a thread hand-off costs more)


# The flat kernels slice each block and index the slice from 0: with computed bounds
# (``range(lo, hi)``) numba cannot prove the index non-negative, keeps its negative-index
# wraparound check, and LLVM does not vectorise the loop (measured 7x slower).

@kernel()
def _relu(x, y):
    n = x.shape[0]
    for k in prange((n + _BLOCK - 1) // _BLOCK):
        xs, ys = x[k * _BLOCK:(k + 1) * _BLOCK], y[k * _BLOCK:(k + 1) * _BLOCK]
        for i in range(xs.shape[0]):
            v = xs[i]
            ys[i] = 0 if v <= 0 else v  # NaN stays, -0 becomes 0 (as np.maximum)


@kernel()
def _relu_grad(gy, y, gx):
    n = gy.shape[0]
    for k in prange((n + _BLOCK - 1) // _BLOCK):
        block = slice(k * _BLOCK, (k + 1) * _BLOCK)
        gs, ys, out = gy[block], y[block], gx[block]
        for i in range(gs.shape[0]):
            out[i] = gs[i] if ys[i] > 0 else 0


def relu(x):
    """``max(x, 0)`` (NaN stays NaN) as a new array of x's shape."""
    x = np.ascontiguousarray(x)
    y = alloc.empty(x.shape, x.dtype)
    _relu(x.reshape(-1), y.reshape(-1))
    return y


def relu_grad(gy, y):
    """``gy`` where ``y > 0``, else 0, as a new array."""
    gx = alloc.empty(y.shape, gy.dtype)
    _relu_grad(np.ascontiguousarray(gy).reshape(-1), np.ascontiguousarray(y).reshape(-1),
               gx.reshape(-1))
    return gx


# ---------------------------------------------------------------------------- Adam
@kernel()
def _adam(p, g, m, v, c1, c2, alpha, eps):
    """One pass of ``optimizers.Adam.update`` (same operations, same order, p's dtype)."""
    n = p.shape[0]
    for k in prange((n + _BLOCK - 1) // _BLOCK):
        block = slice(k * _BLOCK, (k + 1) * _BLOCK)
        ps, gs, ms, vs = p[block], g[block], m[block], v[block]
        for i in range(ps.shape[0]):
            gi = gs[i]
            mi = ms[i] + (gi - ms[i]) * c1
            vi = vs[i] + (gi * gi - vs[i]) * c2
            ms[i] = mi
            vs[i] = vi
            ps[i] -= mi / (np.sqrt(vi) + eps) * alpha


def adam_usable(param, grad, *slots) -> bool:
    """True when ``adam_update`` takes these (contiguous NumPy floats of one dtype)."""
    arrays = (param, grad, *slots)
    return usable(*arrays) and all(
        a.flags.c_contiguous and a.dtype == param.dtype for a in arrays)


def adam_update(param, grad, m, v, one_minus_beta_1, one_minus_beta_2, alpha, epsilon):
    """Adam's moment and parameter update in place, one pass over the arrays."""
    t = param.dtype.type
    run = _adam if param.size >= MIN_ELEMENTWISE else _adam.serial
    run(param.reshape(-1), grad.reshape(-1), m.reshape(-1), v.reshape(-1),
          t(one_minus_beta_1), t(one_minus_beta_2), t(alpha), t(epsilon))
