"""Convolution layers, written once for every rank: ``BaseConv`` with thin subclasses.

Shapes (channels_last; channels_first moves C to axis 1), per spatial dim:

    Conv:            (N, *L, C_in) -> (N, *O, filters),
                     O = floor((L + P_before + P_after - D*(K-1) - 1) / S) + 1,
                     kernel (*K, C_in / groups, filters)
    ConvTranspose:   (N, *L, C_in) -> (N, *O, filters), as Keras:
                     'valid': O = L*S + max(K' - S, 0); 'same': O = L*S
                     (K' = D*(K-1) + 1; with output_padding: (L-1)*S + K' - 2*pad + op),
                     kernel (*K, filters, C_in)
    DepthwiseConv2D: (N, H, W, C) -> (N, OH, OW, C*depth_multiplier),
                     kernel (KH, KW, C, depth_multiplier)
    SeparableConv2D: depthwise then a 1x1 conv to ``filters``.
"""

from __future__ import annotations

import math

from dojang import functional as F
from dojang import ops
from dojang.layers._args import (
    check_bool,
    per_signature,
    resolve_activation,
    resolve_initializer,
    resolve_regularizer,
    serialize_activation,
    serialize_initializer,
    serialize_regularizer,
)
from dojang.layers.base import InputSpec, Layer
from dojang.layers.fusion import fused_activation
from dojang.shapes import (
    PADDING_MODES,
    SlidingWindow,
    conv_macs,
    resolve_padding,
    transpose_output_length,
)
from dojang.validation import check_choice, check_data_format, check_int, standardize_tuple


def normalize_padding(padding, rank: int, owner: str, strings_only: bool = False):
    """'valid'/'same' lower-cased, or explicit padding as a tuple of (before, after) pairs."""
    if isinstance(padding, str) or strings_only:
        return check_choice(padding, ("valid", "same"), "padding", owner)
    one = (1,) * rank
    return resolve_padding(padding, one, one, one, one, "padding", owner)


def padding_config(padding):
    return padding if isinstance(padding, str) else [list(p) for p in padding]


class BaseConv(SlidingWindow, Layer):
    """What every convolution layer shares: geometry, activation, bias, data format.

    Subclasses set ``rank`` and implement ``_make_kernels(c_in)``,
    ``_convolve(x, activation)`` (``activation``: None or a name from
    ``fusable_activations``, applied by the op itself) and ``_out_channels(c_in)``.
    """

    rank = 2
    fusable_activations: tuple[str, ...] = ("relu", "tanh")

    def __init__(self, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, activation=None, use_bias: bool = True,
                 bias_initializer="zeros", bias_regularizer=None, padding_mode: str = "zeros",
                 **kwargs):
        super().__init__(**kwargs)
        owner, n = type(self).__name__, self.rank
        self.kernel_size = standardize_tuple(kernel_size, n, "kernel_size", owner)
        self.strides = standardize_tuple(strides, n, "strides", owner)
        self.dilation_rate = standardize_tuple(dilation_rate, n, "dilation_rate", owner)
        self.padding = normalize_padding(padding, n, owner)
        self.data_format = "channels_last" if data_format is None else data_format
        self._channels_last = check_data_format(self.data_format, n, owner=owner)
        self._channel_axis = -1 if self._channels_last else 1
        self.activation = resolve_activation(activation, owner)
        self.use_bias = check_bool(use_bias, "use_bias", owner)
        self.bias_initializer = resolve_initializer(bias_initializer, owner)
        self.bias_regularizer = resolve_regularizer(bias_regularizer, owner)
        self.padding_mode = check_choice(padding_mode, PADDING_MODES, "padding_mode", owner)
        self.input_spec = InputSpec(ndim=n + 2)

    @property
    def _window(self) -> tuple[int, ...]:
        return self.kernel_size

    @property
    def _dilation(self) -> tuple[int, ...]:
        return self.dilation_rate

    # protocol -----------------------------------------------------------------
    def build(self, input_shape) -> None:
        c_in = input_shape[self._channel_axis]
        if c_in is None:
            raise ValueError(f"layer '{self.name}' expects a known number of input channels, "
                             f"received input of shape {tuple(input_shape)}")
        self._make_kernels(c_in)
        out = self._out_channels(c_in)
        self.bias = (self.add_weight("bias", (out,), self.bias_initializer,
                                     self.bias_regularizer) if self.use_bias else None)
        self.input_spec = InputSpec(ndim=self.rank + 2, axes={self._channel_axis: c_in})

    def call(self, inputs, training: bool = False):
        fused = fused_activation(self)
        out = self._convolve(inputs, fused)
        return out if fused else self.activation(out)

    def compute_output_shape(self, input_shape):
        c_in = input_shape[self._channel_axis]
        return self._layout(input_shape[0], self._out_spatial(self._spatial(input_shape)),
                            self._out_channels(c_in))

    def compute_macs(self, input_shape, output_shape) -> int:
        c_in = input_shape[self._channel_axis]
        return conv_macs(self._spatial(output_shape), self.kernel_size, c_in,
                         self._out_channels(c_in), self._groups(c_in))

    def _groups(self, c_in) -> int:
        return 1

    def _conv(self, x, kernel, groups: int = 1, bias=None, strides=None, padding=None,
              activation=None):
        strides = self.strides if strides is None else strides
        padding = self.padding if padding is None else padding

        def keywords():
            # x comes in the layer's dtype (``Layer.__call__`` casts it), as the weights
            # are: ``conv_arguments`` casts nothing, and only its keywords are kept
            return F.conv_arguments(x, kernel, strides=strides, padding=padding,
                                    data_format=self.data_format, dilations=self.dilation_rate,
                                    groups=groups, padding_mode=self.padding_mode, bias=bias,
                                    activation=activation)[3]

        key = ("conv", x.shape, x.dtype, kernel.shape, groups, bias is None, strides, padding,
               activation)
        return ops.conv(x, kernel, bias, **per_signature(self, key, keywords))

    def get_config(self) -> dict:
        return {**super().get_config(), "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": padding_config(self.padding),
                "data_format": self.data_format, "dilation_rate": list(self.dilation_rate),
                "activation": serialize_activation(self.activation), "use_bias": self.use_bias,
                "bias_initializer": serialize_initializer(self.bias_initializer),
                "bias_regularizer": serialize_regularizer(self.bias_regularizer),
                "padding_mode": self.padding_mode}


