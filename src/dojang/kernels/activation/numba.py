"""Compiled ReLU, tanh and their gradients: one pass instead of NumPy's several temporaries.

Registered as the ``numba`` variants of ``"relu"`` and ``"relu_grad"`` for NumPy float
arrays of at least ``MIN_ELEMENTWISE`` elements (smaller ones stay with NumPy: a thread
hand-off costs more than it saves), and of ``"tanh"`` and ``"tanh_grad"`` for any size
(small arrays run on one thread). Outputs come from ``kernels.alloc`` (recycled memory).

tanh in float32 is a rational function, ``x p(x^2) / q(x^2)`` with p and q of degree 4
in ``x^2`` (``tools/fit_tanh.py`` fits them on [0, 9] for the least relative error;
beyond 9, tanh rounds to +-1 in float32). It has no call and no table, so LLVM
vectorises the loop: 5.7x NumPy's ``tanh`` on LeNet-5's first feature map (NumPy has no
AVX2 tanh), at most 4e-7 relative error (about 6 units in the last place; NumPy's: 1.4).
float64 keeps libm's ``tanh``.
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


# tools/fit_tanh.py: tanh(x) ~ x * P(x^2) / Q(x^2) on [-TANH_CLAMP, TANH_CLAMP]
TANH_CLAMP = 9.0
TANH_P = (1.0, 0.13384942710399628, 0.003500111633911729, 2.0678264263551682e-05,
          1.3440627277816475e-08)
TANH_Q = (1.0, 0.46718263626098633, 0.0258945282548666, 0.0003292806213721633,
          7.813833917680313e-07)


def _consts(dtype):
    """(-clamp, clamp, *P, *Q, 1) in ``dtype``: the kernels' constants (numba would widen a
    Python float literal, and with it the whole float32 loop, to float64)."""
    return np.array((-TANH_CLAMP, TANH_CLAMP) + TANH_P + TANH_Q + (1.0,), dtype)


@kernel()
def _tanh(x, b, y, k, bias, exact):
    """``y[r] = tanh(x[r] + b)`` (``bias``) for each row r of the (R, L) ``x`` and ``y``
    (``x`` may be ``y``); ``exact``: libm's tanh (float64), else the rational function
    (``k``: ``_consts``).

    Each row is copied to ``y`` first and then transformed in place: a loop that reads
    one array and writes another is vectorised behind a run-time overlap test, which
    fails when they are the same array (the convolution's in-place epilogue), and
    then runs one element at a time (measured 13x slower).
    """
    lo, hi, p0, p1, p2, p3, p4 = k[0], k[1], k[2], k[3], k[4], k[5], k[6]
    q0, q1, q2, q3, q4, one = k[7], k[8], k[9], k[10], k[11], k[12]
    for r in prange(x.shape[0]):
        ys = y[r]
        if x is not y:
            ys[:] = x[r]
        for i in range(ys.shape[0]):
            v = ys[i] + b[i] if bias else ys[i]
            if exact:
                ys[i] = np.tanh(v)
                continue
            if v > hi:  # NaN fails both tests and stays NaN
                v = hi
            elif v < lo:
                v = lo
            z = v * v
            p = (((p4 * z + p3) * z + p2) * z + p1) * z + p0
            q = (((q4 * z + q3) * z + q2) * z + q1) * z + q0
            t = v * p / q
            ys[i] = min(t, one) if t > 0 else max(t, -one)  # 6 units off may pass 1


@kernel()
def _tanh_grad(gy, y, g, one):
    """``g[r] = gy[r] * (1 - y[r]**2)`` for each row r of (R, L) arrays (``one``: 1 in
    their dtype)."""
    for r in prange(gy.shape[0]):
        gs, ys, out = gy[r], y[r], g[r]
        for i in range(gs.shape[0]):
            out[i] = gs[i] * (one - ys[i] * ys[i])


def _rows(a):
    """A contiguous (R, L) view of ``a``: one row per sample (the leading axis)."""
    a = np.ascontiguousarray(a)
    return a.reshape(a.shape[0] if a.ndim > 1 else 1, -1)


def _tanh_usable(x, b=None, out=None) -> bool:
    return (x.ndim > 0 and x.size > 0
            and compile.usable(x, *(a for a in (b, out) if a is not None))
            and (b is None or (b.dtype == x.dtype and b.shape == x.shape[-1:]))
            and (out is None or (out.dtype == x.dtype and out.shape == x.shape
                                 and out.flags.c_contiguous)))


@register("tanh", variant="numba", usable=_tanh_usable, priority=1)
def tanh(x, b=None, out=None):
    """``tanh(x + b)`` into ``out`` (new when None; may be ``x``), in one pass."""
    out = alloc.empty(x.shape, x.dtype) if out is None else out
    x2 = _rows(x)
    bias = b is not None
    bt = np.tile(b, x2.shape[1] // b.shape[0]) if bias else x2[0, :0]
    run = _tanh.sized(x2.shape[0], x2.size)
    run(x2, bt, out.reshape(x2.shape), _consts(x.dtype), bias, x.dtype != np.float32)
    return out


@register("tanh_grad", variant="numba", usable=lambda gy, y: gy.ndim > 0 and gy.size > 0
          and compile.usable(gy, y) and gy.dtype == y.dtype, priority=1)
def tanh_grad(gy, y):
    """``gy * (1 - y**2)`` as a new array, in one pass."""
    g = alloc.empty(y.shape, gy.dtype)
    gy2 = _rows(gy)
    run = _tanh_grad.sized(gy2.shape[0], gy2.size)
    run(gy2, _rows(y), g.reshape(gy2.shape), gy.dtype.type(1))
    return g
