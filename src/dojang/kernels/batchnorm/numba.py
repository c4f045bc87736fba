"""Compiled batch normalisation: the statistics in one pass over memory, then
normalise-scale-shift (with the residual sum and the ReLU fused when asked) in a second;
the backward in two passes as well.

Registered as the ``numba`` variants of ``"batch_norm.train"``, ``"batch_norm.train_act"``
and ``"batch_norm.inference"`` (see ``batchnorm.reference`` for the math) for channels-last
NumPy float data of rank >= 2.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from dojang.kernels import alloc, compile
from dojang.kernels.batchnorm.reference import inference_backward, inference_scale
from dojang.kernels.compile import kernel, prange, samples
from dojang.kernels.registry import register

# Channels-last data as (N, P, C), each sample's P*C items looped over as rows of R*C
# (``_wide``) with the per-channel vectors repeated R times. Each sample's statistics
# come from two passes over
# that sample alone (its block stays in the cache, so memory is read once), in float64;
# the samples are then merged in sample order by NumPy (Chan et al.'s pairwise update):
# no cancellation, and the result does not depend on the thread count.
#
# The ReLU's mask in the backward: without a residual it is recomputed from x with the
# forward's own float operations (the same bits, no read of y); with one, y is read and
# the masked gradient written out by the input gradient's pass, since the residual's
# branch needs it anyway. Each kernel keeps its arithmetic in the data's float type
# (a typed zero: a literal 0 would widen it to float64).

_PLAIN, _RECOMPUTE, _FROM_Y = 0, 1, 2  # how the backward masks gy (see above)
_WIDE_ROW = 64  # items per row of the kernels' loops to aim for (a power of two)


@kernel()
def _sample_moments(x, channels, means, m2s):
    """Per sample ``n``: ``means[n] = mean_p x[n, p]``, ``m2s[n] = sum_p (x - mean)**2``.

    ``x`` is (N, P/R, R*C): R pixels per row, so that the row loop is long enough to pay
    for its set-up when C is small; the R partial sums are folded in a fixed order.
    """
    rows, width = x.shape[1], x.shape[2]
    count = rows * (width // channels)
    for n in prange(x.shape[0]):
        xs = x[n]
        acc = np.zeros(width)
        for p in range(rows):
            row = xs[p]
            for j in range(width):
                acc[j] += np.float64(row[j])
        mean = np.zeros(channels)
        for j in range(width):
            mean[j % channels] += acc[j]
        mean /= count
        wide = np.empty(width)
        for j in range(width):
            wide[j] = mean[j % channels]
        acc[:] = 0
        for p in range(rows):
            row = xs[p]
            for j in range(width):
                d = np.float64(row[j]) - wide[j]
                acc[j] += d * d
        m2 = m2s[n]
        m2[:] = 0
        for j in range(width):
            m2[j % channels] += acc[j]
        means[n] = mean


@kernel()
def _normalize(x, mean, scale, shift, res, has_res, relu, y):
    """``y = (x - mean) * scale + shift [+ res] [then max(., 0)]`` per channel."""
    zero = np.zeros(1, x.dtype)[0]  # a 0 of x's type keeps the arithmetic in it
    for n in prange(x.shape[0]):
        for p in range(x.shape[1]):
            src, dst, r = x[n, p], y[n, p], res[n, p]
            for c in range(x.shape[2]):
                v = (src[c] - mean[c]) * scale[c] + shift[c]
                if has_res:
                    v += r[c]
                if relu:
                    v = zero if v <= 0 else v  # NaN stays, as the ReLU kernel
                dst[c] = v


@kernel()
def _bn_grad_sums(gy, x, mean, scale, shift, y, mode, s_gy, s_gyxc):
    """Per sample: ``sum_p g`` and ``sum_p g * (x - mean)`` for ``g`` the masked ``gy``
    (``mode``, see above)."""
    zero = np.zeros(1, gy.dtype)[0]
    for n in prange(gy.shape[0]):
        a, b = s_gy[n], s_gyxc[n]
        a[:] = 0
        b[:] = 0
        for p in range(gy.shape[1]):
            src, row, yr = gy[n, p], x[n, p], y[n, p]
            for c in range(row.shape[0]):
                v = src[c]
                if mode == _RECOMPUTE and not (row[c] - mean[c]) * scale[c] + shift[c] > 0:
                    v = zero
                if mode == _FROM_Y and not yr[c] > 0:
                    v = zero
                a[c] += v
                b[c] += np.float64(v * (row[c] - mean[c]))


@kernel()
def _bn_grad_apply(gy, x, mean, scale, shift, y, mode, a, b, c0, gx, g):
    """``gx = a * g + b * (x - mean) + c0`` per channel for ``g`` the masked ``gy``
    (``mode``); ``_FROM_Y`` also writes ``g`` out."""
    zero = np.zeros(1, gy.dtype)[0]
    for n in prange(gy.shape[0]):
        for p in range(gy.shape[1]):
            src, row, yr, dst, out = gy[n, p], x[n, p], y[n, p], gx[n, p], g[n, p]
            for c in range(row.shape[0]):
                v = src[c]
                if mode == _RECOMPUTE and not (row[c] - mean[c]) * scale[c] + shift[c] > 0:
                    v = zero
                if mode == _FROM_Y:
                    v = v if yr[c] > 0 else zero
                    out[c] = v
                dst[c] = a[c] * v + b[c] * (row[c] - mean[c]) + c0[c]


def _wide(a):
    """``a`` as the (N, P/R, R*C) rows the kernels loop over, and ``R``: the largest power
    of two dividing P with ``R*C <= _WIDE_ROW`` (a loop over C alone is too short to pay
    for its set-up when C is small)."""
    a3 = samples(a)
    n, p, c = a3.shape
    reps = math.gcd(p, _WIDE_ROW // c) if c <= _WIDE_ROW else 1
    return a3.reshape(n, p // reps, reps * c), reps


def _tiled(dtype, reps, *vectors):
    """Per-channel vectors in ``dtype``, repeated to the length of a wide row (one array
    for all: ``np.tile`` costs more than the kernel on small data)."""
    out = np.empty((len(vectors), reps, vectors[0].shape[0]), dtype)
    for row, v in zip(out, vectors, strict=True):
        row[...] = v
    return list(out.reshape(len(vectors), -1))


def _fold(partial, reps):
    """(N, R*C) per-sample partial sums -> (C,) sums, in sample order, then row order."""
    return np.add.reduce(partial, axis=0).reshape(reps, -1).sum(axis=0)


def batch_norm_stats(x):
    """``(mean, biased variance)`` over every axis but the last, in x's dtype."""
    x3, _ = _wide(x)
    n, c = x3.shape[0], x.shape[-1]
    p = x.size // (n * c) if n else 0
    means = np.empty((n, c))
    m2s = np.empty_like(means)
    _sample_moments.sized(n, x3.size)(x3, c, means, m2s)
    mean = np.add.reduce(means, axis=0) / n
    m2 = np.add.reduce(m2s, axis=0) + p * np.add.reduce((means - mean) ** 2, axis=0)
    return mean.astype(x.dtype), (m2 / (n * p)).astype(x.dtype)


