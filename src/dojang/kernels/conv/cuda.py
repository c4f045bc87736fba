"""The convolution's GPU variants (CuPy arrays): im2col and col2im for any rank and
groups, and bias + ReLU with its backward, as CUDA kernels (``kernels.cuda``). The GEMMs
between them are ``xp.matmul`` in the reference path, that is cuBLAS on a GPU."""

from __future__ import annotations

from dojang.kernels.cuda import ops
from dojang.kernels.cuda.variants import floats
from dojang.kernels.registry import register


@register("conv.im2col", backend="cupy", variant="cuda", priority=1,
          usable=lambda x, cols, *rest: floats(x, cols))
def im2col(x, cols, kernel, strides, dilations, pads, ranges, groups: int) -> None:
    """``kernels.cuda.ops.im2col``: the columns written in place, any strides."""
    ops.im2col(x, cols, kernel, strides, dilations, pads, ranges, groups)


@register("conv.col2im", backend="cupy", variant="cuda", priority=1,
          usable=lambda dcols, gx, *rest: floats(dcols, gx) and gx.flags.c_contiguous)
def col2im(dcols, gx, kernel, strides, dilations, pads, ranges, groups: int) -> None:
    """``kernels.cuda.ops.col2im``: a gather into the contiguous ``gx``."""
    ops.col2im(dcols, gx, kernel, strides, dilations, pads, ranges, groups)


@register("conv.bias_relu", backend="cupy", variant="cuda", priority=1,
          usable=lambda y, b, relu: floats(y, b) and y.flags.c_contiguous)
def bias_relu_(y, b, relu: bool) -> None:
    """One pass over ``y``: bias, then ReLU."""
    ops.bias_relu_(y, b, relu)


@register("conv.relu_grad_bias", backend="cupy", variant="cuda", priority=1,
          usable=lambda gy, y, bias=True: floats(gy, y))
def relu_grad_bias(gy, y, bias: bool = True):
    """``(gy where y > 0, its per-channel sum or None)``: the sum only when ``bias``."""
    if not bias:
        return ops.relu_grad(gy, y), None
    return ops.relu_grad_bias(gy, y)
