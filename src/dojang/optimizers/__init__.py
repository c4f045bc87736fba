"""Optimizers that update parameters in place: SGD, Adam, AdamW, RMSprop, Adagrad.

Every optimizer takes ``learning_rate`` (a float or a schedule from
``dojang.optimizers.schedules``), ``weight_decay`` (decoupled), ``clipnorm``,
``clipvalue`` and ``global_clipnorm``; ``apply(params)`` performs one step from the
parameters' ``grad``.

Example:
    >>> import dojang as dj
    >>> opt = dj.optimizers.get("adam")
    >>> type(opt).__name__, opt.learning_rate
    ('Adam', 0.001)
"""

from __future__ import annotations

from dojang.optimizers import schedules
from dojang.optimizers.adagrad import Adagrad
from dojang.optimizers.adam import Adam, AdamW
from dojang.optimizers.base import Optimizer
from dojang.optimizers.rmsprop import RMSprop
from dojang.optimizers.sgd import SGD
from dojang.registry import Registry

registry = Registry("optimizer", base=Optimizer)
for _cls, _name in ((SGD, "sgd"), (Adam, "adam"), (AdamW, "adamw"), (RMSprop, "rmsprop"),
                    (Adagrad, "adagrad")):
    registry.register(_name)(_cls)


get, serialize, deserialize = registry.functions()


__all__ = [
    "SGD", "Adagrad", "Adam", "AdamW", "Optimizer", "RMSprop", "deserialize", "get",
    "schedules", "serialize",
]
