"""Training strategies: one process (the default) or data parallelism over MPI.

``fit``, ``evaluate`` and ``predict`` take ``strategy=``; see :mod:`dojang.distribute.base`
for the hooks a strategy provides and :mod:`dojang.distribute.mpi` for ``MPIStrategy``
(mpi4py is imported when one is created, not here).

Example:
    >>> import dojang as dj
    >>> dj.distribute.current().size
    1
"""

from dojang.distribute.base import SingleProcess, Strategy, current, shard_bounds
from dojang.distribute.mpi import CollectiveTimeout, MPIStrategy
from dojang.distribute.sync_batchnorm import SyncBatchNormalization

__all__ = ["CollectiveTimeout", "MPIStrategy", "SingleProcess", "Strategy",
           "SyncBatchNormalization", "current", "shard_bounds"]
