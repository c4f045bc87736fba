"""Callbacks that change the optimizer's learning rate: ReduceLROnPlateau and
LearningRateScheduler."""

from __future__ import annotations

import numbers
from collections.abc import Callable

from dojang.callbacks.base import Callback
from dojang.callbacks.monitor import Monitor
from dojang.validation import check_float, check_int


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` after ``patience`` epochs without improvement.

    After a reduction, ``cooldown`` epochs pass before counting resumes; the rate never
    goes below ``min_lr``. Adds ``learning_rate`` to the epoch logs.

    Args:
        monitor: key of the epoch logs to watch.
        factor: multiplier in ``(0, 1)``.
        patience: epochs without improvement before a reduction.
        verbose: 1 prints each reduction.
        mode: "auto", "min" or "max".
        min_delta: smallest change counted as an improvement.
        cooldown: epochs to wait after a reduction.
        min_lr: lower bound of the learning rate.

    Raises:
        ValueError: if ``factor >= 1``.
    """

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 verbose: int = 0, mode: str = "auto", min_delta: float = 1e-4,
                 cooldown: int = 0, min_lr: float = 0.0):
        super().__init__()
        owner = "ReduceLROnPlateau"
        self.monitor = monitor
        self.factor = check_float(factor, "factor", owner, low=0.0, high=1.0, low_open=True,
                                  high_open=True)
        self.patience = check_int(patience, "patience", owner, min_value=0)
        self.verbose = verbose
        self.cooldown = check_int(cooldown, "cooldown", owner, min_value=0)
        self.min_lr = check_float(min_lr, "min_lr", owner, low=0.0)
        self._monitor = Monitor(monitor, mode, min_delta, owner)
        self.on_train_begin()

    def on_train_begin(self, logs=None):
        self.best = self._monitor.worst
        self.wait = 0
        self.cooldown_counter = 0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        optimizer = self.model.optimizer
        logs["learning_rate"] = float(optimizer.learning_rate)
        current = self._monitor.value(logs)
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._monitor.improved(current, self.best):
            self.best = current
            self.wait = 0
            return
        if self.cooldown_counter > 0:
            return
        self.wait += 1
        if self.wait >= self.patience:
            old_lr = float(optimizer.learning_rate)
            if old_lr > self.min_lr:
                new_lr = max(old_lr * self.factor, self.min_lr)
                optimizer.learning_rate = new_lr
                if self.verbose > 0:
                    print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to "
                          f"{new_lr}.")
                self.cooldown_counter = self.cooldown
                self.wait = 0


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of each epoch to ``schedule(epoch, lr)``.

    A one-argument ``schedule(epoch)`` also works. Adds ``learning_rate`` to the logs.

    Args:
        schedule: function of the epoch index (from 0) and the current rate.
        verbose: 1 prints each new rate.

    Raises:
        ValueError: (during training) if ``schedule`` does not return a number.

    Example:
        >>> cb = LearningRateScheduler(lambda epoch, lr: lr * 0.5)
    """

    def __init__(self, schedule: Callable, verbose: int = 0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler: Expected schedule to be callable. "
                            f"Received: schedule={schedule!r}")
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        lr = float(optimizer.learning_rate)
        try:
            lr = self.schedule(epoch, lr)
        except TypeError:  # a schedule of the epoch alone, as Keras allows
            lr = self.schedule(epoch)
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real):
            raise ValueError(f"LearningRateScheduler: Expected the schedule to return a "
                             f"float. Received: {lr!r}")
        optimizer.learning_rate = float(lr)
        if self.verbose > 0:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)
