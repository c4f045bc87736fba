"""Pooling: the NumPy reference (``reference``) beside the compiled max pooling
(``numba``), both registered in ``dojang.kernels.registry``."""

from dojang.kernels.pool import cuda, numba, reference

__all__ = ["cuda", "numba", "reference"]
