"""The compiled Adam step: moments and parameter in one pass over the arrays.

Registered as the ``numba`` variant of ``"optim.adam"`` for contiguous NumPy float arrays
of one dtype (AMSGrad stays with the reference).
"""

from __future__ import annotations

import numpy as np

from dojang.kernels import compile
from dojang.kernels.compile import _BLOCK, kernel, prange
from dojang.kernels.registry import register


@kernel()
def _adam(p, g, m, v, c1, c2, alpha, eps):
    """One pass of ``optimizers.Adam.update`` (same operations, same order, p's dtype)."""
    n = p.shape[0]
    for k in prange((n + _BLOCK - 1) // _BLOCK):
        block = slice(k * _BLOCK, (k + 1) * _BLOCK)
        ps, gs, ms, vs = p[block], g[block], m[block], v[block]
        for i in range(ps.shape[0]):
            gi = gs[i]
            mi = ms[i] + (gi - ms[i]) * c1
            vi = vs[i] + (gi * gi - vs[i]) * c2
            ms[i] = mi
            vs[i] = vi
            ps[i] -= mi / (np.sqrt(vi) + eps) * alpha


def _usable(param, grad, m, v, one_minus_beta_1, one_minus_beta_2, alpha, epsilon,
            v_hat=None, scratch=None) -> bool:
    """Contiguous NumPy floats of one dtype, no AMSGrad (``v_hat``)."""
    arrays = (param, grad, m, v)
    return v_hat is None and compile.usable(*arrays) and all(
        a.flags.c_contiguous and a.dtype == param.dtype for a in arrays)


@register("optim.adam", variant="numba", usable=_usable, priority=1)
def adam_update(param, grad, m, v, one_minus_beta_1, one_minus_beta_2, alpha, epsilon,
                v_hat=None, scratch=None):
    """Adam's moment and parameter update in place, one pass over the arrays."""
    t = param.dtype.type
    run = _adam.sized(-(-param.size // _BLOCK), param.size)
    run(param.reshape(-1), grad.reshape(-1), m.reshape(-1), v.reshape(-1),
        t(one_minus_beta_1), t(one_minus_beta_2), t(alpha), t(epsilon))
