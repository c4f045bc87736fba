"""Optimizer updates on any backend's arrays (the reference of ``optim.numba``).

Op ``"optim.adam"(param, grad, m, v, one_minus_beta_1, one_minus_beta_2, alpha, epsilon,
v_hat=None, scratch=None)``: Adam's moments and parameter step, in place::

    m += (grad - m) * (1 - beta_1)
    v += (grad**2 - v) * (1 - beta_2)
    v_hat = max(v_hat, v)                      (AMSGrad only; then v_hat replaces v below)
    param -= m / (sqrt(v) + epsilon) * alpha

Op ``"optim.sgd"(param, grad, m, lr, momentum, nesterov, scratch=None)``: Keras 3's SGD,
in place: without momentum (``m`` None) ``param -= lr * grad``; else
``m = momentum * m - lr * grad`` then ``param += m``, or with Nesterov
``param += momentum * m - lr * grad``.

``scratch(like)`` returns a reusable array shaped like ``like`` (the optimizer's); None
allocates one.
"""

from __future__ import annotations

from dojang.backend import get_array_module
from dojang.kernels.registry import register


@register("optim.adam")
def adam_update(param, grad, m, v, one_minus_beta_1, one_minus_beta_2, alpha, epsilon,
                v_hat=None, scratch=None):
    """Adam's update in place through one scratch array (no other temporaries).

    Example:
        >>> import numpy as np
        >>> p, g = np.ones(2), np.array([1.0, -1.0])
        >>> m, v = np.zeros(2), np.zeros(2)
        >>> adam_update(p, g, m, v, 0.1, 0.001, 0.01, 1e-7)
        >>> m
        array([ 0.1, -0.1])
    """
    xp = get_array_module(param)
    tmp = xp.empty_like(param) if scratch is None else scratch(param)
    xp.subtract(grad, m, out=tmp)
    tmp *= one_minus_beta_1
    m += tmp
    xp.multiply(grad, grad, out=tmp)
    tmp -= v
    tmp *= one_minus_beta_2
    v += tmp
    if v_hat is not None:
        v = xp.maximum(v_hat, v, out=v_hat)
    xp.sqrt(v, out=tmp)
    tmp += epsilon
    xp.divide(m, tmp, out=tmp)
    tmp *= alpha
    param -= tmp


@register("optim.sgd")
def sgd_update(param, grad, m, lr, momentum, nesterov: bool, scratch=None):
    """SGD's update in place through one scratch array.

    Example:
        >>> import numpy as np
        >>> p, m = np.ones(2), np.zeros(2)
        >>> sgd_update(p, np.array([1.0, -1.0]), m, 0.5, 0.9, False)
        >>> p
        array([0.5, 1.5])
    """
    xp = get_array_module(param)
    lr_grad = xp.multiply(grad, lr, out=xp.empty_like(param) if scratch is None
                          else scratch(param))
    if m is None:
        param -= lr_grad
        return
    m *= momentum
    m -= lr_grad
    if nesterov:
        param -= lr_grad
        param += xp.multiply(m, momentum, out=lr_grad)
    else:
        param += m
