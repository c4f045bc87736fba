"""``Tensor``: an array (NumPy or CuPy) that remembers how it was computed.

Operators and methods forward to the differentiable ops in ``dojang.ops``, which bind
themselves here when the package is imported (``ops`` sits above ``autograd``, so this
module may not import it).
"""

from __future__ import annotations

import numbers

import numpy as np

from dojang import backend
from dojang.autograd.function import Function, bind_tensor_class, run_backward
from dojang.backends import check_same_device
from dojang.config import get_default_dtype

_ops = None  # the dojang.ops module, bound by dojang.ops at import


def _bind_ops(module) -> None:
    global _ops
    _ops = module


def as_array(data, dtype=None):
    """Convert ``data`` to an array following dojang's dtype rules.

    Arrays keep their dtype; Python floats (and lists of them) take the default float
    dtype (float32); Python ints become int64 and bools stay bool.
    """
    if isinstance(data, Tensor):
        data = data.data
    xp = backend.get_array_module(data)
    if xp is not np or isinstance(data, np.ndarray):
        return data if dtype is None else data.astype(dtype, copy=False)
    try:
        arr = np.asarray(data, dtype=dtype)
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"Expected a number, a (nested) list of numbers or an array. "
            f"Received: {type(data).__name__} ({e})"
        ) from None
    if dtype is None:
        if arr.dtype.kind == "f" and not isinstance(data, np.generic):
            arr = arr.astype(get_default_dtype())
        elif arr.dtype.kind not in "biuf":
            raise TypeError(
                f"Expected numeric data (bool, int or float). Received: an array of dtype "
                f"{arr.dtype} from {type(data).__name__}"
            )
    return arr


