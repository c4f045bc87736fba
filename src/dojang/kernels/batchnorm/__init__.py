"""Batch normalisation: the reference (``reference``) beside its compiled twin (``numba``),
both registered in ``dojang.kernels.registry``."""

from dojang.kernels.batchnorm import cuda, numba, reference

__all__ = ["cuda", "numba", "reference"]
