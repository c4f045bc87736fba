"""The strict stand-in device: CuPy's rules on NumPy memory, for tests only.

A GPU array refuses to become a NumPy array behind the caller's back: CuPy's
``__array__`` raises ``TypeError``, so ``np.asarray``, ``np.array`` and
``np.ascontiguousarray`` fail on it, a CuPy array and a NumPy array never meet in one
operation, and the values come to the host only through ``.get()``. Code that mixes host
and device arrays therefore works on the CPU and fails on the GPU. ``StrictArray`` keeps
the same rules on a machine without a GPU, so the test suite finds that code:

- ``StrictArray`` wraps an ``np.ndarray`` (it is not a subclass, so ``isinstance(a,
  np.ndarray)`` is false, as for CuPy); ``__array__`` raises ``TypeError``.
- NumPy functions and ufuncs called on it dispatch (``__array_ufunc__``,
  ``__array_function__``) to NumPy on the wrapped arrays and wrap the results, as
  CuPy's dispatch does; reductions give 0-d arrays, not NumPy scalars.
- ``xp`` is the array module (the part of ``cupy`` dojang uses): ``xp.zeros``,
  ``xp.asarray`` (which, like ``cupy.asarray``, also copies a NumPy array in), ...
- Meeting a NumPy array as an operand raises ``TypeError``; as an index or a value
  assigned through an index it is copied over, as CuPy does. Python and NumPy scalars mix
  freely, as with CuPy.

The device is named ``"strict"``; ``enable()`` registers it, and only the test suite
calls it, so users never see it.
"""

from __future__ import annotations

import numbers
import operator
import types

import numpy as np

from dojang.backends.base import Backend

_REFUSED = ("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to "
            "construct a NumPy array explicitly.")


def _mixed(a) -> TypeError:
    return TypeError(f"Unsupported type {type(a)}: a NumPy array cannot meet a 'strict' "
                     f"device array (move it with xp.asarray, or fetch with .get())")


def _raw(v):
    """The NumPy value behind ``v`` for a call on the wrapped arrays; NumPy arrays refused."""
    tp = type(v)
    if tp is StrictArray:
        return v._a
    if tp is np.ndarray or isinstance(v, np.ndarray):
        raise _mixed(v)
    if tp is tuple or tp is list:
        return tp(_raw(u) for u in v)
    if tp is dict:
        return {k: _raw(u) for k, u in v.items()}
    return v


def _raw_index(index):
    if type(index) is tuple:
        return tuple(_raw_index(i) for i in index)
    return index.copy() if isinstance(index, np.ndarray) else _raw(index)


def _wrap(v):
    """Wrap NumPy results (arrays, and scalars as 0-d arrays, as CuPy returns them)."""
    if isinstance(v, np.ndarray):
        return StrictArray(v)
    if isinstance(v, np.generic) and not isinstance(v, (np.str_, np.bytes_, np.void)):
        return StrictArray(np.asarray(v))
    if type(v) is tuple or type(v) is list:
        return type(v)(_wrap(u) for u in v)
    return v


def _binary(fn):
    def op(self, other):
        if not isinstance(other, (StrictArray, np.ndarray, numbers.Number, np.generic, bool)):
            return NotImplemented  # e.g. a Tensor: its reflected operator takes over
        return _wrap(fn(self._a, _raw(other)))
    return op


def _reflected(fn):
    def op(self, other):
        if not isinstance(other, (numbers.Number, np.generic)):
            return NotImplemented
        return _wrap(fn(other, self._a))
    return op


def _inplace(fn):
    def op(self, other):
        fn(self._a, _raw(other), out=self._a)
        return self
    return op


