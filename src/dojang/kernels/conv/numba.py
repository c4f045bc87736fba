"""Compiled convolution kernels: im2col and col2im with inline padding, fused bias + ReLU.

- im2col and col2im (rank 1 and 2, one group, C > 1) with the zero padding written
  inline: NumPy copies C floats at a time through a strided window view, from a padded
  copy of the input (``kernels.conv.im2col``, the reference).
- the fused bias + ReLU after a convolution's GEMM, and its backward, which masks ``gy``
  with ``y > 0`` and sums it per channel (the bias gradient) in the same pass.
- the direct convolution (``kernels.conv.direct``) registered as the compiled variants of
  ``"conv.correlate"`` and ``"conv.filter_grad"`` (the latter pads C_in with zeros to
  whole tiles when it must).
- the depthwise convolution (``kernels.conv.depthwise``): ``"conv.depthwise"`` (bias and
  ReLU fused), ``"conv.depthwise_input_grad"`` and ``"conv.depthwise_filter_grad"`` (the
  bias gradient in the same pass).

Each is registered as the ``numba`` variant of its op, with the rule ``kernels.plan``
states. Layout channels-last (N, *spatial, C), as everywhere in ``dojang.kernels``.
"""

from __future__ import annotations

import numpy as np

from dojang.kernels import alloc, compile, plan
from dojang.kernels.compile import as2d, as_samples, kernel, prange, samples
from dojang.kernels.conv import depthwise, direct
from dojang.kernels.registry import register


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


@register("conv.bias_relu", variant="numba", priority=1,
          usable=lambda y, b, relu: plan.fused_bias_relu(y))
def bias_relu_(y, b, relu: bool) -> None:
    """In place on a contiguous channels-last ``y``: add ``b`` (C,) (None: no bias), ReLU."""
    b = np.zeros(y.shape[-1], y.dtype) if b is None else b.astype(y.dtype, copy=False)
    _bias_relu.sized(y.shape[0], y.size)(as_samples(y), b, relu)


@register("conv.relu_grad_bias", variant="numba", priority=1,
          usable=lambda gy, y, bias: compile.usable(gy, y))
def relu_grad_bias(gy, y, bias: bool = True):
    """``(gy * (y > 0), its sum over every axis but the last)`` for channels-last arrays
    (the sum comes with the mask in one pass, whether ``bias`` wants it or not).

    The per-sample sums are added in sample order, so the result does not depend on
    how the batch was split over threads.
    """
    g = alloc.empty(y.shape, gy.dtype)
    sums = np.empty((y.shape[0], y.shape[-1]), dtype=np.float64)
    _relu_grad_sums.sized(y.shape[0], y.size)(samples(gy), samples(y), as_samples(g), sums)
    return g, np.add.reduce(sums, axis=0).astype(gy.dtype)


# ---------------------------------------------------------------------------- im2col
# Rank 1 and 2, one group, C > 1 (``kernels.conv.im2col`` keeps the other cases). Zero
# padding is written inline: no padded copy of the input is made.

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
    """The adjoint of ``_im2col2d``: add each column entry back into ``gx`` (in place).

    With dilation 1 along the width, a kernel row's taps inside ``gx`` are one run of
    ``(b1 - b0) * C`` contiguous values in both arrays, added in one loop (LeNet-5's
    second convolution, C = 6: measured 2.4x faster than a loop of C per tap).
    """
    n_, h_, w_, c_ = gx.shape
    rows, ow_ = oh1 - oh0, ow1 - ow0
    run = kw * c_
    g3 = gx.reshape(n_, h_, w_ * c_)
    for n in prange(n_):
        for i in range(oh0, oh1):
            for j in range(ow0, ow1):
                src = dcols[(n * rows + i - oh0) * ow_ + j - ow0]
                w0 = j * sw - pw
                b0 = min(kw, max(0, -w0))  # the taps b0 <= b < b1 fall inside gx
                b1 = max(b0, min(kw, w_ - w0))
                for a in range(kh):
                    h = i * sh + a * dh - ph
                    if not 0 <= h < h_:
                        continue
                    if dw == 1:
                        s = src[a * run + b0 * c_:a * run + b1 * c_]
                        d = g3[n, h, (w0 + b0) * c_:(w0 + b1) * c_]
                        for q in range(s.shape[0]):
                            d[q] += s[q]
                        continue
                    for b in range(kw):
                        w = j * sw + b * dw - pw
                        if 0 <= w < w_:
                            dst, base = gx[n, h, w], (a * kw + b) * c_
                            for c in range(c_):
                                dst[c] += src[base + c]


