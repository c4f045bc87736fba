"""The fused softmax cross-entropy on rows, on any backend's arrays.

Op ``"loss.sparse_softmax_xent"(x2, labels) -> (loss, p)``: for logits ``x2`` (M, K) and
integer labels (M,), ``loss_m = logsumexp(x_m) - x_m[label_m]`` (shifted by the row's
maximum: no overflow) and ``p = softmax(x2)``, kept for the gradient.

Op ``"loss.sparse_softmax_xent_grad"(p, labels, scale) -> g``:
``g = (p - onehot(labels)) * scale[:, None]`` (``scale`` (M,) or a scalar), a new array;
no one-hot array is ever built.
"""

from __future__ import annotations

from dojang.backend import get_array_module
from dojang.kernels.registry import register


@register("loss.sparse_softmax_xent")
def sparse_softmax_xent(x2, labels):
    """``(loss (M,), softmax (M, K))`` of logits ``x2`` (M, K) and labels (M,).

    Example:
        >>> import numpy as np
        >>> loss, p = sparse_softmax_xent(np.array([[0.0, 0.0]]), np.array([1]))
        >>> round(float(loss[0]), 4), p.tolist()
        (0.6931, [[0.5, 0.5]])
    """
    xp = get_array_module(x2)
    rows = xp.arange(x2.shape[0])
    shifted = x2 - x2.max(axis=1, keepdims=True)
    picked = shifted[rows, labels]
    p = xp.exp(shifted, out=shifted)
    total = p.sum(axis=1, keepdims=True)
    loss = xp.log(total[:, 0]) - picked
    p /= total
    return loss, p


@register("loss.sparse_softmax_xent_grad")
def sparse_softmax_xent_grad(p, labels, scale):
    """``(p - onehot(labels)) * scale`` per row (``scale`` (M,) or a scalar)."""
    xp = get_array_module(p)
    scale = xp.broadcast_to(xp.asarray(scale, dtype=p.dtype), (p.shape[0],))
    g = p * scale[:, None]
    g[xp.arange(p.shape[0]), labels] -= scale
    return g
