"""The training-strategy seam: how ``fit``/``evaluate``/``predict`` run over processes.

A :class:`Strategy` tells the training loop four things: which part of each global batch
this process computes (``shard``), how gradients are combined between backward and the
optimizer step (``reduce_gradients``), how logged metric state is combined
(``reduce_logs``), and which process writes files (``is_chief``). :class:`SingleProcess`,
the default, is one process: every hook is the identity and costs one method call per step.

The strategy in force is found by :func:`current`: the one a ``strategy.scope()`` (entered
by ``fit``/``evaluate``/``predict``) names, else the process-wide one a multi-process
strategy registers when it is created (so ``model.save`` after ``fit`` still knows that only
the chief writes), else :class:`SingleProcess`.

Example:
    >>> import numpy as np
    >>> s = current()
    >>> s.rank, s.size, s.is_chief
    (0, 1, True)
    >>> s.shard(slice(0, 8))
    slice(0, 8, None)
    >>> s.reduce_logs({"loss": np.array([3.0, 2.0])}, 2)
    {'loss': array([3., 2.]), 'count': 2}
"""

from __future__ import annotations

from contextvars import ContextVar

import numpy as np

from dojang import settings

__all__ = ["SingleProcess", "Strategy", "current", "shard_bounds"]


def shard_bounds(total: int, size: int, rank: int) -> tuple[int, int]:
    """``(start, stop)`` of rank ``rank``'s part of ``total`` items split over ``size``.

    Parts are contiguous, disjoint, cover ``range(total)`` in rank order, and differ in
    length by at most one (the first ``total % size`` ranks take one more).

    Example:
        >>> [shard_bounds(7, 3, r) for r in range(3)]
        [(0, 3), (3, 5), (5, 7)]
    """
    base, extra = divmod(total, size)
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


class Strategy:
    """Base class of training strategies; as it stands, one process.

    Attributes:
        rank: this process's index, 0..size-1.
        size: number of processes.

    Subclasses override the hooks; each has the single-process meaning here.
    """

    rank: int = 0
    size: int = 1

    @property
    def is_chief(self) -> bool:
        """True on the one process that writes checkpoints, logs and plots (rank 0)."""
        return self.rank == 0

    def shard(self, batch):
        """This process's part of one global batch: a slice (``stop`` set) or index array.

        The part is ``shard_bounds(len(batch), size, rank)`` of it, so the processes take
        disjoint, contiguous parts in rank order, as even as possible.
        """
        if self.size == 1:
            return batch
        if isinstance(batch, slice):
            start, stop = shard_bounds(batch.stop - batch.start, self.size, self.rank)
            return slice(batch.start + start, batch.start + stop)
        start, stop = shard_bounds(len(batch), self.size, self.rank)
        return batch[start:stop]

    def reduce_gradients(self, params, local_count: int, total_count: int | None = None) -> None:
        """Turn each ``p.grad`` (the mean over ``local_count`` local examples) into the
        gradient of the mean over all ``total_count`` examples of the step, in place.

        ``total_count`` None means the sum of ``local_count`` over processes.
        """

    def reduce_logs(self, sums: dict, count: int) -> dict:
        """Sum additive metric state over processes.

        Args:
            sums: name -> this process's additive state (a float or a float array).
            count: the number of examples that state covers.

        Returns:
            The same names with their sums over processes, and ``"count"`` the total count.
        """
        return {**sums, "count": count}

    def broadcast(self, obj):
        """Rank 0's ``obj`` (bytes, a NumPy array, or JSON-like data) on every process."""
        return obj

    def gather(self, array: np.ndarray) -> np.ndarray:
        """Every process's ``array`` concatenated along axis 0 in rank order."""
        return array

    def barrier(self) -> None:
        """Wait until every process gets here."""

    def check_same(self, what: str, value: str) -> None:
        """Raise ValueError on every process unless all pass the same ``value``."""

    def scope(self):
        """Make this the strategy :func:`current` returns inside the ``with`` block."""
        return settings.scoped(_SCOPED, self)


class SingleProcess(Strategy):
    """The default strategy: one process computes every example and writes every file."""


_SCOPED: ContextVar[Strategy | None] = ContextVar("dojang_strategy", default=None)
_DEFAULT = SingleProcess()
_process: list[Strategy] = []  # the multi-process strategy this process joined, if any


def register_process_strategy(strategy: Strategy) -> None:
    """Make ``strategy`` the one :func:`current` returns outside any scope."""
    _process[:] = [strategy]


def current() -> Strategy:
    """The strategy in force: a scope's, else the process's, else one process."""
    scoped = _SCOPED.get()
    if scoped is not None:
        return scoped
    return _process[0] if _process else _DEFAULT


def resolve(strategy, owner: str) -> Strategy:
    """``strategy`` checked (None: :func:`current`)."""
    if strategy is None:
        return current()
    if not isinstance(strategy, Strategy):
        raise TypeError(f"{owner}: Expected strategy to be None or a "
                        f"dojang.distribute.Strategy. Received: strategy={strategy!r}")
    return strategy
