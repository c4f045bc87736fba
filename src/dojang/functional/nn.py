"""Activations, losses, dropout and batch normalization with argument checking.

Each function checks its arguments (types, ranges, shapes, label values) before any
array work, then calls the op in ``dojang.ops``. Messages name the function, the
argument, what was expected and what was received. Targets given as arrays are cast to
the predictions' dtype; integer class labels must lie in ``[0, C)``.

Losses take ``reduction`` in ``("mean", "sum", "none")`` and default to ``"mean"``;
``"mean"`` averages every per-element loss (see ``dojang.ops.losses``).
"""

from __future__ import annotations

import numpy as np

from dojang import ops
from dojang.autograd import Tensor
from dojang.autograd.tensor import as_array
from dojang.backend import get_array_module
from dojang.functional._args import check_name
from dojang.ops.losses import REDUCTIONS
from dojang.validation import check_choice, check_float, is_int

__all__ = [
    "batch_normalization", "binary_crossentropy", "dropout", "elu", "gelu", "leaky_relu",
    "log_softmax", "mean_absolute_error", "mean_squared_error", "multiclass_hinge", "relu",
    "sigmoid", "sigmoid_cross_entropy_with_logits", "softmax",
    "softmax_cross_entropy_with_logits", "sparse_softmax_cross_entropy_with_logits", "tanh",
]


# ---------------------------------------------------------------------------- checks
def _tensor(x, name: str, owner: str, *, floating: bool = True) -> Tensor:
    """``x`` as a Tensor (arrays are wrapped without a copy), float unless told otherwise."""
    if not isinstance(x, Tensor):
        try:
            x = Tensor(as_array(x))
        except TypeError:
            raise TypeError(f"{owner}: Expected {name} to be a Tensor, an array or a (nested) "
                            f"list of numbers. Received: {name} of type "
                            f"{type(x).__name__}") from None
    if floating and x.dtype.kind != "f":
        raise TypeError(f"{owner}: Expected {name} to be a floating-point tensor. Received: "
                        f"{name} with dtype={x.dtype}")
    return x


def _axis(axis, ndim: int, owner: str, name: str = "axis") -> int:
    if not is_int(axis) or not -ndim <= axis < ndim:
        raise ValueError(f"{owner}: Expected {name} to be an int in [{-ndim}, {ndim}) for an "
                         f"input of rank {ndim}. Received: {name}={axis!r}")
    return int(axis) % ndim


def _rank_at_least(x: Tensor, rank: int, name: str, owner: str) -> None:
    if x.ndim < rank:
        raise ValueError(f"{owner}: Expected {name} of rank >= {rank}. Received: "
                         f"{name}.shape={x.shape}")


def _bool(value, name: str, owner: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner}: Expected {name} to be a bool. Received: {name}={value!r}")
    return bool(value)


def _target(y, like: Tensor, name: str, like_name: str, owner: str) -> Tensor:
    """A target with ``like``'s shape, cast to ``like``'s dtype (differentiably)."""
    y = _tensor(y, name, owner, floating=False)
    if y.shape != like.shape:
        raise ValueError(f"{owner}: Expected {name} to have the shape of {like_name}, "
                         f"{like.shape}. Received: {name}.shape={y.shape}")
    return y if y.dtype == like.dtype else ops.cast(y, like.dtype)


def _class_labels(labels, logits: Tensor, axis: int, owner: str, logits_name: str):
    """Integer labels shaped like ``logits`` without ``axis``, each in ``[0, C)``."""
    data = labels.data if isinstance(labels, Tensor) else labels
    try:
        data = as_array(data)
    except TypeError:
        raise TypeError(f"{owner}: Expected labels to be an integer array. Received: labels "
                        f"of type {type(labels).__name__}") from None
    if data.dtype.kind == "f" and bool((data == data.round()).all()):
        data = data.astype(np.int64)
    if data.dtype.kind not in "iu":
        raise TypeError(f"{owner}: Expected labels to be integer class indices. Received: "
                        f"labels with dtype={data.dtype}")
    expected = logits.shape[:axis] + logits.shape[axis + 1:]
    if data.shape != expected:
        raise ValueError(f"{owner}: Expected labels of shape {expected} ({logits_name}.shape="
                         f"{logits.shape} without axis {axis}). Received: "
                         f"labels.shape={data.shape}")
    n = logits.shape[axis]
    if data.size and (int(data.min()) < 0 or int(data.max()) >= n):
        bad = int(data.min()) if int(data.min()) < 0 else int(data.max())
        raise ValueError(f"{owner}: Expected labels in [0, {n}) for {n} classes. Received: a "
                         f"label {bad}")
    return data


