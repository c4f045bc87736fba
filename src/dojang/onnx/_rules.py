"""How each dojang layer is written as ONNX nodes (one function per layer family).

Weights change layout on the way: a convolution kernel ``(*K, C_in/g, F)`` becomes ONNX's
``(F, C_in/g, *K)``; a transposed one ``(*K, F, C_in)`` becomes ``(C_in, F, *K)`` (the same
permutation); a depthwise kernel ``(*K, C, M)`` becomes ``(C*M, 1, *K)`` with ``group=C``.
Padding is always written as explicit ``pads`` (``[x1_begin, x2_begin, ..., x1_end, ...]``);
TensorFlow's SAME puts the odd pixel at the end.
"""

from __future__ import annotations

import math

import numpy as np

from dojang import backend
from dojang import layers as L
from dojang.layers._args import serialize_activation
from dojang.onnx._builder import INT64_MAX, GraphBuilder, physical_axis, to_last
from dojang.shapes import same_padding


def _array(weight) -> np.ndarray:
    return backend.to_numpy(weight.data)


def _kernel_to_onnx(kernel: np.ndarray) -> np.ndarray:
    rank = kernel.ndim - 2
    return kernel.transpose((rank + 1, rank) + tuple(range(rank)))


def _flat_pads(pairs) -> list[int]:
    return [int(p[0]) for p in pairs] + [int(p[1]) for p in pairs]


def activation(b: GraphBuilder, fn, x: str, cf: bool, rank: int, owner) -> tuple[str, bool]:
    """Apply a dojang activation function to the ONNX value ``x``."""
    name = serialize_activation(fn)
    simple = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}
    if name == "linear":
        return x, cf
    if name in simple:
        return b.op(simple[name], [x], name), cf
    if name == "elu":
        return b.op("Elu", [x], name, alpha=1.0), cf
    if name == "leaky_relu":
        return b.op("LeakyRelu", [x], name, alpha=0.2), cf
    if name == "gelu":
        if b.opset >= 20:
            return b.op("Gelu", [x], name), cf
        # x * Phi(x) = 0.5 * x * (1 + erf(x / sqrt(2)))
        erf = b.op("Erf", [b.op("Mul", [x, b.floats(1 / math.sqrt(2), "c")], "s")], "erf")
        one = b.op("Add", [erf, b.floats(1.0, "one")], "p")
        return b.op("Mul", [b.op("Mul", [x, one], "xp"), b.floats(0.5, "half")], name), cf
    if name in ("softmax", "log_softmax"):
        if cf:
            x = b._transpose(x, to_last(rank), "to_last")
        op = "Softmax" if name == "softmax" else "LogSoftmax"
        return b.op(op, [x], name, axis=-1), False
    raise ValueError(f"layer '{owner.name}' ({type(owner).__name__}): activation {name!r} "
                     f"has no ONNX export")


def _pad(b: GraphBuilder, x: str, pairs, mode: str) -> str:
    """Pad the spatial axes (2, 3, ...) of an NC... value; mode as numpy's names."""
    if mode == "wrap" and b.opset < 19:
        # ONNX Pad has no wrap mode before opset 19: take the far ends and join them on.
        for axis, (lo, hi) in enumerate(pairs, start=2):
            parts = []
            if lo:
                parts.append(b.op("Slice", [x, b.ints([-lo]), b.ints([INT64_MAX]),
                                            b.ints([axis])], "wrap_lo"))
            parts.append(x)
            if hi:
                parts.append(b.op("Slice", [x, b.ints([0]), b.ints([hi]), b.ints([axis])],
                                  "wrap_hi"))
            if len(parts) > 1:
                x = b.op("Concat", parts, "wrap", axis=axis)
        return x
    full = [(0, 0), (0, 0)] + [tuple(p) for p in pairs]
    return b.op("Pad", [x, b.ints(_flat_pads(full), "pads")], "pad", mode=mode)


