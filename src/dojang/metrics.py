"""Stateful metrics (Keras's ``update_state`` / ``result`` / ``reset_state``) and a
confusion-matrix helper.

Metrics work on NumPy arrays (Tensors and CuPy arrays are converted); totals are kept
in float64 Python numbers, so ``result()`` is exact for any number of batches.
"""

from __future__ import annotations

import numpy as np

from dojang import losses
from dojang.autograd import Tensor
from dojang.backend import to_numpy
from dojang.registry import Configurable, Registry
from dojang.validation import check_float, check_int


def _np(x) -> np.ndarray:
    return to_numpy(x.data if isinstance(x, Tensor) else x) if x is not None else None


class Metric(Configurable):
    """Base class: accumulate with ``update_state``, read with ``result()``.

    Args:
        name: name in logs and History (defaults to the Keras name of the metric).

    ``state_names`` lists the attributes that hold the metric's additive state: summed over
    processes, they give the metric of all the data (distributed training sums them; a
    metric without them reports its own process's value).
    """

    default_name = "metric"
    state_names: tuple[str, ...] = ()

    def __init__(self, name: str | None = None):
        self.name = self.default_name if name is None else name
        self.reset_state()

    def update_state(self, y_true, y_pred) -> None:
        raise NotImplementedError

    def result(self) -> float:
        raise NotImplementedError

    def reset_state(self) -> None:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"name": self.name}


registry = Registry("metric", base=Metric)


@registry.register("mean")
class Mean(Metric):
    """Running (weighted) mean of the values given to ``update_state``.

    Example:
        >>> m = Mean(name="loss")
        >>> m.update_state(2.0, sample_weight=3); m.update_state(4.0, sample_weight=1)
        >>> m.result()
        2.5
    """

    default_name = "mean"
    state_names = ("total", "count")

    def reset_state(self) -> None:
        self.total = 0.0
        self.count = 0.0

    def update_state(self, values, sample_weight=None) -> None:
        """Add ``values`` (a number or an array), each weighted by ``sample_weight``."""
        values = np.asarray(_np(values), dtype=np.float64)
        weight = np.ones_like(values) if sample_weight is None else np.broadcast_to(
            np.asarray(_np(sample_weight), dtype=np.float64), values.shape)
        self.total += float((values * weight).sum())
        self.count += float(weight.sum())

    def result(self) -> float:
        return self.total / self.count if self.count else 0.0


