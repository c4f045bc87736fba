"""Every knob of dojang in one place: each a context variable with a context manager.

The knobs, their defaults and the environment variables that set those defaults:

=====================  ==========================  =========================================
knob                   default (environment)       what it decides
=====================  ==========================  =========================================
grad enabled           True                        whether autograd records operations
default dtype          float32                     dtype of tensors made from Python floats
im2col budget          256 MiB                     largest im2col buffer a convolution makes
kernel variant         None (``DOJANG_JIT``)       ``"reference"`` (NumPy kernels only),
                                                   ``"numba"`` (compiled kernels where they
                                                   apply, Winograd excepted),
                                                   ``"winograd"`` (Winograd convolutions
                                                   wherever they apply) or None: compiled,
                                                   as the planner says, unless
                                                   ``DOJANG_JIT=0``
recycling              on (``DOJANG_RECYCLE``)     large kernel outputs reuse kept memory
                                                   (``kernels.alloc``); ``0`` turns it off
threads                1 (``DOJANG_NUM_THREADS``)  threads that split NumPy array work over
                                                   the batch (1 to 8; ``kernels.threads``)
MPI timeout            30 s                        seconds ``MPIStrategy`` waits for the
                       (``DOJANG_MPI_TIMEOUT``)    other ranks before ``CollectiveTimeout``
GPU TF32               off (``DOJANG_GPU_TF32``)   ``1``: float32 GEMMs on the GPU use TF32
                                                   tensor cores (10-bit mantissa products;
                                                   read when CuPy is first loaded)
vector ISA             detected (``DOJANG_ISA``)   ``"avx2"`` or ``"avx512"``: which register
                                                   tiles and thresholds the convolution
                                                   planner uses (``kernels.isa``)
=====================  ==========================  =========================================

The environment is read once, when this module is imported; a ``with`` block
(``kernel_variant``, ``jit``, ``recycling``, ``threads``, ``im2col_budget``, ...) changes a
knob for the code inside it (per thread and per asyncio task, as context variables do).
``dojang.config`` re-exports the public names under their historical home.

Example:
    >>> import dojang as dj
    >>> with dj.config.kernels("reference"):
    ...     dj.config.get_kernel_variant()
    'reference'
"""

from __future__ import annotations

import contextlib
import os
from contextvars import ContextVar

import numpy as np

_FLOAT_DTYPES = ("float16", "float32", "float64")
VARIANTS = ("reference", "numba", "winograd", "cuda")
COMPILED = ("numba", "winograd")  # the forced variants that are compiled with numba
ISA_FAMILIES = ("avx2", "avx512")
MAX_THREADS = 8


def _env_threads(value: str) -> int:
    """``DOJANG_NUM_THREADS``: an integer 1..8 (larger values mean 8), else 1."""
    return min(int(value), MAX_THREADS) if value.isdigit() and int(value) > 0 else 1


# The environment, read once.
JIT_DEFAULT = os.environ.get("DOJANG_JIT", "1") != "0"
RECYCLE_DEFAULT = os.environ.get("DOJANG_RECYCLE", "1") != "0"
THREADS_DEFAULT = _env_threads(os.environ.get("DOJANG_NUM_THREADS", ""))
# Parsed (and refused when not a number) by MPIStrategy, the one reader.
MPI_TIMEOUT_TEXT = os.environ.get("DOJANG_MPI_TIMEOUT", "30")
GPU_TF32 = os.environ.get("DOJANG_GPU_TF32", "0") == "1"
# Any other value (or none) means: detect (``kernels.isa``).
_ISA_ENV = os.environ.get("DOJANG_ISA")
ISA_DEFAULT = _ISA_ENV if _ISA_ENV in ISA_FAMILIES else None

_grad_enabled: ContextVar[bool] = ContextVar("dojang_grad_enabled", default=True)
_default_dtype: ContextVar[np.dtype] = ContextVar(
    "dojang_default_dtype", default=np.dtype(np.float32)
)
_im2col_budget: ContextVar[int] = ContextVar("dojang_im2col_budget", default=256 * 2**20)
_variant: ContextVar[str | None] = ContextVar("dojang_kernel_variant", default=None)
_recycle: ContextVar[bool] = ContextVar("dojang_recycle", default=RECYCLE_DEFAULT)
_threads: ContextVar[int] = ContextVar("dojang_threads", default=THREADS_DEFAULT)
_isa: ContextVar[str | None] = ContextVar("dojang_isa", default=ISA_DEFAULT)


class scoped(contextlib.AbstractContextManager, contextlib.ContextDecorator):
    """Give context variable ``var`` the value ``value`` inside a ``with`` block (yielded),
    restoring the previous value after it: the one mechanism behind every scope in dojang
    (these knobs, ``dj.device``, strategies, weight sources, the CUDA engine). As a
    decorator (``@dj.config.jit(False)``) it scopes each call of the function.

    A class rather than a generator-based context manager: ``predict`` enters two
    scopes per call, and entering and leaving this one measured 1.3 us against 3.2 us.
    """

    __slots__ = ("_var", "_value", "_token")

    def __init__(self, var: ContextVar, value):
        self._var, self._value = var, value

    def __enter__(self):
        self._token = self._var.set(self._value)
        return self._value

    def __exit__(self, *exc) -> None:
        self._var.reset(self._token)

    def _recreate_cm(self):
        # a decorated function may run in several threads, or recursively: one scope
        # (and one token) per call
        return scoped(self._var, self._value)


# ------------------------------------------------------------------------ autograd
def is_grad_enabled() -> bool:
    """Return True when operations on tensors are being recorded for backward."""
    return _grad_enabled.get()


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
    return scoped(_grad_enabled, False)


