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

import numpy as np

from dojang.autograd import Function, Tensor
from dojang.backend import get_array_module
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
    """Layout shared by both modes: the statistics reduce every axis except ``axis``."""

    def __init__(self, axis: int, epsilon: float):
        self.axis, self.epsilon = axis, epsilon

    def _layout(self, x) -> None:
        self.axes = tuple(i for i in range(x.ndim) if i != self.axis)
        self.bshape = tuple(x.shape[i] if i == self.axis else 1 for i in range(x.ndim))
        self.count = x.size // x.shape[self.axis]
        letters = "abcdefghijklmnop"[:x.ndim]
        self.dot_spec = f"{letters},{letters}->{letters[self.axis]}"

    def _channel_dot(self, a, b):
        """``sum(a * b)`` over every axis but the channels, in one pass (no temporary)."""
        return get_array_module(a).einsum(self.dot_spec, a, b).reshape(self.bshape)

    def _affine(self, xhat, gamma, beta):
        """``gamma * xhat + beta`` in new memory when either is given (``xhat`` is kept)."""
        self.gamma = gamma
        if gamma is None:
            return xhat if beta is None else xhat + beta.reshape(self.bshape)
        y = xhat * gamma.reshape(self.bshape)
        if beta is not None:
            y += beta.reshape(self.bshape)
        return y

    def _param_grads(self, gy_sum, gy_xhat_sum):
        """``(dgamma, dbeta)`` as ``(C,)`` arrays, None where not wanted."""
        need = self.needs_input_grad
        return (gy_xhat_sum.reshape(-1) if need[1] else None,
                gy_sum.reshape(-1) if need[2] else None)


class BatchNormTrain(_BatchNorm):
    """Normalize with the batch statistics and update the running ones in place.

    ``xhat = (x - mean) / sqrt(var + eps)``, ``y = gamma * xhat + beta``. With ``n`` the
    number of reduced elements and ``g = gamma * gy``:
    ``dx = (g - sum(g)/n - xhat * sum(g * xhat)/n) / sqrt(var + eps)``,
    ``dgamma = sum(gy * xhat)``, ``dbeta = sum(gy)``.
    """

    def __init__(self, axis: int, epsilon: float, momentum: float, running_mean, running_var):
        super().__init__(axis, epsilon)
        self.momentum, self.running = momentum, (running_mean, running_var)

    def forward(self, x, gamma, beta):
        xp = get_array_module(x)
        self._layout(x)
        mean = x.mean(axis=self.axes, keepdims=True)
        xhat = x - mean
        var = self._channel_dot(xhat, xhat) / self.count
        self.inv_std = 1 / xp.sqrt(var + self.epsilon)
        xhat *= self.inv_std
        self.xhat = xhat
        m = self.momentum
        for running, stat in zip(self.running, (mean, var), strict=True):
            if running is not None:
                running *= m
                running += ((1 - m) * stat.reshape(-1)).astype(running.dtype, copy=False)
        del self.running
        return self._affine(xhat, gamma, beta)

    def backward(self, gy):
        xhat, n = self.xhat, self.count
        gy_sum = gy.sum(axis=self.axes, keepdims=True)
        gy_xhat_sum = self._channel_dot(gy, xhat)
        gx = None
        if self.needs_input_grad[0]:
            scale = self.inv_std
            if self.gamma is not None:
                scale = scale * self.gamma.reshape(self.bshape)
            # the formula above, distributed so each full-size pass works in place
            gx = gy * scale
            gx -= xhat * (scale * gy_xhat_sum / n)
            gx -= scale * gy_sum / n
        return (gx, *self._param_grads(gy_sum, gy_xhat_sum))


class BatchNormInference(_BatchNorm):
    """Normalize with fixed statistics: ``y = gamma (x - mean) / sqrt(var + eps) + beta``."""

    def __init__(self, axis: int, epsilon: float, mean, var):
        super().__init__(axis, epsilon)
        self.mean, self.var = mean, var

    def forward(self, x, gamma, beta):
        xp = get_array_module(x)
        self._layout(x)
        self.x = x
        self.mean = self.mean.reshape(self.bshape).astype(x.dtype, copy=False)
        var = self.var.reshape(self.bshape).astype(x.dtype, copy=False)
        self.inv_std = 1 / xp.sqrt(var + self.epsilon)
        del self.var
        return self._affine((x - self.mean) * self.inv_std, gamma, beta)

    def backward(self, gy):
        gy_sum = gy.sum(axis=self.axes)
        gy_xhat_sum = None
        if self.needs_input_grad[1]:
            gy_xhat_sum = (gy * (self.x - self.mean) * self.inv_std).sum(axis=self.axes)
        gx = None
        if self.needs_input_grad[0]:
            scale = self.inv_std
            if self.gamma is not None:
                scale = scale * self.gamma.reshape(self.bshape)
            gx = gy * scale
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
    if training:
        return BatchNormTrain.apply(x, gamma, beta, axis=axis, epsilon=epsilon,
                                    momentum=momentum, running_mean=_raw(running_mean),
                                    running_var=_raw(running_var))
    return BatchNormInference.apply(x, gamma, beta, axis=axis, epsilon=epsilon,
                                    mean=_raw(running_mean), var=_raw(running_var))
