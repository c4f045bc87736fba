"""Reductions: sum, mean, max, min over an axis, a tuple of axes or everything."""

from __future__ import annotations

import builtins
import math

from dojang.autograd import Function, Tensor
from dojang.backend import get_array_module
from dojang.ops.elementwise import _operand
from dojang.validation import is_int


def _axes(axis, ndim: int, owner: str) -> tuple[int, ...] | None:
    if axis is None:
        return None
    items = (axis,) if is_int(axis) else axis
    if not isinstance(items, (tuple, list)) or not all(is_int(a) for a in items):
        raise TypeError(f"{owner}: Expected axis to be None, an int or a tuple of ints. "
                        f"Received: axis={axis!r}")
    out = []
    for a in items:
        if not -ndim <= a < builtins.max(ndim, 1):
            raise ValueError(f"{owner}: Expected axis in [{-ndim}, {ndim}) for a tensor of "
                             f"rank {ndim}. Received: axis={axis!r}")
        out.append(a % builtins.max(ndim, 1))
    if len(set(out)) != len(out):
        raise ValueError(f"{owner}: Expected distinct axes. Received: axis={axis!r}")
    return tuple(sorted(out))


def _expand(g, shape, axes, keepdims):
    """Reshape a reduced gradient so it broadcasts against the input again."""
    if keepdims or axes is None and g.ndim == 0:
        return g
    if axes is None:
        return g.reshape((1,) * len(shape))
    kept = list(g.shape)
    for a in axes:
        kept.insert(a, 1)
    return g.reshape(kept)


class Sum(Function):
    def __init__(self, axes, keepdims):
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        self.shape = x.shape
        return x.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        xp = get_array_module(gy)
        return xp.broadcast_to(_expand(gy, self.shape, self.axes, self.keepdims), self.shape)


class Mean(Sum):
    def forward(self, x):
        self.shape = x.shape
        return x.mean(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        shape = self.shape
        n = math.prod(shape) if self.axes is None else math.prod(shape[a] for a in self.axes)
        return super().backward(gy / n)


class _Extreme(Function):
    """max/min: the gradient is shared evenly among tied extremes (as PyTorch's amax)."""

    def __init__(self, axes, keepdims):
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        self.x = x
        self.y = self._reduce(x, axis=self.axes, keepdims=True)
        if self.keepdims:
            return self.y
        return self.y.reshape(()) if self.axes is None else self.y.squeeze(axis=self.axes)

    def backward(self, gy):
        mask = (self.x == self.y).astype(gy.dtype)
        mask /= mask.sum(axis=self.axes, keepdims=True)
        return mask * _expand(gy, self.x.shape, self.axes, self.keepdims)


class Max(_Extreme):
    _reduce = staticmethod(lambda x, axis, keepdims: x.max(axis=axis, keepdims=keepdims))


class Min(_Extreme):
    _reduce = staticmethod(lambda x, axis, keepdims: x.min(axis=axis, keepdims=keepdims))


def sum(x, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Sum over ``axis`` (None = all axes)."""
    x = _operand(x)
    return Sum.apply(x, axes=_axes(axis, x.ndim, "sum"), keepdims=bool(keepdims))


def mean(x, axis=None, keepdims: bool = False) -> Tensor:
    """Mean over ``axis`` (None = all axes)."""
    x = _operand(x)
    return Mean.apply(x, axes=_axes(axis, x.ndim, "mean"), keepdims=bool(keepdims))


def max(x, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Maximum over ``axis``; tied maxima share the gradient equally."""
    x = _operand(x)
    return Max.apply(x, axes=_axes(axis, x.ndim, "max"), keepdims=bool(keepdims))


def min(x, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Minimum over ``axis``; tied minima share the gradient equally."""
    x = _operand(x)
    return Min.apply(x, axes=_axes(axis, x.ndim, "min"), keepdims=bool(keepdims))