def _reduction(reduction, owner: str) -> str:
    return check_choice(reduction, REDUCTIONS, "reduction", owner)


def _class_logits(logits, axis, owner: str, name: str = "logits") -> tuple[Tensor, int]:
    logits = _tensor(logits, name, owner)
    _rank_at_least(logits, 1, name, owner)
    return logits, _axis(axis, logits.ndim, owner)


# ---------------------------------------------------------------------------- activations
def relu(features, name: str | None = None) -> Tensor:
    """Rectified linear unit ``max(features, 0)``.

    Input shape: any. Output shape: same.

    Raises:
        TypeError: non-numeric or non-float input.

    Example:
        >>> relu([-1.0, 2.0]).numpy()
        array([0., 2.], dtype=float32)
    """
    check_name(name, "relu")
    return ops.relu(_tensor(features, "features", "relu"))


def leaky_relu(features, alpha: float = 0.2, name: str | None = None) -> Tensor:
    """``features`` where positive, ``alpha * features`` elsewhere (Keras's default 0.2).

    Raises:
        TypeError: non-float input or non-numeric ``alpha``.

    Example:
        >>> leaky_relu([-1.0, 2.0]).numpy()
        array([-0.2,  2. ], dtype=float32)
    """
    check_name(name, "leaky_relu")
    alpha = check_float(alpha, "alpha", "leaky_relu")
    return ops.leaky_relu(_tensor(features, "features", "leaky_relu"), alpha)


def elu(features, alpha: float = 1.0, name: str | None = None) -> Tensor:
    """Exponential linear unit: ``x`` where positive, ``alpha * (exp(x) - 1)`` elsewhere.

    Example:
        >>> elu([0.0, 1.0]).numpy()
        array([0., 1.], dtype=float32)
    """
    check_name(name, "elu")
    alpha = check_float(alpha, "alpha", "elu")
    return ops.elu(_tensor(features, "features", "elu"), alpha)


def sigmoid(x, name: str | None = None) -> Tensor:
    """Logistic sigmoid, stable for any input; keeps its logits for the losses.

    Example:
        >>> sigmoid([0.0]).numpy()
        array([0.5], dtype=float32)
    """
    check_name(name, "sigmoid")
    return ops.sigmoid(_tensor(x, "x", "sigmoid"))


def tanh(x, name: str | None = None) -> Tensor:
    """Hyperbolic tangent.

    Example:
        >>> tanh([0.0]).numpy()
        array([0.], dtype=float32)
    """
    check_name(name, "tanh")
    return ops.tanh(_tensor(x, "x", "tanh"))


def gelu(features, approximate: bool = False, name: str | None = None) -> Tensor:
    """Gaussian error linear unit ``x * Phi(x)`` (exact erf form, or the tanh approximation).

    Example:
        >>> gelu([0.0]).numpy()
        array([0.], dtype=float32)
    """
    check_name(name, "gelu")
    approximate = _bool(approximate, "approximate", "gelu")
    return ops.gelu(_tensor(features, "features", "gelu"), approximate)


def softmax(logits, axis: int = -1, name: str | None = None) -> Tensor:
    """Softmax along ``axis``; the result's creator keeps the logits (see ``ops.Softmax``).

    Raises:
        ValueError: ``axis`` out of range or a 0-d input.

    Example:
        >>> softmax([0.0, 0.0]).numpy()
        array([0.5, 0.5], dtype=float32)
    """
    check_name(name, "softmax")
    logits, axis = _class_logits(logits, axis, "softmax")
    return ops.softmax(logits, axis)


def log_softmax(logits, axis: int = -1, name: str | None = None) -> Tensor:
    """Logarithm of the softmax along ``axis``, computed stably as ``x - logsumexp(x)``.

    Example:
        >>> log_softmax([0.0, 0.0]).numpy()
        array([-0.6931472, -0.6931472], dtype=float32)
    """
    check_name(name, "log_softmax")
    logits, axis = _class_logits(logits, axis, "log_softmax")
    return ops.log_softmax(logits, axis)