def _spatial_known(layer, tensor) -> tuple[int, ...]:
    spatial = layer._spatial(tensor.shape)
    if None in spatial:
        raise ValueError(f"layer '{layer.name}' ({type(layer).__name__}): ONNX export needs "
                         f"known spatial sizes. Received: input shape {tensor.shape}")
    return spatial


def _conv_node(b, x, kernel, bias, layer, pads, group, strides=None, dilations=None):
    k = kernel.shape[2:]
    inputs = [x, b.const(kernel, "W")] + ([b.const(bias, "B")] if bias is not None else [])
    return b.op("Conv", inputs, "conv", kernel_shape=list(k),
                strides=list(strides or layer.strides),
                dilations=list(dilations or layer.dilation_rate), pads=_flat_pads(pads),
                group=int(group))


def conv(b: GraphBuilder, layer, x_t, y_t) -> None:
    """Conv1D/2D/3D, DepthwiseConv2D and SeparableConv2D."""
    x = b.spatial_input(x_t, layer._channels_last)
    pads = layer._pads(_spatial_known(layer, x_t))
    if layer.padding_mode != "zeros" and any(p != (0, 0) for p in pads):
        mode = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}[layer.padding_mode]
        x = _pad(b, x, pads, mode)
        pads = ((0, 0),) * layer.rank
    bias = None if layer.bias is None else _array(layer.bias)
    if isinstance(layer, L.DepthwiseConv2D):
        dw = _array(layer.depthwise_kernel)
        c, m = dw.shape[-2:]
        kernel = _kernel_to_onnx(dw.reshape(dw.shape[:-2] + (1, c * m)))
        if isinstance(layer, L.SeparableConv2D):
            y = _conv_node(b, x, kernel, None, layer, pads, c)
            y = _conv_node(b, y, _kernel_to_onnx(_array(layer.pointwise_kernel)), bias, layer,
                           ((0, 0),) * 2, 1, (1, 1), (1, 1))
        else:
            y = _conv_node(b, x, kernel, bias, layer, pads, c)
    else:
        y = _conv_node(b, x, _kernel_to_onnx(_array(layer.kernel)), bias, layer, pads,
                       layer.groups)
    b.set(y_t, *activation(b, layer.activation, y, layer._channels_last, len(y_t.shape), layer))


def conv_transpose(b: GraphBuilder, layer, x_t, y_t) -> None:
    """ConvTranspose: ONNX's output is ``S*(L-1) + op + K' - pb - pe``; pick pb, pe, op."""
    x = b.spatial_input(x_t, layer._channels_last)
    spatial = _spatial_known(layer, x_t)
    out = layer._out_spatial(spatial)
    begins, ends, extra = [], [], []
    for i, (n, o, k, s, d) in enumerate(zip(spatial, out, layer.kernel_size, layer.strides,
                                            layer.dilation_rate)):
        if layer.padding == "same":
            before = same_padding(o, k, s, d)[0]
        elif layer.padding == "valid":
            before = 0
        else:
            before = layer.padding[i][0]
        rest = (n - 1) * s + d * (k - 1) + 1 - before - o
        begins.append(before)
        ends.append(max(rest, 0))
        extra.append(max(-rest, 0))
    inputs = [x, b.const(_kernel_to_onnx(_array(layer.kernel)), "W")]
    if layer.bias is not None:
        inputs.append(b.const(_array(layer.bias), "B"))
    y = b.op("ConvTranspose", inputs, "conv_transpose", kernel_shape=list(layer.kernel_size),
             strides=list(layer.strides), dilations=list(layer.dilation_rate),
             pads=begins + ends, output_padding=extra)
    b.set(y_t, *activation(b, layer.activation, y, layer._channels_last, len(y_t.shape), layer))


def pooling(b: GraphBuilder, layer, x_t, y_t) -> None:
    """Max and average pooling; padded positions are excluded from averages, as dojang."""
    x = b.spatial_input(x_t, layer._channels_last)
    pads = layer._pads(_spatial_known(layer, x_t))
    attrs = {"kernel_shape": list(layer.pool_size), "strides": list(layer.strides),
             "pads": _flat_pads(pads)}
    if layer.kind == "max":
        y = b.op("MaxPool", [x], "max_pool", **attrs)
    else:
        y = b.op("AveragePool", [x], "avg_pool", count_include_pad=0, **attrs)
    b.set(y_t, y, layer._channels_last)