def im2col(x, cols, kernel, strides, dilations, pads, ranges) -> None:
    """Fill ``cols`` (n * prod(rows of ranges), KK*C), C-contiguous, with the columns of
    the outputs in ``ranges`` (one ``[a, b)`` per spatial dim) of ``x`` (n, *spatial, C)."""
    shape, k, s, d, p, r = as2d(x.shape, kernel, strides, dilations, pads, ranges)
    run = _im2col2d.sized(shape[0], cols.size)
    run(np.ascontiguousarray(x).reshape(shape), cols, k[0], k[1], s[0], s[1], d[0], d[1],
        p[0][0], p[1][0], r[0][0], r[0][1], r[1][0], r[1][1])


def col2im(dcols, gx, kernel, strides, dilations, pads, ranges) -> None:
    """Add ``dcols`` (n * rows, KK*C) into the C-contiguous ``gx`` (n, *spatial, C)."""
    shape, k, s, d, p, r = as2d(gx.shape, kernel, strides, dilations, pads, ranges)
    run = _col2im2d.sized(shape[0], dcols.size)
    run(dcols, gx.reshape(shape), k[0], k[1], s[0], s[1], d[0], d[1], p[0][0], p[1][0],
        r[0][0], r[0][1], r[1][0], r[1][1])


# ------------------------------------------------------------------ registered variants
def _im2col_usable(x, cols, kernel, strides, dilations, pads, ranges, groups) -> bool:
    return plan.compiled_im2col(x, len(kernel), groups)


@register("conv.im2col", variant="numba", usable=_im2col_usable, priority=1)
def im2col_op(x, cols, kernel, strides, dilations, pads, ranges, groups: int) -> None:
    """``kernels.conv.im2col.im2col`` in one compiled pass (one group: ``cols[0]``)."""
    im2col(x, cols[0], kernel, strides, dilations, pads, ranges)


def _col2im_usable(dcols, gx, kernel, strides, dilations, pads, ranges, groups) -> bool:
    return plan.compiled_im2col(gx, len(kernel), groups) and gx.flags.c_contiguous


@register("conv.col2im", variant="numba", usable=_col2im_usable, priority=1)
def col2im_op(dcols, gx, kernel, strides, dilations, pads, ranges, groups: int) -> None:
    """``kernels.conv.im2col.col2im`` in one compiled pass (one group: ``dcols[0]``)."""
    col2im(dcols[0], gx, kernel, strides, dilations, pads, ranges)


@register("conv.correlate", variant="numba", priority=1,
          usable=lambda x, w, y, strides, dilations, pads, groups:
          plan.direct_forward(x, w.shape, groups, w))
def correlate(x, w, y, strides, dilations, pads, groups: int) -> None:
    """Fill ``y`` with the correlation of ``x`` and ``w``: the direct kernel."""
    direct.forward(x, w, y, strides, dilations, pads)


@register("conv.filter_grad", variant="numba", priority=1,
          usable=lambda x, gy, w_shape, strides, dilations, pads, groups:
          plan.direct_filters(x, gy, w_shape, groups))
def filter_grad(x, gy, w_shape, strides, dilations, pads, groups: int):
    """The filter gradient from ``x`` and ``gy``: the direct kernel, on ``x`` with its
    channels padded with zeros to whole tiles (``plan.filter_channels``) if need be."""
    c_in, c_pad = x.shape[-1], plan.filter_channels(w_shape)
    if c_pad == c_in:
        return direct.filters(x, gy, w_shape, strides, dilations, pads)
    xp = alloc.zeros(x.shape[:-1] + (c_pad,), x.dtype)
    xp[..., :c_in] = x
    w_pad = tuple(w_shape[:-2]) + (c_pad, w_shape[-1])
    return np.ascontiguousarray(
        direct.filters(xp, gy, w_pad, strides, dilations, pads)[..., :c_in, :])


@register("conv.depthwise", variant="numba", priority=1,
          usable=lambda x, w, y, strides, dilations, pads, b, relu:
          plan.compiled_depthwise(x, len(strides), w, y, b))
def depthwise_(x, w, y, strides, dilations, pads, b, relu: bool) -> None:
    """The depthwise correlation, bias and ReLU in one compiled pass."""
    depthwise.forward(x, w, y, strides, dilations, pads, b, relu)


@register("conv.depthwise_input_grad", variant="numba", priority=1,
          usable=lambda gy, w, gx, strides, dilations, pads:
          plan.compiled_depthwise(gy, len(strides), w, gx) and gx.flags.c_contiguous)
def depthwise_input_grad(gy, w, gx, strides, dilations, pads) -> None:
    """The depthwise input gradient, each input pixel gathered once."""
    depthwise.input_grad(gy, w, gx, strides, dilations, pads)


@register("conv.depthwise_filter_grad", variant="numba", priority=1,
          usable=lambda x, gy, w_shape, strides, dilations, pads, bias:
          plan.compiled_depthwise(x, len(strides), gy))
def depthwise_filter_grad(x, gy, w_shape, strides, dilations, pads, bias: bool):
    """The depthwise filter gradient and, when ``bias``, the bias gradient in one pass."""
    return depthwise.filters(x, gy, w_shape, strides, dilations, pads, bias)