class Tensor:
    """An n-dimensional array with reverse-mode automatic differentiation.

    Args:
        data: a number, nested list, NumPy/CuPy array or Tensor. Arrays keep their
            dtype (no copy); Python floats become float32 (the default dtype).
        requires_grad: record operations on this tensor so ``backward`` fills ``grad``.
        dtype: optional dtype to convert to.

    Raises:
        TypeError: for non-numeric data, or ``requires_grad`` on a non-float tensor.

    Example:
        >>> import dojang as dj
        >>> x = dj.Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
        >>> y = (x * x).sum()
        >>> y.backward()
        >>> x.grad.numpy()
        array([[2., 4.],
               [6., 8.]], dtype=float32)
    """

    __slots__ = ("data", "requires_grad", "grad", "creator", "name", "__weakref__")
    __array_priority__ = 1000
    __array_ufunc__ = None  # make NumPy defer `ndarray + Tensor` to Tensor.__radd__

    def __init__(self, data, requires_grad: bool = False, dtype=None, name: str | None = None):
        self.data = as_array(data, dtype)
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(
                f"Only floating-point tensors can require gradients. Received: dtype="
                f"{self.data.dtype}"
            )
        self.requires_grad = bool(requires_grad)
        self.grad: Tensor | None = None
        self.creator: Function | None = None
        self.name = name

    @classmethod
    def _from_op(cls, data, creator: Function | None) -> Tensor:
        t = object.__new__(cls)
        t.data = data
        t.requires_grad = creator is not None
        t.grad = None
        t.creator = creator
        t.name = None
        return t

    # ------------------------------------------------------------------ properties
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def device(self) -> str:
        """Where the data lives: ``"cpu"``, ``"gpu"``, ``"gpu:N"`` (or the tests' ``"strict"``)."""
        return backend.device_of(self.data)

    @property
    def is_leaf(self) -> bool:
        return self.creator is None

    @property
    def T(self) -> Tensor:
        return _ops.transpose(self)

    # ------------------------------------------------------------------ conversion
    def numpy(self) -> np.ndarray:
        """Return the values as a NumPy array (shares memory on the CPU)."""
        return backend.to_numpy(self.data)

    def item(self):
        """Return the value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(
                f"item() needs a tensor with exactly one element. Received: shape={self.shape}"
            )
        return self.data.item()

    def tolist(self):
        return self.numpy().tolist()

    def detach(self) -> Tensor:
        """Return a tensor sharing the same data, cut from the graph."""
        return Tensor._from_op(self.data, None)

    def astype(self, dtype) -> Tensor:
        return _ops.cast(self, dtype=np.dtype(dtype))

    def to(self, device: str) -> Tensor:
        """Return this tensor on ``device``; a leaf keeps ``requires_grad`` and its name.

        Args:
            device: ``"cpu"``, ``"gpu"``, ``"gpu:N"`` (``"cuda"``, ``"cuda:N"`` alike).

        Raises:
            ValueError: an unknown device, or a GPU that is not there.

        Example:
            >>> import dojang as dj
            >>> dj.Tensor([1.0, 2.0]).to("cpu").device
            'cpu'
        """
        t = Tensor._from_op(backend.to_device(self.data, device), None)
        t.requires_grad = self.requires_grad
        t.name = self.name
        return t

    def __array__(self, dtype=None, copy=None):
        if not isinstance(self.data, np.ndarray) and backend.device_of(self.data) != "cpu":
            # as CuPy's arrays do: a device tensor comes to the host only when asked to
            raise TypeError(f"A tensor on device {self.device!r} is not converted to a NumPy "
                            f"array implicitly. Use .numpy() (or .to('cpu')) explicitly.")
        arr = self.numpy()
        return arr if dtype is None else arr.astype(dtype, copy=False)

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise ValueError(
                f"The truth value of a tensor with more than one element is ambiguous "
                f"(shape={self.shape}); use .any() or .all()."
            )
        return bool(self.data)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self.dtype.kind not in "iu" or self.data.size != 1:
            raise TypeError("only integer tensors with one element can be used as an index")
        return int(self.item())

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        body = np.array2string(self.numpy(), separator=", ", prefix="Tensor(")
        extra = f", dtype={self.dtype}"
        if self.creator is not None:
            extra += f", grad_fn={type(self.creator).__name__}"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"Tensor({body}{extra})"

    # ------------------------------------------------------------------ autograd
    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Compute the gradient of this tensor with respect to every leaf of its graph.

        Args:
            grad: gradient of some scalar with respect to this tensor; may be omitted
                for a one-element tensor (then it is 1).
            retain_graph: keep the saved arrays so backward can run again.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() called on a tensor that does not require grad (was it computed "
                "under no_grad(), or from tensors without requires_grad=True?)"
            )
        xp = backend.get_array_module(self.data)
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"grad can be implicitly created only for a one-element tensor; pass "
                    f"grad= for shape {self.shape}"
                )
            g = xp.ones_like(self.data)
        else:
            g = xp.asarray(grad.data if isinstance(grad, Tensor) else grad, dtype=self.dtype)
            if g.shape != self.shape:
                raise ValueError(
                    f"Expected grad of shape {self.shape}. Received: grad of shape {g.shape}"
                )
        run_backward(self, g, retain_graph)

    def zero_grad(self) -> None:
        self.grad = None

    # ------------------------------------------------------------------ operators
    def __add__(self, other):
        return _ops.add(self, other)

    def __radd__(self, other):
        return _ops.add(other, self)

    def __sub__(self, other):
        return _ops.sub(self, other)

    def __rsub__(self, other):
        return _ops.sub(other, self)

    def __mul__(self, other):
        return _ops.mul(self, other)

    def __rmul__(self, other):
        return _ops.mul(other, self)

    def __truediv__(self, other):
        return _ops.div(self, other)

    def __rtruediv__(self, other):
        return _ops.div(other, self)

    def __pow__(self, other):
        return _ops.pow(self, other)

    def __rpow__(self, other):
        return _ops.pow(other, self)

    def __matmul__(self, other):
        return _ops.matmul(self, other)

    def __rmatmul__(self, other):
        return _ops.matmul(other, self)

    def __neg__(self):
        return _ops.neg(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return _ops.abs(self)

    def __getitem__(self, index):
        return _ops.getitem(self, index)

    # comparisons are not differentiable; they return boolean tensors
    def _compare(self, other, op):
        other = other.data if isinstance(other, Tensor) else other
        check_same_device((self.data, other), op.__name__)
        return Tensor._from_op(op(self.data, other), None)

    def __eq__(self, other):  # type: ignore[override]
        return self._compare(other, np.equal)

    def __ne__(self, other):  # type: ignore[override]
        return self._compare(other, np.not_equal)

    def __lt__(self, other):
        return self._compare(other, np.less)

    def __le__(self, other):
        return self._compare(other, np.less_equal)

    def __gt__(self, other):
        return self._compare(other, np.greater)

    def __ge__(self, other):
        return self._compare(other, np.greater_equal)

    # ------------------------------------------------------------------ methods
    def sum(self, axis=None, keepdims: bool = False):
        return _ops.sum(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims: bool = False):
        return _ops.mean(self, axis=axis, keepdims=keepdims)

    def max(self, axis=None, keepdims: bool = False):
        return _ops.max(self, axis=axis, keepdims=keepdims)

    def min(self, axis=None, keepdims: bool = False):
        return _ops.min(self, axis=axis, keepdims=keepdims)

    def any(self):
        return bool(self.data.any())

    def all(self):
        return bool(self.data.all())

    def argmax(self, axis=None):
        return Tensor._from_op(self.data.argmax(axis=axis), None)

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _ops.reshape(self, shape)

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return _ops.transpose(self, axes or None)

    def flatten(self, start_axis: int = 0):
        """Merge the axes from ``start_axis`` on into one (``flatten(1)`` keeps the batch)."""
        if not isinstance(start_axis, numbers.Integral) or not -self.ndim <= start_axis < max(
            self.ndim, 1
        ):
            raise ValueError(
                f"Expected start_axis in [{-self.ndim}, {self.ndim}). Received: "
                f"start_axis={start_axis!r}"
            )
        start = start_axis % max(self.ndim, 1)
        return _ops.reshape(self, self.shape[:start] + (-1,))

    def exp(self):
        return _ops.exp(self)

    def log(self):
        return _ops.log(self)

    def sqrt(self):
        return _ops.sqrt(self)

    def abs(self):
        return _ops.abs(self)

    def relu(self):
        return _ops.relu(self)

    def sigmoid(self):
        return _ops.sigmoid(self)

    def tanh(self):
        return _ops.tanh(self)

    def clip(self, min=None, max=None):
        return _ops.clip(self, min, max)


bind_tensor_class(Tensor)
