"""History (the object ``fit`` returns) and CSVLogger."""

from __future__ import annotations

import csv
import os

import numpy as np

from dojang.callbacks.base import Callback
from dojang.distribute.base import current as current_strategy


class History(Callback):
    """Records every epoch's logs: ``history.history["loss"]`` is the list of epoch losses.

    Attributes:
        history: dict metric name -> list of per-epoch values.
        epoch: list of epoch indices seen.

    Example:
        >>> h = History(); h.on_train_begin(); h.on_epoch_end(0, {"loss": 1.5})
        >>> h.history
        {'loss': [1.5]}
    """

    def __init__(self):
        super().__init__()
        self.history: dict[str, list] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)
        if self.model is not None:
            self.model.history = self


def _csv_value(value):
    if isinstance(value, str):
        return value
    arr = np.asarray(value)
    if arr.ndim == 0:
        return arr.item()
    return "[" + ", ".join(str(v) for v in arr.reshape(-1).tolist()) + "]"


class CSVLogger(Callback):
    """Writes one CSV row per epoch: ``epoch`` (from 0) then the logs' keys, sorted.

    Args:
        filename: path of the CSV file.
        separator: field separator.
        append: append to an existing file (its header is kept) instead of overwriting.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "log.csv")
        >>> cb = CSVLogger(path); cb.on_train_begin()
        >>> cb.on_epoch_end(0, {"loss": 0.5}); cb.on_train_end()
        >>> open(path).read().splitlines()
        ['epoch,loss', '0,0.5']
    """

    def __init__(self, filename: str | os.PathLike, separator: str = ",", append: bool = False):
        super().__init__()
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(f"CSVLogger: Expected separator to be one character. Received: "
                             f"separator={separator!r}")
        self.filename = os.fspath(filename)
        self.separator = separator
        self.append = bool(append)
        self.keys: list[str] | None = None
        self._file = None
        self._writer = None

    def on_train_begin(self, logs=None):
        if not current_strategy().is_chief:  # one process of several: the chief writes
            return
        exists = os.path.exists(self.filename) and os.path.getsize(self.filename) > 0
        self._write_header = not (self.append and exists)
        self._file = open(self.filename, "a" if self.append else "w", newline="")  # noqa: SIM115
        self._writer = None
        self.keys = None

    def on_epoch_end(self, epoch, logs=None):
        if self._file is None:
            return
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
        if self._writer is None:
            self._writer = csv.DictWriter(self._file, fieldnames=["epoch", *self.keys],
                                          delimiter=self.separator, lineterminator="\n")
            if self._write_header:
                self._writer.writeheader()
        row = {"epoch": epoch}
        row.update((k, _csv_value(logs.get(k, "NA"))) for k in self.keys)
        self._writer.writerow(row)
        self._file.flush()

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
        self._file = None
        self._writer = None
