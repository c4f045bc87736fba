"""Adam and SGD updates as one CUDA kernel each (CuPy arrays, in place)."""

from __future__ import annotations

from dojang.kernels.cuda import ops
from dojang.kernels.cuda.variants import floats
from dojang.kernels.registry import register


def _contiguous(param, *arrays) -> bool:
    return floats(param, *arrays) and all(
        a is None or (a.flags.c_contiguous and a.dtype == param.dtype)
        for a in (param, *arrays))


@register("optim.adam", backend="cupy", variant="cuda", priority=1,
          usable=lambda p, g, m, v, *rest, v_hat=None, scratch=None:
          v_hat is None and _contiguous(p, g, m, v))
def adam_update(param, grad, m, v, one_minus_beta_1, one_minus_beta_2, alpha, epsilon,
                v_hat=None, scratch=None):
    """One pass: both moments and the parameter."""
    ops.adam_update(param, grad, m, v, one_minus_beta_1, one_minus_beta_2, alpha, epsilon)


@register("optim.sgd", backend="cupy", variant="cuda", priority=1,
          usable=lambda p, g, m, *rest, scratch=None: _contiguous(p, g, m))
def sgd_update(param, grad, m, lr, momentum, nesterov: bool, scratch=None):
    """One pass: the momentum slot (if any) and the parameter."""
    ops.sgd_update(param, grad, m, lr, momentum, nesterov)
