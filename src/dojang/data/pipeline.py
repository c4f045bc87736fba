"""Input pipeline: seeded shuffling, mini-batches, scaling to float and the channel axis.

Randomness is explicit: functions take a ``np.random.Generator``, and :class:`BatchLoader`
derives each epoch's generator from ``(seed, epoch)``, so epoch ``e`` yields the same batches
(and the same augmentation draws) whether a run got there directly or resumed from a
checkpoint at epoch ``e``. NumPy's global random state is never used.

Example:
    >>> import numpy as np
    >>> x = np.arange(10 * 4 * 4, dtype=np.uint8).reshape(10, 4, 4)
    >>> loader = BatchLoader(prepare_images(x), np.arange(10), batch_size=4, seed=0)
    >>> [xb.shape for xb, yb in loader.epoch(0)]
    [(4, 4, 4, 1), (4, 4, 4, 1), (2, 4, 4, 1)]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from dojang.random import make_rng
from dojang.validation import check_data_format, check_float, check_int, is_int

__all__ = [
    "BatchLoader", "add_channel_axis", "batch_indices", "epoch_rng", "iterate_batches",
    "prepare_images", "to_float",
]


def _check_rng(rng, owner: str) -> None:
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise TypeError(f"{owner}: Expected rng to be None or a numpy.random.Generator. "
                        f"Received: rng={rng!r}")


def _check_pass(n, n_name: str, batch_size, shuffle: bool, rng, owner: str) -> tuple[int, int]:
    n = check_int(n, n_name, owner, min_value=0)
    batch_size = check_int(batch_size, "batch_size", owner, min_value=1)
    _check_rng(rng, owner)
    if shuffle and rng is None:
        raise ValueError(f"{owner}: Expected rng to be a numpy.random.Generator when "
                         "shuffle=True. Received: rng=None")
    return n, batch_size


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """Return the generator of one epoch, a pure function of ``(seed, epoch)``.

    ``np.random.default_rng([seed, epoch])`` hashes both numbers through a SeedSequence, so
    epochs get independent streams and any epoch can be replayed alone.

    Example:
        >>> bool((epoch_rng(1, 3).permutation(5) == epoch_rng(1, 3).permutation(5)).all())
        True
    """
    seed = check_int(seed, "seed", "epoch_rng", min_value=0)
    epoch = check_int(epoch, "epoch", "epoch_rng", min_value=0)
    return np.random.default_rng([seed, epoch])


def batch_indices(n: int, batch_size: int, *, shuffle: bool = False,
                  rng: np.random.Generator | None = None,
                  drop_remainder: bool = False) -> list[np.ndarray]:
    """Split ``range(n)`` (or one permutation of it) into index arrays of ``batch_size``.

    Draws: ``rng.permutation(n)`` once when ``shuffle``.

    Args:
        n: number of samples, >= 0.
        batch_size: samples per batch, >= 1.
        shuffle: permute the indices first (needs ``rng``).
        rng: random generator used when ``shuffle``.
        drop_remainder: drop the last batch when it is smaller than ``batch_size``.

    Returns:
        ``ceil(n / batch_size)`` arrays (``floor`` with ``drop_remainder``), together a
        permutation of ``range(n)`` (without the dropped tail).

    Raises:
        TypeError: ``rng`` is not a Generator. ValueError: ``shuffle`` without ``rng``, or a
            bad ``n``/``batch_size``.

    Example:
        >>> [b.tolist() for b in batch_indices(5, 2)]
        [[0, 1], [2, 3], [4]]
    """
    owner = "batch_indices"
    n, batch_size = _check_pass(n, "n", batch_size, shuffle, rng, owner)
    order = np.arange(n)
    return [order[s] if isinstance(s, slice) else s
            for s in _selectors(n, batch_size, shuffle, rng, drop_remainder)]


def _selectors(n: int, batch_size: int, shuffle: bool, rng, drop_remainder: bool):
    """Each batch of one pass as a slice (in order: a view, no copy) or an index array."""
    order = rng.permutation(n) if shuffle else None
    stop = n - n % batch_size if drop_remainder else n
    for start in range(0, stop, batch_size):
        yield (slice(start, min(start + batch_size, n)) if order is None
               else order[start:start + batch_size])


def iterate_batches(x, y=None, batch_size: int = 32, *, shuffle: bool = False,
                    rng: np.random.Generator | None = None, drop_remainder: bool = False,
                    augment: Callable | None = None, preprocess: Callable | None = None,
                    shard: Callable | None = None) -> Iterator:
    """Yield ``(x_batch, y_batch)`` (or ``x_batch`` when ``y`` is None) for one pass.

    Each batch is gathered from ``x``, then ``augment(x_batch, rng)`` runs (if given), then
    ``preprocess(x_batch)``. Draws: the permutation (when ``shuffle``), then the augmentation
    draws batch after batch, all from ``rng``. Without ``shuffle`` a batch is a slice of
    ``x`` (a view, as ``x[i:j]``), so ``augment`` must return a new array, as the built-in
    augmentations do.

    With ``shard`` (a training strategy's ``shard``: one batch's slice or index array ->
    this process's part of it), only that part is yielded; it is cut before gathering, or
    after augmenting when ``augment`` is given, so the augmentation draws do not depend
    on the number of processes.

    Args:
        x: array of samples, first axis N.
        y: optional labels or targets, first axis N.
        batch_size: samples per batch.
        shuffle: visit the samples in a random order.
        rng: generator for the order and the augmentations (required for either).
        drop_remainder: drop a last, smaller batch.
        augment: optional ``f(x_batch, rng) -> x_batch`` (see :mod:`dojang.data.augment`).
        preprocess: optional ``f(x_batch) -> x_batch``, e.g. :func:`prepare_images`.
        shard: optional ``f(batch_selector) -> local_selector``.

    Raises:
        ValueError: ``x`` and ``y`` differ in length, or ``rng`` is missing when needed.

    Example:
        >>> [yb.tolist() for _, yb in iterate_batches(np.zeros((3, 2)), np.arange(3), 2)]
        [[0, 1], [2]]
    """
    owner = "iterate_batches"
    if y is not None and len(y) != len(x):
        raise ValueError(f"{owner}: Expected x and y to have the same number of samples. "
                         f"Received: len(x)={len(x)}, len(y)={len(y)}")
    if augment is not None and rng is None:
        raise ValueError(f"{owner}: Expected rng to be a numpy.random.Generator when augment "
                         "is given. Received: rng=None")
    n, batch_size = _check_pass(len(x), "len(x)", batch_size, shuffle, rng, owner)
    for index in _selectors(n, batch_size, shuffle, rng, drop_remainder):
        if shard is not None and augment is None:
            index = shard(index)
        xb = x[index]
        yb = None if y is None else y[index]
        if augment is not None:
            xb = augment(xb, rng)
            if shard is not None:
                part = shard(slice(0, len(xb)))
                xb, yb = xb[part], None if yb is None else yb[part]
        if preprocess is not None:
            xb = preprocess(xb)
        yield xb if y is None else (xb, yb)


def to_float(x, divisor: float = 255.0, dtype="float32") -> np.ndarray:
    """Return ``x / divisor`` as a float array (default: uint8 pixels to float32 in [0, 1]).

    The quotient is computed in ``dtype`` directly, with no float64 temporary; for uint8
    pixels it equals Keras's ``(x / 255.0).astype("float32")`` exactly.

    Example:
        >>> to_float(np.array([0, 51, 255], np.uint8))
        array([0. , 0.2, 1. ], dtype=float32)
    """
    divisor = check_float(divisor, "divisor", "to_float")
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"to_float: Expected dtype to be a floating dtype. Received: "
                         f"dtype={dtype.name!r}")
    if divisor == 0:
        raise ValueError("to_float: Expected divisor to be nonzero. Received: divisor=0.0")
    return np.divide(x, dtype.type(divisor), dtype=dtype)


def add_channel_axis(x, data_format: str = "channels_last"):
    """Give a batch of single-channel images (N, H, W) its channel axis.

    Output shape: (N, H, W, 1) for channels-last, (N, 1, H, W) for channels-first. A 4-D
    batch is returned unchanged (it already has its channel axis).

    Raises:
        ValueError: ``x`` is neither 3-D nor 4-D, or a bad ``data_format``.

    Example:
        >>> add_channel_axis(np.zeros((2, 28, 28))).shape
        (2, 28, 28, 1)
    """
    channels_last = check_data_format(data_format, 2, owner="add_channel_axis")
    if x.ndim == 4:
        return x
    if x.ndim != 3:
        raise ValueError("add_channel_axis: Expected x to be a 3-D (N, H, W) or 4-D image "
                         f"batch. Received: x with shape {x.shape}")
    return x[..., None] if channels_last else x[:, None]


def prepare_images(x, divisor: float = 255.0, dtype="float32",
                   data_format: str = "channels_last") -> np.ndarray:
    """Turn uint8 images as loaded into model input: channel axis added, divided to float.

    Input shape: (N, H, W) grayscale or (N, H, W, C) channels-last, as the loaders return.
    Output shape: (N, H, W, C) for channels-last, (N, C, H, W) for channels-first (C = 1 for
    grayscale input).

    Example:
        >>> prepare_images(np.full((1, 2, 2), 255, np.uint8), data_format="channels_first")
        array([[[[1., 1.],
                 [1., 1.]]]], dtype=float32)
    """
    channels_last = check_data_format(data_format, 2, owner="prepare_images")
    out = to_float(add_channel_axis(x), divisor, dtype)
    return out if channels_last else np.ascontiguousarray(out.transpose(0, 3, 1, 2))


class BatchLoader:
    """Reusable mini-batch source whose epoch ``e`` is a pure function of ``(seed, e)``.

    Args:
        x: samples, first axis N (uint8 images are fine: scale them in ``preprocess``).
        y: optional labels, first axis N.
        batch_size: samples per batch.
        shuffle: reshuffle every epoch.
        seed: int >= 0; None draws one from ``dojang.random.make_rng()``, so it repeats
            after ``dojang.random.set_seed`` (kept in ``self.seed`` so a run can record it).
        drop_remainder: drop a last, smaller batch.
        augment: optional ``f(x_batch, rng) -> x_batch``.
        preprocess: optional ``f(x_batch) -> x_batch``.

    Iterating the loader runs the next epoch (0, 1, 2, ...); ``loader.epoch(e)`` runs epoch
    ``e`` directly, e.g. after resuming.

    Example:
        >>> loader = BatchLoader(np.arange(6), batch_size=4, seed=3)
        >>> len(loader), sorted(np.concatenate(list(loader.epoch(2))).tolist())
        (2, [0, 1, 2, 3, 4, 5])
    """

    def __init__(self, x, y=None, batch_size: int = 32, *, shuffle: bool = True,
                 seed: int | None = None, drop_remainder: bool = False,
                 augment: Callable | None = None,
                 preprocess: Callable | None = None) -> None:
        owner = "BatchLoader"
        self.batch_size = check_int(batch_size, "batch_size", owner, min_value=1)
        if seed is None:
            seed = int(make_rng().integers(2**63))
        elif not is_int(seed) or seed < 0:
            raise ValueError(f"{owner}: Expected seed to be None or an int >= 0. "
                             f"Received: seed={seed!r}")
        if y is not None and len(y) != len(x):
            raise ValueError(f"{owner}: Expected x and y to have the same number of samples. "
                             f"Received: len(x)={len(x)}, len(y)={len(y)}")
        for name, f in (("augment", augment), ("preprocess", preprocess)):
            if f is not None and not callable(f):
                raise TypeError(f"{owner}: Expected {name} to be None or a callable. "
                                f"Received: {name}={f!r}")
        self.x, self.y, self.seed = x, y, int(seed)
        self.shuffle, self.drop_remainder = bool(shuffle), bool(drop_remainder)
        self.augment, self.preprocess = augment, preprocess
        self.shard = None
        self.next_epoch = 0

    def sharded(self, num_shards: int, shard: Callable) -> BatchLoader:
        """A copy for one of ``num_shards`` processes that train together.

        Its epochs walk the batches of ``num_shards * batch_size`` examples that one process
        at that batch size walks (same seed, same order, same augmentation draws), and yield
        this process's part of each, cut by ``shard`` (see :func:`iterate_batches`).

        Example:
            >>> half = BatchLoader(np.arange(10), batch_size=2, shuffle=False).sharded(
            ...     2, lambda s: slice(s.start, (s.start + s.stop) // 2))
            >>> len(half), [b.tolist() for b in half.epoch(0)]
            (3, [[0, 1], [4, 5], [8]])
        """
        num_shards = check_int(num_shards, "num_shards", "BatchLoader.sharded", min_value=1)
        if not callable(shard):
            raise TypeError(f"BatchLoader.sharded: Expected shard to be a callable. "
                            f"Received: shard={shard!r}")
        copy = BatchLoader(self.x, self.y, self.batch_size * num_shards, shuffle=self.shuffle,
                           seed=self.seed, drop_remainder=self.drop_remainder,
                           augment=self.augment, preprocess=self.preprocess)
        copy.shard = shard
        return copy

    def __len__(self) -> int:
        """Batches per epoch: ``ceil(N / batch_size)``, or ``floor`` with drop_remainder."""
        n = len(self.x)
        return n // self.batch_size if self.drop_remainder else -(-n // self.batch_size)

    def epoch(self, epoch: int) -> Iterator:
        """Yield the batches of epoch ``epoch`` (same result every time it is asked)."""
        return iterate_batches(self.x, self.y, self.batch_size, shuffle=self.shuffle,
                               rng=epoch_rng(self.seed, epoch),
                               drop_remainder=self.drop_remainder, augment=self.augment,
                               preprocess=self.preprocess, shard=self.shard)

    def __iter__(self) -> Iterator:
        epoch, self.next_epoch = self.next_epoch, self.next_epoch + 1
        return self.epoch(epoch)