class MeanMetricWrapper(Mean):
    """Mean over every example of a per-example value ``values(y_true, y_pred)``."""

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        super().update_state(self.values(_np(y_true), _np(y_pred)), sample_weight)

    def values(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def _sparse_labels(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Integer labels shaped like ``y_pred`` without its class axis."""
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    return y_true.astype(np.int64, copy=False)


def _matched(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """``y_true`` reshaped to ``y_pred``'s shape when only a trailing axis of 1 differs."""
    return y_true.reshape(y_pred.shape) if y_true.size == y_pred.size else y_true


@registry.register("accuracy", "acc")
class Accuracy(MeanMetricWrapper):
    """Fraction of elements where ``y_pred == y_true`` exactly."""

    default_name = "accuracy"

    def values(self, y_true, y_pred):
        return (_matched(y_true, y_pred) == y_pred).astype(np.float64)


@registry.register("sparse_categorical_accuracy")
class SparseCategoricalAccuracy(MeanMetricWrapper):
    """Fraction of examples where ``argmax(y_pred, -1)`` equals the integer label."""

    default_name = "sparse_categorical_accuracy"

    def values(self, y_true, y_pred):
        return (y_pred.argmax(axis=-1) == _sparse_labels(y_true, y_pred)).astype(np.float64)


@registry.register("categorical_accuracy")
class CategoricalAccuracy(MeanMetricWrapper):
    """Fraction of examples where ``argmax(y_pred, -1) == argmax(y_true, -1)``."""

    default_name = "categorical_accuracy"

    def values(self, y_true, y_pred):
        return (y_pred.argmax(axis=-1) == y_true.argmax(axis=-1)).astype(np.float64)


@registry.register("binary_accuracy")
class BinaryAccuracy(MeanMetricWrapper):
    """Fraction of elements where ``(y_pred > threshold) == y_true``.

    Args:
        threshold: decision threshold on probabilities (default 0.5).
        name: name in logs.
    """

    default_name = "binary_accuracy"

    def __init__(self, threshold: float = 0.5, name: str | None = None):
        self.threshold = check_float(threshold, "threshold", "BinaryAccuracy")
        super().__init__(name)

    def values(self, y_true, y_pred):
        pred = y_pred > self.threshold
        return (_matched(y_true, y_pred).astype(bool) == pred).astype(np.float64)

    def get_config(self) -> dict:
        return {**super().get_config(), "threshold": self.threshold}


def _in_top_k(labels: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """True where the label's score is among the ``k`` largest (ties count as inside)."""
    target = np.take_along_axis(scores, labels[..., None], axis=-1)
    return (scores > target).sum(axis=-1) < k


@registry.register("sparse_top_k_categorical_accuracy")
class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    """Fraction of examples whose integer label is among the ``k`` highest scores.

    Args:
        k: number of top scores considered (default 5).
        name: name in logs.
    """

    default_name = "sparse_top_k_categorical_accuracy"

    def __init__(self, k: int = 5, name: str | None = None):
        self.k = check_int(k, "k", type(self).__name__, min_value=1)
        super().__init__(name)

    def labels(self, y_true, y_pred):
        return _sparse_labels(y_true, y_pred)

    def values(self, y_true, y_pred):
        return _in_top_k(self.labels(y_true, y_pred), y_pred, self.k).astype(np.float64)

    def get_config(self) -> dict:
        return {**super().get_config(), "k": self.k}


@registry.register("top_k_categorical_accuracy")
class TopKCategoricalAccuracy(SparseTopKCategoricalAccuracy):
    """Fraction of examples whose one-hot target class is among the ``k`` highest scores."""

    default_name = "top_k_categorical_accuracy"

    def labels(self, y_true, y_pred):
        return y_true.argmax(axis=-1)


@registry.register("mean_squared_error", "mse")
class MeanSquaredError(MeanMetricWrapper):
    """Running mean of ``mean((y_pred - y_true)^2, axis=-1)``."""

    default_name = "mean_squared_error"

    def values(self, y_true, y_pred):
        return ((y_pred - _matched(y_true, y_pred)) ** 2).mean(axis=-1)


@registry.register("mean_absolute_error", "mae")
class MeanAbsoluteError(MeanMetricWrapper):
    """Running mean of ``mean(|y_pred - y_true|, axis=-1)``."""

    default_name = "mean_absolute_error"

    def values(self, y_true, y_pred):
        return np.abs(y_pred - _matched(y_true, y_pred)).mean(axis=-1)


class _Counts(Metric):
    """Precision and recall: true/false positive and false negative counts.

    A prediction is positive when ``y_pred > threshold``; with ``class_id`` only that
    column of (N, C) targets and predictions is used.
    """

    state_names = ("true_positives", "false_positives", "false_negatives")

    def __init__(self, thresholds: float | None = None, class_id: int | None = None,
                 name: str | None = None):
        owner = type(self).__name__
        self.thresholds = 0.5 if thresholds is None else check_float(
            thresholds, "thresholds", owner)
        self.class_id = None if class_id is None else check_int(
            class_id, "class_id", owner, min_value=0)
        super().__init__(name)

    def reset_state(self) -> None:
        self.true_positives = 0.0
        self.false_positives = 0.0
        self.false_negatives = 0.0

    def update_state(self, y_true, y_pred) -> None:
        y_true, y_pred = _np(y_true), _np(y_pred)
        if self.class_id is not None:
            y_true, y_pred = y_true[..., self.class_id], y_pred[..., self.class_id]
        truth = _matched(y_true, y_pred).astype(bool)
        pred = y_pred > self.thresholds
        self.true_positives += float((truth & pred).sum())
        self.false_positives += float((~truth & pred).sum())
        self.false_negatives += float((truth & ~pred).sum())

    @staticmethod
    def _ratio(num: float, den: float) -> float:
        return num / den if den else 0.0

    def get_config(self) -> dict:
        return {**super().get_config(), "thresholds": self.thresholds,
                "class_id": self.class_id}


@registry.register("precision")
class Precision(_Counts):
    """``tp / (tp + fp)`` (0 when nothing was predicted positive).

    Args:
        thresholds: decision threshold (default 0.5).
        class_id: optional class column of (N, C) targets and predictions.
        name: name in logs.

    Example:
        >>> import numpy as np
        >>> p = Precision()
        >>> p.update_state(np.array([1, 0, 1]), np.array([0.9, 0.8, 0.1]))
        >>> p.result()
        0.5
    """

    default_name = "precision"

    def result(self) -> float:
        return self._ratio(self.true_positives, self.true_positives + self.false_positives)


@registry.register("recall")
class Recall(_Counts):
    """``tp / (tp + fn)`` (0 when there are no positives). Arguments as ``Precision``."""

    default_name = "recall"

    def result(self) -> float:
        return self._ratio(self.true_positives, self.true_positives + self.false_negatives)


def confusion_matrix(y_true, y_pred, num_classes: int | None = None) -> np.ndarray:
    """Counts ``M[i, j]`` of examples with true class ``i`` predicted as class ``j``.

    Args:
        y_true: integer labels ``(N,)``.
        y_pred: integer predictions ``(N,)`` or scores ``(N, C)`` (argmax taken).
        num_classes: number of classes; default ``max(label, prediction) + 1``.

    Output shape: ``(num_classes, num_classes)``, int64.

    Raises:
        ValueError: for mismatched lengths or labels outside ``[0, num_classes)``.

    Example:
        >>> confusion_matrix([0, 1, 1], [0, 0, 1]).tolist()
        [[1, 0], [1, 1]]
    """
    t = np.asarray(_np(y_true)).reshape(-1)
    p = np.asarray(_np(y_pred))
    if p.ndim == 2 and p.shape[0] == t.size and p.dtype.kind == "f":
        p = p.argmax(axis=-1)
    p = p.reshape(-1)
    if t.size != p.size:
        raise ValueError(f"confusion_matrix: Expected y_true and y_pred with the same number "
                         f"of examples. Received: {t.size} and {p.size}")
    t, p = t.astype(np.int64), p.astype(np.int64)
    if num_classes is None:
        num_classes = int(max(t.max(initial=-1), p.max(initial=-1))) + 1
    n = check_int(num_classes, "num_classes", "confusion_matrix", min_value=1)
    for name, v in (("y_true", t), ("y_pred", p)):
        if v.size and (v.min() < 0 or v.max() >= n):
            raise ValueError(f"confusion_matrix: Expected {name} in [0, {n}). Received: values "
                             f"in [{v.min()}, {v.max()}]")
    return np.bincount(t * n + p, minlength=n * n).reshape(n, n)


_ACCURACY_FOR_LOSS = (
    (losses.SparseCategoricalCrossentropy, SparseCategoricalAccuracy),
    (losses.MulticlassHinge, SparseCategoricalAccuracy),
    (losses.CategoricalCrossentropy, CategoricalAccuracy),
    (losses.BinaryCrossentropy, BinaryAccuracy),
    (losses.Hinge, BinaryAccuracy),
)


def get(identifier, loss=None) -> Metric:
    """Return a metric from a name, class, instance or config dict.

    'accuracy' and 'acc' resolve from ``loss`` as Keras does: sparse categorical
    cross-entropy -> SparseCategoricalAccuracy, categorical -> CategoricalAccuracy,
    binary -> BinaryAccuracy, other losses -> Accuracy (exact match); the metric keeps
    the name the user wrote, so History has ``accuracy`` / ``val_accuracy``.

    Args:
        identifier: the metric.
        loss: the compiled loss (name, class or instance), used for 'accuracy'.

    Raises:
        ValueError: for an unknown name. TypeError: for anything else.

    Example:
        >>> type(get("accuracy", loss="sparse_categorical_crossentropy")).__name__
        'SparseCategoricalAccuracy'
    """
    if isinstance(identifier, str) and identifier.lower() in ("accuracy", "acc"):
        loss = None if loss is None else losses.get(loss)
        cls = next((m for l_cls, m in _ACCURACY_FOR_LOSS if isinstance(loss, l_cls)), Accuracy)
        return cls(name=identifier.lower())
    return registry.get(identifier)


_, serialize, deserialize = registry.functions()


__all__ = [
    "Accuracy", "BinaryAccuracy", "CategoricalAccuracy", "Mean", "MeanAbsoluteError",
    "MeanMetricWrapper", "MeanSquaredError", "Metric", "Precision", "Recall",
    "SparseCategoricalAccuracy", "SparseTopKCategoricalAccuracy", "TopKCategoricalAccuracy",
    "confusion_matrix", "deserialize", "get", "serialize",
]
