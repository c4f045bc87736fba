"""The Callback base class (every hook a no-op) and ``LambdaCallback``."""

from __future__ import annotations

from collections.abc import Callable

HOOKS = (
    "on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end",
    "on_train_batch_begin", "on_train_batch_end", "on_test_begin", "on_test_end",
    "on_test_batch_begin", "on_test_batch_end", "on_predict_begin", "on_predict_end",
    "on_predict_batch_begin", "on_predict_batch_end",
)


class Callback:
    """Base class of the hooks ``fit``/``evaluate``/``predict`` call (all do nothing here).

    Attributes:
        model: the model being trained (set by ``set_model``); callbacks use
            ``model.stop_training``, ``model.optimizer.learning_rate``,
            ``model.get_weights()``/``set_weights()`` and ``model.save``/``save_weights``.
        params: dict with ``verbose``, ``epochs`` and ``steps`` (set by ``set_params``).

    ``on_train_batch_begin``/``end`` call ``on_batch_begin``/``end``, so overriding
    either works, as in Keras.
    """

    def __init__(self):
        self.model = None
        self.params: dict = {}

    def set_model(self, model) -> None:
        self.model = model

    def set_params(self, params: dict) -> None:
        self.params = params

    def on_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        """Alias of ``on_train_batch_begin``."""

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """Alias of ``on_train_batch_end``."""

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.on_batch_end(batch, logs)

    def on_train_begin(self, logs: dict | None = None) -> None:
        """Called once before the first epoch."""

    def on_train_end(self, logs: dict | None = None) -> None:
        """Called once after the last epoch."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        """Called at the start of epoch ``epoch`` (counted from 0)."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Called at the end of an epoch with its metrics (``val_*`` included)."""

    def on_test_begin(self, logs: dict | None = None) -> None:
        """Called before evaluation."""

    def on_test_end(self, logs: dict | None = None) -> None:
        """Called after evaluation."""

    def on_test_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        """Called before an evaluation batch."""

    def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """Called after an evaluation batch."""

    def on_predict_begin(self, logs: dict | None = None) -> None:
        """Called before prediction."""

    def on_predict_end(self, logs: dict | None = None) -> None:
        """Called after prediction."""

    def on_predict_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        """Called before a prediction batch."""

    def on_predict_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """Called after a prediction batch."""


class LambdaCallback(Callback):
    """A callback built from functions: ``LambdaCallback(on_epoch_end=lambda e, logs: ...)``.

    Args:
        **hooks: hook name (``on_epoch_end``, ``on_train_batch_end``, ...) -> function
            taking the hook's arguments.

    Raises:
        ValueError: for an unknown hook name.
    """

    def __init__(self, **hooks: Callable):
        super().__init__()
        allowed = (*HOOKS, "on_batch_begin", "on_batch_end")
        for name, fn in hooks.items():
            if name not in allowed:
                raise ValueError(f"LambdaCallback: Expected hooks among {allowed}. "
                                 f"Received: {name}")
            setattr(self, name, fn)