# ---------------------------------------------------------------------------- losses
def sparse_softmax_cross_entropy_with_logits(labels, logits, axis: int = -1,
                                             reduction: str = "mean",
                                             name: str | None = None) -> Tensor:
    """Softmax cross-entropy from logits and integer class labels (fused, stable).

    Args:
        labels: integer class indices (whole-valued floats are accepted), in ``[0, C)``.
        logits: unnormalized scores with the ``C`` classes on ``axis``.
        axis: the class axis of ``logits``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Input shape: ``logits`` ``(N, C)`` (generally ``(..., C, ...)``), ``labels`` ``(N,)``.
    Output shape: ``()``, or ``labels.shape`` for ``reduction="none"``.

    Raises:
        TypeError: non-integer labels or non-float logits.
        ValueError: labels of the wrong shape or out of range, bad axis or reduction.

    Example:
        >>> float(sparse_softmax_cross_entropy_with_logits([0], [[0.0, 0.0]]))
        0.6931471824645996
    """
    check_name(name, "sparse_softmax_cross_entropy_with_logits")
    owner = "sparse_softmax_cross_entropy_with_logits"
    reduction = _reduction(reduction, owner)
    logits, axis = _class_logits(logits, axis, owner)
    labels = _class_labels(labels, logits, axis, owner, "logits")
    return ops.sparse_softmax_cross_entropy(labels, logits, axis, reduction)


def softmax_cross_entropy_with_logits(labels, logits, axis: int = -1,
                                      label_smoothing: float = 0.0,
                                      reduction: str = "mean", name: str | None = None) -> Tensor:
    """Softmax cross-entropy from logits and one-hot (or probability) labels.

    With ``label_smoothing = s`` the labels become ``labels * (1 - s) + s / C``.

    Input shape: ``labels`` and ``logits`` alike, classes on ``axis``.
    Output shape: ``()``, or ``logits.shape`` without ``axis`` for ``reduction="none"``.

    Raises:
        ValueError: shapes differ, ``label_smoothing`` outside ``[0, 1]``, bad axis or
            reduction.

    Example:
        >>> float(softmax_cross_entropy_with_logits([[1.0, 0.0]], [[0.0, 0.0]]))
        0.6931471824645996
    """
    check_name(name, "softmax_cross_entropy_with_logits")
    owner = "softmax_cross_entropy_with_logits"
    reduction = _reduction(reduction, owner)
    label_smoothing = check_float(label_smoothing, "label_smoothing", owner, low=0.0, high=1.0)
    logits, axis = _class_logits(logits, axis, owner)
    labels = _target(labels, logits, "labels", "logits", owner)
    return ops.softmax_cross_entropy(labels, logits, axis, label_smoothing, reduction)


def sigmoid_cross_entropy_with_logits(labels, logits, reduction: str = "mean",
                                      name: str | None = None) -> Tensor:
    """Binary cross-entropy from logits, ``max(x, 0) - x z + log(1 + exp(-|x|))``.

    Input shape: ``labels`` and ``logits`` alike. Output shape: ``()`` or that shape.

    Example:
        >>> float(sigmoid_cross_entropy_with_logits([1.0], [0.0]))
        0.6931471824645996
    """
    check_name(name, "sigmoid_cross_entropy_with_logits")
    owner = "sigmoid_cross_entropy_with_logits"
    reduction = _reduction(reduction, owner)
    logits = _tensor(logits, "logits", owner)
    return ops.sigmoid_cross_entropy(_target(labels, logits, "labels", "logits", owner),
                                     logits, reduction)


def binary_crossentropy(labels, probs, epsilon: float = 1e-7,
                        reduction: str = "mean") -> Tensor:
    """Binary cross-entropy from probabilities clipped to ``[epsilon, 1 - epsilon]`` (Keras).

    Input shape: ``labels`` and ``probs`` alike. Output shape: ``()`` or that shape.

    Raises:
        ValueError: shapes differ, ``epsilon`` outside ``(0, 0.5)``, bad reduction.

    Example:
        >>> round(float(binary_crossentropy([1.0], [0.5])), 6)
        0.693147
    """
    owner = "binary_crossentropy"
    reduction = _reduction(reduction, owner)
    epsilon = check_float(epsilon, "epsilon", owner, low=0.0, high=0.5, low_open=True,
                          high_open=True)
    probs = _tensor(probs, "probs", owner)
    return ops.binary_cross_entropy(_target(labels, probs, "labels", "probs", owner), probs,
                                    epsilon, reduction)