class Conv(BaseConv):
    """N-d convolution layer (``Conv1D``, ``Conv2D``, ``Conv3D`` set the rank).

    Args:
        filters: number of output channels.
        kernel_size: int or tuple of ``rank`` ints.
        strides: int or tuple (default 1).
        padding: 'valid' (none), 'same' (output ``ceil(L / S)``, odd pixel at the
            end), an int, a tuple of ints or of (before, after) pairs.
        data_format: 'channels_last' (default, NHWC) or 'channels_first'.
        dilation_rate: int or tuple (default 1).
        groups: split input channels into groups convolved separately.
        activation: name or function applied to the output.
        use_bias: add one bias per filter.
        kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer.
        padding_mode: 'zeros', 'reflect', 'replicate' or 'circular'.

    Input shape: ``(N, *L, C_in)``. Output shape: ``(N, *O, filters)`` with
    ``O = floor((L + P_before + P_after - D*(K-1) - 1) / S) + 1``.
    Parameters: ``(prod(K) * C_in / groups + 1) * filters``.

    Raises:
        ValueError/TypeError: bad arguments, naming the argument and the value; an
            input of the wrong rank or channel count names the layer.

    Example:
        >>> import numpy as np, dojang as dj
        >>> conv = dj.layers.Conv2D(32, kernel_size=3, padding="same")
        >>> conv(np.zeros((1, 28, 28, 1))).shape
        (1, 28, 28, 32)
        >>> conv.count_params()
        320
    """

    def __init__(self, filters: int, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, groups: int = 1, activation=None, use_bias: bool = True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, padding_mode: str = "zeros",
                 **kwargs):
        super().__init__(kernel_size, strides, padding, data_format, dilation_rate,
                         activation, use_bias, bias_initializer, bias_regularizer,
                         padding_mode, **kwargs)
        owner = type(self).__name__
        self.filters = check_int(filters, "filters", owner, min_value=1)
        self.groups = check_int(groups, "groups", owner, min_value=1)
        if self.filters % self.groups:
            raise ValueError(f"{owner}: Expected filters to be divisible by groups. Received: "
                             f"filters={filters}, groups={groups}")
        self.kernel_initializer = resolve_initializer(kernel_initializer, owner)
        self.kernel_regularizer = resolve_regularizer(kernel_regularizer, owner)

    def _make_kernels(self, c_in: int) -> None:
        if c_in % self.groups:
            raise ValueError(f"layer '{self.name}' expects input channels divisible by "
                             f"groups={self.groups}, received {c_in} channels")
        self.kernel = self.add_weight(
            "kernel", self.kernel_size + (c_in // self.groups, self.filters),
            self.kernel_initializer, self.kernel_regularizer)

    def _out_channels(self, c_in) -> int:
        return self.filters

    def _groups(self, c_in) -> int:
        return self.groups

    def _convolve(self, x, activation=None):
        return self._conv(x, self.kernel, self.groups, self.bias, activation=activation)

    def get_config(self) -> dict:
        return {**super().get_config(), "filters": self.filters, "groups": self.groups,
                "kernel_initializer": serialize_initializer(self.kernel_initializer),
                "kernel_regularizer": serialize_regularizer(self.kernel_regularizer)}


class Conv1D(Conv):
    """1-d convolution over ``(N, W, C)``; see ``Conv`` for the arguments."""

    rank = 1


class Conv2D(Conv):
    """2-d convolution over ``(N, H, W, C)``; see ``Conv`` for the arguments and formula."""

    rank = 2


class Conv3D(Conv):
    """3-d convolution over ``(N, D, H, W, C)``; see ``Conv`` for the arguments."""

    rank = 3


class ConvTranspose(Conv):
    """N-d transposed convolution (``Conv2DTranspose`` etc.): the adjoint of ``Conv``.

    Args:
        filters, kernel_size, strides, padding, data_format, dilation_rate, activation,
        use_bias, initializers, regularizers: as ``Conv``.
        output_padding: extra size at the end of each spatial dim (int or tuple), each
            smaller than the stride; None picks Keras's default size.

    Input shape: ``(N, *L, C_in)``. Output shape: ``(N, *O, filters)`` with, as Keras,
    ``O = L*S + max(K' - S, 0)`` ('valid'), ``O = L*S`` ('same'), ``K' = D*(K-1) + 1``.
    Parameters: ``(prod(K) * C_in + 1) * filters``; kernel ``(*K, filters, C_in)``.

    Example:
        >>> import numpy as np, dojang as dj
        >>> dj.layers.Conv2DTranspose(8, 3, strides=2, padding="same")(
        ...     np.zeros((1, 7, 7, 4))).shape
        (1, 14, 14, 8)
    """

    fusable_activations = ()  # the transposed op has no fused activation

    def __init__(self, filters: int, kernel_size, strides=1, padding="valid",
                 output_padding=None, data_format=None, dilation_rate=1, activation=None,
                 use_bias: bool = True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 **kwargs):
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate,
                         1, activation, use_bias, kernel_initializer, bias_initializer,
                         kernel_regularizer, bias_regularizer, **kwargs)
        self.output_padding = None if output_padding is None else standardize_tuple(
            output_padding, self.rank, "output_padding", type(self).__name__, min_value=0)

    def _make_kernels(self, c_in: int) -> None:
        self.kernel = self.add_weight("kernel", self.kernel_size + (self.filters, c_in),
                                      self.kernel_initializer, self.kernel_regularizer)

    def _out_spatial(self, spatial):
        extra = self.output_padding or (None,) * self.rank
        pad = self.padding
        return tuple(
            transpose_output_length(L, k, s, d, pad if isinstance(pad, str) else pad[i], op)
            for i, (L, k, s, d, op) in enumerate(zip(spatial, self.kernel_size, self.strides,
                                                     self.dilation_rate, extra)))

    def _convolve(self, x, activation=None):
        out = self._out_spatial(self._spatial(x.shape))
        return F.conv_transpose(x, self.kernel, output_shape=out, strides=self.strides,
                                padding=self.padding, data_format=self.data_format,
                                dilations=self.dilation_rate, bias=self.bias)

    def compute_macs(self, input_shape, output_shape) -> int:
        c_in = input_shape[self._channel_axis]
        return math.prod(self._spatial(input_shape)) * math.prod(self.kernel_size) * c_in * \
            self.filters

    def receptive_field_spec(self, input_shape):
        return "?"

    def get_config(self) -> dict:
        config = super().get_config()
        for key in ("groups", "padding_mode"):
            del config[key]
        op = None if self.output_padding is None else list(self.output_padding)
        return {**config, "output_padding": op}


