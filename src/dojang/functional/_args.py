"""Argument checks shared by the ``tf.nn``-style convolution and pooling wrappers.

TensorFlow accepts ``strides``, ``dilations``, ``ksize`` and explicit ``padding`` either
per spatial dim or for every axis of the input, as long as the batch and channel entries
are neutral (1, or ``[0, 0]`` for padding); these helpers check that and keep the spatial
part. Messages have the form ``"<owner>: Expected <name> <expected>. Received: ..."``;
where conv and pool word an expectation differently, the caller passes its words.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NoReturn

from dojang.autograd import Tensor
from dojang.validation import check_choice, is_int, standardize_tuple

__all__ = [
    "DATA_FORMATS", "as_tensor", "check_name", "check_ndim", "fail", "input_rank", "is_list",
    "padding_arg", "spatial_arg", "split_axes",
]

# (channels-last, channels-first) data formats per number of spatial dims.
DATA_FORMATS = {1: ("NWC", "NCW"), 2: ("NHWC", "NCHW"), 3: ("NDHWC", "NCDHW")}


def fail(owner: str, name: str, expected: str, received: str,
         error: type[Exception] = ValueError) -> NoReturn:
    """Raise ``error`` with the message form shared by every check."""
    raise error(f"{owner}: Expected {name} {expected}. Received: {received}")


def check_name(name, owner: str) -> None:
    """Accept TensorFlow's ``name=`` (an op name in a TF graph; dojang has no graph names).

    Raises:
        TypeError: unless ``name`` is None or a string.
    """
    if name is not None and not isinstance(name, str):
        fail(owner, "name", "to be None or a string", f"name={name!r}", TypeError)


def input_rank(input, owner: str) -> int:
    """The number of spatial dims of ``input``: its rank minus batch and channels (1 to 3).

    Raises:
        ValueError: for an input of rank other than 3, 4 or 5.
    """
    shape = tuple(input.shape) if hasattr(input, "shape") else as_tensor(input, "input",
                                                                           owner).shape
    if len(shape) - 2 not in DATA_FORMATS:
        fail(owner, "input", "to have rank 3, 4 or 5 (batch, 1 to 3 spatial dims, channels)",
             f"input.shape={shape}")
    return len(shape) - 2


def is_list(value) -> bool:
    """True for a sequence that is not a string (a list or tuple of entries)."""
    return isinstance(value, Sequence) and not isinstance(value, str)


def split_axes(values: Sequence, channels_last: bool) -> tuple[tuple, tuple]:
    """Split a full-rank shape or list into its spatial entries and (batch, channels)."""
    if channels_last:
        return tuple(values[1:-1]), (values[0], values[-1])
    return tuple(values[2:]), (values[0], values[1])


def as_tensor(value, name: str, owner: str, *, allow_bool: bool = False) -> Tensor:
    """``value`` as a Tensor (arrays are wrapped without a copy) of a numeric dtype.

    Raises:
        TypeError: data that is not numbers, or of a non-numeric dtype (bool included
            unless ``allow_bool``).
    """
    what = "numeric" if allow_bool else "numeric (integer or floating-point)"
    expected = f"to be a {what} array or Tensor"
    received = f"{name} of type {type(value).__name__}"
    if not isinstance(value, Tensor):
        try:
            value = Tensor(value)
        except TypeError:
            fail(owner, name, expected, received, TypeError)
    if value.dtype.kind not in ("biuf" if allow_bool else "iuf"):
        fail(owner, name, expected, f"{received} and dtype {value.dtype}", TypeError)
    return value


def check_ndim(t: Tensor, ndim: int, name: str, owner: str, expected: str) -> None:
    """Raise ValueError unless ``t`` has ``ndim`` dims; ``expected`` describes the layout."""
    if t.ndim != ndim:
        fail(owner, name, expected, f"{name}.shape={t.shape}")


def spatial_arg(value, rank: int, channels_last: bool, name: str, owner: str,
                full_rank: str) -> tuple[int, ...]:
    """An int, one int per spatial dim, or a full-rank list with 1 at batch and channels.

    ``full_rank`` words the expectation raised when a batch or channel entry is not 1.
    Returns ``rank`` ints, each >= 1.
    """
    if is_list(value) and len(value) == rank + 2:
        spatial, outer = split_axes(value, channels_last)
        if not all(is_int(v) and v == 1 for v in outer):
            fail(owner, name, full_rank, f"{name}={value!r}")
        value = spatial
    return standardize_tuple(value, rank, name, owner)


def padding_arg(padding, rank: int, channels_last: bool, owner: str, full_rank: str):
    """Check a padding string early; reduce a full-rank list of pairs to its spatial pairs.

    ``full_rank`` words the expectation raised when a batch or channel pair is not
    ``(0, 0)``. Other forms pass through to ``dojang.shapes.resolve_padding``.
    """
    if isinstance(padding, str):
        return check_choice(padding, ("valid", "same"), "padding", owner)
    if is_list(padding) and len(padding) == rank + 2:
        spatial, outer = split_axes(padding, channels_last)
        if not all(is_list(p) and tuple(p) == (0, 0) for p in outer):
            fail(owner, "padding", full_rank, f"padding={padding!r}")
        return spatial
    return padding
