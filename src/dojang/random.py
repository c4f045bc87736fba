"""Seeded random generators: the only source of randomness in dojang.

NumPy's global random state is never used. ``set_seed(n)`` fixes one root
``np.random.SeedSequence``; every ``make_rng()`` afterwards spawns the next child of it, so
the k-th generator made after ``set_seed(n)`` is the same in every run (initializers,
shuffling and dropout draw from such generators, each its own stream).
"""

from __future__ import annotations

import threading

import numpy as np

from dojang.validation import is_int

_lock = threading.Lock()
_root: np.random.SeedSequence | None = None
_seed: int | None = None


def _check_seed(seed, owner: str) -> int:
    if not is_int(seed) or seed < 0:
        raise ValueError(
            f"{owner}: Expected seed to be a non-negative int. Received: seed={seed!r}"
        )
    return int(seed)


def set_seed(seed: int) -> None:
    """Make every later ``make_rng()`` (and so initialization, shuffling, dropout) repeatable.

    Args:
        seed: a non-negative int.

    Raises:
        ValueError: if ``seed`` is not a non-negative int.

    Example:
        >>> set_seed(42)
        >>> a = make_rng().random()
        >>> set_seed(42)
        >>> a == make_rng().random()
        True
    """
    global _root, _seed
    seed = _check_seed(seed, "set_seed")
    with _lock:
        _root = np.random.SeedSequence(seed)
        _seed = seed


def get_seed() -> int | None:
    """Return the seed given to the last ``set_seed``, or None if it was never called."""
    return _seed


def make_rng(seed=None) -> np.random.Generator:
    """Return a new ``np.random.Generator``.

    Args:
        seed: None for the next child of the global seed sequence (see ``set_seed``;
            fresh OS entropy if it was never called), an int for
            ``np.random.default_rng(seed)``, or a ``Generator`` returned as is.

    Raises:
        ValueError: if ``seed`` is neither None, a non-negative int nor a Generator.

    Example:
        >>> int(make_rng(0).integers(10)) == int(make_rng(0).integers(10))
        True
    """
    global _root
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is not None:
        return np.random.default_rng(_check_seed(seed, "make_rng"))
    with _lock:
        if _root is None:
            _root = np.random.SeedSequence()
        child = _root.spawn(1)[0]
    return np.random.default_rng(child)
