"""Adagrad, Keras 3's formulation."""

from __future__ import annotations

from dojang.backend import get_array_module
from dojang.optimizers.base import Optimizer
from dojang.validation import check_float


class Adagrad(Optimizer):
    """Adagrad (Duchi et al.), as Keras 3 writes it::

        acc = acc + g^2
        p = p - lr * g / sqrt(acc + epsilon)

    ``acc`` starts at ``initial_accumulator_value``. Epsilon sits inside the square root
    (PyTorch adds it outside); with a tiny epsilon both agree.

    Args:
        learning_rate: float or schedule (default 0.001).
        initial_accumulator_value: starting value of the accumulator (>= 0).
        epsilon: small constant for numerical stability.
        **kwargs: ``weight_decay``, ``clipnorm``, ``clipvalue``, ``global_clipnorm``, ``name``.
    """

    default_name = "adagrad"

    def __init__(self, learning_rate=0.001, initial_accumulator_value: float = 0.1,
                 epsilon: float = 1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        owner = type(self).__name__
        self.initial_accumulator_value = check_float(
            initial_accumulator_value, "initial_accumulator_value", owner, low=0.0)
        self.epsilon = check_float(epsilon, "epsilon", owner, low=0.0)

    def slot_names(self) -> tuple[str, ...]:
        return ("accumulator",)

    def init_slot(self, name, param):
        return get_array_module(param).full_like(param, self.initial_accumulator_value)

    def update(self, param, grad, slots, lr, step):
        xp = get_array_module(param)
        acc = slots["accumulator"]
        tmp = self._buffer(param)
        acc += xp.multiply(grad, grad, out=tmp)
        xp.add(acc, self.epsilon, out=tmp)
        xp.sqrt(tmp, out=tmp)
        xp.divide(grad, tmp, out=tmp)
        tmp *= lr
        param -= tmp

    def get_config(self) -> dict:
        return {**super().get_config(),
                "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}
