"""The rule every GPU variant shares: the arrays are float32 or float64."""

from __future__ import annotations

FLOATS = ("float32", "float64")


def floats(*arrays) -> bool:
    """True when every array given (None skipped) is float32 or float64."""
    return all(a is None or a.dtype.name in FLOATS for a in arrays)
