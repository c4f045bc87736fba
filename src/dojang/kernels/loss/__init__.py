"""Loss kernels: the reference (``reference``) beside its GPU twin (``cuda``)."""

from dojang.kernels.loss import cuda, reference

__all__ = ["cuda", "reference"]
