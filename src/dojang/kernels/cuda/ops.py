"""The GPU variants of dojang's hot loops, with the contracts of the compiled CPU kernels.

Each function takes and returns arrays of one engine (``engine.engine_for``): CuPy
arrays on a GPU. Layout is channels-last throughout. Sums that the CPU kernels
accumulate in float64 (bias gradients, batch-norm statistics) are reduced here by the
array module in float64 too; its reductions are deterministic (a fixed tree per shape).
GEMMs are not here: the convolution multiplies its columns with ``xp.matmul`` (cuBLAS).
"""

from __future__ import annotations

import math

from dojang.kernels.cuda import source
from dojang.kernels.cuda.engine import engine_for
from dojang.shapes import pool_output_shape


def _run(make, x, total: int, *args, rank: int | None = None) -> None:
    kernel = make(x.dtype) if rank is None else make(x.dtype, rank)
    engine_for(x).launch(kernel, total, args)


def _flat(x):
    """A C-contiguous array with x's values (x itself when it already is one)."""
    xp = engine_for(x).xp
    return xp.ascontiguousarray(x)


def _per_dim(*seqs) -> list[int]:
    """The per-dimension scalars in the kernels' order: every value of each sequence."""
    return [int(v) for seq in seqs for v in seq]


# ---------------------------------------------------------------- im2col / col2im
def _columns(image, cols, kernel, strides, dilations, pads, ranges, groups):
    """The scalar arguments im2col and col2im share after their arrays and the element
    count: the columns' rows, taps, channels and element strides, and the geometry."""
    sg, sm, sk = (s // cols.itemsize for s in cols.strides)
    c = image.shape[-1]
    return (cols.shape[1], math.prod(kernel), c, c // groups, sg, sm, sk,
            *_per_dim(image.shape[1:-1], [b - a for a, b in ranges], [a for a, _ in ranges],
                      kernel, strides, dilations, [p for p, _ in pads]))


def im2col(x, cols, kernel, strides, dilations, pads, ranges, groups: int = 1) -> None:
    """Fill ``cols`` (G, n*prod(Oc), KK*Cg), any strides, from ``x`` (n, *spatial, C)
    for the outputs ``ranges`` (``[a, b)`` per spatial dim), zero where taps fall in the
    padding ``pads`` (``(before, after)`` per dim)."""
    x = _flat(x)
    args = _columns(x, cols, kernel, strides, dilations, pads, ranges, groups)
    _run(source.im2col, x, cols.size, x, cols, cols.size, *args, rank=len(kernel))


def col2im(dcols, gx, kernel, strides, dilations, pads, ranges, groups: int = 1) -> None:
    """Add ``dcols`` (G, n*prod(Oc), KK*Cg) into the C-contiguous ``gx`` (n, *spatial, C):
    the adjoint of ``im2col``, as a gather (no atomics, a fixed order per element)."""
    args = _columns(gx, dcols, kernel, strides, dilations, pads, ranges, groups)
    _run(source.col2im, gx, gx.size, dcols, gx, gx.size, *args, rank=len(kernel))


# ---------------------------------------------------------------- pooling
def _pool_dims(spatial, out, ksize, strides, pads):
    return _per_dim(spatial, out, ksize, strides, [p for p, _ in pads])


def max_pool(x, ksize, strides, pads, out):
    """Max pooling of ``x`` (N, *spatial, C) into ``(y, pick)``: ``y`` (N, *out, C) and
    ``pick`` (int32, same shape) the window tap of each maximum (-1: none), for
    ``max_pool_backward``."""
    x = _flat(x)
    xp = engine_for(x).xp
    y = xp.empty((x.shape[0], *out, x.shape[-1]), dtype=x.dtype)
    pick = xp.empty(y.shape, dtype=xp.int32)
    dims = _pool_dims(x.shape[1:-1], out, ksize, strides, pads)
    _run(source.max_pool, x, y.size, x, y, pick, y.size, math.prod(ksize), x.shape[-1], *dims,
         rank=len(ksize))
    return y, pick


def max_pool_backward(gy, pick, x_shape, ksize, strides, pads):
    """Gradient of ``max_pool`` w.r.t. its input (shape ``x_shape``)."""
    gy = _flat(gy)
    xp = engine_for(gy).xp
    gx = xp.empty(tuple(x_shape), dtype=gy.dtype)
    dims = _pool_dims(x_shape[1:-1], gy.shape[1:-1], ksize, strides, pads)
    _run(source.max_pool_backward, gy, gx.size, gy, pick, gx, gx.size, math.prod(ksize),
         gx.shape[-1], *dims, rank=len(ksize))
    return gx


def avg_pool(x, ksize, strides, pads, count_include_pad: bool = False):
    """Average pooling (N, *spatial, C) -> (N, *O, C); padding counts only if asked."""
    x = _flat(x)
    xp = engine_for(x).xp
    out = pool_output_shape(x.shape[1:-1], ksize, strides, pads)
    y = xp.empty((x.shape[0], *out, x.shape[-1]), dtype=x.dtype)
    dims = _pool_dims(x.shape[1:-1], out, ksize, strides, pads)
    _run(source.avg_pool, x, y.size, x, y, y.size, math.prod(ksize), x.shape[-1],
         int(count_include_pad), *dims, rank=len(ksize))
    return y


def avg_pool_backward(gy, x_shape, ksize, strides, pads, count_include_pad: bool = False):
    """Gradient of ``avg_pool`` w.r.t. ``x``: each window's ``gy / count`` spread back."""
    gy = _flat(gy)
    xp = engine_for(gy).xp
    gx = xp.empty(tuple(x_shape), dtype=gy.dtype)
    dims = _pool_dims(x_shape[1:-1], gy.shape[1:-1], ksize, strides, pads)
    _run(source.avg_pool_backward, gy, gx.size, gy, gx, gx.size, math.prod(ksize),
         gx.shape[-1], int(count_include_pad), *dims, rank=len(ksize))
    return gx


# ---------------------------------------------------------------- bias + ReLU, ReLU
def bias_relu_(y, b, relu: bool) -> None:
    """In place on a C-contiguous channels-last ``y``: add ``b`` (None: none), ReLU."""
    xp = engine_for(y).xp
    b = xp.zeros(y.shape[-1], y.dtype) if b is None else xp.ascontiguousarray(
        b.astype(y.dtype, copy=False))
    _run(source.bias_relu, y, y.size, y, b, y.size, y.shape[-1], int(relu))


def relu(x):
    """``max(x, 0)`` (NaN stays NaN, -0 becomes 0) as a new array."""
    x = _flat(x)
    y = engine_for(x).xp.empty_like(x)
    _run(source.relu, x, x.size, x, y, x.size)
    return y


def relu_grad(gy, y):
    """``gy`` where ``y > 0``, else 0, as a new array."""
    gy, y = _flat(gy), _flat(y)
    gx = engine_for(gy).xp.empty_like(gy)
    _run(source.relu_grad, gy, gy.size, gy, y, gx, gy.size)
    return gx


def relu_grad_bias(gy, y):
    """``(gy * (y > 0), its sum over every axis but the last)``, the sum in float64."""
    g = relu_grad(gy, y)
    xp = engine_for(g).xp
    sums = xp.sum(g.reshape(-1, g.shape[-1]), axis=0, dtype=xp.float64)
    return g, sums.astype(gy.dtype)


# ---------------------------------------------------------------- batch normalisation
def _channel_sums(a):
    xp = engine_for(a).xp
    return xp.sum(a.reshape(-1, a.shape[-1]), axis=0, dtype=xp.float64)


def batch_norm_stats(x):
    """``(mean, biased variance)`` over every axis but the last, two passes, x's dtype."""
    x = _flat(x)
    xp = engine_for(x).xp
    n = x.size // x.shape[-1]
    mean = (_channel_sums(x) / n).astype(x.dtype)
    centred = x.reshape(-1, x.shape[-1]) - mean
    var = (xp.sum(centred * centred, axis=0, dtype=xp.float64) / n).astype(x.dtype)
    return mean, var


def _vectors(dtype, xp, *vs):
    return [xp.ascontiguousarray(v.astype(dtype, copy=False)) for v in vs]


def normalize(x, mean, scale, shift):
    """``(x - mean) * scale + shift`` with per-channel vectors (channels last)."""
    x = _flat(x)
    xp = engine_for(x).xp
    mean, scale, shift = _vectors(x.dtype, xp, mean, scale, shift)
    y = xp.empty_like(x)
    _run(source.normalize, x, x.size, x, x, mean, scale, shift, shift, y, x.size, x.shape[-1],
         0)
    return y


def batch_norm_grad_sums(gy, x, mean):
    """``(sum gy, sum gy * (x - mean))`` over every axis but the last, as float64."""
    gy, x = _flat(gy), _flat(x)
    xp = engine_for(gy).xp
    centred = x.reshape(-1, x.shape[-1]) - mean.astype(x.dtype, copy=False)
    prod = gy.reshape(-1, gy.shape[-1]) * centred
    return _channel_sums(gy), xp.sum(prod, axis=0, dtype=xp.float64)


def batch_norm_grad(gy, x, mean, a, b, c0):
    """``a * gy + b * (x - mean) + c0`` with per-channel vectors (channels last)."""
    gy, x = _flat(gy), _flat(x)
    xp = engine_for(gy).xp
    mean, a, b, c0 = _vectors(gy.dtype, xp, mean, a, b, c0)
    gx = xp.empty_like(gy)
    _run(source.normalize, gy, gy.size, x, gy, mean, a, b, c0, gx, gy.size, gy.shape[-1], 1)
    return gx


# ---------------------------------------------------------------- softmax cross-entropy
def sparse_softmax_xent(logits, labels):
    """Rows of ``logits`` (M, K) and int labels (M,): ``(loss (M,), softmax (M, K))``."""
    z = _flat(logits)
    xp = engine_for(z).xp
    labels = xp.ascontiguousarray(labels.astype(xp.int64, copy=False))
    p = xp.empty_like(z)
    loss = xp.empty(z.shape[0], dtype=z.dtype)
    _run(source.softmax_xent, z, z.shape[0], z, labels, p, loss, z.shape[0], z.shape[1])
    return loss, p


def sparse_softmax_xent_grad(p, labels, scale):
    """``(p - onehot(labels)) * scale[:, None]``: the logits' gradient, a new array."""
    xp = engine_for(p).xp
    labels = xp.ascontiguousarray(labels.astype(xp.int64, copy=False))
    scale = xp.ascontiguousarray(xp.broadcast_to(scale, (p.shape[0],)).astype(p.dtype))
    g = xp.empty_like(p)
    _run(source.softmax_xent_grad, p, p.size, p, labels, scale, g, p.size, p.shape[1])
    return g


# ---------------------------------------------------------------- optimizer updates
def adam_update(param, grad, m, v, one_minus_beta_1, one_minus_beta_2, alpha, epsilon):
    """Adam's moment and parameter update in place (contiguous arrays of one dtype)."""
    _run(source.adam, param, param.size, param, _flat(grad), m, v, param.size,
         one_minus_beta_1, one_minus_beta_2, alpha, epsilon)


def sgd_update(param, grad, m, lr, momentum: float, nesterov: bool) -> None:
    """SGD in place; ``m`` is the momentum slot, or None without momentum."""
    _run(source.sgd, param, param.size, param, _flat(grad), param if m is None else m,
         param.size, lr, momentum, int(m is not None), int(nesterov))
