"""Pooling: the NumPy reference (``reference``) beside the compiled max pooling
(``numba``), both registered in ``dojang.kernels.registry``."""

from dojang.kernels.pool import numba, reference

__all__ = ["numba", "reference"]
