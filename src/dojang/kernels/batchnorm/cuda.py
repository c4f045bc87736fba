"""Batch normalisation's GPU variants (CuPy arrays, channels last): the statistics and
the backward's sums by the array module's float64 reductions, the normalise-scale-shift
and the input gradient as one CUDA kernel each (``kernels.cuda``)."""

from __future__ import annotations

import functools

from dojang.kernels.batchnorm.reference import inference_backward, inference_scale
from dojang.kernels.cuda import ops
from dojang.kernels.cuda.engine import engine_for
from dojang.kernels.cuda.variants import floats
from dojang.kernels.registry import register


def _channels_last(x, *args) -> bool:
    axis = args[-2]
    return x.ndim >= 2 and axis == x.ndim - 1 and floats(x)


@register("batch_norm.train", backend="cupy", variant="cuda", usable=_channels_last,
          priority=1)
def batch_norm_train(x, gamma, beta, axis: int, epsilon: float):
    """``(y, mean, var, backward)``; keeps ``x`` and the mean, not ``x - mean``."""
    xp = engine_for(x).xp
    mean, var = ops.batch_norm_stats(x)
    inv_std = 1 / xp.sqrt(var + xp.asarray(epsilon, var.dtype))
    scale = inv_std if gamma is None else gamma * inv_std
    shift = xp.zeros_like(mean) if beta is None else beta
    return (ops.normalize(x, mean, scale, shift), mean, var,
            functools.partial(_train_backward, x, mean, inv_std, scale))


def _train_backward(x, mean, inv_std, scale, gy, need_x: bool):
    n = x.size // x.shape[-1]
    gy_sum, gy_xc_sum = ops.batch_norm_grad_sums(gy, x, mean)
    gy_xhat_sum = (gy_xc_sum * inv_std).astype(gy.dtype)
    gy_sum = gy_sum.astype(gy.dtype)
    gx = None
    if need_x:
        gx = ops.batch_norm_grad(gy, x, mean, scale, scale * inv_std * gy_xhat_sum / -n,
                                 scale * gy_sum / -n)
    return gx, gy_sum, gy_xhat_sum


@register("batch_norm.inference", backend="cupy", variant="cuda", usable=_channels_last,
          priority=1)
def batch_norm_inference(x, gamma, beta, mean, var, axis: int, epsilon: float):
    """``(y, backward)``: one normalise-scale-shift kernel."""
    mean, inv_std, scale = inference_scale(x, gamma, mean, var, epsilon)
    shift = engine_for(x).xp.zeros_like(mean) if beta is None else beta
    return (ops.normalize(x, mean, scale, shift),
            inference_backward(x, mean, inv_std, scale, axis))
