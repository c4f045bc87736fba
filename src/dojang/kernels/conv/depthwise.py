"""Depthwise convolution compiled by numba: every kernel tap is one vector FMA across channels.

A depthwise convolution (``groups == C``, each input channel ``c`` with its own
``M = depth_multiplier`` filters, output channel ``c*M + m``) has no reduction over
channels, so im2col + GEMM does not fit it (a GEMM per channel of inner size KK). In
the channels-last layout a pixel's C channels are contiguous, and so are a tap's C
filter values: the work per (output pixel, tap) is ``out[:] += x[pixel, :] * w[tap, :]``,
a loop that LLVM vectorises over the channels. The NumPy reference
(``kernels.conv.reference``) does the same tap by tap over whole arrays, with a
temporary of the output's size per tap.

Layouts (rank 1 runs as height 1, ``compile.as2d``): ``x`` (N, H, W, C), filters
(KH, KW, C*M) (the layer's (KH, KW, 1, C*M) without its unit axis), ``y`` (N, OH, OW, C*M).

- ``forward``: each thread takes whole output rows ``(n, i)`` and writes each output
  pixel once: the bias, then the taps in (a, b) order, then the fused ReLU. A 3x3
  kernel with M = 1 and SW == DW takes two pixels whose taps are all inside ``x`` in one
  pass over the channels (four input columns per kernel row, each filter value loaded
  once for both): 25% less time than a pass per tap, measured on the benchmark block.
  Each pass over the channels writes at most two arrays: with more (one per tap) LLVM
  would need too many run-time overlap checks and measured 3x slower, unvectorised.
- ``input_grad``: with stride 1 and M = 1, the forward on ``gy`` with the filters
  flipped. Otherwise the gather form of the adjoint, ``gx[n, h, w, c] = sum over the
  taps (a, b) with h = i*SH + a*DH - PH, w = j*SW + b*DW - PW of gy[n, i, j, c*M + m] *
  w[a, b, c*M + m]`` (skipping the taps whose (i, j) are not whole outputs). Either way
  each input pixel is written once by one thread: no scatter, no zero-filled array.
- ``filters``: the filter gradient and, when asked, the bias gradient. The output rows
  ``(n, i)`` are cut into at most ``_GROUPS`` runs fixed by the shape (not by the thread
  count); each is summed by one thread, then the runs are added in order, so the result
  does not depend on the threads. Two pixels share each load and store of a partial
  sum where their taps are all inside ``x``. The bias sums run per row in the dtype and
  over rows in float64 (as ``conv.relu_grad_bias``'s, in float64).

Where these run is ``kernels.plan``'s rule (``plan.compiled_depthwise``); other cases
(rank 3, NumPy off, other dtypes) take the reference.
"""

from __future__ import annotations

import numpy as np

from dojang.kernels import alloc, compile
from dojang.kernels.compile import kernel, prange

_GROUPS = 16  # runs of output rows the filter gradient sums separately (see ``filters``)


