"""Optimizer updates: the reference (``reference``) beside its compiled twin (``numba``)."""

from dojang.kernels.optim import numba, reference

__all__ = ["numba", "reference"]
