"""Batch normalisation's array math on any backend's arrays (the reference of
``batchnorm.numba``).

Ops (``axis`` the channel axis; every other axis is reduced):

- ``"batch_norm.train"(x, gamma, beta, axis, epsilon) -> (y, mean, var, backward)``: with
  ``n`` the number of reduced elements, ``xc = x - mean``, ``var = sum(xc**2) / n`` (two
  passes: no cancellation) and ``s = gamma / sqrt(var + eps)``: ``y = xc * s + beta``.
  ``backward(gy, need_x) -> (gx, sum(gy), sum(gy * xhat))`` with ``xhat = xc /
  sqrt(var + eps)`` and ``gx = s * (gy - sum(gy)/n - xhat * sum(gy * xhat)/n)`` (None
  unless ``need_x``).
- ``"batch_norm.train_act"(x, gamma, beta, axis, epsilon, residual, relu) -> (y, mean,
  var, backward)``: ``y = act(bn(x) + residual)`` (``residual`` None: no sum; ``relu``:
  ``act`` is the ReLU, else the identity), the post-activated block of a residual
  network as one op. ``backward(gy, need_x, need_residual) -> (gx, g, sum(g), sum(g *
  xhat))`` with ``g = gy * (y > 0)`` (``gy`` without the ReLU), the residual's gradient
  (None unless ``need_residual``); the last two are gamma's and beta's.
- ``"batch_norm.inference"(x, gamma, beta, mean, var, axis, epsilon) -> (y, backward)``:
  ``y = gamma (x - mean) / sqrt(var + eps) + beta``;
  ``backward(gy, need_x, need_gamma) -> (gx, sum(gy), sum(gy * xhat) or None)``.

``gamma``/``beta`` may be None (no scale/center).

Layout: the data seen as a wide matrix of channel rows. The channels-last data is the
``(M, C)`` matrix of ``M = size / C`` rows; with the channel axis elsewhere it is moved
last first (one copy in, a transposed view out). NumPy broadcasts a ``(C,)`` vector over
that matrix ``C`` items at a time, slow for small ``C``, so each row of the working
matrix holds ``R`` consecutive rows: ``(M/R, R*C)`` (still a view), with the per-channel
vectors tiled ``R`` times. Column sums are a matrix-vector product with ones (BLAS, about
10x faster than NumPy's reduction over the outer axis); column dot products are one
``einsum`` pass (no temporary); both give ``R*C`` partial sums, folded to ``C`` in a
fixed order.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from dojang.backend import get_array_module
from dojang.kernels.registry import dispatch, register


class _Layout:
    """The working-matrix layout of data of one shape (see the module docstring)."""

    def __init__(self, a, axis: int):
        self.axis = axis
        self.xp = xp = get_array_module(a)
        if axis != a.ndim - 1:
            a = xp.moveaxis(a, axis, -1)
        self.moved_shape = a.shape
        c = a.shape[-1]
        m = a.size // c if c else 0
        self.reps = _row_group(m, c)
        self.n = math.prod(self.moved_shape[:-1])

    def matrix(self, a):
        """``a`` as the ``(M/R, R*C)`` working matrix."""
        if self.axis != a.ndim - 1:
            a = self.xp.moveaxis(a, self.axis, -1)
        c = a.shape[-1]
        m = a.size // c if c else 0
        return a.reshape(m // self.reps, self.reps * c)

    def unmatrix(self, w):
        """The inverse of ``matrix``: back to the input's layout."""
        a = w.reshape(self.moved_shape)
        if self.axis != a.ndim - 1:
            a = self.xp.moveaxis(a, -1, self.axis)
        return a

    def tile(self, v):
        """A ``(C,)`` vector repeated to the working row, ``(R*C,)``."""
        if self.reps == 1:
            return v
        row = self.xp.empty(self.reps * v.shape[0], dtype=v.dtype)
        row.reshape(self.reps, -1)[...] = v
        return row

    def fold(self, partial):
        """``(R*C,)`` partial sums of the working columns -> ``(C,)`` channel sums."""
        return partial if self.reps == 1 else partial.reshape(self.reps, -1).sum(axis=0)


_WIDE_ROW = 4096  # items per working row to aim for (a power of two)


