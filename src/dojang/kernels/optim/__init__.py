"""Optimizer updates: the reference (``reference``) beside its compiled twin (``numba``)."""

from dojang.kernels.optim import cuda, numba, reference

__all__ = ["cuda", "numba", "reference"]
