"""The quantity that EarlyStopping, ModelCheckpoint and ReduceLROnPlateau watch."""

from __future__ import annotations

import math
import warnings

from dojang.validation import check_choice, check_float

_MAXIMIZED = ("acc", "auc", "precision", "recall", "f1", "fmeasure")


class Monitor:
    """Reads ``logs[monitor]`` and says whether it improved on a reference by ``min_delta``.

    ``mode="auto"`` maximizes names containing acc/auc/precision/recall/f1 and minimizes
    everything else (losses and errors).

    Args:
        monitor: key in the epoch logs ("val_loss", "accuracy", ...).
        mode: "auto", "min" or "max".
        min_delta: smallest change that counts as an improvement (its sign is ignored).
        owner: callback name for messages.
    """

    def __init__(self, monitor: str, mode: str, min_delta: float, owner: str):
        if not isinstance(monitor, str):
            raise TypeError(f"{owner}: Expected monitor to be a str. Received: "
                            f"monitor={monitor!r}")
        self.monitor = monitor
        self.owner = owner
        self.mode = check_choice(mode, ("auto", "min", "max"), "mode", owner)
        self.min_delta = abs(check_float(min_delta, "min_delta", owner))
        name = monitor.removeprefix("val_").lower()
        self.maximize = self.mode == "max" or (
            self.mode == "auto" and any(s in name for s in _MAXIMIZED))

    @property
    def worst(self) -> float:
        return -math.inf if self.maximize else math.inf

    def improved(self, current: float, reference: float | None) -> bool:
        """True if ``current`` beats ``reference`` by more than ``min_delta``."""
        if reference is None:
            return True
        if self.maximize:
            return current - self.min_delta > reference
        return current + self.min_delta < reference

    def value(self, logs: dict | None) -> float | None:
        """``logs[monitor]`` as a float, or None (with a warning) when it is missing."""
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(
                f"{self.owner} is conditioned on metric `{self.monitor}` which is not "
                f"available. Available metrics are: {', '.join(logs)}", stacklevel=3)
            return None
        return float(value)
