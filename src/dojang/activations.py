"""Activation functions by name, for layers' ``activation=`` argument.

Each function takes and returns a Tensor and calls ``dojang.functional``; ``get(None)``
and ``get("linear")`` give the identity.
"""

from __future__ import annotations

from dojang import functional as F
from dojang.autograd import Tensor
from dojang.registry import Registry

registry = Registry("activation", base=None)
register = registry.register


@register("linear")
def linear(x: Tensor) -> Tensor:
    """Identity: ``f(x) = x``."""
    return x


@register("relu")
def relu(x: Tensor) -> Tensor:
    """``max(x, 0)``."""
    return F.relu(x)


@register("leaky_relu")
def leaky_relu(x: Tensor, alpha: float = 0.2) -> Tensor:
    """``x`` if ``x > 0`` else ``alpha * x``."""
    return F.leaky_relu(x, alpha=alpha)


@register("elu")
def elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    """``x`` if ``x > 0`` else ``alpha * (exp(x) - 1)``."""
    return F.elu(x, alpha=alpha)


@register("gelu")
def gelu(x: Tensor, approximate: bool = False) -> Tensor:
    """``x * Phi(x)`` (tanh approximation when ``approximate``)."""
    return F.gelu(x, approximate=approximate)


@register("sigmoid")
def sigmoid(x: Tensor) -> Tensor:
    """``1 / (1 + exp(-x))``."""
    return F.sigmoid(x)


@register("tanh")
def tanh(x: Tensor) -> Tensor:
    """Hyperbolic tangent."""
    return F.tanh(x)


@register("softmax")
def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """``exp(x) / sum(exp(x), axis)``; losses given its output use the logits directly."""
    return F.softmax(x, axis=axis)


@register("log_softmax")
def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """``x - logsumexp(x, axis)``."""
    return F.log_softmax(x, axis=axis)


get, serialize, deserialize = registry.functions(none=linear)


__all__ = [
    "deserialize", "elu", "gelu", "get", "leaky_relu", "linear", "log_softmax", "register",
    "relu", "serialize", "sigmoid", "softmax", "tanh",
]
