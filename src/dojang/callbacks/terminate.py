"""TerminateOnNaN: stop training as soon as the loss is NaN or infinite."""

from __future__ import annotations

import math

from dojang.callbacks.base import Callback


class TerminateOnNaN(Callback):
    """Set ``model.stop_training`` when a batch's ``loss`` is NaN or infinite.

    Example:
        >>> class M: stop_training = False
        >>> cb = TerminateOnNaN(); cb.set_model(M())
        >>> cb.on_train_batch_end(3, {"loss": float("nan")})
        Batch 3: Invalid loss, terminating training
        >>> cb.model.stop_training
        True
    """

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True
