"""Weight regularizers: ``reg(weight) -> scalar Tensor`` added to the training loss."""

from __future__ import annotations

from dojang.autograd import Tensor
from dojang.registry import Configurable, Registry
from dojang.validation import check_float


class Regularizer(Configurable):
    """Base class: calling it on a weight Tensor returns a scalar penalty Tensor."""

    def __call__(self, weight: Tensor) -> Tensor:
        raise NotImplementedError


registry = Registry("regularizer", base=Regularizer)


def _factor(value, name: str, owner: str) -> float:
    return check_float(value, name, owner, low=0.0)


@registry.register("l1_l2")
class L1L2(Regularizer):
    """Penalty ``l1 * sum(|w|) + l2 * sum(w^2)``.

    Args:
        l1: non-negative L1 factor.
        l2: non-negative L2 factor.

    Raises:
        ValueError: for a negative factor.

    Example:
        >>> import dojang as dj
        >>> float(L1L2(l1=0.5, l2=0.25)(dj.Tensor([1.0, -2.0])))
        2.75
    """

    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        owner = type(self).__name__
        self.l1 = _factor(l1, "l1", owner)
        self.l2 = _factor(l2, "l2", owner)

    def __call__(self, weight: Tensor) -> Tensor:
        total = None
        if self.l1:
            total = abs(weight).sum() * self.l1
        if self.l2:
            term = (weight * weight).sum() * self.l2
            total = term if total is None else total + term
        if total is None:
            total = (weight * 0.0).sum()
        return total

    def get_config(self) -> dict:
        return {"l1": self.l1, "l2": self.l2}


@registry.register("l1")
class L1(L1L2):
    """Penalty ``l1 * sum(|w|)``.

    Args:
        l1: non-negative factor (Keras default 0.01).
    """

    def __init__(self, l1: float = 0.01):
        super().__init__(l1=l1)

    def get_config(self) -> dict:
        return {"l1": self.l1}


@registry.register("l2")
class L2(L1L2):
    """Penalty ``l2 * sum(w^2)``.

    Args:
        l2: non-negative factor (Keras default 0.01).
    """

    def __init__(self, l2: float = 0.01):
        super().__init__(l2=l2)

    def get_config(self) -> dict:
        return {"l2": self.l2}


get, serialize, deserialize = registry.functions(none=None)


__all__ = ["L1", "L1L2", "L2", "Regularizer", "deserialize", "get", "serialize"]