class StrictArray:
    """A NumPy array that follows CuPy's rules (see the module docstring).

    Example:
        >>> import numpy as np
        >>> a = StrictArray(np.arange(3.0))
        >>> (a * 2).get()
        array([0., 2., 4.])
        >>> np.asarray(a)
        Traceback (most recent call last):
        ...
        TypeError: Implicit conversion to a NumPy array is not allowed. Please use `.get()` \
to construct a NumPy array explicitly.
    """

    __slots__ = ("_a",)
    __array_priority__ = 100

    def __init__(self, array: np.ndarray):
        self._a = array

    # ------------------------------------------------------------------ host boundary
    def get(self) -> np.ndarray:
        """The values as a NumPy array (an explicit copy to the host, as in CuPy)."""
        return self._a.copy()

    def __array__(self, dtype=None, copy=None):
        raise TypeError(_REFUSED)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        out = kwargs.get("out")
        result = getattr(ufunc, method)(*_raw(inputs), **_raw(kwargs))
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _wrap(result)

    def __array_function__(self, func, types_, args, kwargs):
        return _wrap(func(*_raw(args), **_raw(kwargs)))

    # ------------------------------------------------------------------ attributes
    @property
    def shape(self) -> tuple[int, ...]:
        return self._a.shape

    @shape.setter
    def shape(self, value) -> None:
        self._a.shape = value

    @property
    def dtype(self) -> np.dtype:
        return self._a.dtype

    @property
    def ndim(self) -> int:
        return self._a.ndim

    @property
    def size(self) -> int:
        return self._a.size

    @property
    def T(self) -> StrictArray:
        return StrictArray(self._a.T)

    def __getattr__(self, name):
        if name.startswith("__") or name == "_a":
            # no __array_interface__ / __array_struct__ either: NumPy would read the memory
            raise AttributeError(name)
        value = getattr(self._a, name)
        if not callable(value):
            return _wrap(value)

        def method(*args, **kwargs):
            return _wrap(value(*_raw(args), **_raw(kwargs)))
        return method

    # ------------------------------------------------------------------ python protocol
    # Like CuPy, indexing copies NumPy index arrays (and assigned NumPy values) over.
    def __getitem__(self, index):
        return _wrap(self._a[_raw_index(index)])

    def __setitem__(self, index, value) -> None:
        self._a[_raw_index(index)] = value.copy() if isinstance(value, np.ndarray) else _raw(value)

    def __len__(self) -> int:
        return len(self._a)

    def __iter__(self):
        return (StrictArray(v) if isinstance(v, np.ndarray) else _wrap(v) for v in self._a)

    def __bool__(self) -> bool:
        return bool(self._a)

    def __float__(self) -> float:
        return float(self._a)

    def __int__(self) -> int:
        return int(self._a)

    def __index__(self) -> int:
        return operator.index(self._a)

    def __repr__(self) -> str:
        return "strict_" + repr(self._a)

    def __copy__(self) -> StrictArray:
        return StrictArray(self._a.copy())

    def __deepcopy__(self, memo) -> StrictArray:
        return StrictArray(self._a.copy())

    __hash__ = None  # type: ignore[assignment]
    __add__, __radd__, __iadd__ = _binary(np.add), _reflected(np.add), _inplace(np.add)
    __sub__, __rsub__, __isub__ = (_binary(np.subtract), _reflected(np.subtract),
                                   _inplace(np.subtract))
    __mul__, __rmul__, __imul__ = (_binary(np.multiply), _reflected(np.multiply),
                                   _inplace(np.multiply))
    __truediv__, __rtruediv__, __itruediv__ = (_binary(np.true_divide),
                                               _reflected(np.true_divide),
                                               _inplace(np.true_divide))
    __floordiv__, __rfloordiv__ = _binary(np.floor_divide), _reflected(np.floor_divide)
    __mod__, __rmod__ = _binary(np.mod), _reflected(np.mod)
    __pow__, __rpow__, __ipow__ = _binary(np.power), _reflected(np.power), _inplace(np.power)
    __matmul__ = _binary(np.matmul)
    __and__, __or__, __xor__ = _binary(np.bitwise_and), _binary(np.bitwise_or), \
        _binary(np.bitwise_xor)
    __iand__, __ior__ = _inplace(np.bitwise_and), _inplace(np.bitwise_or)
    __eq__, __ne__ = _binary(np.equal), _binary(np.not_equal)  # type: ignore[assignment]
    __lt__, __le__ = _binary(np.less), _binary(np.less_equal)
    __gt__, __ge__ = _binary(np.greater), _binary(np.greater_equal)

    def __neg__(self) -> StrictArray:
        return StrictArray(-self._a)

    def __pos__(self) -> StrictArray:
        return self

    def __abs__(self) -> StrictArray:
        return StrictArray(abs(self._a))

    def __invert__(self) -> StrictArray:
        return StrictArray(~self._a)


