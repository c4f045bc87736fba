"""Activation layers with parameters: ReLU, LeakyReLU, ELU, Softmax.

Input shape: any. Output shape: same as the input.
"""

from __future__ import annotations

from dojang import functional as F
from dojang import ops
from dojang.layers.base import Layer
from dojang.validation import check_float, is_int


class _Elementwise(Layer):
    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


class ReLU(_Elementwise):
    """Rectified linear unit with Keras's options.

    ``f(x) = max_value`` for ``x >= max_value``; ``x`` for ``threshold <= x < max_value``;
    ``negative_slope * (x - threshold)`` otherwise.

    Args:
        max_value: upper bound (None: none), >= 0.
        negative_slope: slope below the threshold, >= 0.
        threshold: where the function switches from the slope to identity.

    Example:
        >>> import dojang as dj
        >>> dj.layers.ReLU(max_value=6.0)(dj.Tensor([[-1.0, 3.0, 9.0]])).numpy()
        array([[0., 3., 6.]], dtype=float32)
    """

    def __init__(self, max_value: float | None = None, negative_slope: float = 0.0,
                 threshold: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.max_value = None if max_value is None else check_float(
            max_value, "max_value", owner, low=0.0)
        self.negative_slope = check_float(negative_slope, "negative_slope", owner, low=0.0)
        self.threshold = check_float(threshold, "threshold", owner)

    def call(self, inputs, training: bool = False):
        if self.negative_slope == 0.0 and self.threshold == 0.0:
            y = F.relu(inputs)
        else:
            y = ops.where(inputs.data >= self.threshold, inputs,
                          (inputs - self.threshold) * self.negative_slope)
        return y if self.max_value is None else ops.minimum(y, self.max_value)

    def get_config(self) -> dict:
        return {**super().get_config(), "max_value": self.max_value,
                "negative_slope": self.negative_slope, "threshold": self.threshold}


class LeakyReLU(_Elementwise):
    """``f(x) = x`` for ``x >= 0``, ``negative_slope * x`` otherwise (Keras default 0.3).

    Example:
        >>> import dojang as dj
        >>> dj.layers.LeakyReLU(0.5)(dj.Tensor([[-2.0, 2.0]])).numpy()
        array([[-1.,  2.]], dtype=float32)
    """

    def __init__(self, negative_slope: float = 0.3, **kwargs):
        super().__init__(**kwargs)
        self.negative_slope = check_float(negative_slope, "negative_slope",
                                          type(self).__name__, low=0.0)

    def call(self, inputs, training: bool = False):
        return F.leaky_relu(inputs, alpha=self.negative_slope)

    def get_config(self) -> dict:
        return {**super().get_config(), "negative_slope": self.negative_slope}


class ELU(_Elementwise):
    """``f(x) = x`` for ``x > 0``, ``alpha * (exp(x) - 1)`` otherwise.

    Example:
        >>> import dojang as dj
        >>> dj.layers.ELU()(dj.Tensor([[0.0, 1.0]])).numpy()
        array([[0., 1.]], dtype=float32)
    """

    def __init__(self, alpha: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = check_float(alpha, "alpha", type(self).__name__)

    def call(self, inputs, training: bool = False):
        return F.elu(inputs, alpha=self.alpha)

    def get_config(self) -> dict:
        return {**super().get_config(), "alpha": self.alpha}


class Softmax(_Elementwise):
    """``softmax(x)_i = exp(x_i) / sum_j exp(x_j)`` along ``axis``.

    Example:
        >>> import dojang as dj
        >>> dj.layers.Softmax()(dj.Tensor([[0.0, 0.0]])).numpy()
        array([[0.5, 0.5]], dtype=float32)
    """

    def __init__(self, axis: int = -1, **kwargs):
        super().__init__(**kwargs)
        if not is_int(axis):
            raise TypeError(f"Softmax: Expected axis to be an int. Received: axis={axis!r}")
        self.axis = int(axis)

    def call(self, inputs, training: bool = False):
        return F.softmax(inputs, axis=self.axis)

    def get_config(self) -> dict:
        return {**super().get_config(), "axis": self.axis}
