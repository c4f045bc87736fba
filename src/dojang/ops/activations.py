"""Activation functions, each one ``Function`` with forward and backward on arrays.

All of them keep the input's dtype (float32 stays float32) and are numerically stable:
``sigmoid`` never exponentiates a positive number, ``softmax``/``log_softmax`` subtract
the maximum first, ``elu`` uses ``expm1`` on the non-positive part only.

``Sigmoid`` and ``Softmax`` expose their input Tensor as ``creator.logits`` (until backward
has freed the graph), so a loss handed ``y_pred = softmax(z)`` can test
``isinstance(y_pred.creator, Softmax)`` and use ``y_pred.creator.logits`` (the Tensor ``z``,
still in the graph) for the stable from-logits path, as Keras does with ``_keras_logits``.
Under ``no_grad`` nothing is recorded, so ``y_pred.creator`` is None there.

Arguments are not checked here; ``dojang.functional`` holds the checked entry points.
"""

from __future__ import annotations

import math

from dojang.autograd import Function, Tensor
from dojang.backend import get_array_module
from dojang.backends import backend_of
from dojang.kernels import dispatch
from dojang.ops.elementwise import _operand

__all__ = ["elu", "gelu", "leaky_relu", "log_softmax", "relu", "sigmoid", "softmax", "tanh"]

_SQRT_2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_CUBIC = 0.044715


def erf(x):
    """The error function of an array, accurate to double precision, in ``x``'s dtype.

    The array's backend computes it (``Backend.erf``: NumPy maps ``math.erf``, CuPy has
    ``cupyx.scipy.special.erf``).
    """
    return backend_of(x).erf(x)


def _stable_sigmoid(x):
    """``1 / (1 + exp(-x))`` without overflow: only ``exp(-|x|)`` is ever computed."""
    xp = get_array_module(x)
    e = xp.exp(-abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


class ReLU(Function):
    """``max(x, 0)``; the gradient at 0 is 0 (as in PyTorch).

    Forward keeps its output ``y`` (one pass, no mask array); backward selects ``gy``
    where ``y > 0``, which is ``x > 0`` (a select, so an infinite ``gy`` elsewhere gives
    0, not NaN). Large NumPy arrays take the compiled kernels (``kernels.activation``).
    """

    def forward(self, x):
        self.y = dispatch("relu", x)
        return self.y

    def backward(self, gy):
        return dispatch("relu_grad", gy, self.y)


class LeakyReLU(Function):
    """``x`` for ``x > 0``, else ``alpha * x``."""

    def __init__(self, alpha: float):
        self.alpha = alpha

    def forward(self, x):
        self.mask = x > 0
        return get_array_module(x).where(self.mask, x, x * self.alpha)

    def backward(self, gy):
        return get_array_module(gy).where(self.mask, gy, gy * self.alpha)


class ELU(Function):
    """``x`` for ``x > 0``, else ``alpha * (exp(x) - 1)``; d/dx = ``y + alpha`` below 0."""

    def __init__(self, alpha: float):
        self.alpha = alpha

    def forward(self, x):
        xp = get_array_module(x)
        self.mask = x > 0
        self.y = xp.where(self.mask, x, self.alpha * xp.expm1(xp.minimum(x, 0)))
        return self.y

    def backward(self, gy):
        return get_array_module(gy).where(self.mask, gy, gy * (self.y + self.alpha))


class _KeepsLogits(Function):
    @property
    def logits(self):
        """The input Tensor while the graph is alive, else None."""
        inputs = getattr(self, "inputs", None)
        return None if inputs is None else inputs[0]


class Sigmoid(_KeepsLogits):
    """``1 / (1 + exp(-x))``; d/dx = ``y (1 - y)``. ``logits`` is the input Tensor."""

    def forward(self, x):
        self.y = _stable_sigmoid(x)
        return self.y

    def backward(self, gy):
        return gy * self.y * (1 - self.y)


class Tanh(Function):
    """``tanh(x)``; d/dx = ``1 - y**2``."""

    def forward(self, x):
        self.y = dispatch("tanh", x)
        return self.y

    def backward(self, gy):
        return dispatch("tanh_grad", gy, self.y)


class GELU(Function):
    """Gaussian error linear unit ``x * Phi(x)``, exact (erf) or with the tanh approximation.

    Exact: ``y = x/2 (1 + erf(x / sqrt 2))``, ``dy/dx = Phi(x) + x phi(x)`` with ``phi`` the
    standard normal density. Approximate: ``y = x/2 (1 + tanh(u))`` with
    ``u = sqrt(2/pi) (x + 0.044715 x**3)``.
    """

    def __init__(self, approximate: bool):
        self.approximate = approximate

    def forward(self, x):
        xp = get_array_module(x)
        self.x = x
        if self.approximate:
            self.t = xp.tanh(_SQRT_2_OVER_PI * (x + _GELU_CUBIC * x * x * x))
            return 0.5 * x * (1 + self.t)
        self.cdf = 0.5 * (1 + erf(x / _SQRT_2))
        return x * self.cdf

    def backward(self, gy):
        xp = get_array_module(gy)
        x = self.x
        if self.approximate:
            t = self.t
            du = _SQRT_2_OVER_PI * (1 + 3 * _GELU_CUBIC * x * x)
            return gy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du)
        return gy * (self.cdf + x * (_INV_SQRT_2PI * xp.exp(-0.5 * x * x)))


