"""dojang: a convolutional neural network framework written from scratch on NumPy.

Example:
    >>> import dojang as dj
    >>> x = dj.Tensor([[1.0, 2.0]], requires_grad=True)
    >>> (x * 3).sum().backward()
    >>> x.grad.numpy()
    array([[3., 3.]], dtype=float32)
"""

from dojang import (
    activations,
    backend,
    callbacks,
    config,
    data,
    distribute,
    functional,
    initializers,
    layers,
    losses,
    metrics,
    models,
    ops,
    optimizers,
    random,
    regularizers,
    shapes,
    zoo,
)
from dojang.autograd import Function, Tensor
from dojang.backends import device
from dojang.config import (
    default_dtype,
    enable_grad,
    get_default_dtype,
    im2col_budget,
    is_grad_enabled,
    no_grad,
    set_default_dtype,
)
from dojang.layers import Input
from dojang.models import Model, Sequential
from dojang.version import __version__

_LAZY = ("datasets", "image", "viz", "recipes", "cli", "onnx", "interop")


def __getattr__(name):
    # Loaders (network, archives) and plots are imported on first use, keeping
    # `import dojang` light.
    if name in _LAZY:
        import importlib

        return importlib.import_module(f"dojang.{name}")
    raise AttributeError(f"module 'dojang' has no attribute {name!r}")


__all__ = [
    "Function", "Input", "Model", "Sequential", "Tensor", "activations", "backend", "callbacks",
    "config", "data", "datasets", "default_dtype", "device", "distribute", "enable_grad",
    "functional", "get_default_dtype", "im2col_budget", "image", "initializers", "interop",
    "is_grad_enabled", "layers", "losses", "metrics", "models", "no_grad", "onnx", "ops",
    "optimizers", "random", "regularizers", "set_default_dtype", "shapes", "viz", "zoo",
]
