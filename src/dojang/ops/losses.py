"""Loss functions, each one fused ``Function``: forward and backward in a single pass.

Every loss takes the targets first and the predictions second (as ``tf.nn`` and Keras
do) and a ``reduction``:

- ``"mean"``: the mean over every per-element loss (for the classification losses one
  loss per example; for the elementwise losses, MSE, MAE and the binary cross-entropies,
  one per element, so the mean is over all elements, which equals Keras's mean over the
  last axis followed by the mean over the batch);
- ``"sum"``: their sum;
- ``"none"``: the per-element losses themselves.

Classification losses move the class axis last and flatten the rest into ``M`` rows, so
``logits`` of shape ``(M, C)`` is the general case. Labels never get a gradient when they
are integer class indices; probability targets (``softmax_cross_entropy``,
``sigmoid_cross_entropy``, ``binary_cross_entropy``) and regression targets do.

Arguments are not checked here; ``dojang.functional`` holds the checked entry points.
"""

from __future__ import annotations

from dojang.autograd import Function, Tensor, sum_to_shape
from dojang.autograd.tensor import as_array
from dojang.backend import get_array_module
from dojang.kernels import dispatch
from dojang.ops.activations import _stable_sigmoid
from dojang.ops.elementwise import _operand

__all__ = [
    "binary_cross_entropy", "mean_absolute_error", "mean_squared_error", "multiclass_hinge",
    "sigmoid_cross_entropy", "softmax_cross_entropy", "sparse_softmax_cross_entropy",
]

REDUCTIONS = ("mean", "sum", "none")


def _rows(x, axis: int):
    """Move the class axis last and flatten the others: ``(..., C, ...) -> (M, C)``."""
    moved = get_array_module(x).moveaxis(x, axis, -1)
    return moved.reshape(-1, moved.shape[-1]), moved.shape


def _unrows(g2, moved_shape, axis: int):
    """Inverse of ``_rows`` for a gradient."""
    return get_array_module(g2).moveaxis(g2.reshape(moved_shape), -1, axis)


def _lse_shift(x2):
    """``x - max(x)`` per row and ``log(sum(exp(x - max)))`` with keepdims (no overflow)."""
    xp = get_array_module(x2)
    shifted = x2 - x2.max(axis=1, keepdims=True)
    return shifted, xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))


class _Loss(Function):
    """Reduction shared by every loss; ``_upstream`` is its adjoint."""

    def __init__(self, reduction: str):
        self.reduction = reduction

    def _reduce(self, loss):
        self.count = loss.size
        if self.reduction == "none":
            return loss
        total = loss.sum()
        if self.reduction == "mean":
            total = total / self.count
        return get_array_module(loss).asarray(total, dtype=loss.dtype)

    def _upstream(self, gy):
        """Gradient with respect to each per-element loss (broadcastable to its shape)."""
        return gy / self.count if self.reduction == "mean" else gy


class SparseSoftmaxCrossEntropy(_Loss):
    """``loss_m = logsumexp(x_m) - x_m[y_m]``; ``d loss_m / dx_m = softmax(x_m) - onehot(y_m)``.

    The softmax is kept from forward; backward subtracts 1 at the label by indexing, so no
    one-hot array is ever built.
    """

    def __init__(self, axis: int, reduction: str):
        super().__init__(reduction)
        self.axis = axis

    def forward(self, labels, logits):
        x2, self.moved = _rows(logits, self.axis)
        self.labels = labels.reshape(-1)
        loss, self.p = dispatch("loss.sparse_softmax_xent", x2, self.labels)
        return self._reduce(loss.reshape(labels.shape))

    def backward(self, gy):
        scale = self._upstream(gy).reshape(-1)
        g = dispatch("loss.sparse_softmax_xent_grad", self.p, self.labels, scale)
        return None, _unrows(g, self.moved, self.axis)