def _regression(y_true, y_pred, reduction, owner: str):
    reduction = _reduction(reduction, owner)
    y_pred = _tensor(y_pred, "y_pred", owner)
    return _target(y_true, y_pred, "y_true", "y_pred", owner), y_pred, reduction


def mean_squared_error(y_true, y_pred, reduction: str = "mean") -> Tensor:
    """Squared error ``(y_pred - y_true)**2``; ``"mean"`` averages over every element.

    Input shape: ``y_true`` and ``y_pred`` alike. Output shape: ``()`` or that shape.

    Example:
        >>> float(mean_squared_error([0.0, 0.0], [1.0, 3.0]))
        5.0
    """
    return ops.mean_squared_error(*_regression(y_true, y_pred, reduction, "mean_squared_error"))


def mean_absolute_error(y_true, y_pred, reduction: str = "mean") -> Tensor:
    """Absolute error ``|y_pred - y_true|``; ``"mean"`` averages over every element.

    Example:
        >>> float(mean_absolute_error([0.0, 0.0], [1.0, -3.0]))
        2.0
    """
    return ops.mean_absolute_error(*_regression(y_true, y_pred, reduction,
                                                "mean_absolute_error"))


def multiclass_hinge(labels, scores, margin: float = 1.0, axis: int = -1,
                     reduction: str = "mean") -> Tensor:
    """The multiclass SVM loss of cs231n: ``sum_{c != y} max(0, s_c - s_y + margin)``.

    Input shape: ``scores`` ``(N, C)`` (classes on ``axis``), ``labels`` ``(N,)`` integers.
    Output shape: ``()``, or ``labels.shape`` for ``reduction="none"``.

    Raises:
        ValueError: labels of the wrong shape or out of range, negative margin.

    Example:
        >>> float(multiclass_hinge([0], [[3.0, 2.5, -1.0]]))
        0.5
    """
    owner = "multiclass_hinge"
    reduction = _reduction(reduction, owner)
    margin = check_float(margin, "margin", owner, low=0.0)
    scores, axis = _class_logits(scores, axis, owner, "scores")
    labels = _class_labels(labels, scores, axis, owner, "scores")
    return ops.multiclass_hinge(labels, scores, margin, axis, reduction)


# ---------------------------------------------------------------------------- dropout / BN
def dropout(x, rate: float, rng: np.random.Generator, noise_shape=None,
            training: bool = True, name: str | None = None) -> Tensor:
    """Inverted dropout with a mask drawn from ``rng`` (see ``ops.nn.dropout_mask``).

    Args:
        x: float input.
        rate: drop probability in ``[0, 1)``; kept values are scaled by ``1 / (1 - rate)``.
        rng: a ``np.random.Generator``; the same state gives the same mask.
        noise_shape: the mask's shape, one entry per axis of ``x``, each ``None`` (= that
            axis of ``x``), 1 (shared along the axis) or the axis length.
        training: when false the input is returned unchanged.

    Input shape: any. Output shape: same.

    Raises:
        TypeError: ``rng`` is not a Generator.
        ValueError: ``rate`` outside ``[0, 1)`` or a bad ``noise_shape``.

    Example:
        >>> import numpy as np
        >>> y = dropout(np.ones((2, 3), np.float32), 0.5, np.random.default_rng(0))
        >>> sorted(set(y.numpy().ravel().tolist())) in ([0.0, 2.0], [0.0], [2.0])
        True
    """
    check_name(name, "dropout")
    owner = "dropout"
    rate = check_float(rate, "rate", owner, low=0.0, high=1.0, high_open=True)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{owner}: Expected rng to be a numpy.random.Generator (e.g. "
                        f"np.random.default_rng(seed)). Received: rng={rng!r}")
    training = _bool(training, "training", owner)
    x = _tensor(x, "x", owner)
    if noise_shape is not None:
        noise_shape = _noise_shape(noise_shape, x.shape, owner)
    return ops.dropout(x, rate, rng, noise_shape, training)


