"""ModelCheckpoint: save the model (or its weights) during training."""

from __future__ import annotations

import os

from dojang.callbacks.base import Callback
from dojang.callbacks.monitor import Monitor
from dojang.distribute.base import current as current_strategy
from dojang.validation import check_int


class ModelCheckpoint(Callback):
    """Call ``model.save(path)`` (or ``model.save_weights``) at the end of epochs.

    ``filepath`` may hold format fields filled from the epoch (counted from 1) and its
    logs, e.g. ``"ckpt-{epoch:02d}-{val_loss:.2f}.dojang"``. The model's save methods write
    atomically (temporary file, then rename), so a checkpoint is never left half written.
    Under a strategy of several processes only the chief writes (every process keeps the
    same ``best``, since the logs are global).

    Args:
        filepath: path or format string.
        monitor: key of the logs watched when ``save_best_only``.
        verbose: 1 prints a line at each save decision.
        save_best_only: save only when ``monitor`` improves on the best value so far.
        save_weights_only: call ``model.save_weights`` instead of ``model.save``.
        mode: "auto", "min" or "max".
        save_freq: "epoch", or an int to save every that many training batches.
        initial_value_threshold: a value the first saved ``monitor`` must beat.

    Raises:
        ValueError: (during training) if ``filepath`` names a field absent from the logs.
    """

    def __init__(self, filepath: str | os.PathLike, monitor: str = "val_loss", verbose: int = 0,
                 save_best_only: bool = False, save_weights_only: bool = False,
                 mode: str = "auto", save_freq: str | int = "epoch",
                 initial_value_threshold: float | None = None):
        super().__init__()
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        self._monitor = Monitor(monitor, mode, 0.0, "ModelCheckpoint")
        if save_freq != "epoch":
            save_freq = check_int(save_freq, "save_freq", "ModelCheckpoint", min_value=1)
        self.save_freq = save_freq
        self.best = None if initial_value_threshold is None else float(initial_value_threshold)
        self._epoch = 0
        self._batches = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._batches += 1
        if self._batches % self.save_freq == 0:
            self._save(self._epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, logs)

    def format_path(self, epoch: int, logs: dict | None) -> str:
        """``filepath`` with ``{epoch}`` = ``epoch + 1`` and the logs' values filled in."""
        values = {k: float(v) if not isinstance(v, str) else v for k, v in (logs or {}).items()}
        try:
            return self.filepath.format(**{**values, "epoch": epoch + 1})
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(
                f"ModelCheckpoint: failed to format filepath {self.filepath!r} with epoch and "
                f"logs keys {sorted(values)}. Reason: {e!r}") from None

    def _save(self, epoch: int, logs: dict | None) -> None:
        path = self.format_path(epoch, logs)
        if self.save_best_only:
            current = self._monitor.value(logs)
            if current is None:
                return
            if not self._monitor.improved(current, self.best):
                if self.verbose > 0:
                    print(f"Epoch {epoch + 1}: {self.monitor} did not improve from "
                          f"{self.best:.5f}")
                return
            if self.verbose > 0:
                print(f"Epoch {epoch + 1}: {self.monitor} improved from {self.best} to "
                      f"{current:.5f}, saving model to {path}")
            self.best = current
        elif self.verbose > 0:
            print(f"Epoch {epoch + 1}: saving model to {path}")
        if not current_strategy().is_chief:  # one process of several: the chief writes
            return
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)
