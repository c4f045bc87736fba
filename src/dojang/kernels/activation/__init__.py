"""ReLU and its gradient: the NumPy reference (``reference``) and its compiled twin
(``numba``), both registered in ``dojang.kernels.registry``."""

from dojang.kernels.activation import cuda, numba, reference

__all__ = ["cuda", "numba", "reference"]
