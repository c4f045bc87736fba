"""Learning-rate schedules: ``schedule(step) -> float``, ``step`` the optimizer's iteration.

ExponentialDecay, PiecewiseConstantDecay and CosineDecay follow Keras 3's formulas;
StepDecay and OneCycle follow PyTorch's ``StepLR`` and ``OneCycleLR``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from dojang.registry import Configurable, Registry
from dojang.validation import check_choice, check_float, check_int


class LearningRateSchedule(Configurable):
    """Base class: ``schedule(step)`` returns the learning rate at optimizer step ``step``."""

    def __call__(self, step: int) -> float:
        raise NotImplementedError

    def get_config(self) -> dict:
        raise NotImplementedError


registry = Registry("learning-rate schedule", base=LearningRateSchedule)


def _rate(value, name: str, owner: str) -> float:
    return check_float(value, name, owner, low=0.0)


@registry.register("exponential_decay")
class ExponentialDecay(LearningRateSchedule):
    """``lr = initial_learning_rate * decay_rate ** (step / decay_steps)``.

    With ``staircase`` the exponent is ``floor(step / decay_steps)``.

    Args:
        initial_learning_rate: learning rate at step 0.
        decay_steps: positive int.
        decay_rate: multiplicative factor per ``decay_steps``.
        staircase: decay in discrete jumps.

    Example:
        >>> ExponentialDecay(0.1, 10, 0.5)(20)
        0.025
    """

    def __init__(self, initial_learning_rate: float, decay_steps: int, decay_rate: float,
                 staircase: bool = False):
        owner = type(self).__name__
        self.initial_learning_rate = _rate(initial_learning_rate, "initial_learning_rate", owner)
        self.decay_steps = check_int(decay_steps, "decay_steps", owner, min_value=1)
        self.decay_rate = _rate(decay_rate, "decay_rate", owner)
        self.staircase = bool(staircase)

    def __call__(self, step: int) -> float:
        p = step / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate * self.decay_rate**p

    def get_config(self) -> dict:
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase}


@registry.register("step_decay")
class StepDecay(LearningRateSchedule):
    """``lr = initial_learning_rate * gamma ** floor(step / step_size)`` (PyTorch's StepLR).

    Args:
        initial_learning_rate: learning rate at step 0.
        step_size: positive int, steps between drops.
        gamma: factor applied at each drop (default 0.1).

    Example:
        >>> StepDecay(1.0, step_size=5, gamma=0.5)(12)
        0.25
    """

    def __init__(self, initial_learning_rate: float, step_size: int, gamma: float = 0.1):
        owner = type(self).__name__
        self.initial_learning_rate = _rate(initial_learning_rate, "initial_learning_rate", owner)
        self.step_size = check_int(step_size, "step_size", owner, min_value=1)
        self.gamma = _rate(gamma, "gamma", owner)

    def __call__(self, step: int) -> float:
        return self.initial_learning_rate * self.gamma ** (step // self.step_size)

    def get_config(self) -> dict:
        return {"initial_learning_rate": self.initial_learning_rate,
                "step_size": self.step_size, "gamma": self.gamma}


@registry.register("piecewise_constant_decay")
class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` for ``step <= boundaries[0]``, ``values[i]`` for
    ``boundaries[i-1] < step <= boundaries[i]``, ``values[-1]`` after the last boundary.

    Args:
        boundaries: increasing step numbers.
        values: one more learning rate than boundaries.

    Raises:
        ValueError: if ``len(values) != len(boundaries) + 1`` or boundaries decrease.

    Example:
        >>> s = PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])
        >>> s(10), s(11), s(21)
        (1.0, 0.5, 0.1)
    """

    def __init__(self, boundaries: Sequence[int], values: Sequence[float]):
        owner = type(self).__name__
        self.boundaries = [check_int(b, "boundaries", owner) for b in boundaries]
        self.values = [_rate(v, "values", owner) for v in values]
        if len(self.values) != len(self.boundaries) + 1:
            raise ValueError(f"{owner}: Expected len(values) == len(boundaries) + 1. Received: "
                             f"{len(self.values)} values and {len(self.boundaries)} boundaries")
        if any(a > b for a, b in zip(self.boundaries, self.boundaries[1:], strict=False)):
            raise ValueError(f"{owner}: Expected increasing boundaries. Received: "
                             f"boundaries={self.boundaries}")

    def __call__(self, step: int) -> float:
        for boundary, value in zip(self.boundaries, self.values[:-1], strict=True):
            if step <= boundary:
                return value
        return self.values[-1]

    def get_config(self) -> dict:
        return {"boundaries": list(self.boundaries), "values": list(self.values)}


@registry.register("cosine_decay")
class CosineDecay(LearningRateSchedule):
    """Cosine decay with optional linear warmup (Keras 3).

    Without warmup (``warmup_target=None``):
    ``lr = initial * ((1 - alpha) * 0.5 * (1 + cos(pi * min(step, D) / D)) + alpha)``.
    With warmup: for ``step < warmup_steps`` the rate goes linearly from
    ``initial_learning_rate`` to ``warmup_target``; afterwards the same cosine decays from
    ``warmup_target`` over ``D = decay_steps`` steps counted from the end of the warmup.

    Args:
        initial_learning_rate: learning rate at step 0.
        decay_steps: positive int ``D``.
        alpha: final rate as a fraction of the decayed-from rate.
        warmup_target: rate reached at the end of the warmup, or None for no warmup.
        warmup_steps: number of warmup steps.

    Example:
        >>> CosineDecay(1.0, 10)(5)
        0.5
    """

    def __init__(self, initial_learning_rate: float, decay_steps: int, alpha: float = 0.0,
                 warmup_target: float | None = None, warmup_steps: int = 0):
        owner = type(self).__name__
        self.initial_learning_rate = _rate(initial_learning_rate, "initial_learning_rate", owner)
        self.decay_steps = check_int(decay_steps, "decay_steps", owner, min_value=1)
        self.alpha = check_float(alpha, "alpha", owner, low=0.0, high=1.0)
        self.warmup_target = None if warmup_target is None else _rate(
            warmup_target, "warmup_target", owner)
        self.warmup_steps = check_int(warmup_steps, "warmup_steps", owner, min_value=0)

    def _decay(self, step: float, start: float) -> float:
        fraction = min(step, self.decay_steps) / self.decay_steps
        cosine = 0.5 * (1.0 + math.cos(math.pi * fraction))
        return start * ((1.0 - self.alpha) * cosine + self.alpha)

    def __call__(self, step: int) -> float:
        if self.warmup_target is None:
            return self._decay(step, self.initial_learning_rate)
        if step < self.warmup_steps:
            delta = self.warmup_target - self.initial_learning_rate
            return self.initial_learning_rate + delta * step / self.warmup_steps
        return self._decay(step - self.warmup_steps, self.warmup_target)

    def get_config(self) -> dict:
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "alpha": self.alpha,
                "warmup_target": self.warmup_target, "warmup_steps": self.warmup_steps}