def global_pooling(b: GraphBuilder, layer, x_t, y_t) -> None:
    x = b.spatial_input(x_t, layer._channels_last)
    op = "GlobalMaxPool" if layer.kind == "max" else "GlobalAveragePool"
    y = b.op(op, [x], "global_pool")
    if layer.keepdims:
        b.set(y_t, y, layer._channels_last)
    else:
        b.set(y_t, b.op("Flatten", [y], "flatten", axis=1), False)


def batch_norm(b: GraphBuilder, layer, x_t, y_t) -> None:
    """Inference batch norm: ONNX BatchNormalization when the channels are on axis 1."""
    x, cf = b.get(x_t)
    rank = len(x_t.shape)
    c = layer.moving_mean.shape[0]
    gamma = _array(layer.gamma) if layer.gamma is not None else np.ones(c, b.dtype)
    beta = _array(layer.beta) if layer.beta is not None else np.zeros(c, b.dtype)
    mean, var = _array(layer.moving_mean), _array(layer.moving_variance)
    if physical_axis(layer.axis, rank, cf) != 1:
        x, cf = b.native(x_t), False
    if physical_axis(layer.axis, rank, cf) == 1:
        y = b.op("BatchNormalization", [x, b.const(gamma, "gamma"), b.const(beta, "beta"),
                                        b.const(mean, "mean"), b.const(var, "var")],
                 "batch_norm", epsilon=float(layer.epsilon))
    else:
        # y = x * scale + shift along another axis (folded in float64)
        scale = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + layer.epsilon)
        shift = beta - mean * scale
        shape = [1] * rank
        shape[layer.axis % rank] = c
        y = b.op("Add", [b.op("Mul", [x, b.floats(scale.reshape(shape), "scale")], "bn"),
                         b.floats(shift.reshape(shape), "shift")], "batch_norm")
    b.set(y_t, y, cf)


def dense(b: GraphBuilder, layer, x_t, y_t) -> None:
    x = b.native(x_t)
    w = b.const(_array(layer.kernel), "W")
    if len(x_t.shape) == 2 and layer.bias is not None:
        y = b.op("Gemm", [x, w, b.const(_array(layer.bias), "B")], "dense")
    else:
        y = b.op("MatMul", [x, w], "dense")
        if layer.bias is not None:
            y = b.op("Add", [y, b.const(_array(layer.bias), "B")], "dense_bias")
    b.set(y_t, *activation(b, layer.activation, y, False, len(y_t.shape), layer))


def flatten(b: GraphBuilder, layer, x_t, y_t) -> None:
    """Flatten in dojang's row order (channels last), whatever the value's arrangement."""
    rank = len(x_t.shape)
    if layer._channels_last or rank <= 2:
        x = b.native(x_t)
    else:
        x, cf = b.get(x_t)
        if not cf:
            x = b._transpose(x, to_last(rank), "to_last")
    b.set(y_t, b.op("Flatten", [x], "flatten", axis=1), False)


def reshape(b: GraphBuilder, layer, x_t, y_t) -> None:
    shape = b.ints([0] + list(layer.target_shape))
    b.set(y_t, b.op("Reshape", [b.native(x_t), shape], "reshape"), False)


def relu(b: GraphBuilder, layer, x_t, y_t) -> None:
    x, cf = b.get(x_t)
    if layer.negative_slope == 0.0 and layer.threshold == 0.0:
        if layer.max_value is not None:
            low, high = b.floats(0.0, "low"), b.floats(layer.max_value, "max_value")
            b.set(y_t, b.op("Clip", [x, low, high], "relu"), cf)
            return
        y = b.op("Relu", [x], "relu")
    else:
        t = b.floats(layer.threshold, "threshold")
        slope = b.op("Mul", [b.op("Sub", [x, t], "shifted"),
                             b.floats(layer.negative_slope, "slope")], "sloped")
        y = b.op("Where", [b.op("GreaterOrEqual", [x, t], "above"), x, slope], "relu")
    if layer.max_value is not None:
        y = b.op("Min", [y, b.floats(layer.max_value, "max_value")], "relu_max")
    b.set(y_t, y, cf)


