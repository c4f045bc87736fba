"""Compiled max pooling (rank 1 and 2) with the argmax of each window, and its backward;
average pooling over tiling windows and its backward.

NumPy needs one pass over the input per window offset plus the comparisons; here each
input element is read once and the window's pick (its tap index, row-major, first
maximum) is stored in an int16 array the size of the output. Registered as the ``numba``
variant of ``"pool.max"`` (layout channels-last, as everywhere in ``dojang.kernels``).

Average pooling whose windows tile the input (``strides == ksize``, no padding:
LeNet-5's subsampling) reads each input once and writes each output once, the batch
split over threads; NumPy's tiled path makes a pass per window axis over short runs
of C values (measured 6x slower on LeNet-5's 6 channels). Registered as the ``numba``
variants of ``"pool.avg"`` and ``"pool.avg_backward"``.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np

from dojang.kernels import alloc, compile
from dojang.kernels.compile import as2d, kernel, prange
from dojang.kernels.pool.reference import tiles
from dojang.kernels.registry import register
from dojang.shapes import pool_output_shape

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
    shape, k, s, _, p, r = as2d(x.shape, ksize, strides, (1,) * len(ksize), pads,
                                tuple((0, o) for o in out))
    y = alloc.empty((x.shape[0],) + tuple(out) + x.shape[-1:], x.dtype)
    y2 = y.reshape((x.shape[0], r[0][1], r[1][1], x.shape[-1]))
    pick = alloc.empty(y2.shape, np.int16)
    if _is_2x2(k, s, p):
        _max_pool2x2.sized(x.shape[0], x.size)(x.reshape(shape), y2, pick)
    else:
        _max_pool2d.sized(x.shape[0], x.size)(x.reshape(shape), y2, pick, k[0], k[1], s[0],
                                              s[1], p[0][0], p[1][0])
    return y, pick


def max_pool_backward(gy, pick, x_shape, ksize, strides, pads):
    """Gradient of ``max_pool`` w.r.t. its input (shape ``x_shape``)."""
    gy = np.ascontiguousarray(gy).reshape(pick.shape)
    shape, k, s, _, p, _ = as2d(x_shape, ksize, strides, (1,) * len(ksize), pads,
                                ((0, 1),) * len(ksize))
    gx = alloc.empty(x_shape, gy.dtype)
    if _is_2x2(k, s, p):
        _max_pool2x2_backward.sized(gx.shape[0], gx.size)(gy, pick, gx.reshape(shape))
    else:
        run = _max_pool2d_backward.sized(gx.shape[0], gx.size)
        run(gy, pick, gx.reshape(shape), k[0], k[1], s[0], s[1], p[0][0], p[1][0])
    return gx


def _usable(x, ksize, strides, pads, grad: bool = True) -> bool:
    """Rank 1-2 windows of under 2**15 taps (the int16 picks) on NumPy floats."""
    return len(ksize) <= 2 and math.prod(ksize) < 2**15 and compile.usable(x)


@register("pool.max", variant="numba", usable=_usable, priority=1)
def max_pool_forward(x, ksize, strides, pads, grad: bool = True):
    """``(y, backward)``: max pooling of ``x`` (N, *spatial, C) and, when ``grad``,
    ``backward(gy) -> gx`` (None otherwise), which scatters ``gy`` to each window's pick."""
    out = pool_output_shape(x.shape[1:-1], ksize, strides, pads)
    y, pick = max_pool(x, ksize, strides, pads, out)
    if not grad:
        return y, None
    return y, partial(max_pool_backward, pick=pick, x_shape=x.shape, ksize=ksize, strides=strides,
                      pads=pads)


@kernel()
def _avg_pool_tiled(x, y, kh, kw, c_, inv):
    """``y[n, i, j] = mean of x[n, i*kh:(i+1)*kh, j*kw:(j+1)*kw]`` (``inv``: 1 / (kh*kw)).

    ``x`` (N, H, W*C) and ``y`` (N, OH, OW*C) are flat per row. The window's rows are
    added first, over whole contiguous rows (vectorised), then the row sum's runs of
    ``kw`` pixels; no loop makes a view per pixel (that cost more than the sums).
    """
    ow_ = y.shape[2] // c_
    for n in prange(x.shape[0]):
        acc = np.empty(ow_ * kw * c_, x.dtype)
        for i in range(y.shape[1]):
            acc[:] = x[n, i * kh, :acc.shape[0]]
            for a in range(1, kh):
                row = x[n, i * kh + a]
                for q in range(acc.shape[0]):
                    acc[q] += row[q]
            out = y[n, i]
            for j in range(ow_):
                for c in range(c_):
                    v = acc[j * kw * c_ + c]
                    for b in range(1, kw):
                        v += acc[(j * kw + b) * c_ + c]
                    out[j * c_ + c] = v * inv


