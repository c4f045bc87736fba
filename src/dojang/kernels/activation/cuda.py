"""ReLU and its gradient as CUDA kernels (CuPy arrays)."""

from __future__ import annotations

from dojang.kernels.cuda import ops
from dojang.kernels.cuda.variants import floats
from dojang.kernels.registry import register


@register("relu", backend="cupy", variant="cuda", priority=1, usable=floats)
def relu(x):
    """``max(x, 0)``, NaN kept, -0 written as 0."""
    return ops.relu(x)


@register("relu_grad", backend="cupy", variant="cuda", priority=1, usable=floats)
def relu_grad(gy, y):
    """``gy`` where ``y > 0``, else 0."""
    return ops.relu_grad(gy, y)
