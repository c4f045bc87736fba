"""Elementwise differentiable ops. Binary ops broadcast; ``sum_to_shape`` undoes it."""

from __future__ import annotations

import numbers

import numpy as np

from dojang.autograd import Function, Tensor, sum_to_shape
from dojang.autograd.tensor import as_array
from dojang.backend import get_array_module
from dojang.kernels import alloc


def _operand(x):
    """Tensors pass through; Python numbers stay weak scalars (keep the tensor's dtype)."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, numbers.Number) and not isinstance(x, np.ndarray):
        return x.item() if isinstance(x, np.generic) else x
    return Tensor(as_array(x))


def _shape(x) -> tuple[int, ...]:
    return getattr(x, "shape", ())


class _Binary(Function):
    def forward(self, a, b):
        self.a_shape, self.b_shape = _shape(a), _shape(b)
        return self._fwd(a, b)


def _add(a, b):
    """``a + b``; two large NumPy arrays of one shape and dtype (a residual connection)
    add into a recycled array (``kernels.alloc``: no fresh pages every step)."""
    if (type(a) is np.ndarray and type(b) is np.ndarray and a.shape == b.shape
            and a.dtype == b.dtype and a.nbytes >= alloc.MIN_BYTES):
        return np.add(a, b, out=alloc.empty(a.shape, a.dtype))
    return a + b


class Add(_Binary):
    _fwd = staticmethod(_add)

    def backward(self, gy):
        return sum_to_shape(gy, self.a_shape), sum_to_shape(gy, self.b_shape)


class Sub(_Binary):
    _fwd = staticmethod(lambda a, b: a - b)

    def backward(self, gy):
        gb = -sum_to_shape(gy, self.b_shape) if self.needs_input_grad[1] else None
        return sum_to_shape(gy, self.a_shape), gb


class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, gy):
        a, b = self.a, self.b
        ga = sum_to_shape(gy * b, _shape(a)) if self.needs_input_grad[0] else None
        gb = sum_to_shape(gy * a, _shape(b)) if self.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, gy):
        a, b = self.a, self.b
        ga = sum_to_shape(gy / b, _shape(a)) if self.needs_input_grad[0] else None
        gb = sum_to_shape(-gy * a / (b * b), _shape(b)) if self.needs_input_grad[1] else None
        return ga, gb


class Pow(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        self.y = a**b
        return self.y

    def backward(self, gy):
        a, b, y = self.a, self.b, self.y
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = sum_to_shape(gy * b * a ** (b - 1), _shape(a))
        if self.needs_input_grad[1]:
            xp = get_array_module(y)
            safe = xp.where(a > 0, a, 1)
            gb = sum_to_shape(gy * y * xp.log(safe), _shape(b))
        return ga, gb


class Neg(Function):
    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


class Exp(Function):
    def forward(self, x):
        self.y = get_array_module(x).exp(x)
        return self.y

    def backward(self, gy):
        return gy * self.y


class Log(Function):
    def forward(self, x):
        self.x = x
        return get_array_module(x).log(x)

    def backward(self, gy):
        return gy / self.x


class Sqrt(Function):
    def forward(self, x):
        self.y = get_array_module(x).sqrt(x)
        return self.y

    def backward(self, gy):
        return gy / (2 * self.y)


class Abs(Function):
    def forward(self, x):
        self.x = x
        return get_array_module(x).abs(x)  # the builtin is shadowed below

    def backward(self, gy):
        return gy * get_array_module(gy).sign(self.x)


class _Select(Function):
    """maximum/minimum: the gradient goes to the chosen input; ties split it evenly."""

    def forward(self, a, b):
        xp = get_array_module(a, b)
        self.a_shape, self.b_shape = _shape(a), _shape(b)
        self.pick_a = self._pick(xp, a, b).astype(np.result_type(a, b), copy=False)
        self.pick_a = self.pick_a + 0.5 * (a == b)
        return self._op(xp)(a, b)

    def backward(self, gy):
        ga = sum_to_shape(gy * self.pick_a, self.a_shape) if self.needs_input_grad[0] else None
        gb = (sum_to_shape(gy * (1 - self.pick_a), self.b_shape)
              if self.needs_input_grad[1] else None)
        return ga, gb


class Maximum(_Select):
    _pick = staticmethod(lambda xp, a, b: a > b)
    _op = staticmethod(lambda xp: xp.maximum)


class Minimum(_Select):
    _pick = staticmethod(lambda xp, a, b: a < b)
    _op = staticmethod(lambda xp: xp.minimum)


class Where(Function):
    def forward(self, cond, a, b):
        xp = get_array_module(a, b)
        self.cond = cond
        self.a_shape, self.b_shape = _shape(a), _shape(b)
        return xp.where(cond, a, b)

    def backward(self, gy):
        xp = get_array_module(gy)
        ga = (sum_to_shape(xp.where(self.cond, gy, 0), self.a_shape)
              if self.needs_input_grad[1] else None)
        gb = (sum_to_shape(xp.where(self.cond, 0, gy), self.b_shape)
              if self.needs_input_grad[2] else None)
        return None, ga, gb


class Clip(Function):
    """Clip to ``[low, high]``; the gradient passes where the input was inside (inclusive)."""

    def __init__(self, low=None, high=None):
        self.low, self.high = low, high

    def forward(self, x):
        xp = get_array_module(x)
        self.mask = xp.ones(x.shape, dtype=bool)
        if self.low is not None:
            self.mask &= x >= self.low
        if self.high is not None:
            self.mask &= x <= self.high
        return xp.clip(x, self.low, self.high).astype(x.dtype, copy=False)

    def backward(self, gy):
        return gy * self.mask


class Cast(Function):
    def __init__(self, dtype):
        self.dtype = dtype

    def forward(self, x):
        self.src = x.dtype
        return x.astype(self.dtype)

    def backward(self, gy):
        return gy.astype(self.src)


def add(a, b) -> Tensor:
    """Elementwise ``a + b`` with broadcasting."""
    return Add.apply(_operand(a), _operand(b))


def sub(a, b) -> Tensor:
    """Elementwise ``a - b`` with broadcasting."""
    return Sub.apply(_operand(a), _operand(b))


def mul(a, b) -> Tensor:
    """Elementwise ``a * b`` with broadcasting."""
    return Mul.apply(_operand(a), _operand(b))


def div(a, b) -> Tensor:
    """Elementwise ``a / b`` with broadcasting."""
    return Div.apply(_operand(a), _operand(b))


def pow(a, b) -> Tensor:  # noqa: A001 - the op's name
    """Elementwise ``a ** b``; the exponent's gradient uses ``log(a)`` where ``a > 0``."""
    return Pow.apply(_operand(a), _operand(b))