@registry.register("one_cycle")
class OneCycle(LearningRateSchedule):
    """One-cycle policy (Smith & Topin; PyTorch's ``OneCycleLR`` without momentum cycling).

    The rate rises from ``max_learning_rate / div_factor`` to ``max_learning_rate`` over the
    first ``pct_start * total_steps - 1`` steps, then anneals to
    ``max_learning_rate / div_factor / final_div_factor`` at step ``total_steps - 1``
    (with ``three_phase``, it first comes back down to the initial rate at step
    ``2 * pct_start * total_steps - 2``). Steps beyond the end keep the final rate.

    Args:
        max_learning_rate: peak rate.
        total_steps: number of optimizer steps in the cycle.
        pct_start: fraction of the cycle spent increasing.
        div_factor: initial rate = max / div_factor.
        final_div_factor: final rate = initial / final_div_factor.
        anneal_strategy: "cos" or "linear".
        three_phase: use the three-phase variant.
    """

    def __init__(self, max_learning_rate: float, total_steps: int, pct_start: float = 0.3,
                 div_factor: float = 25.0, final_div_factor: float = 1e4,
                 anneal_strategy: str = "cos", three_phase: bool = False):
        owner = type(self).__name__
        self.max_learning_rate = _rate(max_learning_rate, "max_learning_rate", owner)
        self.total_steps = check_int(total_steps, "total_steps", owner, min_value=2)
        self.pct_start = check_float(pct_start, "pct_start", owner, low=0.0, high=1.0,
                                     low_open=True, high_open=True)
        self.div_factor = check_float(div_factor, "div_factor", owner, low=0.0, low_open=True)
        self.final_div_factor = check_float(final_div_factor, "final_div_factor", owner,
                                            low=0.0, low_open=True)
        self.anneal_strategy = check_choice(anneal_strategy, ("cos", "linear"),
                                            "anneal_strategy", owner)
        self.three_phase = bool(three_phase)

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1.0)
        return (end - start) * pct + start

    def __call__(self, step: int) -> float:
        initial = self.max_learning_rate / self.div_factor
        final = initial / self.final_div_factor
        up_end = float(self.pct_start * self.total_steps) - 1
        last = self.total_steps - 1
        if self.three_phase:
            phases = [(up_end, initial, self.max_learning_rate),
                      (2 * up_end, self.max_learning_rate, initial), (last, initial, final)]
        else:
            phases = [(up_end, initial, self.max_learning_rate),
                      (last, self.max_learning_rate, final)]
        step = min(step, last)
        start_step = 0.0
        for i, (end_step, start_lr, end_lr) in enumerate(phases):
            if step <= end_step or i == len(phases) - 1:
                pct = (step - start_step) / (end_step - start_step)
                return self._anneal(start_lr, end_lr, pct)
            start_step = end_step

    def get_config(self) -> dict:
        return {"max_learning_rate": self.max_learning_rate, "total_steps": self.total_steps,
                "pct_start": self.pct_start, "div_factor": self.div_factor,
                "final_div_factor": self.final_div_factor,
                "anneal_strategy": self.anneal_strategy, "three_phase": self.three_phase}


get, serialize, deserialize = registry.functions()


__all__ = [
    "CosineDecay", "ExponentialDecay", "LearningRateSchedule", "OneCycle",
    "PiecewiseConstantDecay", "StepDecay", "deserialize", "get", "serialize",
]