class SoftmaxCrossEntropy(_Loss):
    """``loss_m = -sum_c t_mc log softmax(x_m)_c`` with ``t = y (1 - s) + s / C``.

    ``d loss / dx = softmax(x) * sum_c t_c - t``; ``d loss / dy = -(1 - s) log softmax(x)``.
    """

    def __init__(self, axis: int, label_smoothing: float, reduction: str):
        super().__init__(reduction)
        self.axis, self.smoothing = axis, label_smoothing

    def forward(self, labels, logits):
        x2, self.moved = _rows(logits, self.axis)
        t2, _ = _rows(labels, self.axis)
        if self.smoothing:
            t2 = t2 * (1 - self.smoothing) + self.smoothing / t2.shape[1]
        shifted, lse = _lse_shift(x2)
        shifted -= lse
        self.logp, self.t = shifted, t2
        loss = -(t2 * shifted).sum(axis=1)
        return self._reduce(loss.reshape(self.moved[:-1]))

    def backward(self, gy):
        xp = get_array_module(gy)
        scale = self._upstream(gy).reshape(-1, 1)
        g_labels = g_logits = None
        if self.needs_input_grad[0]:
            g_labels = _unrows(-(1 - self.smoothing) * scale * self.logp, self.moved, self.axis)
        if self.needs_input_grad[1]:
            t = self.t
            g2 = (xp.exp(self.logp) * t.sum(axis=1, keepdims=True) - t) * scale
            g_logits = _unrows(g2, self.moved, self.axis)
        return g_labels, g_logits


class SigmoidCrossEntropy(_Loss):
    """``loss = max(x, 0) - x z + log1p(exp(-|x|))``; ``dx = sigmoid(x) - z``, ``dz = -x``."""

    def forward(self, labels, logits):
        xp = get_array_module(logits)
        self.x, self.z = logits, labels
        loss = xp.maximum(logits, 0) - logits * labels + xp.log1p(xp.exp(-abs(logits)))
        return self._reduce(loss)

    def backward(self, gy):
        g = self._upstream(gy)
        gz = -self.x * g if self.needs_input_grad[0] else None
        gx = (_stable_sigmoid(self.x) - self.z) * g if self.needs_input_grad[1] else None
        return gz, gx


class BinaryCrossEntropy(_Loss):
    """``loss = -(z log p + (1 - z) log(1 - p))`` with ``p`` clipped to ``[eps, 1 - eps]``.

    As in Keras, the clip's gradient is zero where ``p`` lies outside the interval.
    ``dp = (1 - z) / (1 - p) - z / p``; ``dz = log(1 - p) - log p``.
    """

    def __init__(self, epsilon: float, reduction: str):
        super().__init__(reduction)
        self.epsilon = epsilon

    def forward(self, labels, probs):
        xp = get_array_module(probs)
        eps = self.epsilon
        self.inside = (probs >= eps) & (probs <= 1 - eps)
        p = xp.clip(probs, eps, 1 - eps)
        self.p, self.z = p, labels
        self.log_p, self.log_q = xp.log(p), xp.log1p(-p)
        return self._reduce(-(labels * self.log_p + (1 - labels) * self.log_q))

    def backward(self, gy):
        g = self._upstream(gy)
        p, z = self.p, self.z
        gz = (self.log_q - self.log_p) * g if self.needs_input_grad[0] else None
        gp = None
        if self.needs_input_grad[1]:
            gp = ((1 - z) / (1 - p) - z / p) * g * self.inside
        return gz, gp


class _Regression(_Loss):
    """Losses of the difference ``d = y_pred - y_true``: ``_value(d)`` and ``_slope(d)``."""

    def forward(self, y_true, y_pred):
        self.true_shape, self.pred_shape = y_true.shape, y_pred.shape
        self.d = y_pred - y_true
        return self._reduce(self._value(self.d))

    def backward(self, gy):
        gd = self._slope(self.d) * self._upstream(gy)
        g_true = -sum_to_shape(gd, self.true_shape) if self.needs_input_grad[0] else None
        g_pred = sum_to_shape(gd, self.pred_shape) if self.needs_input_grad[1] else None
        return g_true, g_pred


class MeanSquaredError(_Regression):
    """``loss = d**2``; ``d loss / d y_pred = 2 d``."""

    _value = staticmethod(lambda d: d * d)
    _slope = staticmethod(lambda d: 2 * d)


class MeanAbsoluteError(_Regression):
    """``loss = |d|``; ``d loss / d y_pred = sign(d)`` (0 at d = 0, as in PyTorch)."""

    _value = staticmethod(lambda d: abs(d))
    _slope = staticmethod(lambda d: get_array_module(d).sign(d))