@kernel()
def _forward(x, w, b, y, mult, sh, sw, dh, dw, ph, pw, relu):
    """``y[n, i, j, o] = act(b[o] + sum_{a, q} x[n, i*sh + a*dh - ph, j*sw + q*dw - pw,
    o // mult] * w[a, q, o])``, taps outside ``x`` read as 0."""
    n_, h_, w_, c_ = x.shape
    kh_, kw_ = w.shape[0], w.shape[1]
    oh_, ow_, co_ = y.shape[1], y.shape[2], y.shape[3]
    # 3x3, M = 1 and SW == DW: two output pixels whose nine taps are all inside x in one
    # pass over the channels; their taps are four columns of each kernel row, and each
    # filter value is loaded once for both
    fast = kh_ == 3 and kw_ == 3 and mult == 1 and sw == dw
    w3 = w if fast else np.zeros((3, 3, co_), w.dtype)
    w00, w01, w02, w10, w11, w12 = w3[0, 0], w3[0, 1], w3[0, 2], w3[1, 0], w3[1, 1], w3[1, 2]
    w20, w21, w22 = w3[2, 0], w3[2, 1], w3[2, 2]
    for r in prange(n_ * oh_):
        n, i = r // oh_, r % oh_
        h0 = i * sh - ph
        inner = fast and h0 >= 0 and h0 + 2 * dh < h_
        j = 0
        while j < ow_:
            v0 = j * sw - pw
            if inner and j + 1 < ow_ and v0 >= 0 and v0 + 3 * dw < w_:
                r0, r1, r2 = x[n, h0], x[n, h0 + dh], x[n, h0 + 2 * dh]
                a0, a1, a2, a3 = r0[v0], r0[v0 + dw], r0[v0 + 2 * dw], r0[v0 + 3 * dw]
                b0, b1, b2, b3 = r1[v0], r1[v0 + dw], r1[v0 + 2 * dw], r1[v0 + 3 * dw]
                c0, c1, c2, c3 = r2[v0], r2[v0 + dw], r2[v0 + 2 * dw], r2[v0 + 3 * dw]
                o0, o1 = y[n, i, j], y[n, i, j + 1]
                for c in range(c_):
                    p, q, s = w00[c], w01[c], w02[c]
                    t0 = b[c] + a0[c] * p + a1[c] * q + a2[c] * s
                    t1 = b[c] + a1[c] * p + a2[c] * q + a3[c] * s
                    p, q, s = w10[c], w11[c], w12[c]
                    t0 += b0[c] * p + b1[c] * q + b2[c] * s
                    t1 += b1[c] * p + b2[c] * q + b3[c] * s
                    p, q, s = w20[c], w21[c], w22[c]
                    t0 += c0[c] * p + c1[c] * q + c2[c] * s
                    t1 += c1[c] * p + c2[c] * q + c3[c] * s
                    o0[c] = t0
                    o1[c] = t1
                if relu:  # a loop of its own: a select in the loop above stops LLVM vectorising
                    for c in range(c_):
                        o0[c] = 0 if o0[c] <= 0 else o0[c]  # NaN stays, -0 becomes 0
                        o1[c] = 0 if o1[c] <= 0 else o1[c]
                j += 2
                continue
            out = y[n, i, j]
            for o in range(co_):
                out[o] = b[o]
            for a in range(kh_):
                h = h0 + a * dh
                if h < 0 or h >= h_:
                    continue
                for q in range(kw_):
                    v = v0 + q * dw
                    if v < 0 or v >= w_:
                        continue
                    xr, wr = x[n, h, v], w[a, q]
                    if mult == 1:
                        for c in range(c_):
                            out[c] += xr[c] * wr[c]
                    else:
                        for c in range(c_):
                            for m in range(mult):
                                out[c * mult + m] += xr[c] * wr[c * mult + m]
            if relu:
                for o in range(co_):
                    out[o] = 0 if out[o] <= 0 else out[o]
            j += 1