# Functions of ``xp`` that, like cupy's, copy a host (NumPy) array onto the device.
_FROM_HOST = frozenset({"asarray", "array", "asanyarray", "ascontiguousarray"})


class _Ufunc:
    """A NumPy ufunc on strict arrays (``xp.add``, ``xp.maximum.reduce``, ...)."""

    __slots__ = ("_f",)

    def __init__(self, f):
        self._f = f

    def __call__(self, *args, **kwargs):
        _refuse_host(args)
        _refuse_host(kwargs.get("out", ()) if type(kwargs.get("out")) is tuple
                     else (kwargs.get("out"),))
        return _wrap(self._f(*args, **kwargs))  # dispatched to StrictArray.__array_ufunc__

    def __getattr__(self, name):
        value = getattr(self._f, name)
        if not callable(value):
            return value

        def method(*args, **kwargs):
            if name == "at":  # ufunc.at(a, index, b): the index is copied over, as CuPy does
                _refuse_host(args[:1] + args[2:])
                raw = (_raw(args[0]), _raw_index(args[1])) + _raw(args[2:])
            else:
                _refuse_host(args)
                raw = _raw(args)
            return _wrap(value(*raw, **_raw(kwargs)))
        return method


def _refuse_host(args) -> None:
    for a in args:
        if isinstance(a, np.ndarray):
            raise _mixed(a)


class _Namespace(types.ModuleType):
    """The array module of strict arrays: NumPy's names, taking and giving StrictArray."""

    def __init__(self, name: str, module):
        super().__init__(name)
        self._module = module
        self.ndarray = StrictArray

    def __getattr__(self, name):
        value = getattr(self._module, name)
        if isinstance(value, np.ufunc):
            wrapped = _Ufunc(value)
        elif isinstance(value, types.ModuleType):
            wrapped = _Namespace(f"{self.__name__}.{name}", value)
        elif isinstance(value, type) or not callable(value):
            return value  # dtypes and constants: np.float32, np.inf, np.newaxis
        else:
            wrapped = _function(value, host_ok=name in _FROM_HOST)
        setattr(self, name, wrapped)
        return wrapped


def _function(f, host_ok: bool):
    def call(*args, **kwargs):
        if host_ok and args and isinstance(args[0], np.ndarray):
            return StrictArray(f(args[0].copy(), *_raw(args[1:]), **_raw(kwargs)))
        return _wrap(f(*_raw(args), **_raw(kwargs)))
    call.__name__ = call.__qualname__ = getattr(f, "__name__", "function")
    return call


xp = _Namespace("dojang.backends.strict.xp", np)


class StrictBackend(Backend):
    """The test-only ``"strict"`` device: ``StrictArray`` and its ``xp`` namespace."""

    name = "strict"
    device = "strict"

    @property
    def xp(self):
        return xp

    def owns(self, array) -> bool:
        return type(array) is StrictArray

    def to_numpy(self, a) -> np.ndarray:
        return a.get() if type(a) is StrictArray else np.asarray(a)

    def erf(self, a) -> StrictArray:
        from dojang.backends.numpy_backend import NUMPY

        return StrictArray(NUMPY.erf(a._a))

    def from_numpy(self, a, device: str | None = None) -> StrictArray:
        return StrictArray(np.array(a, copy=True))


STRICT = StrictBackend()


def enable() -> None:
    """Register the ``"strict"`` device (tests only); calling it again does nothing."""
    from dojang import backends

    backends.register(STRICT, StrictArray)
