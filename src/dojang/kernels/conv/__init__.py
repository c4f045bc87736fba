"""Convolution kernels: the NumPy reference (``reference``, ``im2col``) beside the compiled
ones (``numba``: im2col/col2im, fused bias + ReLU, the direct kernels of ``direct`` and the
depthwise kernels of ``depthwise``; ``winograd``: F(4x4, 3x3)), all registered in
``dojang.kernels.registry``; ``kernels.plan`` decides how each convolution runs."""

from dojang.kernels.conv import cuda, depthwise, im2col, numba, reference, winograd

__all__ = ["cuda", "depthwise", "im2col", "numba", "reference", "winograd"]
