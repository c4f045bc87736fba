"""Training: ``compile``, ``fit``, ``evaluate``, ``predict`` and the per-batch steps.

``fit`` owns epochs, batches, shuffling, validation and callbacks; ``train_step(x, y)``
owns one batch (forward, loss, backward, optimizer update, metrics) and can be
overridden without touching the loop. Each epoch's shuffle is drawn from a generator
seeded with ``(fit_seed, epoch)``, so training resumed with ``initial_epoch=k`` sees the
same batches as an uninterrupted run; ``fit_seed`` is drawn once from
``dj.random`` and saved with the model.
"""

from __future__ import annotations

import math

import numpy as np

from dojang import backend
from dojang.config import no_grad
from dojang.validation import check_float, check_int


def _as_array(data, name: str, owner: str) -> np.ndarray:
    if data is None:
        raise ValueError(f"{owner}: Expected {name} to be an array. Received: {name}=None")
    arr = data if backend.get_array_module(data) is not np else np.asarray(data)
    if arr.ndim == 0:
        raise ValueError(f"{owner}: Expected {name} to have a batch axis. Received: a scalar")
    return arr


def _verbosity(verbose) -> int:
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(f"Expected verbose to be 'auto', 0, 1 or 2. Received: "
                         f"verbose={verbose!r}")
    return int(verbose)


def _batches(n: int, batch_size: int, order=None):
    """Index slices (or index arrays, when shuffled) of consecutive batches."""
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        yield slice(start, stop) if order is None else order[start:stop]


def _is_loader(x) -> bool:
    return callable(getattr(x, "epoch", None)) and hasattr(x, "__len__")


class _ArrayBatches:
    """Batches of in-memory arrays; epoch ``e`` is shuffled by a generator from (seed, e)."""

    def __init__(self, x, y, batch_size: int, seed: int | None):
        self.x, self.y, self.batch_size, self.seed = x, y, batch_size, seed

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def epoch(self, epoch: int):
        order = (None if self.seed is None
                 else np.random.default_rng([self.seed, epoch]).permutation(len(self.x)))
        for idx in _batches(len(self.x), self.batch_size, order):
            yield self.x[idx], self.y[idx]


