"""Pooling's GPU variants (CuPy arrays): max pooling with its picks, and average
pooling, forward and backward, for any rank (``kernels.cuda``)."""

from __future__ import annotations

from functools import partial

from dojang.kernels.cuda import ops
from dojang.kernels.cuda.variants import floats
from dojang.kernels.registry import register
from dojang.shapes import pool_output_shape


@register("pool.max", backend="cupy", variant="cuda", priority=1,
          usable=lambda x, *rest, **kw: floats(x))
def max_pool_forward(x, ksize, strides, pads, grad: bool = True):
    """``(y, backward)``; backward routes ``gy`` to each window's pick (a gather)."""
    out = pool_output_shape(x.shape[1:-1], ksize, strides, pads)
    y, pick = ops.max_pool(x, ksize, strides, pads, out)
    if not grad:
        return y, None
    return y, partial(ops.max_pool_backward, pick=pick, x_shape=x.shape, ksize=ksize,
                      strides=strides, pads=pads)


@register("pool.avg", backend="cupy", variant="cuda", priority=1,
          usable=lambda x, *rest, **kw: floats(x))
def avg_pool(x, ksize, strides, pads, count_include_pad: bool = False):
    """Average pooling, padding counted only if ``count_include_pad``."""
    return ops.avg_pool(x, ksize, strides, pads, count_include_pad)


@register("pool.avg_backward", backend="cupy", variant="cuda", priority=1,
          usable=lambda gy, *rest, **kw: floats(gy))
def avg_pool_backward(gy, x_shape, ksize, strides, pads, count_include_pad: bool = False):
    """Each window's ``gy / count`` gathered back onto its inputs."""
    return ops.avg_pool_backward(gy, x_shape, ksize, strides, pads, count_include_pad)
