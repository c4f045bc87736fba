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
from dojang.backends import check_same_device
from dojang.kernels import dispatch
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
    """What both modes share: the channel axis, epsilon, the fused ReLU and the gradients
    of the parameters and of the residual (the optional fourth input, added before the
    ReLU)."""

    def __init__(self, axis: int, epsilon: float, relu: bool = False):
        self.axis, self.epsilon, self.relu = axis, epsilon, relu

    def _grads(self, gx, g_residual, gy_sum, gy_xhat_sum):
        """``(dx, dgamma, dbeta[, dresidual])``, None where not wanted."""
        need = self.needs_input_grad
        grads = (gx, gy_xhat_sum if need[1] else None, gy_sum if need[2] else None)
        return grads + (g_residual,) if len(need) > 3 else grads


class BatchNormTrain(_BatchNorm):
    """Normalize with the batch statistics and update the running ones in place
    (``kernels.batchnorm`` holds the math and its closed-form backward); with a residual
    or the ReLU, ``relu(bn(x) + residual)`` as one kernel op (``"batch_norm.train_act"``)."""

    def __init__(self, axis: int, epsilon: float, momentum: float, running_mean, running_var,
                 relu: bool = False):
        super().__init__(axis, epsilon, relu)
        self.momentum, self.running = momentum, (running_mean, running_var)

    def forward(self, x, gamma, beta, residual=None):
        self.fused = residual is not None or self.relu
        if self.fused:
            y, mean, var, self.grad = dispatch("batch_norm.train_act", x, gamma, beta,
                                               self.axis, self.epsilon, residual, self.relu)
        else:
            y, mean, var, self.grad = dispatch("batch_norm.train", x, gamma, beta, self.axis,
                                               self.epsilon)
        self._update_running(mean, var, empty=x.size == 0)
        return y

    def _update_running(self, mean, var, empty: bool) -> None:
        """Move the running statistics toward the batch's; an empty batch has none (its
        0/0 statistics would make them NaN) and leaves them as they are."""
        m = self.momentum
        for running, stat in zip(self.running, (mean, var), strict=True):
            if running is not None and not empty:
                running *= m
                running += ((1 - m) * stat).astype(running.dtype, copy=False)
        del self.running

    def backward(self, gy):
        need = self.needs_input_grad
        if self.fused:
            return self._grads(*self.grad(gy, need[0], len(need) > 3 and need[3]))
        gx, gy_sum, gy_xhat_sum = self.grad(gy, need[0])
        return self._grads(gx, None, gy_sum, gy_xhat_sum)


class BatchNormInference(_BatchNorm):
    """Normalize with fixed statistics: ``y = gamma (x - mean) / sqrt(var + eps) + beta``,
    then the residual and the ReLU when given, each in turn."""

    def __init__(self, axis: int, epsilon: float, mean, var, relu: bool = False):
        super().__init__(axis, epsilon, relu)
        self.mean, self.var = mean, var

    def forward(self, x, gamma, beta, residual=None):
        y, self.grad = dispatch("batch_norm.inference", x, gamma, beta, self.mean, self.var,
                                self.axis, self.epsilon)
        del self.mean, self.var
        if residual is not None:
            y = y + residual
        if self.relu:
            y = self.y = dispatch("relu", y)
        return y

    def backward(self, gy):
        need = self.needs_input_grad
        g = dispatch("relu_grad", gy, self.y) if self.relu else gy
        gx, gy_sum, gy_xhat_sum = self.grad(g, need[0], need[1])
        return self._grads(gx, g, gy_sum, gy_xhat_sum)


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
               momentum: float = 0.99, epsilon: float = 1e-3, axis: int = -1,
               residual=None, relu: bool = False) -> Tensor:
    """Batch normalization over every axis except ``axis`` (the channels), then
    ``residual`` added and the ReLU applied when given: ``relu(bn(x) + residual)``.

    Training: normalize with the batch mean and biased variance and update
    ``running_mean``/``running_var`` in place (Keras's momentum convention). Inference:
    normalize with the running statistics. ``gamma``/``beta`` may be None (no scale/center).

    Input shape: any rank, channels on ``axis``; ``gamma``, ``beta``, ``running_*``: ``(C,)``;
    ``residual``: as ``x``. Output shape: same as ``x``.
    """
    x = _operand(x)
    gamma = None if gamma is None else _operand(gamma)
    beta = None if beta is None else _operand(beta)
    axis %= x.ndim
    check_same_device((x.data, _raw(running_mean), _raw(running_var)), "batch_norm")
    extra = () if residual is None else (_operand(residual),)
    if training:
        return BatchNormTrain.apply(x, gamma, beta, *extra, axis=axis, epsilon=epsilon,
                                    momentum=momentum, running_mean=_raw(running_mean),
                                    running_var=_raw(running_var), relu=relu)
    return BatchNormInference.apply(x, gamma, beta, *extra, axis=axis, epsilon=epsilon,
                                    mean=_raw(running_mean), var=_raw(running_var), relu=relu)