@kernel()
def _input_grad(gy, w, gx, mult, sh, sw, dh, dw, ph, pw):
    """``gx[n, h, v, c] = sum of gy[n, i, j, c*mult + m] * w[a, q, c*mult + m]`` over the
    taps with ``h = i*sh + a*dh - ph`` and ``v = j*sw + q*dw - pw``."""
    n_, h_, w_, c_ = gx.shape
    kh_, kw_ = w.shape[0], w.shape[1]
    oh_, ow_ = gy.shape[1], gy.shape[2]
    for r in prange(n_ * h_):
        n, h = r // h_, r % h_
        for v in range(w_):
            out = gx[n, h, v]
            for c in range(c_):
                out[c] = 0
            for a in range(kh_):
                t = h + ph - a * dh
                if t < 0 or t % sh != 0 or t // sh >= oh_:
                    continue
                for q in range(kw_):
                    u = v + pw - q * dw
                    if u < 0 or u % sw != 0 or u // sw >= ow_:
                        continue
                    gr, wr = gy[n, t // sh, u // sw], w[a, q]
                    if mult == 1:
                        for c in range(c_):
                            out[c] += gr[c] * wr[c]
                    else:
                        for c in range(c_):
                            for m in range(mult):
                                out[c] += gr[c * mult + m] * wr[c * mult + m]


@kernel()
def _filters(x, gy, part, bpart, mult, sh, sw, dh, dw, ph, pw, bias):
    """``part[g, a, q, o]``: the sum over the output rows of run ``g`` of
    ``x[n, i*sh + a*dh - ph, j*sw + q*dw - pw, o // mult] * gy[n, i, j, o]``;
    ``bpart[g, o]`` (when ``bias``): the sum of ``gy[n, i, j, o]`` over them (each row's
    sum in the dtype, the rows' in float64)."""
    n_, h_, w_, c_ = x.shape
    oh_, ow_, co_ = gy.shape[1], gy.shape[2], gy.shape[3]
    groups, kh_, kw_ = part.shape[0], part.shape[1], part.shape[2]
    rows = n_ * oh_
    for g in prange(groups):
        acc, bacc = part[g], bpart[g]
        acc[...] = 0
        bacc[:] = 0
        row_sum = np.empty(co_, gy.dtype)
        for r in range(g * rows // groups, (g + 1) * rows // groups):
            n, i = r // oh_, r % oh_
            row_sum[:] = 0
            j = 0
            while j < ow_:
                gr = gy[n, i, j]
                # M = 1 and two pixels whose taps are all inside x: each partial sum is
                # loaded and stored once for both
                v0, v1 = j * sw - pw, (j + 1) * sw - pw
                pair = (mult == 1 and j + 1 < ow_ and v0 >= 0 and v1 + (kw_ - 1) * dw < w_)
                g1 = gy[n, i, j + 1 if pair else j]
                if bias and pair:
                    for o in range(co_):
                        row_sum[o] += gr[o] + g1[o]
                elif bias:
                    for o in range(co_):
                        row_sum[o] += gr[o]
                for a in range(kh_):
                    h = i * sh + a * dh - ph
                    if h < 0 or h >= h_:
                        continue
                    for q in range(kw_):
                        v = v0 + q * dw
                        if v < 0 or v >= w_:
                            continue
                        xr, ar = x[n, h, v], acc[a, q]
                        if pair:
                            x1 = x[n, h, v1 + q * dw]
                            for c in range(c_):
                                ar[c] += xr[c] * gr[c] + x1[c] * g1[c]
                        elif mult == 1:
                            for c in range(c_):
                                ar[c] += xr[c] * gr[c]
                        else:
                            for c in range(c_):
                                for m in range(mult):
                                    ar[c * mult + m] += xr[c] * gr[c * mult + m]
                j += 2 if pair else 1
            if bias:
                for o in range(co_):
                    bacc[o] += row_sum[o]


def _as2d(a):
    """A rank-1 (N, L, C) array as (N, 1, L, C); rank 2 as is."""
    return a.reshape(a.shape[0], 1, *a.shape[1:]) if a.ndim == 3 else a


def _geometry(kernel_shape, strides, dilations, pads):
    """(KH, KW) and (sh, sw, dh, dw, ph, pw) through ``compile.as2d`` (rank 1: height 1)."""
    rank = len(kernel_shape)
    _, k, s, d, p, _ = compile.as2d((0,) * (rank + 2), kernel_shape, strides, dilations, pads,
                                    ((0, 0),) * rank)
    return tuple(k), (s[0], s[1], d[0], d[1], p[0][0], p[1][0])


def _filters2d(w_shape, k2):
    """The (KH, KW, C*M) shape of depthwise filters (*K, 1, C*M)."""
    return k2 + (w_shape[-1],)


def forward(x, w, y, strides, dilations, pads, b, relu: bool) -> None:
    """Fill ``y`` (N, *O, C*M) with ``act(correlation + b)`` of ``x`` (N, *S, C) and the
    depthwise filters ``w`` (*K, 1, C*M); ``b`` None: no bias."""
    k2, geometry = _geometry(w.shape[:-2], strides, dilations, pads)
    co = w.shape[-1]
    b = np.zeros(co, y.dtype) if b is None else b.astype(y.dtype, copy=False)
    _forward(_as2d(np.ascontiguousarray(x)), np.ascontiguousarray(w).reshape(
        _filters2d(w.shape, k2)), b, _as2d(y), co // x.shape[-1], *geometry, relu)


def input_grad(gy, w, gx, strides, dilations, pads) -> None:
    """Fill ``gx`` (N, *S, C) with the gradient of the depthwise correlation w.r.t. its
    input, from ``gy`` (N, *O, C*M).

    With stride 1 and M = 1 this is the forward kernel on ``gy`` with the filters flipped
    and the padding ``D*(K-1) - P_before`` (as ``conv.reference._full_correlation``), whose
    3x3 fast path then serves it too.
    """
    k2, (sh, sw, dh, dw, ph, pw) = _geometry(w.shape[:-2], strides, dilations, pads)
    mult = w.shape[-1] // gx.shape[-1]
    g2, w3 = _as2d(np.ascontiguousarray(gy)), np.ascontiguousarray(w).reshape(
        _filters2d(w.shape, k2))
    if sh == sw == 1 and mult == 1:
        _forward(g2, np.ascontiguousarray(w3[::-1, ::-1]), np.zeros(w3.shape[-1], gx.dtype),
                 _as2d(gx), 1, 1, 1, dh, dw, dh * (k2[0] - 1) - ph, dw * (k2[1] - 1) - pw,
                 False)
        return
    _input_grad(g2, w3, _as2d(gx), mult, sh, sw, dh, dw, ph, pw)


def filters(x, gy, w_shape, strides, dilations, pads, bias: bool):
    """``(dw, db)``: the filter gradient (``w_shape``) and, when ``bias``, the bias
    gradient (C*M,) (else None) of the depthwise correlation of ``x`` that gave ``gy``."""
    k2, geometry = _geometry(w_shape[:-2], strides, dilations, pads)
    x2, g2 = _as2d(np.ascontiguousarray(x)), _as2d(np.ascontiguousarray(gy))
    co = w_shape[-1]
    groups = max(1, min(g2.shape[0] * g2.shape[1], _GROUPS))
    part = alloc.empty((groups,) + _filters2d(w_shape, k2), gy.dtype)
    bpart = np.empty((groups, co), np.float64)
    _filters(x2, g2, part, bpart, co // x.shape[-1], *geometry, bias)
    dw = np.add.reduce(part, axis=0).reshape(w_shape)  # the runs in order
    return dw, np.add.reduce(bpart, axis=0).astype(gy.dtype) if bias else None
