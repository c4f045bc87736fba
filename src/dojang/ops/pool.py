"""Pooling ops: max, average, global average and global max, for 1-3 spatial dims.

Each op is one ``Function`` on arrays; the kernels compute channels-last, so
channels-first data is transposed once on the way in and once on the way out.
Hyper-parameters arrive already checked and resolved (``pads`` is one
``(before, after)`` pair per spatial dim): argument checking lives in
``dojang.functional.pool``.
"""

from __future__ import annotations

from dojang.autograd import Function
from dojang.backend import get_array_module
from dojang.config import is_grad_enabled
from dojang.kernels import dispatch

__all__ = ["AvgPool", "GlobalAvgPool", "GlobalMaxPool", "MaxPool"]


def _to_last(x, channels_last: bool):
    if channels_last:
        return x
    return get_array_module(x).ascontiguousarray(get_array_module(x).moveaxis(x, 1, -1))


def _from_last(y, channels_last: bool):
    return y if channels_last else get_array_module(y).moveaxis(y, -1, 1)


class _Pool(Function):
    def __init__(self, ksize, strides, pads, channels_last: bool = True):
        self.ksize, self.strides, self.pads = tuple(ksize), tuple(strides), tuple(pads)
        self.channels_last = channels_last


class MaxPool(_Pool):
    """Max pooling; the gradient of each window goes to its first maximum (row-major).

    The kernel (``"pool.max"``: compiled for 1-d and 2-d NumPy floats, else the NumPy
    reference) returns with the output the backward of this very forward, when a
    gradient may be wanted.
    """

    def forward(self, x):
        x = _to_last(x, self.channels_last)
        y, self.grad = dispatch("pool.max", x, self.ksize, self.strides, self.pads,
                                is_grad_enabled())
        return _from_last(y, self.channels_last)

    def backward(self, gy):
        return _from_last(self.grad(_to_last(gy, self.channels_last)), self.channels_last)


class AvgPool(_Pool):
    """Average pooling; padding is left out of the count unless ``count_include_pad``."""

    def __init__(self, ksize, strides, pads, channels_last: bool = True,
                 count_include_pad: bool = False):
        super().__init__(ksize, strides, pads, channels_last)
        self.count_include_pad = count_include_pad

    def forward(self, x):
        x = _to_last(x, self.channels_last)
        self.x_shape = x.shape
        y = dispatch("pool.avg", x, self.ksize, self.strides, self.pads, self.count_include_pad)
        return _from_last(y, self.channels_last)

    def backward(self, gy):
        gx = dispatch("pool.avg_backward", _to_last(gy, self.channels_last), self.x_shape,
                      self.ksize, self.strides, self.pads, self.count_include_pad)
        return _from_last(gx, self.channels_last)


class _GlobalPool(Function):
    def __init__(self, channels_last: bool = True, keepdims: bool = False):
        self.channels_last, self.keepdims = channels_last, keepdims

    def _shape_out(self, y, x_shape):
        """``(N, C)`` -> ``(N, 1, ..., 1, C)`` or ``(N, C, 1, ..., 1)`` when ``keepdims``."""
        if not self.keepdims:
            return y
        ones = (1,) * (len(x_shape) - 2)
        return y.reshape((y.shape[0], *ones, y.shape[1]) if self.channels_last
                         else (*y.shape, *ones))

    def _flat_grad(self, gy):
        """Undo ``keepdims``: the incoming gradient as ``(N, C)``."""
        x_shape = self.x_shape
        return gy.reshape(x_shape[0], x_shape[-1] if self.channels_last else x_shape[1])


class GlobalAvgPool(_GlobalPool):
    """Mean over every spatial axis: ``(N, *spatial, C)`` -> ``(N, C)``."""

    def forward(self, x):
        self.x_shape = x.shape
        return self._shape_out(dispatch("pool.global_avg", x, self.channels_last), x.shape)

    def backward(self, gy):
        return dispatch("pool.global_avg_backward", self._flat_grad(gy), self.x_shape,
                        self.channels_last)


class GlobalMaxPool(_GlobalPool):
    """Max over every spatial axis; the gradient goes to the first maximum (row-major)."""

    def forward(self, x):
        self.x_shape = x.shape
        y, self.index = dispatch("pool.global_max", x, self.channels_last)
        return self._shape_out(y, x.shape)

    def backward(self, gy):
        return dispatch("pool.global_max_backward", self._flat_grad(gy), self.index,
                        self.x_shape, self.channels_last)