class Trainer:
    """The training half of ``Model`` (mixed in; see ``dojang.models.Model``)."""

    # ---------------------------------------------------------------- compile
    def compile(self, optimizer="rmsprop", loss=None, metrics=None) -> None:
        """Choose the optimizer, the loss and the metrics reported by ``fit``/``evaluate``.

        Args:
            optimizer: name ('adam', 'sgd', ...) or optimizer object.
            loss: name ('sparse_categorical_crossentropy', 'mse', ...), class, object or
                callable ``loss(y_true, y_pred) -> scalar Tensor``.
            metrics: list of names ('accuracy' resolves from the loss, as Keras) or
                metric objects.

        Raises:
            ValueError/TypeError: unknown names or wrong types.

        Example:
            >>> import dojang as dj
            >>> model = dj.Sequential([dj.layers.Dense(2, input_shape=(3,))])
            >>> model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
        """
        from dojang import losses, optimizers
        from dojang import metrics as metrics_mod

        if metrics is not None and not isinstance(metrics, (list, tuple)):
            raise TypeError(f"compile: Expected metrics to be a list. Received: "
                            f"metrics={metrics!r}")
        self.optimizer = optimizers.get(optimizer)
        self.loss = None if loss is None else losses.get(loss)
        self.compiled_metrics = [metrics_mod.get(m, loss=loss) for m in metrics or []]
        self._loss_tracker = metrics_mod.Mean(name="loss")
        self.compiled = True

    def _require_compiled(self, what: str) -> None:
        if not getattr(self, "compiled", False) or self.loss is None:
            raise RuntimeError(f"{what}: model '{self.name}' must be compiled with a loss "
                               f"first: model.compile(optimizer, loss, metrics)")

    @property
    def metrics(self) -> list:
        """The loss tracker followed by the compiled metrics."""
        return [self._loss_tracker, *self.compiled_metrics] if getattr(self, "compiled", False) \
            else []

    def reset_metrics(self) -> None:
        for m in self.metrics:
            m.reset_state()

    def _logs(self) -> dict:
        return {m.name: m.result() for m in self.metrics}

    # ---------------------------------------------------------------- steps
    def compute_loss(self, y, y_pred):
        """The compiled loss plus every regularization term (a scalar Tensor)."""
        loss = self.loss(y, y_pred)
        for term in self.losses:
            loss = loss + term
        return loss

    def _update_metrics(self, y, y_pred, loss, n: int) -> dict:
        self._loss_tracker.update_state(float(loss.data), sample_weight=n)
        if self.compiled_metrics:
            pred = backend.to_numpy(y_pred.data)
            truth = backend.to_numpy(y)
            for m in self.compiled_metrics:
                m.update_state(truth, pred)
        return self._logs()

    def train_step(self, x, y) -> dict:
        """One optimization step on a batch; returns the running logs.

        Gradients are cleared by dropping them (``p.grad = None``), the loss is
        back-propagated once, and the optimizer updates the parameters in place.
        """
        y_pred = self(x, training=True)
        loss = self.compute_loss(y, y_pred)
        params = self.parameters()  # after the forward pass: subclassed models build lazily
        for p in params:
            p.grad = None
        loss.backward()
        self.optimizer.apply(params)
        return self._update_metrics(y, y_pred, loss, len(x))

    def test_step(self, x, y) -> dict:
        """Loss and metrics on a batch, in inference mode, without recording a graph."""
        with no_grad():
            y_pred = self(x, training=False)
            loss = self.compute_loss(y, y_pred)
        return self._update_metrics(y, y_pred, loss, len(x))

    # ---------------------------------------------------------------- loops
    def fit(self, x=None, y=None, batch_size: int = 32, epochs: int = 1, verbose="auto",
            callbacks=None, validation_split: float = 0.0, validation_data=None,
            shuffle: bool = True, initial_epoch: int = 0):
        """Train for ``epochs`` epochs; returns a ``History``.

        Args:
            x, y: inputs ``(N, ...)`` and targets ``(N, ...)`` (NumPy arrays).
            batch_size: examples per step (the last batch may be smaller).
            epochs: index of the last epoch (training runs ``initial_epoch..epochs-1``).
            verbose: 'auto' (=1), 0 silent, 1 progress bar, 2 one line per epoch.
            callbacks: list of ``dj.callbacks.Callback``.
            validation_split: fraction of the data, taken from the END before shuffling
                (as Keras), held out for validation.
            validation_data: ``(x_val, y_val)``; overrides ``validation_split``.
            shuffle: reshuffle the training data every epoch.
            initial_epoch: epoch to start from (to resume training).

        Returns:
            History with ``history['loss']``, metric names and their ``val_`` versions.

        Raises:
            RuntimeError: if the model was not compiled. ValueError: bad arguments.
        """
        from dojang import callbacks as cb
        from dojang import random as dj_random

        self._require_compiled("fit")
        batch_size = check_int(batch_size, "batch_size", "fit", min_value=1)
        epochs = check_int(epochs, "epochs", "fit", min_value=0)
        initial_epoch = check_int(initial_epoch, "initial_epoch", "fit", min_value=0)
        check_float(validation_split, "validation_split", "fit", low=0.0, high=1.0,
                    high_open=True)
        verbose = _verbosity(verbose)
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("fit: Expected validation_data to be a tuple (x_val, y_val). "
                                 f"Received: {type(validation_data).__name__}")
            val = (_as_array(validation_data[0], "x_val", "fit"),
                   _as_array(validation_data[1], "y_val", "fit"))
            if len(val[0]) != len(val[1]) or not len(val[0]):
                raise ValueError(f"fit: Expected validation_data (x_val, y_val) with the same "
                                 f"number of examples, at least one. Received: "
                                 f"len(x_val)={len(val[0])}, len(y_val)={len(val[1])}")
        if _is_loader(x):
            # A loader (e.g. dojang.data.BatchLoader) yields its own (x, y) batches per
            # epoch, shuffled and augmented from (seed, epoch): Keras's "dataset" input.
            if y is not None or validation_split:
                raise ValueError("fit: with a batch loader as x, pass y=None and use "
                                 "validation_data instead of validation_split")
            loader = x
            steps = len(loader)
        else:
            x, y = _as_array(x, "x", "fit"), _as_array(y, "y", "fit")
            if len(x) != len(y):
                raise ValueError(f"fit: x and y must have the same number of examples. "
                                 f"Received: len(x)={len(x)}, len(y)={len(y)}")
            if val is None and validation_split > 0:
                split = int(math.floor(len(x) * (1.0 - validation_split)))
                x, y, val = x[:split], y[:split], (x[split:], y[split:])
            if len(x) == 0:
                raise ValueError("fit: no training examples left (check validation_split)")
            if getattr(self, "_fit_seed", None) is None:
                self._fit_seed = int(dj_random.make_rng().integers(2**62))
            loader = _ArrayBatches(x, y, batch_size, self._fit_seed if shuffle else None)
            steps = len(loader)
        callback_list = cb.CallbackList(callbacks, add_history=True, add_progbar=bool(verbose),
                                        model=self, epochs=epochs, steps=steps,
                                        verbose=verbose)
        self.stop_training = False
        logs: dict = {}
        callback_list.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            self.reset_metrics()
            callback_list.on_epoch_begin(epoch)
            logs = {}
            for step, (xb, yb) in enumerate(loader.epoch(epoch)):
                callback_list.on_train_batch_begin(step)
                logs = self.train_step(xb, yb)
                callback_list.on_train_batch_end(step, logs)
            logs = dict(logs)
            if val is not None:
                val_logs = self._evaluate_arrays(*val, batch_size)
                logs.update({f"val_{k}": v for k, v in val_logs.items()})
            callback_list.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        callback_list.on_train_end(logs)
        return callback_list.history

    def _evaluate_arrays(self, x, y, batch_size: int, callback_list=None) -> dict:
        self.reset_metrics()
        logs = {}
        for step, idx in enumerate(_batches(len(x), batch_size)):
            if callback_list is not None:
                callback_list.on_test_batch_begin(step)
            logs = self.test_step(x[idx], y[idx])
            if callback_list is not None:
                callback_list.on_test_batch_end(step, logs)
        return dict(logs)

    def evaluate(self, x=None, y=None, batch_size: int = 32, verbose="auto", callbacks=None,
                 return_dict: bool = False):
        """Loss and metrics over ``(x, y)`` in inference mode.

        Returns:
            The loss (no metrics compiled), ``[loss, *metrics]``, or a dict with
            ``return_dict=True``.

        Raises:
            ValueError: x and y of different lengths, or no examples.
        """
        from dojang import callbacks as cb

        self._require_compiled("evaluate")
        x, y = _as_array(x, "x", "evaluate"), _as_array(y, "y", "evaluate")
        if len(x) != len(y):
            raise ValueError(f"evaluate: x and y must have the same number of examples. "
                             f"Received: len(x)={len(x)}, len(y)={len(y)}")
        if not len(x):
            raise ValueError("evaluate: Expected at least one example: the loss of no "
                             "examples is undefined. Received: len(x)=0")
        batch_size = check_int(batch_size, "batch_size", "evaluate", min_value=1)
        verbose = _verbosity(verbose)
        callback_list = cb.CallbackList(callbacks, add_progbar=bool(verbose), model=self,
                                        steps=math.ceil(len(x) / batch_size), verbose=verbose)
        callback_list.on_test_begin()
        logs = self._evaluate_arrays(x, y, batch_size, callback_list)
        callback_list.on_test_end(logs)
        if return_dict:
            return logs
        values = [logs[m.name] for m in self.metrics]
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size: int = 32, verbose=0, callbacks=None) -> np.ndarray:
        """Outputs for ``x`` in batches, in inference mode (no graph, dropout off).

        Returns:
            NumPy array ``(N, ...)`` (on the CPU); a list of them for a model with
            several outputs; ``(0, ...)`` for an empty ``x``.
        """
        from dojang import callbacks as cb

        x = _as_array(x, "x", "predict")
        batch_size = check_int(batch_size, "batch_size", "predict", min_value=1)
        verbose = _verbosity(verbose)
        callback_list = cb.CallbackList(callbacks, add_progbar=bool(verbose), model=self,
                                        steps=math.ceil(len(x) / batch_size), verbose=verbose)
        callback_list.on_predict_begin()
        outs = []
        with no_grad():
            for step, idx in enumerate(_batches(len(x), batch_size)):
                callback_list.on_predict_batch_begin(step)
                y = self(x[idx], training=False)
                outs.append([backend.to_numpy(t.data) for t in y] if isinstance(y, list)
                            else backend.to_numpy(y.data))
                callback_list.on_predict_batch_end(step)
        callback_list.on_predict_end()
        if outs and isinstance(outs[0], list):
            return [np.concatenate(parts) for parts in zip(*outs)]
        if outs:
            return np.concatenate(outs)
        # No examples: the right shape, (0, *output), from the model's shape arithmetic.
        shape = self.compute_output_shape((None,) + tuple(x.shape[1:]))
        if shape and isinstance(shape[0], (tuple, list)):
            return [np.zeros((0, *s[1:]), dtype=self.dtype) for s in shape]
        return np.zeros((0, *shape[1:]), dtype=self.dtype)