def elementwise(b: GraphBuilder, layer, x_t, y_t) -> None:
    """Activation, LeakyReLU, ELU and Softmax layers."""
    x, cf = b.get(x_t)
    rank = len(x_t.shape)
    if isinstance(layer, L.LeakyReLU):
        b.set(y_t, b.op("LeakyRelu", [x], "leaky_relu", alpha=layer.negative_slope), cf)
    elif isinstance(layer, L.ELU):
        b.set(y_t, b.op("Elu", [x], "elu", alpha=layer.alpha), cf)
    elif isinstance(layer, L.Softmax):
        axis = physical_axis(layer.axis, rank, cf)
        b.set(y_t, b.op("Softmax", [x], "softmax", axis=axis), cf)
    else:
        b.set(y_t, *activation(b, layer.activation, x, cf, rank, layer))


def identity(b: GraphBuilder, layer, x_t, y_t) -> None:
    b.set(y_t, *b.get(x_t))


def add(b: GraphBuilder, layer, xs, y_t) -> None:
    values, cf = b.same_layout(xs)
    y = values[0]
    for v in values[1:]:
        y = b.op("Add", [y, v], "add")
    b.set(y_t, y, cf)


def concatenate(b: GraphBuilder, layer, xs, y_t) -> None:
    values, cf = b.same_layout(xs)
    axis = physical_axis(layer.axis, len(y_t.shape), cf)
    b.set(y_t, b.op("Concat", values, "concat", axis=axis), cf)


def zero_padding(b: GraphBuilder, layer, x_t, y_t) -> None:
    x = b.spatial_input(x_t, layer._channels_last)
    b.set(y_t, _pad(b, x, layer.padding, "constant"), layer._channels_last)


def cropping(b: GraphBuilder, layer, x_t, y_t) -> None:
    x = b.spatial_input(x_t, layer._channels_last)
    starts = [a for a, _ in layer.cropping]
    ends = [-e if e else INT64_MAX for _, e in layer.cropping]
    y = b.op("Slice", [x, b.ints(starts), b.ints(ends), b.ints([2, 3])], "crop")
    b.set(y_t, y, layer._channels_last)


def upsampling(b: GraphBuilder, layer, x_t, y_t) -> None:
    x = b.spatial_input(x_t, layer._channels_last)
    scales = b.floats([1.0, 1.0] + [float(s) for s in layer.size], "scales")
    y = b.op("Resize", [x, "", scales], "upsample", mode="nearest",
             coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    b.set(y_t, y, layer._channels_last)


# Checked in order: subclasses before their bases.
RULES = [
    (L.ConvTranspose, conv_transpose),
    ((L.Conv, L.DepthwiseConv2D), conv),
    (L.BasePooling, pooling),
    (L.BaseGlobalPooling, global_pooling),
    (L.BatchNormalization, batch_norm),
    (L.Dense, dense),
    (L.Flatten, flatten),
    (L.Reshape, reshape),
    (L.ReLU, relu),
    ((L.Activation, L.LeakyReLU, L.ELU, L.Softmax), elementwise),
    (L.Dropout, identity),
    (L.Add, add),
    (L.Concatenate, concatenate),
    (L.ZeroPadding2D, zero_padding),
    (L.Cropping2D, cropping),
    (L.UpSampling2D, upsampling),
]


def rule_for(layer):
    """The export function of ``layer``'s exact built-in class, or None.

    A user subclass that defines its own ``call`` is never matched: its math is unknown.
    """
    for classes, fn in RULES:
        if isinstance(layer, classes):
            owner = next(c for c in type(layer).__mro__ if "call" in vars(c))
            return fn if owner.__module__.startswith("dojang.") else None
    return None
