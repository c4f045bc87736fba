"""Keras-style loss objects: ``loss(y_true, y_pred) -> scalar Tensor`` (mean over the batch).

Probabilities are expected unless ``from_logits=True``. When ``y_pred`` was produced by a
softmax (sigmoid for the binary loss) and ``from_logits=False``, the loss reaches through
``y_pred.creator`` to the logits and takes the fused, stable from-logits path, as Keras
does; otherwise probabilities are clipped to ``[eps, 1 - eps]`` (``eps = 1e-7``) before the
log. Under ``no_grad()`` no graph is recorded, so there the clipped path is used; the two
differ only where a probability is below ``eps``.

``reduction`` follows Keras: ``"sum_over_batch_size"`` (the mean of the per-example
losses), ``"sum"`` or ``"none"`` (one loss per example; elementwise losses are averaged
over the last axis first, as Keras does).
"""

from __future__ import annotations

import numpy as np

from dojang import functional as F
from dojang.autograd import Tensor
from dojang.backend import get_array_module, to_device
from dojang.ops import activations as act_ops
from dojang.ops import elementwise as E
from dojang.registry import Configurable, Registry
from dojang.validation import check_choice, check_float

EPSILON = 1e-7
REDUCTIONS = ("sum_over_batch_size", "sum", "none")
_TO_FUNCTIONAL = {"sum_over_batch_size": "mean", "sum": "sum", "none": "none"}


class Loss(Configurable):
    """Base class. Subclasses implement ``compute(y_true, y_pred, reduction)``.

    Args:
        reduction: "sum_over_batch_size" (default), "sum" or "none".
        name: name used in logs; defaults to the Keras name of the loss.

    Raises:
        ValueError: for an unknown reduction.
    """

    default_name = "loss"

    def __init__(self, reduction: str = "sum_over_batch_size", name: str | None = None):
        owner = type(self).__name__
        self.reduction = check_choice(reduction, REDUCTIONS, "reduction", owner)
        self.name = self.default_name if name is None else name

    def __call__(self, y_true, y_pred) -> Tensor:
        y_pred = y_pred if isinstance(y_pred, Tensor) else Tensor(y_pred)
        if y_pred.dtype.kind != "f":
            raise TypeError(f"{type(self).__name__}: Expected y_pred to be a floating-point "
                            f"tensor. Received: dtype={y_pred.dtype}")
        if not isinstance(y_true, Tensor) and y_pred.device != "cpu":
            y_true = to_device(y_true, y_pred.device)  # arrays follow, as a layer's inputs do
        return self.compute(y_true, y_pred, self.reduction)

    def compute(self, y_true, y_pred: Tensor, reduction: str) -> Tensor:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"name": self.name, "reduction": self.reduction}


registry = Registry("loss", base=Loss)


def _raw(y):
    return y.data if isinstance(y, Tensor) else y


def _targets(y_true, y_pred: Tensor, owner: str):
    """Float targets on ``y_pred``'s device and dtype, matched to its rank as Keras does.

    ``(N,)`` targets against ``(N, 1)`` predictions gain the last axis, ``(N, 1)`` against
    ``(N,)`` lose it; any other mismatch is an error.
    """
    xp = get_array_module(y_pred.data)
    t = xp.asarray(_raw(y_true), dtype=y_pred.dtype)
    if t.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
        t = t[..., None]
    elif t.ndim == y_pred.ndim + 1 and t.shape[-1] == 1:
        t = t[..., 0]
    if t.shape != y_pred.shape:
        raise ValueError(f"{owner}: Expected y_true of shape {y_pred.shape} (the shape of "
                         f"y_pred). Received: y_true.shape={t.shape}")
    return t


def _labels(y_true, y_pred: Tensor, owner: str):
    """Integer class labels of shape ``y_pred.shape[:-1]`` (a trailing axis of 1 dropped)."""
    xp = get_array_module(y_pred.data)
    labels = xp.asarray(_raw(y_true))
    if labels.ndim == y_pred.ndim and labels.shape[-1] == 1:
        labels = labels[..., 0]
    if labels.shape != y_pred.shape[:-1]:
        raise ValueError(f"{owner}: Expected integer labels of shape {y_pred.shape[:-1]} "
                         f"(y_pred.shape without the class axis). Received: "
                         f"y_true.shape={labels.shape}")
    if labels.dtype.kind not in "iub" and not (
            labels.dtype.kind == "f" and bool((labels == xp.round(labels)).all())):
        raise TypeError(f"{owner}: Expected integer class labels. Received: y_true of dtype "
                        f"{labels.dtype}")
    n_classes = y_pred.shape[-1]
    labels = labels.astype(np.int64, copy=False)
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= n_classes):
        raise ValueError(f"{owner}: Expected labels in [0, {n_classes}). Received: labels in "
                         f"[{int(labels.min())}, {int(labels.max())}]")
    return labels


