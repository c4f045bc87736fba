"""ReLU, tanh and their gradients on any backend's arrays (the reference of
``activation.numba``).

Ops: ``"relu"(x) -> max(x, 0)``; ``"relu_grad"(gy, y) -> gy where y > 0, else 0``;
``"tanh"(x, b=None, out=None) -> tanh(x + b)`` (``b`` on the last axis, as a
channels-last convolution's bias; ``out`` may be ``x``); ``"tanh_grad"(gy, y) ->
gy * (1 - y**2)``.
"""

from __future__ import annotations

from dojang.backend import all_finite, get_array_module
from dojang.kernels.registry import register
from dojang.kernels.threads import split_batch


@register("relu")
def relu(x):
    """``max(x, 0)`` as a new array (NaN stays NaN, -0 becomes 0).

    Example:
        >>> import numpy as np
        >>> relu(np.array([-1.0, 0.5]))
        array([0. , 0.5])
    """
    return get_array_module(x).maximum(x, 0)


@register("relu_grad")
def relu_grad(gy, y):
    """``gy`` where the ReLU output ``y`` is positive, else 0, as a new array (also the
    backward of the convolution's fused ReLU).

    A select, so an infinite or NaN ``gy`` at a zeroed output gives 0, as in PyTorch.
    When ``gy`` is finite, the product ``gy * (y > 0)`` is that select and much faster
    than ``where`` (the batch split over threads).

    Example:
        >>> import numpy as np
        >>> relu_grad(np.array([np.inf, 2.0]), np.array([0.0, 1.0]))
        array([0., 2.])
    """
    xp = get_array_module(gy)
    if y.ndim == 0 or not all_finite(gy):  # (a 0-d array has no batch to split)
        return xp.where(y > 0, gy, 0).astype(gy.dtype, copy=False)
    g = xp.empty(y.shape, dtype=gy.dtype)
    split_batch(lambda s: xp.multiply(gy[s], y[s] > 0, out=g[s]), y.shape[0], y.size, like=y)
    return g


@register("tanh")
def tanh(x, b=None, out=None):
    """``tanh(x + b)`` (``b``: None, or one value per entry of the last axis) into ``out``
    (a new array when None; ``x`` itself for in place); returns ``out``.

    Example:
        >>> import numpy as np
        >>> tanh(np.array([[0.0, 1.0]]), np.array([0.5, -1.0]))
        array([[0.46211716, 0.        ]])
    """
    xp = get_array_module(x)
    if b is not None:
        x = xp.add(x, b, out=out)
    return xp.tanh(x, out=x if b is not None else out)


@register("tanh_grad")
def tanh_grad(gy, y):
    """``gy * (1 - y**2)``, the gradient through ``y = tanh(x)``, as a new array.

    Example:
        >>> import numpy as np
        >>> tanh_grad(np.array([2.0]), np.array([0.5]))
        array([1.5])
    """
    xp = get_array_module(gy)
    g = xp.asarray(y * y)  # 1 - y**2 in one new array (0-d too), scaled in place
    xp.subtract(1, g, out=g)
    g *= gy
    return g
