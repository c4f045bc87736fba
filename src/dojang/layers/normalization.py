"""Batch normalization."""

from __future__ import annotations

from dojang import functional as F
from dojang.layers._args import (
    check_bool,
    resolve_initializer,
    resolve_regularizer,
    serialize_initializer,
    serialize_regularizer,
)
from dojang.layers.base import InputSpec, Layer
from dojang.validation import check_float, is_int


class BatchNormalization(Layer):
    """Normalize each channel with batch statistics in training, moving averages otherwise.

    Training: ``y = gamma * (x - mean_B) / sqrt(var_B + epsilon) + beta`` with the batch
    mean and (biased) variance over every axis but ``axis``, and
    ``moving = momentum * moving + (1 - momentum) * batch`` (Keras's convention;
    PyTorch's momentum is ``1 - momentum``). Inference uses the moving statistics.

    Args:
        axis: the channel axis (-1 for channels_last, 1 for channels_first).
        momentum: weight of the old moving statistics, in [0, 1].
        epsilon: added to the variance, > 0.
        center, scale: learn ``beta`` / ``gamma``.
        beta_initializer, gamma_initializer, moving_mean_initializer,
        moving_variance_initializer, beta_regularizer, gamma_regularizer.

    Input shape: any, channels on ``axis``. Output shape: same.
    Parameters: ``4 * C`` (``gamma``, ``beta`` trainable; the two moving statistics not).

    Example:
        >>> import numpy as np, dojang as dj
        >>> bn = dj.layers.BatchNormalization()
        >>> bn(np.ones((2, 4, 4, 3))).shape, bn.count_params()
        ((2, 4, 4, 3), 12)
    """

    def __init__(self, axis: int = -1, momentum: float = 0.99, epsilon: float = 1e-3,
                 center: bool = True, scale: bool = True, beta_initializer="zeros",
                 gamma_initializer="ones", moving_mean_initializer="zeros",
                 moving_variance_initializer="ones", beta_regularizer=None,
                 gamma_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        owner = type(self).__name__
        if not is_int(axis):
            raise TypeError(f"{owner}: Expected axis to be an int. Received: axis={axis!r}")
        self.axis = int(axis)
        self.momentum = check_float(momentum, "momentum", owner, low=0.0, high=1.0)
        self.epsilon = check_float(epsilon, "epsilon", owner, low=0.0, low_open=True)
        self.center = check_bool(center, "center", owner)
        self.scale = check_bool(scale, "scale", owner)
        self.beta_initializer = resolve_initializer(beta_initializer, owner)
        self.gamma_initializer = resolve_initializer(gamma_initializer, owner)
        self.moving_mean_initializer = resolve_initializer(moving_mean_initializer, owner)
        self.moving_variance_initializer = resolve_initializer(moving_variance_initializer,
                                                               owner)
        self.beta_regularizer = resolve_regularizer(beta_regularizer, owner)
        self.gamma_regularizer = resolve_regularizer(gamma_regularizer, owner)
        self.input_spec = InputSpec(min_ndim=max(2, self.axis + 1 if self.axis >= 0
                                                 else -self.axis))

    def build(self, input_shape) -> None:
        if not -len(input_shape) <= self.axis < len(input_shape) or \
                self.axis % len(input_shape) == 0:
            raise ValueError(f"layer '{self.name}' expects input with a channel axis "
                             f"{self.axis} (not the batch axis), received input of shape "
                             f"{tuple(input_shape)}")
        c = input_shape[self.axis]
        self.gamma = self.add_weight("gamma", (c,), self.gamma_initializer,
                                     self.gamma_regularizer) if self.scale else None
        self.beta = self.add_weight("beta", (c,), self.beta_initializer,
                                    self.beta_regularizer) if self.center else None
        self.moving_mean = self.add_weight("moving_mean", (c,), self.moving_mean_initializer,
                                           trainable=False)
        self.moving_variance = self.add_weight("moving_variance", (c,),
                                               self.moving_variance_initializer,
                                               trainable=False)
        self.input_spec = InputSpec(ndim=len(input_shape), axes={self.axis: c})

    def call(self, inputs, training: bool = False, residual=None, activation=None):
        """``residual`` and ``activation``: ``activation(bn(inputs) + residual)`` as one
        op (see ``functional.batch_normalization``); a functional model passes them when
        this layer feeds an ``Add`` and a ``ReLU`` and nothing else (``layers.fusion``)."""
        return F.batch_normalization(inputs, self.gamma, self.beta, self.moving_mean.data,
                                     self.moving_variance.data, training=bool(training),
                                     momentum=self.momentum, epsilon=self.epsilon,
                                     axis=self.axis, residual=residual, activation=activation)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self) -> dict:
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum,
                "epsilon": self.epsilon, "center": self.center, "scale": self.scale,
                "beta_initializer": serialize_initializer(self.beta_initializer),
                "gamma_initializer": serialize_initializer(self.gamma_initializer),
                "moving_mean_initializer": serialize_initializer(self.moving_mean_initializer),
                "moving_variance_initializer": serialize_initializer(
                    self.moving_variance_initializer),
                "beta_regularizer": serialize_regularizer(self.beta_regularizer),
                "gamma_regularizer": serialize_regularizer(self.gamma_regularizer)}