def _logits_of(y_pred: Tensor, function_type: type, last_axis: bool) -> Tensor | None:
    """The input Tensor of the softmax/sigmoid that produced ``y_pred``, if it did."""
    fn = y_pred.creator
    if not isinstance(fn, function_type) or fn.inputs is None:
        return None
    if last_axis and getattr(fn, "axis", None) != y_pred.ndim - 1:
        return None
    return fn.inputs[0]


def _reduce_examples(per_example: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return per_example
    return per_example.sum() if reduction == "sum" else per_example.mean()


def _clipped_log(probs: Tensor) -> Tensor:
    return E.log(E.clip(probs, EPSILON, 1.0 - EPSILON))


class _Elementwise(Loss):
    """Losses defined per element and averaged over the last axis (MSE, MAE, BCE, hinge).

    ``elementwise(t, y_pred, reduction)`` takes a functional-style reduction.
    """

    def compute(self, y_true, y_pred, reduction):
        t = _targets(y_true, y_pred, type(self).__name__)
        if reduction == "sum_over_batch_size":
            return self.elementwise(t, y_pred, "mean")
        per_example = self.elementwise(t, y_pred, "none").mean(axis=-1)
        return _reduce_examples(per_example, reduction)

    def elementwise(self, t, y_pred: Tensor, reduction: str) -> Tensor:
        raise NotImplementedError


class _SmoothedCrossentropy(Loss):
    """``from_logits`` and ``label_smoothing`` (in ``[0, 1]``), shared by the categorical
    and binary cross-entropies; the subclass applies the smoothing to its targets."""

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0,
                 reduction: str = "sum_over_batch_size", name: str | None = None):
        super().__init__(reduction, name)
        self.from_logits = bool(from_logits)
        self.label_smoothing = check_float(label_smoothing, "label_smoothing",
                                           type(self).__name__, low=0.0, high=1.0)

    def get_config(self) -> dict:
        return {**super().get_config(), "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing}


@registry.register("sparse_categorical_crossentropy")
class SparseCategoricalCrossentropy(Loss):
    """Cross-entropy with integer labels: ``-log p[y]`` per example.

    Args:
        from_logits: True if ``y_pred`` holds logits rather than probabilities.
        reduction: "sum_over_batch_size", "sum" or "none".
        name: name in logs.

    Input shape: ``y_true`` ``(N, ...)`` integers in ``[0, C)`` (or ``(N, ..., 1)``);
    ``y_pred`` ``(N, ..., C)``. Output shape: ``()`` (``(N, ...)`` for "none").

    Example:
        >>> import numpy as np
        >>> loss = SparseCategoricalCrossentropy()
        >>> round(float(loss(np.array([0]), np.array([[0.5, 0.5]]))), 4)
        0.6931
    """

    default_name = "sparse_categorical_crossentropy"

    def __init__(self, from_logits: bool = False, reduction: str = "sum_over_batch_size",
                 name: str | None = None):
        super().__init__(reduction, name)
        self.from_logits = bool(from_logits)

    def compute(self, y_true, y_pred, reduction):
        labels = _labels(y_true, y_pred, type(self).__name__)
        logits = y_pred if self.from_logits else _logits_of(y_pred, act_ops.Softmax, True)
        if logits is not None:
            return F.sparse_softmax_cross_entropy_with_logits(
                labels, logits, reduction=_TO_FUNCTIONAL[reduction])
        xp = get_array_module(y_pred.data)
        onehot = xp.eye(y_pred.shape[-1], dtype=y_pred.dtype)[labels]
        per_example = -(_clipped_log(y_pred) * onehot).sum(axis=-1)
        return _reduce_examples(per_example, reduction)

    def get_config(self) -> dict:
        return {**super().get_config(), "from_logits": self.from_logits}


@registry.register("categorical_crossentropy")
class CategoricalCrossentropy(_SmoothedCrossentropy):
    """Cross-entropy with one-hot (or probability) targets: ``-sum_c t_c log p_c``.

    With ``label_smoothing = s`` the targets become ``t (1 - s) + s / C``.

    Args:
        from_logits: True if ``y_pred`` holds logits rather than probabilities.
        label_smoothing: in ``[0, 1]``.
        reduction: "sum_over_batch_size", "sum" or "none".
        name: name in logs.

    Input shape: ``y_true`` and ``y_pred`` ``(N, ..., C)``. Output shape: ``()``.

    Raises:
        ValueError: for ``label_smoothing`` outside ``[0, 1]``.
    """

    default_name = "categorical_crossentropy"

    def compute(self, y_true, y_pred, reduction):
        t = _targets(y_true, y_pred, type(self).__name__)
        logits = y_pred if self.from_logits else _logits_of(y_pred, act_ops.Softmax, True)
        if logits is not None:
            return F.softmax_cross_entropy_with_logits(
                t, logits, label_smoothing=self.label_smoothing,
                reduction=_TO_FUNCTIONAL[reduction])
        s = self.label_smoothing
        if s:
            t = t * (1.0 - s) + s / t.shape[-1]
        per_example = -(_clipped_log(y_pred) * t).sum(axis=-1)
        return _reduce_examples(per_example, reduction)


@registry.register("binary_crossentropy")
class BinaryCrossentropy(_SmoothedCrossentropy, _Elementwise):
    """Binary cross-entropy ``-(t log p + (1 - t) log(1 - p))``, averaged over the last axis.

    With ``label_smoothing = s`` the targets become ``t (1 - s) + s / 2``.

    Args:
        from_logits: True if ``y_pred`` holds logits rather than probabilities.
        label_smoothing: in ``[0, 1]``.
        reduction: "sum_over_batch_size", "sum" or "none".
        name: name in logs.

    Input shape: ``y_true`` and ``y_pred`` alike (``(N,)`` targets for ``(N, 1)`` outputs).
    Output shape: ``()``.
    """

    default_name = "binary_crossentropy"

    def elementwise(self, t, y_pred, reduction):
        s = self.label_smoothing
        if s:
            t = t * (1.0 - s) + 0.5 * s
        logits = y_pred if self.from_logits else _logits_of(y_pred, act_ops.Sigmoid, False)
        if logits is not None:
            return F.sigmoid_cross_entropy_with_logits(t, logits, reduction=reduction)
        return F.binary_crossentropy(t, y_pred, epsilon=EPSILON, reduction=reduction)


@registry.register("mean_squared_error", "mse")
class MeanSquaredError(_Elementwise):
    """``mean((y_pred - y_true)^2)`` over the last axis, then over the batch."""

    default_name = "mean_squared_error"

    def elementwise(self, t, y_pred, reduction):
        return F.mean_squared_error(t, y_pred, reduction=reduction)


@registry.register("mean_absolute_error", "mae")
class MeanAbsoluteError(_Elementwise):
    """``mean(|y_pred - y_true|)`` over the last axis, then over the batch."""

    default_name = "mean_absolute_error"

    def elementwise(self, t, y_pred, reduction):
        return F.mean_absolute_error(t, y_pred, reduction=reduction)


@registry.register("hinge")
class Hinge(_Elementwise):
    """Binary hinge ``max(1 - t * y_pred, 0)`` with targets in {-1, 1} (or {0, 1}, mapped).

    Example:
        >>> import numpy as np
        >>> float(Hinge()(np.array([[1.0, 0.0]]), np.array([[0.5, 0.5]])))
        1.0
    """

    default_name = "hinge"

    def elementwise(self, t, y_pred, reduction):
        xp = get_array_module(t)
        if bool(((t == 0) | (t == 1)).all()):
            t = 2.0 * t - 1.0
        loss = E.maximum(1.0 - y_pred * xp.asarray(t, dtype=y_pred.dtype), 0.0)
        if reduction == "none":
            return loss
        return loss.mean() if reduction == "mean" else loss.sum()


@registry.register("multiclass_hinge")
class MulticlassHinge(Loss):
    """Multiclass SVM loss (cs231n): ``sum_{j != y} max(0, s_j - s_y + margin)`` per example.

    Args:
        margin: positive margin (default 1).
        reduction: "sum_over_batch_size", "sum" or "none".
        name: name in logs.

    Input shape: ``y_true`` ``(N, ...)`` integer labels; ``y_pred`` ``(N, ..., C)`` scores.
    """

    default_name = "multiclass_hinge"

    def __init__(self, margin: float = 1.0, reduction: str = "sum_over_batch_size",
                 name: str | None = None):
        super().__init__(reduction, name)
        self.margin = check_float(margin, "margin", type(self).__name__, low=0.0,
                                  low_open=True)

    def compute(self, y_true, y_pred, reduction):
        labels = _labels(y_true, y_pred, type(self).__name__)
        return F.multiclass_hinge(labels, y_pred, margin=self.margin,
                                  reduction=_TO_FUNCTIONAL[reduction])

    def get_config(self) -> dict:
        return {**super().get_config(), "margin": self.margin}


get, serialize, deserialize = registry.functions()


__all__ = [
    "BinaryCrossentropy", "CategoricalCrossentropy", "Hinge", "Loss", "MeanAbsoluteError",
    "MeanSquaredError", "MulticlassHinge", "SparseCategoricalCrossentropy", "deserialize",
    "get", "serialize",
]