class MulticlassHinge(_Loss):
    """cs231n's SVM loss ``loss_m = sum_{c != y_m} max(0, s_mc - s_my + margin)``.

    Every active margin (``> 0``) adds ``+1`` to its class and ``-1`` to the true class.
    """

    def __init__(self, margin: float, axis: int, reduction: str):
        super().__init__(reduction)
        self.margin, self.axis = margin, axis

    def forward(self, labels, scores):
        xp = get_array_module(scores)
        s2, self.moved = _rows(scores, self.axis)
        self.labels = labels.reshape(-1)
        self.rows = xp.arange(s2.shape[0])
        margins = s2 - s2[self.rows, self.labels][:, None] + self.margin
        margins[self.rows, self.labels] = 0
        self.active = margins > 0
        margins *= self.active
        return self._reduce(margins.sum(axis=1).reshape(labels.shape))

    def backward(self, gy):
        scale = self._upstream(gy).reshape(-1, 1)
        g = self.active * scale
        g[self.rows, self.labels] -= (self.active.sum(axis=1) * scale[:, 0]).astype(g.dtype)
        return None, _unrows(g, self.moved, self.axis)


def _labels(labels):
    """Integer class labels as a raw array (they never get a gradient)."""
    return as_array(labels)


def sparse_softmax_cross_entropy(labels, logits, axis: int = -1,
                                 reduction: str = "mean") -> Tensor:
    """Softmax cross-entropy from logits with integer class labels (fused and stable).

    Input shape: ``logits`` ``(..., C, ...)`` with the classes on ``axis``; ``labels`` the
    same shape without that axis, integers in ``[0, C)``.
    Output shape: ``()`` for ``mean``/``sum``, ``labels.shape`` for ``none``.
    """
    logits = _operand(logits)
    return SparseSoftmaxCrossEntropy.apply(_labels(labels), logits, axis=axis % logits.ndim,
                                           reduction=reduction)


def softmax_cross_entropy(labels, logits, axis: int = -1, label_smoothing: float = 0.0,
                          reduction: str = "mean") -> Tensor:
    """Softmax cross-entropy from logits with one-hot or probability labels.

    Input shape: ``labels`` and ``logits`` alike, classes on ``axis``.
    Output shape: ``()``, or ``logits.shape`` without ``axis`` for ``none``.
    """
    logits = _operand(logits)
    return SoftmaxCrossEntropy.apply(_operand(labels), logits, axis=axis % logits.ndim,
                                     label_smoothing=label_smoothing, reduction=reduction)


def sigmoid_cross_entropy(labels, logits, reduction: str = "mean") -> Tensor:
    """Binary cross-entropy from logits, elementwise (stable for any logit)."""
    return SigmoidCrossEntropy.apply(_operand(labels), _operand(logits), reduction=reduction)


def binary_cross_entropy(labels, probs, epsilon: float = 1e-7,
                         reduction: str = "mean") -> Tensor:
    """Binary cross-entropy from probabilities clipped to ``[epsilon, 1 - epsilon]``."""
    return BinaryCrossEntropy.apply(_operand(labels), _operand(probs), epsilon=epsilon,
                                    reduction=reduction)


def mean_squared_error(y_true, y_pred, reduction: str = "mean") -> Tensor:
    """Squared error ``(y_pred - y_true)**2``, reduced over all elements."""
    return MeanSquaredError.apply(_operand(y_true), _operand(y_pred), reduction=reduction)


def mean_absolute_error(y_true, y_pred, reduction: str = "mean") -> Tensor:
    """Absolute error ``|y_pred - y_true|``, reduced over all elements."""
    return MeanAbsoluteError.apply(_operand(y_true), _operand(y_pred), reduction=reduction)


def multiclass_hinge(labels, scores, margin: float = 1.0, axis: int = -1,
                     reduction: str = "mean") -> Tensor:
    """Multiclass SVM (hinge) loss of cs231n with integer labels.

    Input shape: ``scores`` ``(..., C, ...)`` with classes on ``axis``; ``labels`` without it.
    Output shape: ``()``, or ``labels.shape`` for ``none``.
    """
    scores = _operand(scores)
    return MulticlassHinge.apply(_labels(labels), scores, margin=margin,
                                 axis=axis % scores.ndim, reduction=reduction)
