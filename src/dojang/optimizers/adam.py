"""Adam and AdamW, Keras 3's formulation."""

from __future__ import annotations

import math

from dojang.kernels import dispatch
from dojang.optimizers.base import Optimizer
from dojang.validation import check_float


class Adam(Optimizer):
    """Adam (Kingma & Ba), as Keras 3 writes it.

    At step ``t`` (from 1)::

        m = m + (1 - beta_1) * (g - m)
        v = v + (1 - beta_2) * (g^2 - v)
        v_hat = max(v_hat, v)                      (amsgrad only; used in place of v)
        alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
        p = p - alpha * m / (sqrt(v) + epsilon)

    Epsilon is added to ``sqrt(v)`` before the bias correction, so this equals PyTorch's
    Adam with ``eps_torch = epsilon / sqrt(1 - beta_2^t)``; with a tiny epsilon both agree.
    With ``weight_decay`` the decay is decoupled (``p -= lr * wd * p``), i.e. AdamW.

    Args:
        learning_rate: float or schedule (default 0.001).
        beta_1: decay of the first moment, in ``[0, 1)``.
        beta_2: decay of the second moment, in ``[0, 1)``.
        epsilon: small constant for numerical stability.
        amsgrad: use the AMSGrad variant.
        **kwargs: ``weight_decay``, ``clipnorm``, ``clipvalue``, ``global_clipnorm``, ``name``.
    """

    default_name = "adam"

    def __init__(self, learning_rate=0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, amsgrad: bool = False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        owner = type(self).__name__
        self.beta_1 = check_float(beta_1, "beta_1", owner, low=0.0, high=1.0, high_open=True)
        self.beta_2 = check_float(beta_2, "beta_2", owner, low=0.0, high=1.0, high_open=True)
        self.epsilon = check_float(epsilon, "epsilon", owner, low=0.0)
        self.amsgrad = bool(amsgrad)

    def slot_names(self) -> tuple[str, ...]:
        return ("momentum", "velocity", "velocity_hat") if self.amsgrad else (
            "momentum", "velocity")

    def update(self, param, grad, slots, lr, step):
        m, v = slots["momentum"], slots["velocity"]
        alpha = lr * math.sqrt(1.0 - self.beta_2**step) / (1.0 - self.beta_1**step)
        dispatch("optim.adam", param, grad, m, v, 1.0 - self.beta_1, 1.0 - self.beta_2,
                 alpha, self.epsilon, v_hat=slots["velocity_hat"] if self.amsgrad else None,
                 scratch=self._buffer)

    def get_config(self) -> dict:
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay ``p -= lr * weight_decay * p`` (default 0.004).

    Args:
        learning_rate: float or schedule (default 0.001).
        weight_decay: decay factor (Keras's default 0.004).
        **kwargs: the arguments of ``Adam``.

    Example:
        >>> AdamW().weight_decay
        0.004
    """

    default_name = "adamw"

    def __init__(self, learning_rate=0.001, weight_decay: float = 0.004, **kwargs):
        super().__init__(learning_rate, weight_decay=weight_decay, **kwargs)
