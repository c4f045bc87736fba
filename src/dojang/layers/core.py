"""Core layers: Dense, Flatten, Reshape, Activation, Dropout, SpatialDropout2D."""

from __future__ import annotations

import math

from dojang import functional as F
from dojang import ops
from dojang.layers._args import (
    check_bool,
    check_rate,
    resolve_activation,
    resolve_initializer,
    resolve_regularizer,
    serialize_activation,
    serialize_initializer,
    serialize_regularizer,
)
from dojang.layers.base import InputSpec, Layer
from dojang.validation import check_data_format, check_int, is_int


class Dense(Layer):
    """Fully connected layer: ``activation(x @ kernel + bias)`` over the last axis.

    Args:
        units: number of outputs.
        activation: name or function; None for linear.
        use_bias: add a bias vector.
        kernel_initializer, bias_initializer: initializers (Keras defaults).
        kernel_regularizer, bias_regularizer: optional penalties added to the loss.

    Input shape: ``(N, ..., in_features)``. Output shape: ``(N, ..., units)``.
    Parameters: ``(in_features + 1) * units`` with bias.

    Raises:
        ValueError/TypeError: bad ``units`` or unknown activation/initializer.

    Example:
        >>> import dojang as dj
        >>> dj.layers.Dense(10, activation="softmax")(dj.Tensor([[1.0] * 4])).shape
        (1, 10)
    """

    def __init__(self, units: int, activation=None, use_bias: bool = True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.units = check_int(units, "units", owner, min_value=1)
        self.activation = resolve_activation(activation, owner)
        self.use_bias = check_bool(use_bias, "use_bias", owner)
        self.kernel_initializer = resolve_initializer(kernel_initializer, owner)
        self.bias_initializer = resolve_initializer(bias_initializer, owner)
        self.kernel_regularizer = resolve_regularizer(kernel_regularizer, owner)
        self.bias_regularizer = resolve_regularizer(bias_regularizer, owner)
        self.input_spec = InputSpec(min_ndim=2)

    def build(self, input_shape) -> None:
        in_features = input_shape[-1]
        self.kernel = self.add_weight("kernel", (in_features, self.units),
                                      self.kernel_initializer, self.kernel_regularizer)
        self.bias = (self.add_weight("bias", (self.units,), self.bias_initializer,
                                     self.bias_regularizer) if self.use_bias else None)
        self.input_spec = InputSpec(min_ndim=2, axes={-1: in_features})

    def call(self, inputs, training: bool = False):
        return self.activation(ops.linear(inputs, self.kernel, self.bias))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def compute_macs(self, input_shape, output_shape) -> int:
        return math.prod(input_shape[1:]) * self.units

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units,
                "activation": serialize_activation(self.activation), "use_bias": self.use_bias,
                "kernel_initializer": serialize_initializer(self.kernel_initializer),
                "bias_initializer": serialize_initializer(self.bias_initializer),
                "kernel_regularizer": serialize_regularizer(self.kernel_regularizer),
                "bias_regularizer": serialize_regularizer(self.bias_regularizer)}


