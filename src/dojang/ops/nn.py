"""Dropout and batch normalization.

Dropout draws its mask from an explicit ``np.random.Generator`` (never NumPy's global
state). Batch normalization in training mode is one fused Function (batch statistics,
normalization, affine transform and the closed-form backward); it updates the running
statistics in place with the Keras convention
``running = momentum * running + (1 - momentum) * batch_statistic``, where the batch
variance is the biased one (divided by the number of reduced elements), as in Keras 3.

Arguments are not checked here; ``dojang.functional`` holds the checked entry points.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from dojang.autograd import Function, Tensor
from dojang.backend import get_array_module
from dojang.backends import check_same_device
from dojang.kernels import jit
from dojang.ops.elementwise import _operand

__all__ = ["batch_norm", "dropout"]


class Dropout(Function):
    """``y = x * mask`` with a precomputed, already scaled mask; ``dx = gy * mask``."""

    def __init__(self, mask):
        self.mask = mask

    def forward(self, x):
        return x * self.mask

    def backward(self, gy):
        return gy * self.mask


def dropout_mask(rng: np.random.Generator, shape: tuple[int, ...], rate: float, dtype, xp=np):
    """The inverted-dropout mask: ``(u >= rate) / (1 - rate)`` for ``u = rng.random(shape)``.

    ``u`` is drawn in float32 (``rng.random(shape, dtype=np.float32)``), so a generator in a
    given state always gives the same mask. The mask is returned in ``dtype`` on ``xp``.
    """
    keep = rng.random(shape, dtype=np.float32) >= rate
    mask = keep.astype(dtype) * np.asarray(1 / (1 - rate), dtype=dtype)
    return mask if xp is np else xp.asarray(mask)


class _BatchNorm(Function):
    """Layout shared by both modes: the data seen as a wide matrix of channel rows.

    The channels-last data is the ``(M, C)`` matrix of ``M = size / C`` rows; with the
    channel axis elsewhere it is moved last first (one copy in, a transposed view out).
    NumPy broadcasts a ``(C,)`` vector over that matrix ``C`` items at a time, slow for
    small ``C``, so each row of the working matrix holds ``R`` consecutive rows:
    ``(M/R, R*C)`` (still a view), with the per-channel vectors tiled ``R`` times.
    Column sums are a matrix-vector product with ones (BLAS, about 10x faster than
    NumPy's reduction over the outer axis); column dot products are one ``einsum`` pass
    (no temporary); both give ``R*C`` partial sums, folded to ``C`` in a fixed order.
    """

    def __init__(self, axis: int, epsilon: float):
        self.axis, self.epsilon = axis, epsilon

    def _matrix(self, a):
        """``a`` as the ``(M/R, R*C)`` working matrix; records the layout."""
        self.xp = xp = get_array_module(a)
        if self.axis != a.ndim - 1:
            a = xp.moveaxis(a, self.axis, -1)
        self.moved_shape = a.shape
        c = a.shape[-1]
        m = a.size // c if c else 0
        self.reps = _row_group(m, c)
        return a.reshape(m // self.reps, self.reps * c)

    def _unmatrix(self, w):
        """The inverse of ``_matrix``: back to the input's layout."""
        a = w.reshape(self.moved_shape)
        if self.axis != a.ndim - 1:
            a = self.xp.moveaxis(a, -1, self.axis)
        return a

    def _tile(self, v):
        """A ``(C,)`` vector repeated to the working row, ``(R*C,)``."""
        if self.reps == 1:
            return v
        row = self.xp.empty(self.reps * v.shape[0], dtype=v.dtype)
        row.reshape(self.reps, -1)[...] = v
        return row

    def _fold(self, partial):
        """``(R*C,)`` partial sums of the working columns -> ``(C,)`` channel sums."""
        return partial if self.reps == 1 else partial.reshape(self.reps, -1).sum(axis=0)

    def _param_grads(self, gy_sum, gy_xhat_sum):
        """``(dgamma, dbeta)`` as ``(C,)`` arrays, None where not wanted."""
        need = self.needs_input_grad
        return (gy_xhat_sum if need[1] else None, gy_sum if need[2] else None)


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


class BatchNormTrain(_BatchNorm):
    """Normalize with the batch statistics and update the running ones in place.

    With ``n`` the number of reduced elements, ``xc = x - mean`` (kept for backward),
    ``var = sum(xc**2) / n`` (two passes: no cancellation) and ``s = gamma / sqrt(var + eps)``:
    ``y = xc * s + beta``. Backward, with ``xhat = xc / sqrt(var + eps)``:
    ``dx = s * (gy - sum(gy)/n - xhat * sum(gy * xhat)/n)``,
    ``dgamma = sum(gy * xhat)``, ``dbeta = sum(gy)``.
    """

    def __init__(self, axis: int, epsilon: float, momentum: float, running_mean, running_var):
        super().__init__(axis, epsilon)
        self.momentum, self.running = momentum, (running_mean, running_var)

    def forward(self, x, gamma, beta):
        if jit.batch_norm_usable(x, self.axis):
            return self._forward_jit(x, gamma, beta)
        self.jit = False
        w = self._matrix(x)
        xp = self.xp
        n = math.prod(self.moved_shape[:-1])
        mean = self._fold(_column_sums(w)) / n
        xc = w - self._tile(mean)
        var = self._fold(_column_dots(xc, xc)) / n
        self.inv_std = 1 / xp.sqrt(var + self.epsilon)
        self.scale = self.inv_std if gamma is None else gamma * self.inv_std
        self.xc = xc
        self._update_running(mean, var, empty=x.size == 0)
        y = xc * self._tile(self.scale)
        if beta is not None:
            y += self._tile(beta)
        return self._unmatrix(y)

    def _update_running(self, mean, var, empty: bool) -> None:
        """Move the running statistics toward the batch's; an empty batch has none (its
        0/0 statistics would make them NaN) and leaves them as they are."""
        m = self.momentum
        for running, stat in zip(self.running, (mean, var), strict=True):
            if running is not None and not empty:
                running *= m
                running += ((1 - m) * stat).astype(running.dtype, copy=False)
        del self.running

    def _forward_jit(self, x, gamma, beta):
        """The compiled path (``kernels.jit``): keeps ``x`` and the mean, not ``x - mean``."""
        self.jit = True
        mean, var = jit.batch_norm_stats(x)
        self._update_running(mean, var, empty=x.size == 0)
        self.inv_std = 1 / np.sqrt(var + np.asarray(self.epsilon, var.dtype))
        self.scale = self.inv_std if gamma is None else gamma * self.inv_std
        self.x, self.mean = x, mean
        shift = np.zeros_like(mean) if beta is None else beta
        return jit.normalize(x, mean, self.scale, shift)

    def _backward_jit(self, gy):
        x, mean, inv_std, scale = self.x, self.mean, self.inv_std, self.scale
        n = x.size // x.shape[-1]
        gy_sum, gy_xc_sum = jit.batch_norm_grad_sums(gy, x, mean)
        gy_xhat_sum = (gy_xc_sum * inv_std).astype(gy.dtype)
        gy_sum = gy_sum.astype(gy.dtype)
        gx = None
        if self.needs_input_grad[0]:
            gx = jit.batch_norm_grad(gy, x, mean, scale, scale * inv_std * gy_xhat_sum / -n,
                                     scale * gy_sum / -n)
        return (gx, *self._param_grads(gy_sum, gy_xhat_sum))

    def backward(self, gy):
        if self.jit:
            return self._backward_jit(gy)
        xc, inv_std, scale = self.xc, self.inv_std, self.scale
        n = math.prod(self.moved_shape[:-1])
        gyw = self._matrix(gy)
        gy_sum = self._fold(_column_sums(gyw))
        gy_xhat_sum = self._fold(_column_dots(gyw, xc)) * inv_std
        gx = None
        if self.needs_input_grad[0]:
            # s*gy - s*sum(gy)/n - xc * (s*inv_std*sum(gy*xhat)/n)
            gx = xc * self._tile(scale * inv_std * gy_xhat_sum / -n)
            gx += self._tile(scale * gy_sum / -n)
            _add_product(gx, gyw, self._tile(scale))
            gx = self._unmatrix(gx)
        return (gx, *self._param_grads(gy_sum, gy_xhat_sum))


class BatchNormInference(_BatchNorm):
    """Normalize with fixed statistics: ``y = gamma (x - mean) / sqrt(var + eps) + beta``."""

    def __init__(self, axis: int, epsilon: float, mean, var):
        super().__init__(axis, epsilon)
        self.mean, self.var = mean, var

    def forward(self, x, gamma, beta):
        w = self._matrix(x)
        xp = self.xp
        self.w = w
        self.mean = self.mean.astype(x.dtype, copy=False)
        var = self.var.astype(x.dtype, copy=False)
        self.inv_std = 1 / xp.sqrt(var + self.epsilon)
        self.scale = self.inv_std if gamma is None else gamma * self.inv_std
        del self.var
        if jit.batch_norm_usable(x, self.axis):  # one compiled pass
            shift = xp.zeros_like(self.mean) if beta is None else beta
            return jit.normalize(x, self.mean, self.scale, shift)
        y = w - self._tile(self.mean)
        y *= self._tile(self.scale)
        if beta is not None:
            y += self._tile(beta)
        return self._unmatrix(y)

    def backward(self, gy):
        gyw = self._matrix(gy)
        gy_sum = self._fold(_column_sums(gyw))
        gy_xhat_sum = None
        if self.needs_input_grad[1]:
            xc = self.w - self._tile(self.mean)
            gy_xhat_sum = self._fold(_column_dots(gyw, xc)) * self.inv_std
        gx = self._unmatrix(gyw * self._tile(self.scale)) if self.needs_input_grad[0] else None
        return (gx, *self._param_grads(gy_sum, gy_xhat_sum))


def _raw(a):
    return a.data if isinstance(a, Tensor) else a


def dropout(x, rate: float, rng: np.random.Generator, noise_shape=None,
            training: bool = True) -> Tensor:
    """Inverted dropout: zero each element with probability ``rate``, scale the rest.

    Kept elements are multiplied by ``1 / (1 - rate)`` so the expectation is unchanged;
    outside training (or with ``rate == 0``) the input is returned as is.

    Args:
        x: input tensor.
        rate: probability of dropping an element, in ``[0, 1)``.
        rng: the generator the mask is drawn from (see ``dropout_mask``).
        noise_shape: shape of the mask, broadcast against ``x`` (``None`` = ``x.shape``).
        training: apply dropout only when true.
    """
    x = _operand(x)
    if not training or rate == 0:
        return x
    shape = x.shape if noise_shape is None else tuple(noise_shape)
    mask = dropout_mask(rng, shape, rate, x.dtype, get_array_module(x.data))
    return Dropout.apply(x, mask=mask)


def batch_norm(x, gamma, beta, running_mean, running_var, training: bool,
               momentum: float = 0.99, epsilon: float = 1e-3, axis: int = -1) -> Tensor:
    """Batch normalization over every axis except ``axis`` (the channels).

    Training: normalize with the batch mean and biased variance and update
    ``running_mean``/``running_var`` in place (Keras's momentum convention). Inference:
    normalize with the running statistics. ``gamma``/``beta`` may be None (no scale/center).

    Input shape: any rank, channels on ``axis``; ``gamma``, ``beta``, ``running_*``: ``(C,)``.
    Output shape: same as ``x``.
    """
    x = _operand(x)
    gamma = None if gamma is None else _operand(gamma)
    beta = None if beta is None else _operand(beta)
    axis %= x.ndim
    check_same_device((x.data, _raw(running_mean), _raw(running_var)), "batch_norm")
    if training:
        return BatchNormTrain.apply(x, gamma, beta, axis=axis, epsilon=epsilon,
                                    momentum=momentum, running_mean=_raw(running_mean),
                                    running_var=_raw(running_var))
    return BatchNormInference.apply(x, gamma, beta, axis=axis, epsilon=epsilon,
                                    mean=_raw(running_mean), var=_raw(running_var))