@kernel()
def _avg_pool_tiled_backward(gy, gx, kh, kw, c_, inv):
    """``gx[n, h, w] = gy[n, h // kh, w // kw] * inv``, 0 where no window reaches;
    ``gy`` (N, OH, OW*C) and ``gx`` (N, H, W*C) flat per row. Each gradient row is
    spread once, then copied to the ``kh`` input rows of its windows."""
    oh_, ow_ = gy.shape[1], gy.shape[2] // c_
    cover = ow_ * kw * c_
    for n in prange(gy.shape[0]):
        for i in range(oh_):
            first = gx[n, i * kh]
            src = gy[n, i]
            for j in range(ow_):
                for b in range(kw):
                    for c in range(c_):
                        first[(j * kw + b) * c_ + c] = src[j * c_ + c] * inv
            first[cover:] = 0
            for a in range(1, kh):
                gx[n, i * kh + a, :] = first
        gx[n, oh_ * kh:, :] = 0


def _avg_usable(x, ksize, strides, pads, count_include_pad: bool = False) -> bool:
    """Rank 1-2 tiling windows (``strides == ksize``, no padding) on NumPy floats."""
    return len(ksize) <= 2 and tiles(ksize, strides, pads) and compile.usable(x)


def _tiled2d(shape, ksize):
    """(2-d shape, (kh, kw)) of a rank-1 or rank-2 tiling pool (rank 1: height 1)."""
    shape2, k, *_ = as2d(shape, tuple(ksize), tuple(ksize), (1,) * len(ksize),
                         ((0, 0),) * len(ksize), ((0, 1),) * len(ksize))
    return shape2, k


def _run_tiled(fn, src, dst, ksize, forward: bool) -> None:
    """Run tiling-pool kernel ``fn`` from ``src`` into ``dst``, each flat per row: the
    input (``src`` when ``forward``, else ``dst``) as (N, H, W*C), the pooled one as
    (N, OH, OW*C)."""
    full, pooled = (src, dst) if forward else (dst, src)
    (n, h, w, c), (kh, kw) = _tiled2d(full.shape, ksize)
    oh, ow = _tiled2d(pooled.shape, ksize)[0][1:3]
    rows_full, rows_pooled = (n, h, w * c), (n, oh, ow * c)
    rows_src, rows_dst = (rows_full, rows_pooled) if forward else (rows_pooled, rows_full)
    fn.sized(n, src.size)(np.ascontiguousarray(src).reshape(rows_src), dst.reshape(rows_dst),
                          kh, kw, c, src.dtype.type(1 / (kh * kw)))


@register("pool.avg", variant="numba", usable=_avg_usable, priority=1)
def avg_pool(x, ksize, strides, pads, count_include_pad: bool = False):
    """Average pooling over tiling windows (no padding, so ``count_include_pad`` is moot)."""
    out = pool_output_shape(x.shape[1:-1], ksize, strides, pads)
    y = alloc.empty((x.shape[0], *out, x.shape[-1]), x.dtype)
    if y.size:
        _run_tiled(_avg_pool_tiled, x, y, ksize, forward=True)
    return y


@register("pool.avg_backward", variant="numba", priority=1,
          usable=lambda gy, x_shape, ksize, strides, pads, count_include_pad=False:
          _avg_usable(gy, ksize, strides, pads))
def avg_pool_backward(gy, x_shape, ksize, strides, pads, count_include_pad: bool = False):
    """The gradient of ``avg_pool``: ``gy / prod(ksize)`` over each window, 0 elsewhere."""
    gx = alloc.empty(tuple(x_shape), gy.dtype)
    if gx.size:
        _run_tiled(_avg_pool_tiled_backward, gy, gx, ksize, forward=False)
    return gx
