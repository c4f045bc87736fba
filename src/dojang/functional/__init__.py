"""Stateless, ``tf.nn``-style functions with argument checking.

Every function accepts NumPy arrays or Tensors and returns a Tensor. Arguments are
checked before any array work; messages name the function, the argument, what was
expected and what was received. Names follow TensorFlow (``input``, ``filters``,
``strides``, ``padding``, ``data_format``, ``dilations``), and TensorFlow's ``name=`` is
accepted (and unused) wherever ``tf.nn`` takes it. ``max_pool``, ``avg_pool`` and ``pool``
take the number of spatial dimensions from the input, as ``tf.nn`` does.
"""

from dojang.functional.conv import *  # noqa: F403
from dojang.functional.nn import *  # noqa: F403
from dojang.functional.pool import *  # noqa: F403
from dojang.ops.elementwise import (
    abs,
    add,
    clip,
    div,
    exp,
    log,
    maximum,
    minimum,
    mul,
    neg,
    pow,
    sqrt,
    sub,
    where,
)
from dojang.ops.linalg import linear, matmul
from dojang.ops.reduce import max, mean, min, sum
from dojang.ops.shape import concatenate, pad, reshape, stack, transpose
