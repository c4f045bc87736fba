"""Stochastic gradient descent with optional (Nesterov) momentum, Keras 3's formulation."""

from __future__ import annotations

from dojang.kernels import dispatch
from dojang.optimizers.base import Optimizer
from dojang.validation import check_float


class SGD(Optimizer):
    """Gradient descent with momentum.

    Keras 3 keeps the velocity in units of a step (the learning rate inside it):
    ``m = momentum * m - lr * g``; then ``p += m``, or with Nesterov
    ``p += momentum * m - lr * g``; without momentum ``p -= lr * g``. For a constant
    learning rate this equals PyTorch's SGD (whose buffer is ``-m / lr``); when the rate
    changes, Keras's velocity keeps the old rate's steps.

    Args:
        learning_rate: float or schedule (default 0.01).
        momentum: in ``[0, 1)``.
        nesterov: use Nesterov momentum.
        **kwargs: ``weight_decay``, ``clipnorm``, ``clipvalue``, ``global_clipnorm``, ``name``.

    Example:
        >>> import dojang as dj
        >>> w = dj.Tensor([1.0], requires_grad=True)
        >>> (w * 2).sum().backward()
        >>> SGD(learning_rate=0.1).apply([w])
        >>> w.numpy()
        array([0.8], dtype=float32)
    """

    default_name = "SGD"

    def __init__(self, learning_rate=0.01, momentum: float = 0.0, nesterov: bool = False,
                 **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.momentum = check_float(momentum, "momentum", "SGD", low=0.0, high=1.0,
                                    high_open=True)
        self.nesterov = bool(nesterov)

    def slot_names(self) -> tuple[str, ...]:
        return ("momentum",) if self.momentum else ()

    def update(self, param, grad, slots, lr, step):
        dispatch("optim.sgd", param, grad, slots["momentum"] if self.momentum else None, lr,
                 self.momentum, self.nesterov, scratch=self._buffer)

    def get_config(self) -> dict:
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}