def _noise_shape(noise_shape, x_shape: tuple[int, ...], owner: str) -> tuple[int, ...]:
    """Resolve ``None`` entries to ``x``'s axes; every entry must be 1 or the axis length."""
    shape = tuple(noise_shape) if isinstance(noise_shape, (tuple, list)) else ()
    pairs = list(zip(shape, x_shape, strict=False))
    if len(shape) != len(x_shape) or any(
        not (s is None or (is_int(s) and s in (1, n))) for s, n in pairs
    ):
        raise ValueError(f"{owner}: Expected noise_shape to have one entry per axis of x "
                         f"(shape {x_shape}), each None, 1 or that axis' length. "
                         f"Received: noise_shape={noise_shape!r}")
    return tuple(n if s is None else int(s) for s, n in pairs)


def _channel_vector(v, name: str, channels: int, owner: str, *, state: bool = False):
    """A ``(C,)`` parameter; running statistics must be arrays/Tensors (updated in place)."""
    if v is None:
        return None
    is_array = isinstance(v, (Tensor, np.ndarray)) or get_array_module(v) is not np
    if state and not is_array:
        raise TypeError(f"{owner}: Expected {name} to be an array or a Tensor (it is updated in "
                        f"place). Received: {name} of type {type(v).__name__}")
    v = _tensor(v, name, owner)
    if v.shape != (channels,):
        raise ValueError(f"{owner}: Expected {name} of shape ({channels},). Received: "
                         f"{name}.shape={v.shape}")
    return v


def batch_normalization(x, gamma, beta, running_mean, running_var, training: bool,
                        momentum: float = 0.99, epsilon: float = 1e-3,
                        axis: int = -1, name: str | None = None, *, residual=None,
                        activation: str | None = None) -> Tensor:
    """Batch normalization over every axis except ``axis`` (Keras semantics), optionally
    followed by a residual sum and a ReLU in the same op: ``relu(bn(x) + residual)``.

    Training: ``y = gamma (x - mean) / sqrt(var + epsilon) + beta`` with the batch mean and
    biased variance; ``running_mean``/``running_var`` (if given) are updated in place,
    ``running = momentum * running + (1 - momentum) * batch``. Inference: the running
    statistics replace the batch ones. ``gamma``/``beta`` may be None.

    Args:
        x: float input, channels on ``axis`` (-1 for NHWC, 1 for NCHW).
        gamma, beta: ``(C,)`` scale and offset, or None.
        running_mean, running_var: ``(C,)`` arrays or Tensors; required for inference.
        training: use (and update) batch statistics.
        momentum: in ``[0, 1]``; epsilon: ``> 0``.
        residual: added after the normalization (a residual block's shortcut), or None.
        activation: ``"relu"`` applied last, or None.

    Input shape: ``(..., C, ...)``; ``residual``: the same. Output shape: same.

    Raises:
        TypeError: non-float input, running statistics that are not arrays.
        ValueError: parameter shapes, bad axis/momentum/epsilon, inference without
            running statistics, a residual of another shape, an activation other than relu.

    Example:
        >>> import numpy as np
        >>> x = np.array([[1.0], [3.0]])
        >>> y = batch_normalization(x, None, None, None, None, training=True, epsilon=0.0)
        >>> y.numpy().ravel().tolist()
        [-1.0, 1.0]
    """
    check_name(name, "batch_normalization")
    owner = "batch_normalization"
    training = _bool(training, "training", owner)
    momentum = check_float(momentum, "momentum", owner, low=0.0, high=1.0)
    epsilon = check_float(epsilon, "epsilon", owner, low=0.0)
    x = _tensor(x, "x", owner)
    _rank_at_least(x, 1, "x", owner)
    axis = _axis(axis, x.ndim, owner)
    if residual is not None:
        residual = _target(residual, x, "residual", "x", owner)
    if activation is not None:
        check_choice(activation, ("relu",), "activation", owner)
    c = x.shape[axis]
    gamma, beta = (None if v is None else v if v.dtype == x.dtype else ops.cast(v, x.dtype)
                   for v in (_channel_vector(gamma, "gamma", c, owner),
                             _channel_vector(beta, "beta", c, owner)))
    stats = [_channel_vector(v, n, c, owner, state=True)
             for v, n in ((running_mean, "running_mean"), (running_var, "running_var"))]
    if not training and any(s is None for s in stats):
        raise ValueError(f"{owner}: Expected running_mean and running_var for inference "
                         f"(training=False). Received: running_mean={running_mean is not None}"
                         f" given, running_var={running_var is not None} given")
    return ops.batch_norm(x, gamma, beta, *stats, training, momentum, epsilon, axis, residual,
                          activation is not None)
