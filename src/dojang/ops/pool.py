"""Pooling ops: max, average, global average and global max, for 1-3 spatial dims.

Each op is one ``Function`` on arrays; the kernels compute channels-last, so
channels-first data is transposed once on the way in and once on the way out.
Hyper-parameters arrive already checked and resolved (``pads`` is one
``(before, after)`` pair per spatial dim): argument checking lives in
``dojang.functional.pool``.
"""

from __future__ import annotations

import math

from dojang.autograd import Function
from dojang.backend import get_array_module
from dojang.config import is_grad_enabled
from dojang.kernels import jit
from dojang.kernels import pool as kpool

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

    1-d and 2-d pooling of NumPy floats runs the compiled kernel when it is on
    (``kernels.jit``): forward records each window's pick, backward scatters ``gy`` to it.
    Otherwise, when the windows tile the input and a gradient may be wanted, forward
    records where each maximum is (``kpool.max_pool_tiled``), so backward routes ``gy``
    without ``x``.
    """

    def forward(self, x):
        x = _to_last(x, self.channels_last)
        self.pick = None
        if len(self.ksize) <= 2 and jit.usable(x) and math.prod(self.ksize) < 2**15:
            out = kpool.pool_output_shape(x.shape[1:-1], self.ksize, self.strides, self.pads)
            y, pick = jit.max_pool(x, self.ksize, self.strides, self.pads, out)
            self.x_shape = x.shape
            if is_grad_enabled():
                self.pick = pick
            return _from_last(y, self.channels_last)
        picks = [] if is_grad_enabled() else None
        self.y = kpool.max_pool(x, self.ksize, self.strides, self.pads, picks=picks)
        self.picks = picks or None
        if self.picks is None:
            self.x = x
        self.x_shape = x.shape
        return _from_last(self.y, self.channels_last)

    def backward(self, gy):
        gy = _to_last(gy, self.channels_last)
        if self.pick is not None:
            gx = jit.max_pool_backward(gy, self.pick, self.x_shape, self.ksize, self.strides,
                                       self.pads)
            return _from_last(gx, self.channels_last)
        if self.picks is not None:
            gx = kpool.max_pool_tiled_backward(gy, self.y, self.picks, self.x_shape, self.ksize)
        else:
            gx = kpool.max_pool_backward(self.x, self.y, gy, self.ksize, self.strides,
                                         self.pads)
        return _from_last(gx, self.channels_last)


class AvgPool(_Pool):
    """Average pooling; padding is left out of the count unless ``count_include_pad``."""

    def __init__(self, ksize, strides, pads, channels_last: bool = True,
                 count_include_pad: bool = False):
        super().__init__(ksize, strides, pads, channels_last)
        self.count_include_pad = count_include_pad

    def forward(self, x):
        x = _to_last(x, self.channels_last)
        self.x_shape = x.shape
        y = kpool.avg_pool(x, self.ksize, self.strides, self.pads, self.count_include_pad)
        return _from_last(y, self.channels_last)

    def backward(self, gy):
        gx = kpool.avg_pool_backward(_to_last(gy, self.channels_last), self.x_shape, self.ksize,
                                     self.strides, self.pads, self.count_include_pad)
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
        return self._shape_out(kpool.global_avg_pool(x, self.channels_last), x.shape)

    def backward(self, gy):
        return kpool.global_avg_pool_backward(self._flat_grad(gy), self.x_shape,
                                              self.channels_last)


class GlobalMaxPool(_GlobalPool):
    """Max over every spatial axis; the gradient goes to the first maximum (row-major)."""

    def forward(self, x):
        self.x_shape = x.shape
        y, self.index = kpool.global_max_pool(x, self.channels_last)
        return self._shape_out(y, x.shape)

    def backward(self, gy):
        return kpool.global_max_pool_backward(self._flat_grad(gy), self.index, self.x_shape,
                                              self.channels_last)