def normalize(x, mean, scale, shift, residual=None, relu: bool = False):
    """``(x - mean) * scale + shift`` with per-channel vectors (channels last), plus
    ``residual`` (x's shape) and then the ReLU when asked."""
    x3, reps = _wide(x)
    y = alloc.empty(x.shape, x.dtype)
    res = x3 if residual is None else _wide(residual)[0]
    run = _normalize.sized(x3.shape[0], x3.size)
    run(x3, *_tiled(x.dtype, reps, mean, scale, shift), res, residual is not None, relu,
        y.reshape(x3.shape))
    return y


def batch_norm_grad_sums(gy, x, mean):
    """``(sum gy, sum gy * (x - mean))`` over every axis but the last, as float64."""
    return _grad_sums(gy, x, mean, mean, mean, None, _PLAIN)


def _grad_sums(gy, x, mean, scale, shift, y, mode):
    """``(sum g, sum g * (x - mean))`` with ``g`` the masked ``gy``."""
    (gy3, reps), x3 = _wide(gy), _wide(x)[0]
    s_gy = np.empty((gy3.shape[0], gy3.shape[2]), dtype=np.float64)
    s_gyxc = np.empty_like(s_gy)
    run = _bn_grad_sums.sized(gy3.shape[0], gy3.size)
    run(gy3, x3, *_tiled(gy.dtype, reps, mean, scale, shift),
        gy3 if y is None else _wide(y)[0], mode, s_gy, s_gyxc)
    return _fold(s_gy, reps), _fold(s_gyxc, reps)


def batch_norm_grad(gy, x, mean, a, b, c0, scale=None, shift=None, y=None, mode=_PLAIN):
    """``a * g + b * (x - mean) + c0`` with per-channel vectors (channels last) for ``g``
    the masked ``gy`` (``mode``, with the forward's ``scale``, ``shift`` and ``y``):
    ``gx``, or ``(gx, g)`` for ``_FROM_Y``."""
    gy3, reps = _wide(gy)
    gx = alloc.empty(gy.shape, gy.dtype)
    g = alloc.empty(gy.shape, gy.dtype) if mode == _FROM_Y else gx
    vectors = (mean, mean if scale is None else scale, mean if shift is None else shift)
    run = _bn_grad_apply.sized(gy3.shape[0], gy3.size)
    run(gy3, _wide(x)[0], *_tiled(gy.dtype, reps, *vectors), gy3 if y is None else _wide(y)[0],
        mode, *_tiled(gy.dtype, reps, a, b, c0), gx.reshape(gy3.shape), g.reshape(gy3.shape))
    return (gx, g) if mode == _FROM_Y else gx