def enable_grad() -> contextlib.AbstractContextManager[None]:
    """Re-enable graph recording inside a ``with`` block (undoes ``no_grad``)."""
    return scoped(_grad_enabled, True)


# ------------------------------------------------------------------------ dtype
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
    return scoped(_default_dtype, _check_float_dtype(dtype))


# ------------------------------------------------------------------------ im2col budget
def _check_budget(nbytes) -> int:
    if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes <= 0:
        raise ValueError(f"Expected nbytes to be a positive integer. Received: nbytes={nbytes!r}")
    return nbytes


def get_im2col_budget() -> int:
    """Return the largest im2col buffer, in bytes, that a convolution may allocate."""
    return _im2col_budget.get()


def im2col_budget(nbytes: int) -> contextlib.AbstractContextManager[None]:
    """Bound the convolution's im2col buffer to ``nbytes`` inside a ``with`` block."""
    return scoped(_im2col_budget, _check_budget(nbytes))


def set_im2col_budget(nbytes: int) -> None:
    """Set the largest im2col buffer, in bytes, for the rest of this context."""
    _im2col_budget.set(_check_budget(nbytes))


# ------------------------------------------------------------------------ kernel variants
def get_kernel_variant() -> str | None:
    """The kernel variant forced here (one of ``VARIANTS``), or None."""
    return _variant.get()


def kernels(variant: str) -> contextlib.AbstractContextManager[None]:
    """Force a kernel variant inside a ``with`` block (see ``dojang.kernels.registry``).

    ``"reference"`` runs the NumPy reference kernels only; ``"numba"`` the compiled ones
    named so wherever their rules take the arrays (even under ``DOJANG_JIT=0``; without
    numba the reference runs), which leaves the Winograd convolution out;
    ``"winograd"`` the Winograd convolution (``kernels.conv.winograd``) wherever it
    applies, whatever the planner's size rule says, and the reference elsewhere.

    Raises:
        ValueError: ``variant`` is not one of ``("reference", "numba", "winograd", "cuda")``.
    """
    if variant not in VARIANTS:
        raise ValueError(f"Expected variant to be one of {VARIANTS}. Received: "
                         f"variant={variant!r}")
    return scoped(_variant, variant)


def get_jit() -> bool | None:
    """Whether the compiled kernels may be used here: True/False inside ``jit(flag)`` (or
    ``kernels("numba")``/``kernels("winograd")``/``kernels("reference")``), None outside
    (then ``DOJANG_JIT``)."""
    variant = _variant.get()
    return None if variant is None else variant in COMPILED


def jit(enabled: bool) -> contextlib.AbstractContextManager[None]:
    """Use (``True``) or bypass (``False``) the compiled kernels inside a ``with`` block:
    ``kernels("numba")`` or ``kernels("reference")``.

    Bypassing them runs the NumPy kernels, the reference the compiled ones are tested
    against. ``True`` has no effect when numba is not installed.

    Raises:
        TypeError: ``enabled`` is not a bool.
    """
    if not isinstance(enabled, bool):
        raise TypeError(f"Expected enabled to be a bool. Received: enabled={enabled!r}")
    return scoped(_variant, "numba" if enabled else "reference")


def compiled_wanted() -> bool:
    """True when the settings ask for the compiled kernels (whether numba imports is
    ``dojang.kernels.compile``'s question)."""
    variant = _variant.get()
    return JIT_DEFAULT if variant is None else variant in COMPILED


# ------------------------------------------------------------------------ recycling
def get_recycling() -> bool:
    """Whether large kernel outputs reuse kept memory (``DOJANG_RECYCLE``, default on)."""
    return _recycle.get()


def recycling(enabled: bool) -> contextlib.AbstractContextManager[None]:
    """Turn the recycling of kernel outputs on or off inside a ``with`` block.

    Raises:
        TypeError: ``enabled`` is not a bool.
    """
    if not isinstance(enabled, bool):
        raise TypeError(f"Expected enabled to be a bool. Received: enabled={enabled!r}")
    return scoped(_recycle, enabled)


# ------------------------------------------------------------------------ threads
def get_num_threads() -> int:
    """Threads for splittable NumPy array work (``DOJANG_NUM_THREADS``, 1 to 8; default 1)."""
    return _threads.get()


def threads(n: int) -> contextlib.AbstractContextManager[None]:
    """Split NumPy array work over ``n`` threads (1 to 8) inside a ``with`` block.

    Raises:
        ValueError: ``n`` is not an integer from 1 to 8.
    """
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_THREADS:
        raise ValueError(f"Expected n to be an integer from 1 to {MAX_THREADS}. Received: n={n!r}")
    return scoped(_threads, n)


# ------------------------------------------------------------------------ vector ISA
def get_isa() -> str | None:
    """The vector ISA family forced here (``"avx2"`` or ``"avx512"``), or None: detected."""
    return _isa.get()


def isa(family: str | None) -> contextlib.AbstractContextManager[None]:
    """Plan convolutions for the ``family`` vector unit inside a ``with`` block (None:
    the detected one). The kernels are still compiled for the host, so any family runs
    correctly on any host; only the tile shapes and thresholds change.

    Raises:
        ValueError: ``family`` is not None, ``"avx2"`` or ``"avx512"``.
    """
    if family is not None and family not in ISA_FAMILIES:
        raise ValueError(f"Expected family to be one of {ISA_FAMILIES} or None. Received: "
                         f"family={family!r}")
    return scoped(_isa, family)
