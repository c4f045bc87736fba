"""Argument checks shared by every layer and functional op.

Each check takes the argument's name (and the layer or function that owns it), so every
message has the same form: ``"<owner>: Expected <name> to be ... Received: <name>=<value>"``.
Checks run before any array work.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence


def _where(owner: str | None) -> str:
    return f"{owner}: " if owner else ""


def is_int(value) -> bool:
    """True for Python and NumPy integers, but not for bools."""
    # a plain int first: the ABC check costs ten times more, and shapes are ints
    return type(value) is int or (isinstance(value, numbers.Integral)
                                  and not isinstance(value, bool))


def standardize_tuple(
    value, n: int, name: str, owner: str | None = None, *, min_value: int = 1
) -> tuple[int, ...]:
    """Turn an int or a length-``n`` sequence of ints into an ``n``-tuple, checking bounds.

    Example:
        >>> standardize_tuple(3, 2, "kernel_size")
        (3, 3)
        >>> standardize_tuple([1, 2], 2, "strides")
        (1, 2)
    """
    what = f"an int or a tuple of {n} ints, each >= {min_value}"
    msg = f"{_where(owner)}Expected {name} to be {what}. Received: {name}={value!r}"
    if is_int(value):
        out = (int(value),) * n
    elif isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != n or not all(is_int(v) for v in value):
            raise ValueError(msg)
        out = tuple(int(v) for v in value)
    else:
        raise TypeError(msg)
    if any(v < min_value for v in out):
        raise ValueError(msg)
    return out


def check_bool(value, name: str, owner: str | None = None) -> bool:
    """Return ``value`` if it is a bool (not merely truthy: ``1`` is rejected)."""
    if not isinstance(value, bool):
        raise TypeError(
            f"{_where(owner)}Expected {name} to be a bool. Received: {name}={value!r}"
        )
    return value


def check_choice(value, choices: Sequence[str], name: str, owner: str | None = None) -> str:
    """Return ``value`` lower-cased if it is one of ``choices`` (case-insensitive)."""
    if not isinstance(value, str) or value.lower() not in choices:
        raise ValueError(
            f"{_where(owner)}Expected {name} to be one of {tuple(choices)}. "
            f"Received: {name}={value!r}"
        )
    return value.lower()


def check_int(value, name: str, owner: str | None = None, *, min_value: int | None = None) -> int:
    """Return ``value`` as an int, checking its type and lower bound."""
    bound = "" if min_value is None else f" >= {min_value}"
    msg = f"{_where(owner)}Expected {name} to be an int{bound}. Received: {name}={value!r}"
    if not is_int(value):
        raise TypeError(msg)
    if min_value is not None and value < min_value:
        raise ValueError(msg)
    return int(value)


def check_float(
    value, name: str, owner: str | None = None, *, low: float | None = None,
    high: float | None = None, low_open: bool = False, high_open: bool = False,
) -> float:
    """Return ``value`` as a float, checking it lies in the given interval."""
    lo = "" if low is None else ("(" if low_open else "[") + f"{low}, "
    hi = "" if high is None else f"{high}" + (")" if high_open else "]")
    rng = f" in {lo or '(-inf, '}{hi or 'inf)'}" if (low is not None or high is not None) else ""
    msg = f"{_where(owner)}Expected {name} to be a number{rng}. Received: {name}={value!r}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(msg)
    v = float(value)
    if v != v:
        raise ValueError(msg)
    if low is not None and (v < low or (low_open and v == low)):
        raise ValueError(msg)
    if high is not None and (v > high or (high_open and v == high)):
        raise ValueError(msg)
    return v


def check_data_format(
    value, rank: int, name: str = "data_format", owner: str | None = None
) -> bool:
    """Validate a data format and return True for channels-last.

    Accepts Keras's ``"channels_last"``/``"channels_first"`` and TensorFlow's strings for
    the rank (``"NWC"``/``"NCW"``, ``"NHWC"``/``"NCHW"``, ``"NDHWC"``/``"NCDHW"``).
    """
    spatial = {1: "W", 2: "HW", 3: "DHW"}[rank]
    last, first = f"N{spatial}C", f"NC{spatial}"
    if isinstance(value, str):
        v = value.upper()
        if v in (last, "CHANNELS_LAST"):
            return True
        if v in (first, "CHANNELS_FIRST"):
            return False
    raise ValueError(
        f"{_where(owner)}Expected {name} to be one of ('{last}', '{first}', 'channels_last', "
        f"'channels_first'). Received: {name}={value!r}"
    )


def check_float_dtype(value, name: str = "dtype", owner: str | None = None):
    """Return ``np.dtype(value)`` if it is a floating dtype (``'float32'``, ``np.float64``...).

    Example:
        >>> check_float_dtype("float32")
        dtype('float32')
    """
    import numpy as np

    msg = (f"{_where(owner)}Expected {name} to be a float dtype such as 'float32'. "
           f"Received: {name}={value!r}")
    try:
        dtype = np.dtype(value)
    except TypeError:
        raise TypeError(msg) from None
    if dtype.kind != "f":
        raise ValueError(msg)
    return dtype