class Conv1DTranspose(ConvTranspose):
    """1-d transposed convolution; see ``ConvTranspose``."""

    rank = 1


class Conv2DTranspose(ConvTranspose):
    """2-d transposed convolution; see ``ConvTranspose``."""

    rank = 2


class Conv3DTranspose(ConvTranspose):
    """3-d transposed convolution; see ``ConvTranspose``."""

    rank = 3


class DepthwiseConv2D(BaseConv):
    """Convolve each input channel with its own ``depth_multiplier`` filters.

    A grouped convolution with ``groups = C_in``; the kernel is stored as Keras does,
    ``(KH, KW, C_in, depth_multiplier)``, and output channel ``c*M + m`` comes from input
    channel ``c``.

    Input shape: ``(N, H, W, C)``. Output shape: ``(N, OH, OW, C*depth_multiplier)``.
    Parameters: ``KH*KW*C*M + C*M`` with bias.

    Example:
        >>> import numpy as np, dojang as dj
        >>> dj.layers.DepthwiseConv2D(3, depth_multiplier=2)(np.zeros((1, 5, 5, 3))).shape
        (1, 3, 3, 6)
    """

    def __init__(self, kernel_size, strides=1, padding="valid", depth_multiplier: int = 1,
                 data_format=None, dilation_rate=1, activation=None, use_bias: bool = True,
                 depthwise_initializer="glorot_uniform", bias_initializer="zeros",
                 depthwise_regularizer=None, bias_regularizer=None,
                 padding_mode: str = "zeros", **kwargs):
        super().__init__(kernel_size, strides, padding, data_format, dilation_rate,
                         activation, use_bias, bias_initializer, bias_regularizer,
                         padding_mode, **kwargs)
        owner = type(self).__name__
        self.depth_multiplier = check_int(depth_multiplier, "depth_multiplier", owner,
                                          min_value=1)
        self.depthwise_initializer = resolve_initializer(depthwise_initializer, owner)
        self.depthwise_regularizer = resolve_regularizer(depthwise_regularizer, owner)

    def _make_kernels(self, c_in: int) -> None:
        self.depthwise_kernel = self.add_weight(
            "depthwise_kernel", self.kernel_size + (c_in, self.depth_multiplier),
            self.depthwise_initializer, self.depthwise_regularizer)

    def _out_channels(self, c_in) -> int:
        return c_in * self.depth_multiplier

    def _groups(self, c_in) -> int:
        return c_in

    def _depthwise(self, x, bias, activation=None):
        c_in = self.depthwise_kernel.shape[-2]
        kernel = ops.reshape(self.depthwise_kernel,
                             self.kernel_size + (1, c_in * self.depth_multiplier))
        return self._conv(x, kernel, c_in, bias, activation=activation)

    def _convolve(self, x, activation=None):
        return self._depthwise(x, self.bias, activation)

    def get_config(self) -> dict:
        return {**super().get_config(), "depth_multiplier": self.depth_multiplier,
                "depthwise_initializer": serialize_initializer(self.depthwise_initializer),
                "depthwise_regularizer": serialize_regularizer(self.depthwise_regularizer)}


