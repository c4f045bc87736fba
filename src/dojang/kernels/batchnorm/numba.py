"""Compiled batch normalisation: statistics, normalise-scale-shift and the backward in two
passes over the data each way.

Registered as the ``numba`` variants of ``"batch_norm.train"`` and
``"batch_norm.inference"`` (see ``batchnorm.reference`` for the math) for channels-last
NumPy float data of rank >= 2.
"""

from __future__ import annotations

import functools

import numpy as np

from dojang.kernels import alloc, compile
from dojang.kernels.batchnorm.reference import inference_backward, inference_scale
from dojang.kernels.compile import kernel, prange, samples
from dojang.kernels.registry import register

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


def _folded(x3, mean, squares):
    out = np.empty((x3.shape[0], x3.shape[2]), dtype=np.float64)
    _sample_sums.sized(x3.shape[0], x3.size)(x3, mean, squares, out)
    return np.add.reduce(out, axis=0)


def batch_norm_stats(x):
    """``(mean, biased variance)`` over every axis but the last (two passes), in x's dtype."""
    x3 = samples(x)
    n = x3.shape[0] * x3.shape[1]
    mean = (_folded(x3, np.zeros(x3.shape[2], x.dtype), False) / n).astype(x.dtype)
    var = (_folded(x3, mean, True) / n).astype(x.dtype)
    return mean, var


def normalize(x, mean, scale, shift):
    """``(x - mean) * scale + shift`` with per-channel vectors (channels last)."""
    x3 = samples(x)
    y = alloc.empty(x.shape, x.dtype)
    cast = [v.astype(x.dtype, copy=False) for v in (mean, scale, shift)]
    _normalize.sized(x3.shape[0], x3.size)(x3, *cast, y.reshape(x3.shape))
    return y


def batch_norm_grad_sums(gy, x, mean):
    """``(sum gy, sum gy * (x - mean))`` over every axis but the last, as float64."""
    gy3, x3 = samples(gy), samples(x)
    s_gy = np.empty((gy3.shape[0], gy3.shape[2]), dtype=np.float64)
    s_gyxc = np.empty_like(s_gy)
    _bn_grad_sums.sized(gy3.shape[0], gy3.size)(gy3, x3, mean, s_gy, s_gyxc)
    return np.add.reduce(s_gy, axis=0), np.add.reduce(s_gyxc, axis=0)


def batch_norm_grad(gy, x, mean, a, b, c0):
    """``a * gy + b * (x - mean) + c0`` with per-channel vectors (channels last)."""
    gy3 = samples(gy)
    gx = alloc.empty(gy.shape, gy.dtype)
    cast = [v.astype(gy.dtype, copy=False) for v in (mean, a, b, c0)]
    run = _bn_grad_apply.sized(gy3.shape[0], gy3.size)
    run(gy3, samples(x), cast[0], *cast[1:], gx.reshape(gy3.shape))
    return gx


def _channels_last(x, *args) -> bool:
    """Channels-last (``axis`` last) NumPy float data of rank >= 2."""
    axis = args[-2]
    return x.ndim >= 2 and axis == x.ndim - 1 and compile.usable(x)


@register("batch_norm.train", variant="numba", usable=_channels_last, priority=1)
def batch_norm_train(x, gamma, beta, axis: int, epsilon: float):
    """``(y, mean, var, backward)`` in two compiled passes; keeps ``x`` and the mean, not
    ``x - mean``."""
    mean, var = batch_norm_stats(x)
    inv_std = 1 / np.sqrt(var + np.asarray(epsilon, var.dtype))
    scale = inv_std if gamma is None else gamma * inv_std
    shift = np.zeros_like(mean) if beta is None else beta
    return (normalize(x, mean, scale, shift), mean, var,
            functools.partial(_train_backward, x, mean, inv_std, scale))


def _train_backward(x, mean, inv_std, scale, gy, need_x: bool):
    n = x.size // x.shape[-1]
    gy_sum, gy_xc_sum = batch_norm_grad_sums(gy, x, mean)
    gy_xhat_sum = (gy_xc_sum * inv_std).astype(gy.dtype)
    gy_sum = gy_sum.astype(gy.dtype)
    gx = None
    if need_x:
        gx = batch_norm_grad(gy, x, mean, scale, scale * inv_std * gy_xhat_sum / -n,
                             scale * gy_sum / -n)
    return gx, gy_sum, gy_xhat_sum


@register("batch_norm.inference", variant="numba", usable=_channels_last, priority=1)
def batch_norm_inference(x, gamma, beta, mean, var, axis: int, epsilon: float):
    """``(y, backward)``: one compiled normalise-scale-shift pass."""
    mean, inv_std, scale = inference_scale(x, gamma, mean, var, epsilon)
    shift = np.zeros_like(mean) if beta is None else beta
    return (normalize(x, mean, scale, shift),
            inference_backward(x, mean, inv_std, scale, axis))
