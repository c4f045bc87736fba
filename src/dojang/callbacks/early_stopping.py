"""EarlyStopping: stop training when a monitored quantity stops improving."""

from __future__ import annotations

from dojang.callbacks.base import Callback
from dojang.callbacks.monitor import Monitor
from dojang.validation import check_int


class EarlyStopping(Callback):
    """Set ``model.stop_training`` after ``patience`` epochs without improvement (Keras 3).

    Each epoch from ``start_from_epoch`` on, the monitored value improves when it beats the
    best so far by more than ``min_delta``; otherwise a counter grows and, once it reaches
    ``patience`` (and the epoch is not the first), training stops. With a ``baseline``, the
    counter is reset only by values that also beat the baseline.

    Args:
        monitor: key of the epoch logs to watch.
        min_delta: smallest change counted as an improvement.
        patience: epochs without improvement before stopping.
        verbose: 1 prints a message when stopping and restoring.
        mode: "auto", "min" or "max".
        baseline: value the monitored quantity must beat.
        restore_best_weights: at the end of training, set the weights of the best epoch.
        start_from_epoch: epochs of warm-up during which nothing is watched.

    Attributes:
        best, best_epoch, stopped_epoch, wait, best_weights.
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0,
                 verbose: int = 0, mode: str = "auto", baseline: float | None = None,
                 restore_best_weights: bool = False, start_from_epoch: int = 0):
        super().__init__()
        self._monitor = Monitor(monitor, mode, min_delta, "EarlyStopping")
        self.monitor = monitor
        self.patience = check_int(patience, "patience", "EarlyStopping", min_value=0)
        self.verbose = verbose
        self.baseline = None if baseline is None else float(baseline)
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = check_int(start_from_epoch, "start_from_epoch",
                                          "EarlyStopping", min_value=0)
        self.on_train_begin()

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best: float | None = None
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        current = self._monitor.value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
        self.wait += 1
        if self._monitor.improved(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._monitor.improved(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: "
                      f"{self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)
