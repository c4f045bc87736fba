"""Differentiable primitives: one ``Function`` subclass per op plus a thin wrapper.

Importing this package binds the operators of ``Tensor`` (``+``, ``@``, ``[]``, ...)
to the wrappers defined here.
"""

import sys as _sys

from dojang.autograd import tensor as _tensor
from dojang.ops.activations import *  # noqa: F403
from dojang.ops.conv import *  # noqa: F403
from dojang.ops.elementwise import (
    abs,
    add,
    cast,
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
from dojang.ops.losses import *  # noqa: F403
from dojang.ops.nn import *  # noqa: F403
from dojang.ops.pool import *  # noqa: F403
from dojang.ops.reduce import max, mean, min, sum
from dojang.ops.shape import concatenate, getitem, pad, reshape, stack, transpose

_tensor._bind_ops(_sys.modules[__name__])