class Softmax(_KeepsLogits):
    """``exp(x_i) / sum_j exp(x_j)`` along ``axis``; ``logits`` is the input Tensor.

    Backward: ``dx = y * (gy - sum(gy * y, axis))``.
    """

    def __init__(self, axis: int):
        self.axis = axis

    def forward(self, x):
        xp = get_array_module(x)
        e = xp.exp(x - x.max(axis=self.axis, keepdims=True))
        e /= e.sum(axis=self.axis, keepdims=True)
        self.y = e
        return e

    def backward(self, gy):
        y = self.y
        return y * (gy - (gy * y).sum(axis=self.axis, keepdims=True))


class LogSoftmax(Function):
    """``x - logsumexp(x)`` along ``axis``; backward ``dx = gy - exp(y) * sum(gy, axis)``."""

    def __init__(self, axis: int):
        self.axis = axis

    def forward(self, x):
        xp = get_array_module(x)
        shifted = x - x.max(axis=self.axis, keepdims=True)
        shifted -= xp.log(xp.exp(shifted).sum(axis=self.axis, keepdims=True))
        self.y = shifted
        return shifted

    def backward(self, gy):
        xp = get_array_module(gy)
        return gy - xp.exp(self.y) * gy.sum(axis=self.axis, keepdims=True)


def relu(x) -> Tensor:
    """Rectified linear unit ``max(x, 0)``."""
    return ReLU.apply(_operand(x))


def leaky_relu(x, alpha: float = 0.2) -> Tensor:
    """``x`` where positive, ``alpha * x`` elsewhere (Keras's default slope 0.2)."""
    return LeakyReLU.apply(_operand(x), alpha=alpha)


def elu(x, alpha: float = 1.0) -> Tensor:
    """Exponential linear unit: ``x`` where positive, ``alpha * (exp(x) - 1)`` elsewhere."""
    return ELU.apply(_operand(x), alpha=alpha)


def sigmoid(x) -> Tensor:
    """Logistic sigmoid ``1 / (1 + exp(-x))``, stable for large ``|x|``."""
    return Sigmoid.apply(_operand(x))


def tanh(x) -> Tensor:
    """Hyperbolic tangent."""
    return Tanh.apply(_operand(x))


def gelu(x, approximate: bool = False) -> Tensor:
    """GELU ``x * Phi(x)``: exact with erf, or PyTorch's/Keras's tanh approximation."""
    return GELU.apply(_operand(x), approximate=bool(approximate))


def softmax(x, axis: int = -1) -> Tensor:
    """Softmax along ``axis`` (the maximum is subtracted first)."""
    x = _operand(x)
    return Softmax.apply(x, axis=axis % x.ndim)


def log_softmax(x, axis: int = -1) -> Tensor:
    """Log of the softmax along ``axis``, computed as ``x - logsumexp(x)``."""
    x = _operand(x)
    return LogSoftmax.apply(x, axis=axis % x.ndim)