def _row_group(m: int, c: int) -> int:
    """``R``: the largest power of two dividing ``m`` with ``R * c <= _WIDE_ROW`` (>= 1)."""
    limit = 1 << max(0, (_WIDE_ROW // max(c, 1)).bit_length() - 1)
    return math.gcd(m, limit) if m else 1


def _column_sums(w):
    """``w.sum(axis=0)`` as ``ones @ w`` (a BLAS GEMV) for NumPy arrays."""
    if get_array_module(w) is np:
        return _ones(w.shape[0], w.dtype.str) @ w
    return w.sum(axis=0)


@functools.lru_cache(maxsize=8)
def _ones(n: int, dtype: str) -> np.ndarray:
    ones = np.ones(n, dtype=dtype)
    ones.flags.writeable = False
    return ones


def _column_dots(a, b):
    """``(a * b).sum(axis=0)`` in one pass, without the product array."""
    return get_array_module(a).einsum("ij,ij->j", a, b)


_BLOCK_BYTES = 1 << 18  # a scratch block that stays in the L2 cache


def _add_product(out, a, v) -> None:
    """``out += a * v`` (``v`` one row, broadcast) without a full-size temporary.

    A fresh full-size temporary costs more than the arithmetic here: the allocator
    returns large blocks to the OS and every reuse faults its pages in again. NumPy
    arrays are done in row blocks through one cache-sized scratch block.
    """
    xp = get_array_module(out)
    if xp is not np:
        out += a * v
        return
    rows = max(1, _BLOCK_BYTES // max(1, a.shape[1] * a.itemsize))
    scratch = np.empty((min(rows, a.shape[0]), a.shape[1]), dtype=out.dtype)
    for start in range(0, a.shape[0], rows):
        block = slice(start, start + rows)
        out[block] += np.multiply(a[block], v, out=scratch[:len(out[block])])


@register("batch_norm.train")
def batch_norm_train(x, gamma, beta, axis: int, epsilon: float):
    """Normalize ``x`` with its batch statistics: ``(y, mean, var, backward)``."""
    lay = _Layout(x, axis)
    w = lay.matrix(x)
    xp, n = lay.xp, lay.n
    mean = lay.fold(_column_sums(w)) / n
    xc = w - lay.tile(mean)
    var = lay.fold(_column_dots(xc, xc)) / n
    inv_std = 1 / xp.sqrt(var + epsilon)
    scale = inv_std if gamma is None else gamma * inv_std
    y = xc * lay.tile(scale)
    if beta is not None:
        y += lay.tile(beta)
    return lay.unmatrix(y), mean, var, functools.partial(_train_backward, lay, xc, inv_std,
                                                         scale)


def _train_backward(lay, xc, inv_std, scale, gy, need_x: bool):
    n = lay.n
    gyw = lay.matrix(gy)
    gy_sum = lay.fold(_column_sums(gyw))
    gy_xhat_sum = lay.fold(_column_dots(gyw, xc)) * inv_std
    gx = None
    if need_x:
        # s*gy - s*sum(gy)/n - xc * (s*inv_std*sum(gy*xhat)/n)
        gx = xc * lay.tile(scale * inv_std * gy_xhat_sum / -n)
        gx += lay.tile(scale * gy_sum / -n)
        _add_product(gx, gyw, lay.tile(scale))
        gx = lay.unmatrix(gx)
    return gx, gy_sum, gy_xhat_sum


@register("batch_norm.train_act")
def batch_norm_train_act(x, gamma, beta, axis: int, epsilon: float, residual, relu: bool):
    """``act(bn(x) + residual)`` as ``"batch_norm.train"``, the sum and ``"relu"`` in turn:
    ``(y, mean, var, backward)``."""
    y, mean, var, backward = dispatch("batch_norm.train", x, gamma, beta, axis, epsilon)
    if residual is not None:
        y = y + residual
    if relu:
        y = dispatch("relu", y)
    return y, mean, var, functools.partial(_act_backward, backward, y if relu else None)


def _act_backward(backward, y, gy, need_x: bool, need_residual: bool):
    g = gy if y is None else dispatch("relu_grad", gy, y)
    gx, gy_sum, gy_xhat_sum = backward(g, need_x)
    return gx, g if need_residual else None, gy_sum, gy_xhat_sum


def inference_scale(x, gamma, mean, var, epsilon: float):
    """``(mean, inv_std, scale)`` of inference in ``x``'s dtype: ``inv_std = 1 /
    sqrt(var + eps)``, ``scale = gamma * inv_std`` (``inv_std`` without ``gamma``)."""
    xp = get_array_module(x)
    mean = mean.astype(x.dtype, copy=False)
    inv_std = 1 / xp.sqrt(var.astype(x.dtype, copy=False) + epsilon)
    return mean, inv_std, inv_std if gamma is None else gamma * inv_std


@register("batch_norm.inference")
def batch_norm_inference(x, gamma, beta, mean, var, axis: int, epsilon: float):
    """Normalize ``x`` with fixed statistics: ``(y, backward)``."""
    lay = _Layout(x, axis)
    w = lay.matrix(x)
    mean, inv_std, scale = inference_scale(x, gamma, mean, var, epsilon)
    y = w - lay.tile(mean)
    y *= lay.tile(scale)
    if beta is not None:
        y += lay.tile(beta)
    return lay.unmatrix(y), inference_backward(x, mean, inv_std, scale, axis)


def inference_backward(x, mean, inv_std, scale, axis: int):
    """The backward of inference (both variants'): ``backward(gy, need_x, need_gamma)``."""
    return functools.partial(_inference_backward, _Layout(x, axis), x, mean, inv_std, scale)


def _inference_backward(lay, x, mean, inv_std, scale, gy, need_x: bool, need_gamma: bool):
    gyw = lay.matrix(gy)
    gy_sum = lay.fold(_column_sums(gyw))
    gy_xhat_sum = None
    if need_gamma:
        xc = lay.matrix(x) - lay.tile(mean)
        gy_xhat_sum = lay.fold(_column_dots(gyw, xc)) * inv_std
    gx = lay.unmatrix(gyw * lay.tile(scale)) if need_x else None
    return gx, gy_sum, gy_xhat_sum