def _channels_last(x, *args) -> bool:
    """Channels-last (``axis`` last) NumPy float data of rank >= 2."""
    axis = args[-2]
    return x.ndim >= 2 and axis == x.ndim - 1 and compile.usable(x)


def _train_forward(x, gamma, beta, epsilon, residual=None, relu=False):
    mean, var = batch_norm_stats(x)
    inv_std = 1 / np.sqrt(var + np.asarray(epsilon, var.dtype))
    scale = inv_std if gamma is None else gamma * inv_std
    shift = np.zeros_like(mean) if beta is None else beta.astype(x.dtype, copy=False)
    scale = scale.astype(x.dtype, copy=False)
    return normalize(x, mean, scale, shift, residual, relu), mean, var, inv_std, scale, shift


@register("batch_norm.train", variant="numba", usable=_channels_last, priority=1)
def batch_norm_train(x, gamma, beta, axis: int, epsilon: float):
    """``(y, mean, var, backward)`` in two compiled passes; keeps ``x`` and the mean, not
    ``x - mean``."""
    y, mean, var, inv_std, scale, _ = _train_forward(x, gamma, beta, epsilon)
    return y, mean, var, functools.partial(_train_backward, x, mean, inv_std, scale)


def _train_backward(x, mean, inv_std, scale, gy, need_x: bool):
    gx, gy_sum, gy_xhat_sum, _ = _backward(x, mean, inv_std, scale, mean, _PLAIN, None, gy,
                                           need_x, False)
    return gx, gy_sum, gy_xhat_sum


def _backward(x, mean, inv_std, scale, shift, mode, y, gy, need_x, need_g):
    """``(gx, sum g, sum g * xhat, g)``: the batch-norm backward of ``g``, the masked
    ``gy`` (``g`` itself None unless ``need_g``)."""
    n = x.size // x.shape[-1]
    gy_sum, gy_xc_sum = _grad_sums(gy, x, mean, scale, shift, y, mode)
    gy_xhat_sum = (gy_xc_sum * inv_std).astype(gy.dtype)
    gy_sum = gy_sum.astype(gy.dtype)
    gx, g = None, gy if mode == _PLAIN else None
    # the masked gy (the residual's gradient) comes out of the input gradient's pass
    if need_x or (need_g and g is None):
        a, b, c0 = scale, scale * inv_std * gy_xhat_sum / -n, scale * gy_sum / -n
        gx = batch_norm_grad(gy, x, mean, a, b, c0, scale, shift, y, mode)
        if mode == _FROM_Y:
            gx, g = gx
    if need_g and g is None:  # _RECOMPUTE: no residual, yet its gradient asked for
        ones = np.ones_like(scale)
        g = batch_norm_grad(gy, x, mean, ones, 0 * ones, 0 * ones, scale, shift, y, mode)
    return gx if need_x else None, gy_sum, gy_xhat_sum, g


def _act_usable(x, gamma, beta, axis, epsilon, residual, relu) -> bool:
    return _channels_last(x, axis, epsilon) and (residual is None or compile.usable(residual))


@register("batch_norm.train_act", variant="numba", usable=_act_usable, priority=1)
def batch_norm_train_act(x, gamma, beta, axis: int, epsilon: float, residual, relu: bool):
    """``(y, mean, var, backward)``: the residual sum and the ReLU inside the normalise
    pass, their gradients inside the backward's two passes."""
    y, mean, var, inv_std, scale, shift = _train_forward(x, gamma, beta, epsilon, residual,
                                                         relu)
    mode = _PLAIN if not relu else _RECOMPUTE if residual is None else _FROM_Y
    return y, mean, var, functools.partial(_act_backward, x, mean, inv_std, scale, shift,
                                           mode, y if mode == _FROM_Y else None)


def _act_backward(x, mean, inv_std, scale, shift, mode, y, gy, need_x: bool,
                  need_residual: bool):
    gx, gy_sum, gy_xhat_sum, g = _backward(x, mean, inv_std, scale, shift, mode, y, gy,
                                           need_x, need_residual)
    return gx, g if need_residual else None, gy_sum, gy_xhat_sum


@register("batch_norm.inference", variant="numba", usable=_channels_last, priority=1)
def batch_norm_inference(x, gamma, beta, mean, var, axis: int, epsilon: float):
    """``(y, backward)``: one compiled normalise-scale-shift pass."""
    mean, inv_std, scale = inference_scale(x, gamma, mean, var, epsilon)
    shift = np.zeros_like(mean) if beta is None else beta
    return (normalize(x, mean, scale, shift),
            inference_backward(x, mean, inv_std, scale, axis))
