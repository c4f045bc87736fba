"""dojang: a convolutional neural network framework written from scratch on NumPy.

Example:
    >>> import dojang as dj
    >>> x = dj.Tensor([[1.0, 2.0]], requires_grad=True)
    >>> (x * 3).sum().backward()
    >>> x.grad.numpy()
    array([[3., 3.]], dtype=float32)
"""

from dojang import backend, config, shapes
from dojang.autograd import Function, Tensor
from dojang.config import (
    default_dtype, enable_grad, get_default_dtype, im2col_budget, is_grad_enabled, no_grad,
    set_default_dtype,
)
from dojang import ops
from dojang import functional

__version__ = "0.1.0"

__all__ = [
    "Function", "Tensor", "backend", "config", "default_dtype", "enable_grad", "functional",
    "get_default_dtype", "im2col_budget", "is_grad_enabled", "no_grad", "ops",
    "set_default_dtype", "shapes",
]
