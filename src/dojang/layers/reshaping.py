"""Spatial reshaping layers: ZeroPadding2D, Cropping2D, UpSampling2D.

Shapes (channels_last; channels_first moves C to axis 1):

    ZeroPadding2D: (N, H, W, C) -> (N, H + top + bottom, W + left + right, C)
    Cropping2D:    (N, H, W, C) -> (N, H - top - bottom, W - left - right, C)
    UpSampling2D:  (N, H, W, C) -> (N, H * SH, W * SW, C)  (nearest neighbour)
"""

from __future__ import annotations

from dojang import ops
from dojang.backend import get_array_module
from dojang.layers.base import InputSpec, Layer
from dojang.shapes import resolve_padding
from dojang.validation import check_choice, check_data_format, standardize_tuple


def _pairs(value, name: str, owner: str):
    """An int, (sym_h, sym_w) or ((top, bottom), (left, right)) -> two (before, after) pairs."""
    if isinstance(value, str):
        raise ValueError(f"{owner}: Expected {name} to be an int, a tuple of 2 ints or a tuple "
                         f"of 2 (before, after) pairs. Received: {name}={value!r}")
    return resolve_padding(value, (1, 1), (1, 1), (1, 1), (1, 1), name, owner)


class _Spatial2D(Layer):
    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = "channels_last" if data_format is None else data_format
        self._channels_last = check_data_format(self.data_format, 2, owner=type(self).__name__)
        self.input_spec = InputSpec(ndim=4)

    def _axes(self):
        return (1, 2) if self._channels_last else (2, 3)

    def _resize(self, input_shape, fn):
        shape = list(input_shape)
        for i, axis in enumerate(self._axes()):
            shape[axis] = None if shape[axis] is None else fn(i, shape[axis])
        return tuple(shape)

    def get_config(self) -> dict:
        return {**super().get_config(), "data_format": self.data_format}


class ZeroPadding2D(_Spatial2D):
    """Add rows and columns of zeros around each feature map.

    Args:
        padding: int, (sym_h, sym_w) or ((top, bottom), (left, right)); default 1.
        data_format: 'channels_last' (default) or 'channels_first'.

    Example:
        >>> import numpy as np, dojang as dj
        >>> dj.layers.ZeroPadding2D(((1, 2), (0, 1)))(np.ones((1, 3, 3, 2))).shape
        (1, 6, 4, 2)
    """

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(data_format, **kwargs)
        self.padding = _pairs(padding, "padding", type(self).__name__)

    def call(self, inputs, training: bool = False):
        width = [(0, 0)] * 4
        for axis, pair in zip(self._axes(), self.padding):
            width[axis] = pair
        return ops.pad(inputs, width)

    def compute_output_shape(self, input_shape):
        return self._resize(input_shape, lambda i, n: n + sum(self.padding[i]))

    def receptive_field_spec(self, input_shape):
        return {"kernel": (1, 1), "stride": (1, 1),
                "pad_before": tuple(p[0] for p in self.padding), "dilation": (1, 1)}

    def get_config(self) -> dict:
        return {**super().get_config(), "padding": [list(p) for p in self.padding]}


class Cropping2D(_Spatial2D):
    """Remove rows and columns at the borders of each feature map.

    Args:
        cropping: int, (sym_h, sym_w) or ((top, bottom), (left, right)); default none.
        data_format: 'channels_last' (default) or 'channels_first'.

    Raises:
        ValueError: if the cropping removes the whole input.

    Example:
        >>> import numpy as np, dojang as dj
        >>> dj.layers.Cropping2D(((1, 0), (2, 2)))(np.ones((1, 5, 6, 2))).shape
        (1, 4, 2, 2)
    """

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(data_format, **kwargs)
        self.cropping = _pairs(cropping, "cropping", type(self).__name__)

    def build(self, input_shape) -> None:
        for i, axis in enumerate(self._axes()):
            n = input_shape[axis]
            if n is not None and n - sum(self.cropping[i]) < 1:
                raise ValueError(f"layer '{self.name}' expects spatial sizes larger than the "
                                 f"cropping {self.cropping}, received input of shape "
                                 f"{tuple(input_shape)}")

    def call(self, inputs, training: bool = False):
        index = [slice(None)] * 4
        for axis, (a, b) in zip(self._axes(), self.cropping):
            index[axis] = slice(a, inputs.shape[axis] - b)
        return inputs[tuple(index)]

    def compute_output_shape(self, input_shape):
        return self._resize(input_shape, lambda i, n: n - sum(self.cropping[i]))

    def receptive_field_spec(self, input_shape):
        return {"kernel": (1, 1), "stride": (1, 1),
                "pad_before": tuple(-p[0] for p in self.cropping), "dilation": (1, 1)}

    def get_config(self) -> dict:
        return {**super().get_config(), "cropping": [list(p) for p in self.cropping]}


class UpSampling2D(_Spatial2D):
    """Repeat every row ``SH`` times and every column ``SW`` times (nearest neighbour).

    Args:
        size: int or (SH, SW); default 2.
        data_format: 'channels_last' (default) or 'channels_first'.
        interpolation: 'nearest' (the only mode).

    Example:
        >>> import numpy as np, dojang as dj
        >>> dj.layers.UpSampling2D(2)(np.ones((1, 3, 4, 2))).shape
        (1, 6, 8, 2)
    """

    def __init__(self, size=(2, 2), data_format=None, interpolation: str = "nearest",
                 **kwargs):
        super().__init__(data_format, **kwargs)
        owner = type(self).__name__
        self.size = standardize_tuple(size, 2, "size", owner)
        self.interpolation = check_choice(interpolation, ("nearest",), "interpolation", owner)

    def call(self, inputs, training: bool = False):
        # (N, H, W, C) -> (N, H, 1, W, 1, C) * ones(1, 1, SH, 1, SW, 1): a broadcast whose
        # gradient sums each SH x SW block back onto its source pixel.
        sh, sw = self.size
        if self._channels_last:
            n, h, w, c = inputs.shape
            x = ops.reshape(inputs, (n, h, 1, w, 1, c))
            shape, ones = (n, h * sh, w * sw, c), (1, 1, sh, 1, sw, 1)
        else:
            n, c, h, w = inputs.shape
            x = ops.reshape(inputs, (n, c, h, 1, w, 1))
            shape, ones = (n, c, h * sh, w * sw), (1, 1, 1, sh, 1, sw)
        xp = get_array_module(inputs.data)
        return ops.reshape(x * xp.ones(ones, dtype=inputs.dtype), shape)

    def compute_output_shape(self, input_shape):
        return self._resize(input_shape, lambda i, n: n * self.size[i])

    def receptive_field_spec(self, input_shape):
        return "?"

    def get_config(self) -> dict:
        return {**super().get_config(), "size": list(self.size),
                "interpolation": self.interpolation}
