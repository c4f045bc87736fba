"""Matrix products: ``matmul`` and the fused ``linear`` (x @ W + b)."""

from __future__ import annotations

from dojang.autograd import Function, Tensor, sum_to_shape
from dojang.backend import get_array_module
from dojang.ops.elementwise import _operand


def _as_tensor(x) -> Tensor:
    """Like ``_operand`` but also wraps Python numbers (matmul needs their rank)."""
    return x if isinstance(x, Tensor) else Tensor(x)


class MatMul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a @ b

    def backward(self, gy):
        xp = get_array_module(gy)
        # Treat vectors as matrices (a row for a, a column for b), as NumPy's @ does.
        a = self.a[None, :] if self.a.ndim == 1 else self.a
        b = self.b[:, None] if self.b.ndim == 1 else self.b
        if self.b.ndim == 1:  # first, so that a 0-d gy (vector @ vector) becomes (1, 1)
            gy = gy[..., None]
        if self.a.ndim == 1:
            gy = gy[..., None, :]
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = sum_to_shape(gy @ xp.swapaxes(b, -1, -2), a.shape).reshape(self.a.shape)
        if self.needs_input_grad[1]:
            gb = sum_to_shape(xp.swapaxes(a, -1, -2) @ gy, b.shape).reshape(self.b.shape)
        return ga, gb


class Linear(Function):
    """``y = x @ W + b`` over the last axis of x; one GEMM forward, two backward."""

    def forward(self, x, w, b=None):
        self.x, self.w = x, w
        self.has_bias = b is not None
        x2 = x.reshape(-1, x.shape[-1])
        y = x2 @ w
        if b is not None:
            y += b
        return y.reshape(x.shape[:-1] + (w.shape[1],))

    def backward(self, gy):
        x, w = self.x, self.w
        g2 = gy.reshape(-1, gy.shape[-1])
        gx = (g2 @ w.T).reshape(x.shape) if self.needs_input_grad[0] else None
        gw = x.reshape(-1, x.shape[-1]).T @ g2 if self.needs_input_grad[1] else None
        gb = g2.sum(axis=0) if self.has_bias and self.needs_input_grad[2] else None
        return gx, gw, gb


def matmul(a, b) -> Tensor:
    """Matrix product with NumPy's ``@`` semantics (batched, 1-d vectors)."""
    a, b = _as_tensor(a), _as_tensor(b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: Expected tensors of rank >= 1. Received: shapes {a.shape} "
                         f"and {b.shape}")
    ka = a.shape[-1]
    kb = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if ka != kb:
        raise ValueError(f"matmul: inner dimensions differ. Received: shapes {a.shape} and "
                         f"{b.shape}")
    return MatMul.apply(a, b)


def linear(x, w, b=None) -> Tensor:
    """Fused dense layer ``x @ w + b``.

    Input shape: ``(..., in_features)``; ``w``: ``(in_features, units)``; ``b``: ``(units,)``.
    Output shape: ``(..., units)``.
    """
    x, w = _operand(x), _operand(w)
    if w.ndim != 2 or x.ndim < 1 or x.shape[-1] != w.shape[0]:
        k = w.shape[0] if w.ndim == 2 else "K"
        raise ValueError(f"linear: Expected x of shape (..., {k}) "
                         f"and w of shape (in_features, units). Received: x.shape={x.shape}, "
                         f"w.shape={w.shape}")
    if b is not None:
        b = _operand(b)
        if b.shape != (w.shape[1],):
            raise ValueError(f"linear: Expected b of shape ({w.shape[1]},). Received: "
                             f"b.shape={b.shape}")
        return Linear.apply(x, w, b)
    return Linear.apply(x, w)
