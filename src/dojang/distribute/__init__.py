"""Training strategies: one process (the default) or data parallelism over MPI.

``fit``, ``evaluate`` and ``predict`` take ``strategy=``; see :mod:`dojang.distribute.base`
for the hooks a strategy provides.

Example:
    >>> import dojang as dj
    >>> dj.distribute.current().size
    1
"""

from dojang.distribute.base import SingleProcess, Strategy, current, shard_bounds

__all__ = ["SingleProcess", "Strategy", "current", "shard_bounds"]