def neg(x) -> Tensor:
    return Neg.apply(_operand(x))


def exp(x) -> Tensor:
    return Exp.apply(_operand(x))


def log(x) -> Tensor:
    return Log.apply(_operand(x))


def sqrt(x) -> Tensor:
    return Sqrt.apply(_operand(x))


def abs(x) -> Tensor:  # noqa: A001 - the op's name
    """Elementwise ``|x|``; the gradient at 0 is 0 (as in PyTorch)."""
    return Abs.apply(_operand(x))


def maximum(a, b) -> Tensor:
    """Elementwise maximum; at ties each input gets half the gradient (as in PyTorch)."""
    return Maximum.apply(_operand(a), _operand(b))


def minimum(a, b) -> Tensor:
    """Elementwise minimum; at ties each input gets half the gradient (as in PyTorch)."""
    return Minimum.apply(_operand(a), _operand(b))


def where(condition, a, b) -> Tensor:
    """Pick ``a`` where ``condition`` is true, else ``b`` (condition gets no gradient)."""
    cond = condition.data if isinstance(condition, Tensor) else as_array(condition)
    if cond.dtype != bool:
        raise TypeError(f"Expected condition to be a boolean array. Received: dtype={cond.dtype}")
    return Where.apply(cond, _operand(a), _operand(b))


def clip(x, min=None, max=None) -> Tensor:  # noqa: A002 - numpy's argument names
    """Clip values to ``[min, max]``; either bound may be None."""
    if min is None and max is None:
        raise ValueError("clip: Expected at least one of min and max. Received: min=None, "
                         "max=None")
    return Clip.apply(_operand(x), low=min, high=max)


def cast(x, dtype) -> Tensor:
    """Convert to ``dtype``; the gradient is cast back to the input's dtype."""
    return Cast.apply(_operand(x), dtype=np.dtype(dtype))
