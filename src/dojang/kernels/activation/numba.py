"""Compiled ReLU and its gradient: one pass instead of NumPy's several temporaries.

Registered as the ``numba`` variants of ``"relu"`` and ``"relu_grad"`` for NumPy float
arrays of at least ``MIN_ELEMENTWISE`` elements (smaller ones stay with NumPy: a thread
hand-off costs more than it saves). Outputs come from ``kernels.alloc`` (recycled memory).
"""

from __future__ import annotations

import numpy as np

from dojang.kernels import alloc, compile
from dojang.kernels.compile import _BLOCK, MIN_ELEMENTWISE, kernel, prange
from dojang.kernels.registry import register


@kernel()
def _relu(x, y):
    n = x.shape[0]
    for k in prange((n + _BLOCK - 1) // _BLOCK):
        xs, ys = x[k * _BLOCK:(k + 1) * _BLOCK], y[k * _BLOCK:(k + 1) * _BLOCK]
        for i in range(xs.shape[0]):
            v = xs[i]
            ys[i] = 0 if v <= 0 else v  # NaN stays, -0 becomes 0 (as np.maximum)


@kernel()
def _relu_grad(gy, y, gx):
    n = gy.shape[0]
    for k in prange((n + _BLOCK - 1) // _BLOCK):
        block = slice(k * _BLOCK, (k + 1) * _BLOCK)
        gs, ys, out = gy[block], y[block], gx[block]
        for i in range(gs.shape[0]):
            out[i] = gs[i] if ys[i] > 0 else 0


def _large(*arrays) -> bool:
    return arrays[0].size >= MIN_ELEMENTWISE and compile.usable(*arrays)


@register("relu", variant="numba", usable=_large, priority=1)
def relu(x):
    """``max(x, 0)`` (NaN stays NaN) as a new array of x's shape."""
    x = np.ascontiguousarray(x)
    y = alloc.empty(x.shape, x.dtype)
    _relu(x.reshape(-1), y.reshape(-1))
    return y


@register("relu_grad", variant="numba", usable=_large, priority=1)
def relu_grad(gy, y):
    """``gy`` where ``y > 0``, else 0, as a new array."""
    gx = alloc.empty(y.shape, gy.dtype)
    _relu_grad(np.ascontiguousarray(gy).reshape(-1), np.ascontiguousarray(y).reshape(-1),
               gx.reshape(-1))
    return gx
