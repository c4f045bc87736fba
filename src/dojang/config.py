"""Global knobs of dojang, each a context variable with a context manager.

Only four things are global: whether autograd records operations, the default
floating dtype for new tensors, the memory budget of the convolution's im2col
buffer, and whether the compiled kernels (``dojang.kernels.jit``) may be used.
Everything else is passed explicitly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

import numpy as np

_grad_enabled: ContextVar[bool] = ContextVar("dojang_grad_enabled", default=True)
_default_dtype: ContextVar[np.dtype] = ContextVar(
    "dojang_default_dtype", default=np.dtype(np.float32)
)
_im2col_budget: ContextVar[int] = ContextVar("dojang_im2col_budget", default=256 * 2**20)

_jit: ContextVar[bool | None] = ContextVar("dojang_jit", default=None)

_FLOAT_DTYPES = ("float16", "float32", "float64")


def is_grad_enabled() -> bool:
    """Return True when operations on tensors are being recorded for backward."""
    return _grad_enabled.get()


@contextlib.contextmanager
def _set(var: ContextVar, value) -> Iterator[None]:
    token = var.set(value)
    try:
        yield
    finally:
        var.reset(token)


def no_grad() -> contextlib.AbstractContextManager[None]:
    """Disable graph recording inside a ``with`` block.

    Example:
        >>> import dojang as dj
        >>> x = dj.Tensor([1.0, 2.0], requires_grad=True)
        >>> with dj.no_grad():
        ...     y = x * 2
        >>> y.requires_grad
        False
    """
    return _set(_grad_enabled, False)


def enable_grad() -> contextlib.AbstractContextManager[None]:
    """Re-enable graph recording inside a ``with`` block (undoes ``no_grad``)."""
    return _set(_grad_enabled, True)


def _check_float_dtype(dtype) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(
            f"Expected dtype to be one of {_FLOAT_DTYPES}. Received: dtype={dtype!r}"
        ) from None
    if dt.name not in _FLOAT_DTYPES:
        raise TypeError(f"Expected dtype to be one of {_FLOAT_DTYPES}. Received: dtype={dtype!r}")
    return dt


def get_default_dtype() -> np.dtype:
    """Return the floating dtype used for tensors made from Python floats (float32)."""
    return _default_dtype.get()


def set_default_dtype(dtype) -> None:
    """Set the floating dtype used for tensors made from Python floats and for new weights."""
    _default_dtype.set(_check_float_dtype(dtype))


def default_dtype(dtype) -> contextlib.AbstractContextManager[None]:
    """Use ``dtype`` as the default floating dtype inside a ``with`` block."""
    return _set(_default_dtype, _check_float_dtype(dtype))


def _check_budget(nbytes) -> int:
    if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes <= 0:
        raise ValueError(f"Expected nbytes to be a positive integer. Received: nbytes={nbytes!r}")
    return nbytes


def get_im2col_budget() -> int:
    """Return the largest im2col buffer, in bytes, that a convolution may allocate."""
    return _im2col_budget.get()


def im2col_budget(nbytes: int) -> contextlib.AbstractContextManager[None]:
    """Bound the convolution's im2col buffer to ``nbytes`` inside a ``with`` block."""
    return _set(_im2col_budget, _check_budget(nbytes))


def set_im2col_budget(nbytes: int) -> None:
    """Set the largest im2col buffer, in bytes, for the rest of this context."""
    _im2col_budget.set(_check_budget(nbytes))


def get_jit() -> bool | None:
    """Whether the compiled kernels may be used here: True/False inside ``jit(flag)``,
    None outside (then ``DOJANG_JIT`` decides; see ``dojang.kernels.jit``)."""
    return _jit.get()


def jit(enabled: bool) -> contextlib.AbstractContextManager[None]:
    """Use (``True``) or bypass (``False``) the compiled kernels inside a ``with`` block.

    Bypassing them runs the NumPy kernels, the reference the compiled ones are tested
    against. ``True`` has no effect when numba is not installed.
    """
    if not isinstance(enabled, bool):
        raise TypeError(f"Expected enabled to be a bool. Received: enabled={enabled!r}")
    return _set(_jit, enabled)
