"""RMSprop, Keras 3's formulation."""

from __future__ import annotations

from dojang.backend import get_array_module
from dojang.optimizers.base import Optimizer
from dojang.validation import check_float


class RMSprop(Optimizer):
    """RMSprop (Hinton), as Keras 3 writes it::

        v = rho * v + (1 - rho) * g^2
        a = rho * a + (1 - rho) * g                  (centered only)
        d = v - a^2 + epsilon  (centered)   or   v + epsilon
        inc = lr * g / sqrt(d)
        mom = momentum * mom + inc; p -= mom          (momentum > 0)   else  p -= inc

    Epsilon sits inside the square root (PyTorch adds it outside); with a tiny epsilon
    and a constant rate both agree (PyTorch's momentum buffer is ``mom / lr``).

    Args:
        learning_rate: float or schedule (default 0.001).
        rho: decay of the squared-gradient average, in ``[0, 1)``.
        momentum: in ``[0, 1)``.
        epsilon: small constant for numerical stability.
        centered: divide by the gradient's estimated variance instead of its second moment.
        **kwargs: ``weight_decay``, ``clipnorm``, ``clipvalue``, ``global_clipnorm``, ``name``.
    """

    default_name = "rmsprop"

    def __init__(self, learning_rate=0.001, rho: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-7, centered: bool = False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        owner = type(self).__name__
        self.rho = check_float(rho, "rho", owner, low=0.0, high=1.0, high_open=True)
        self.momentum = check_float(momentum, "momentum", owner, low=0.0, high=1.0,
                                    high_open=True)
        self.epsilon = check_float(epsilon, "epsilon", owner, low=0.0)
        self.centered = bool(centered)

    def slot_names(self) -> tuple[str, ...]:
        names = ("velocity",)
        if self.momentum:
            names += ("momentum",)
        if self.centered:
            names += ("average_gradient",)
        return names

    def update(self, param, grad, slots, lr, step):
        xp = get_array_module(param)
        rho = self.rho
        v = slots["velocity"]
        tmp = self._buffer(param)
        xp.multiply(grad, grad, out=tmp)
        tmp *= 1.0 - rho
        v *= rho
        v += tmp
        if self.centered:
            a = slots["average_gradient"]
            a *= rho
            a += xp.multiply(grad, 1.0 - rho, out=tmp)
            xp.multiply(a, a, out=tmp)
            xp.subtract(v, tmp, out=tmp)
        else:
            tmp[...] = v
        tmp += self.epsilon
        xp.sqrt(tmp, out=tmp)
        xp.divide(grad, tmp, out=tmp)
        tmp *= lr
        if self.momentum:
            mom = slots["momentum"]
            mom *= self.momentum
            mom += tmp
            param -= mom
        else:
            param -= tmp

    def get_config(self) -> dict:
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}
