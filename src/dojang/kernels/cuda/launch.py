"""Launch configuration of the grid-stride kernels in ``source``.

Every kernel loops ``for (i = block * BLOCK + thread; i < total; i += grid * BLOCK)``,
so any grid covers any ``total``; the grid only decides how many threads share the work.
A grid of up to ``WAVES`` blocks per multiprocessor keeps every SM busy without
launching millions of blocks for large arrays (each thread then takes a few elements).
"""

from __future__ import annotations

BLOCK = 256  # threads per block: a multiple of the 32-thread warp, 8 warps per block
WAVES = 32  # most blocks per multiprocessor before threads start to loop


def grid(total: int, multiprocessors: int, block: int = BLOCK) -> int:
    """Blocks to launch for ``total`` elements: ``ceil(total / block)`` capped at
    ``WAVES * multiprocessors``, and at least 1 (an empty launch still returns).

    Example:
        >>> grid(1000, multiprocessors=132)
        4
        >>> grid(10**9, multiprocessors=132)
        4224
    """
    if total < 0 or multiprocessors < 1 or block < 1:
        raise ValueError(f"Expected total >= 0, multiprocessors >= 1 and block >= 1. "
                         f"Received: total={total}, multiprocessors={multiprocessors}, "
                         f"block={block}")
    return max(1, min(-(-total // block), WAVES * multiprocessors))