class SeparableConv2D(DepthwiseConv2D):
    """Depthwise convolution followed by a 1x1 (pointwise) convolution to ``filters``.

    Input shape: ``(N, H, W, C)``. Output shape: ``(N, OH, OW, filters)``.
    Parameters: ``KH*KW*C*M + C*M*filters + filters`` (depthwise, pointwise, bias).

    Example:
        >>> import numpy as np, dojang as dj
        >>> layer = dj.layers.SeparableConv2D(8, 3)
        >>> layer(np.zeros((1, 5, 5, 4))).shape, layer.count_params()
        ((1, 3, 3, 8), 76)
    """

    def __init__(self, filters: int, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, depth_multiplier: int = 1, activation=None,
                 use_bias: bool = True, depthwise_initializer="glorot_uniform",
                 pointwise_initializer="glorot_uniform", bias_initializer="zeros",
                 depthwise_regularizer=None, pointwise_regularizer=None, bias_regularizer=None,
                 padding_mode: str = "zeros", **kwargs):
        super().__init__(kernel_size, strides, padding, depth_multiplier, data_format,
                         dilation_rate, activation, use_bias, depthwise_initializer,
                         bias_initializer, depthwise_regularizer, bias_regularizer,
                         padding_mode, **kwargs)
        owner = type(self).__name__
        self.filters = check_int(filters, "filters", owner, min_value=1)
        self.pointwise_initializer = resolve_initializer(pointwise_initializer, owner)
        self.pointwise_regularizer = resolve_regularizer(pointwise_regularizer, owner)

    def _make_kernels(self, c_in: int) -> None:
        super()._make_kernels(c_in)
        self.pointwise_kernel = self.add_weight(
            "pointwise_kernel", (1, 1, c_in * self.depth_multiplier, self.filters),
            self.pointwise_initializer, self.pointwise_regularizer)

    def _out_channels(self, c_in) -> int:
        return self.filters

    def _convolve(self, x, activation=None):
        return self._conv(self._depthwise(x, None), self.pointwise_kernel, 1, self.bias,
                          strides=1, padding="valid", activation=activation)

    def compute_macs(self, input_shape, output_shape) -> int:
        c_in = input_shape[self._channel_axis]
        mid = c_in * self.depth_multiplier
        spatial = self._spatial(output_shape)
        return conv_macs(spatial, self.kernel_size, c_in, mid, c_in) + \
            conv_macs(spatial, (1, 1), mid, self.filters)

    def get_config(self) -> dict:
        return {**super().get_config(), "filters": self.filters,
                "pointwise_initializer": serialize_initializer(self.pointwise_initializer),
                "pointwise_regularizer": serialize_regularizer(self.pointwise_regularizer)}