class Flatten(Layer):
    """Merge every axis but the batch into one.

    Args:
        data_format: 'channels_first' inputs are moved to channels-last order first, so
            the weights of a following Dense do not depend on the layout (as Keras).

    Input shape: ``(N, d1, d2, ...)``. Output shape: ``(N, d1*d2*...)``.

    Example:
        >>> import numpy as np, dojang as dj
        >>> dj.layers.Flatten()(np.zeros((2, 7, 7, 64))).shape
        (2, 3136)
    """

    def __init__(self, data_format: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = "channels_last" if data_format is None else data_format
        self._channels_last = check_data_format(self.data_format, 2, owner="Flatten")
        self.input_spec = InputSpec(min_ndim=1)

    def call(self, inputs, training: bool = False):
        if not self._channels_last and inputs.ndim > 2:
            inputs = ops.transpose(inputs, (0,) + tuple(range(2, inputs.ndim)) + (1,))
        return ops.reshape(inputs, (inputs.shape[0], -1))

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        return (input_shape[0], None if None in rest else math.prod(rest))

    def receptive_field_spec(self, input_shape):
        return "global" if len(input_shape) > 2 else None

    def get_config(self) -> dict:
        return {**super().get_config(), "data_format": self.data_format}


class Reshape(Layer):
    """Reshape each example to ``target_shape`` (one entry may be -1).

    Input shape: ``(N, ...)``. Output shape: ``(N,) + target_shape``.

    Raises:
        ValueError: if ``target_shape`` is not a tuple of positive ints (one -1 allowed),
            or the input's size does not fit it.

    Example:
        >>> import numpy as np, dojang as dj
        >>> dj.layers.Reshape((4, -1))(np.zeros((2, 12))).shape
        (2, 4, 3)
    """

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        bad = (not isinstance(target_shape, (tuple, list)) or not target_shape
               or not all(is_int(s) and (s > 0 or s == -1) for s in target_shape)
               or list(target_shape).count(-1) > 1)
        if bad:
            raise ValueError("Reshape: Expected target_shape to be a tuple of positive ints "
                             f"(one may be -1). Received: target_shape={target_shape!r}")
        self.target_shape = tuple(int(s) for s in target_shape)

    def _resolve(self, input_shape):
        size = None if None in input_shape[1:] else math.prod(input_shape[1:])
        known = math.prod(s for s in self.target_shape if s != -1)
        if size is None:
            return self.target_shape if -1 not in self.target_shape else tuple(
                None if s == -1 else s for s in self.target_shape)
        if (-1 in self.target_shape and size % known) or (
                -1 not in self.target_shape and size != known):
            raise ValueError(f"layer '{self.name}' expects input with a size compatible with "
                             f"target_shape={self.target_shape}, received input of shape "
                             f"{tuple(input_shape)}")
        return tuple(size // known if s == -1 else s for s in self.target_shape)

    def call(self, inputs, training: bool = False):
        return ops.reshape(inputs, (inputs.shape[0],) + self._resolve(inputs.shape))

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + self._resolve(input_shape)

    def get_config(self) -> dict:
        return {**super().get_config(), "target_shape": list(self.target_shape)}


class Activation(Layer):
    """Apply an activation function elementwise (or softmax over the last axis).

    Input shape: any. Output shape: same as the input.

    Example:
        >>> import dojang as dj
        >>> dj.layers.Activation("relu")(dj.Tensor([[-1.0, 2.0]])).numpy()
        array([[0., 2.]], dtype=float32)
    """

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = resolve_activation(activation, type(self).__name__)

    def call(self, inputs, training: bool = False):
        return self.activation(inputs)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self) -> dict:
        return {**super().get_config(), "activation": serialize_activation(self.activation)}


class Dropout(Layer):
    """Zero a fraction ``rate`` of the inputs during training, scaling the rest by 1/(1-rate).

    At inference (``training=False``) the input passes through unchanged.

    Args:
        rate: fraction to drop, in [0, 1).
        noise_shape: shape of the keep mask, broadcast over the input; ``None`` entries
            take the input's size (``(None, 1, 1, None)`` drops whole feature maps).
        seed: seed of the mask generator.

    Input shape: any. Output shape: same as the input.

    Example:
        >>> import numpy as np, dojang as dj
        >>> layer = dj.layers.Dropout(0.5, seed=0)
        >>> float(layer(np.ones((4, 4))).numpy().sum())   # inference: unchanged
        16.0
    """

    def __init__(self, rate: float, noise_shape=None, **kwargs):
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.rate = check_rate(rate, owner)
        if noise_shape is not None and (not isinstance(noise_shape, (tuple, list)) or not all(
                s is None or (is_int(s) and s >= 1) for s in noise_shape)):
            raise ValueError(f"{owner}: Expected noise_shape to be None or a tuple of ints or "
                             f"None. Received: noise_shape={noise_shape!r}")
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)

    def _noise_shape(self, shape):
        if self.noise_shape is None:
            return None
        if len(self.noise_shape) != len(shape):
            raise ValueError(f"layer '{self.name}' expects input of rank "
                             f"{len(self.noise_shape)} (noise_shape={self.noise_shape}), "
                             f"received input of shape {tuple(shape)}")
        return tuple(n if s is None else s for s, n in zip(self.noise_shape, shape))

    def call(self, inputs, training: bool = False):
        if not training or self.rate == 0.0:
            return inputs
        return F.dropout(inputs, self.rate, self._rng, noise_shape=self._noise_shape(
            inputs.shape), training=True)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self) -> dict:
        noise = None if self.noise_shape is None else list(self.noise_shape)
        return {**super().get_config(), "rate": self.rate, "noise_shape": noise}


class SpatialDropout2D(Dropout):
    """Drop whole feature maps: one keep/drop draw per (example, channel).

    Input shape: ``(N, H, W, C)`` (channels_last) or ``(N, C, H, W)``. Output: the same.

    Example:
        >>> import numpy as np, dojang as dj
        >>> dj.layers.SpatialDropout2D(0.5)(np.ones((1, 4, 4, 3))).shape
        (1, 4, 4, 3)
    """

    def __init__(self, rate: float, data_format: str | None = None, **kwargs):
        super().__init__(rate, **kwargs)
        self.data_format = "channels_last" if data_format is None else data_format
        self._channels_last = check_data_format(self.data_format, 2, owner="SpatialDropout2D")
        self.input_spec = InputSpec(ndim=4)

    def _noise_shape(self, shape):
        n, c = shape[0], shape[-1] if self._channels_last else shape[1]
        return (n, 1, 1, c) if self._channels_last else (n, c, 1, 1)

    def get_config(self) -> dict:
        config = super().get_config()
        del config["noise_shape"]
        return {**config, "data_format": self.data_format}
