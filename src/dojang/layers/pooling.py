"""Pooling layers for every rank: window pooling (max/average) and global pooling.

Window pooling: ``(N, *L, C) -> (N, *O, C)`` with
``O = floor((L + P_before + P_after - K) / S) + 1`` ('valid': no padding; 'same':
``O = ceil(L / S)``); padded positions never win a max and are not counted in an average.
Global pooling: ``(N, *L, C) -> (N, C)`` (or ``(N, 1.., C)`` with ``keepdims``).
"""

from __future__ import annotations

from dojang import functional as F
from dojang.layers._args import check_bool, per_signature
from dojang.layers.base import InputSpec, Layer
from dojang.shapes import SlidingWindow
from dojang.validation import check_choice, check_data_format, standardize_tuple


class BasePooling(SlidingWindow, Layer):
    """Max or average pooling over a sliding window (rank and kind set by subclasses).

    Args:
        pool_size: window size, int or tuple of ``rank`` ints (default 2).
        strides: step, int or tuple; None means ``pool_size`` (non-overlapping windows).
        padding: 'valid' or 'same'.
        data_format: 'channels_last' (default) or 'channels_first'.

    Input shape: ``(N, *L, C)``. Output shape: ``(N, *O, C)``,
    ``O = floor((L - K) / S) + 1`` for 'valid', ``ceil(L / S)`` for 'same'.

    Raises:
        ValueError/TypeError: bad arguments; inputs of the wrong rank.

    Example:
        >>> import numpy as np, dojang as dj
        >>> dj.layers.MaxPooling2D(2)(np.zeros((1, 28, 28, 32))).shape
        (1, 14, 14, 32)
    """

    rank = 2
    kind = "max"

    def __init__(self, pool_size=2, strides=None, padding: str = "valid", data_format=None,
                 **kwargs):
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.pool_size = standardize_tuple(pool_size, self.rank, "pool_size", owner)
        self.strides = self.pool_size if strides is None else standardize_tuple(
            strides, self.rank, "strides", owner)
        self.padding = check_choice(padding, ("valid", "same"), "padding", owner)
        self.data_format = "channels_last" if data_format is None else data_format
        self._channels_last = check_data_format(self.data_format, self.rank, owner=owner)
        self.input_spec = InputSpec(ndim=self.rank + 2)

    @property
    def _window(self) -> tuple[int, ...]:
        return self.pool_size

    @property
    def _dilation(self) -> tuple[int, ...]:
        return (1,) * self.rank

    def call(self, inputs, training: bool = False):
        def checked():
            # inputs come in the layer's float dtype (``Layer.__call__`` casts them), so
            # the checks cast nothing and only the op and its keywords are kept
            return F.window_pool_arguments(self.kind, self.rank, inputs, self.pool_size,
                                           self.strides, self.padding.upper(),
                                           self.data_format)[1:]

        op, keywords = per_signature(self, ("pool", inputs.shape, inputs.dtype), checked)
        return op.apply(inputs, **keywords)

    def compute_output_shape(self, input_shape):
        channels = input_shape[-1] if self._channels_last else input_shape[1]
        return self._layout(input_shape[0], self._out_spatial(self._spatial(input_shape)),
                            channels)

    def get_config(self) -> dict:
        return {**super().get_config(), "pool_size": list(self.pool_size),
                "strides": list(self.strides), "padding": self.padding,
                "data_format": self.data_format}


class BaseGlobalPooling(Layer):
    """Max or average over every spatial position, one value per channel.

    Args:
        data_format: 'channels_last' (default) or 'channels_first'.
        keepdims: keep the spatial axes with size 1.

    Input shape: ``(N, *L, C)``. Output shape: ``(N, C)``, or ``(N, 1, ..., 1, C)``.

    Example:
        >>> import numpy as np, dojang as dj
        >>> dj.layers.GlobalAveragePooling2D()(np.ones((2, 7, 7, 16))).shape
        (2, 16)
    """

    rank = 2
    kind = "avg"

    def __init__(self, data_format=None, keepdims: bool = False, **kwargs):
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.data_format = "channels_last" if data_format is None else data_format
        self._channels_last = check_data_format(self.data_format, self.rank, owner=owner)
        self.keepdims = check_bool(keepdims, "keepdims", owner)
        self.input_spec = InputSpec(ndim=self.rank + 2)

    def call(self, inputs, training: bool = False):
        pool = getattr(F, f"global_{self.kind}_pool{self.rank}d")
        return pool(inputs, data_format=self.data_format, keepdims=self.keepdims)

    def compute_output_shape(self, input_shape):
        c = input_shape[-1] if self._channels_last else input_shape[1]
        if not self.keepdims:
            return (input_shape[0], c)
        ones = (1,) * self.rank
        return (input_shape[0],) + ones + (c,) if self._channels_last else \
            (input_shape[0], c) + ones

    def receptive_field_spec(self, input_shape):
        return "global"

    def get_config(self) -> dict:
        return {**super().get_config(), "data_format": self.data_format,
                "keepdims": self.keepdims}


def _pool(name: str, base: type, rank: int, kind: str) -> type:
    what = "Max" if kind == "max" else "Average"
    doc = f"{rank}-d {what.lower()} pooling; see ``{base.__name__}`` for arguments and shapes."
    return type(name, (base,), {"rank": rank, "kind": kind, "__doc__": doc,
                                "__module__": __name__})


MaxPooling1D = _pool("MaxPooling1D", BasePooling, 1, "max")
MaxPooling2D = _pool("MaxPooling2D", BasePooling, 2, "max")
MaxPooling3D = _pool("MaxPooling3D", BasePooling, 3, "max")
AveragePooling1D = _pool("AveragePooling1D", BasePooling, 1, "avg")
AveragePooling2D = _pool("AveragePooling2D", BasePooling, 2, "avg")
AveragePooling3D = _pool("AveragePooling3D", BasePooling, 3, "avg")
GlobalMaxPooling1D = _pool("GlobalMaxPooling1D", BaseGlobalPooling, 1, "max")
GlobalMaxPooling2D = _pool("GlobalMaxPooling2D", BaseGlobalPooling, 2, "max")
GlobalMaxPooling3D = _pool("GlobalMaxPooling3D", BaseGlobalPooling, 3, "max")
GlobalAveragePooling1D = _pool("GlobalAveragePooling1D", BaseGlobalPooling, 1, "avg")
GlobalAveragePooling2D = _pool("GlobalAveragePooling2D", BaseGlobalPooling, 2, "avg")
GlobalAveragePooling3D = _pool("GlobalAveragePooling3D", BaseGlobalPooling, 3, "avg")
