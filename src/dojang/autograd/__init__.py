"""Reverse-mode automatic differentiation: ``Tensor``, ``Function`` and the engine."""

from dojang.autograd.function import Function, run_backward, sum_to_shape
from dojang.autograd.tensor import Tensor, as_array

__all__ = ["Function", "Tensor", "as_array", "run_backward", "sum_to_shape"]
