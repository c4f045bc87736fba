"""How each ONNX op becomes dojang layers, for ``dj.onnx.load``.

Every ONNX value that holds data is a ``Sym``: a dojang symbolic tensor and ``perm``, with
``onnx_value = transpose(dojang_tensor, perm)``. Transpose nodes only change ``perm``, so a
channels-first graph with transposes at its edges (dojang's own export of a channels-last
model) comes back as channels-last layers, and a graph without them (PyTorch's) as
channels-first layers: an imported graph keeps its layout. Constants are NumPy arrays.
A ``Pad`` (reflect, edge, wrap) or a ``MatMul`` waits as a ``Pending`` value until its
consumer folds it into a convolution's ``padding_mode`` or a Dense layer's bias.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dojang import layers as L
from dojang.onnx._builder import INT64_MAX, to_first
from dojang.shapes import same_padding


@dataclass
class Sym:
    tensor: object
    perm: tuple

    @property
    def rank(self) -> int:
        return len(self.perm)

    @property
    def shape(self) -> tuple:
        return tuple(self.tensor.shape[p] for p in self.perm)


@dataclass
class Pending:
    kind: str  # "pad" or "matmul"
    source: Sym
    data: object


class Unsupported(ValueError):
    """An ONNX node that dojang cannot express; the loader adds the node's name."""


def _identity(rank: int) -> tuple:
    return tuple(range(rank))


def _format(sym: Sym, what: str) -> str:
    """The data format a layer needs for ``sym`` read as ONNX's N, C, spatial..."""
    if sym.perm == _identity(sym.rank):
        return "channels_first"
    if sym.perm == tuple(to_first(sym.rank)):
        return "channels_last"
    raise Unsupported(f"{what} reads a tensor whose axes are permuted as {sym.perm}; only "
                      f"channels-first and channels-last arrangements are supported")


def _out(layer, sym: Sym, weights=None) -> Sym:
    y = layer(sym.tensor)
    if weights is not None:
        layer.set_weights(weights)
    return Sym(y, sym.perm if len(y.shape) == sym.rank else _identity(len(y.shape)))


def _pairs(pads, rank: int) -> tuple:
    pads = list(pads) if pads else [0] * (2 * rank)
    return tuple((int(pads[i]), int(pads[i + rank])) for i in range(rank))


def _padding(attrs, spatial, kernel, strides, dilations, what):
    auto = attrs.get("auto_pad", "NOTSET")
    rank = len(kernel)
    if auto == "VALID":
        return ((0, 0),) * rank
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        if None in spatial:
            raise Unsupported(f"{what}: auto_pad={auto} needs known spatial sizes")
        pairs = [same_padding(n, k, s, d) for n, k, s, d in
                 zip(spatial, kernel, strides, dilations)]
        return tuple(p[::-1] if auto == "SAME_LOWER" else p for p in pairs)
    return _pairs(attrs.get("pads"), rank)


def _geometry(attrs, rank):
    return (tuple(attrs.get("strides", [1] * rank)),
            tuple(attrs.get("dilations", [1] * rank)))


def conv(x: Sym, w: np.ndarray, bias, attrs, pad: Pending | None) -> Sym:
    rank = w.ndim - 2
    fmt = _format(x, "Conv")
    strides, dilations = _geometry(attrs, rank)
    kernel = tuple(w.shape[2:])
    pairs = _padding(attrs, x.shape[2:], kernel, strides, dilations, "Conv")
    mode = "zeros"
    if pad is not None:
        if any(p != (0, 0) for p in pairs):
            raise Unsupported("Conv after a non-constant Pad must have no padding of its own")
        pairs, mode = pad.data
    group = int(attrs.get("group", 1))
    cls = {1: L.Conv1D, 2: L.Conv2D, 3: L.Conv3D}.get(rank)
    if cls is None:
        raise Unsupported(f"Conv of rank {rank}")
    layer = cls(w.shape[0], kernel, strides=strides, padding=pairs, dilation_rate=dilations,
                groups=group, use_bias=bias is not None, data_format=fmt, padding_mode=mode)
    kernel_dj = w.transpose(tuple(range(2, rank + 2)) + (1, 0))
    return _out(layer, x, [kernel_dj] + ([bias] if bias is not None else []))


def conv_transpose(x: Sym, w: np.ndarray, bias, attrs) -> Sym:
    rank = w.ndim - 2
    fmt = _format(x, "ConvTranspose")
    if int(attrs.get("group", 1)) != 1 or "output_shape" in attrs or \
            attrs.get("auto_pad", "NOTSET") != "NOTSET":
        raise Unsupported("ConvTranspose with group > 1, output_shape or auto_pad")
    strides, dilations = _geometry(attrs, rank)
    cls = {1: L.Conv1DTranspose, 2: L.Conv2DTranspose, 3: L.Conv3DTranspose}[rank]
    extra = tuple(attrs.get("output_padding", [0] * rank))
    layer = cls(w.shape[1], tuple(w.shape[2:]), strides=strides,
                padding=_pairs(attrs.get("pads"), rank), output_padding=extra,
                dilation_rate=dilations, use_bias=bias is not None, data_format=fmt)
    kernel_dj = w.transpose(tuple(range(2, rank + 2)) + (1, 0))
    return _out(layer, x, [kernel_dj] + ([bias] if bias is not None else []))


def pool(x: Sym, op: str, attrs) -> Sym:
    kernel = tuple(attrs["kernel_shape"])
    rank = len(kernel)
    fmt = _format(x, op)
    strides = tuple(attrs.get("strides", [1] * rank))
    if any(d != 1 for d in attrs.get("dilations", [1] * rank)):
        raise Unsupported(f"{op} with dilations")
    spatial = x.shape[2:]
    pairs = _padding(attrs, spatial, kernel, strides, (1,) * rank, op)
    if attrs.get("ceil_mode", 0) and any(
            n is None or (n + a + b - k) % s for n, (a, b), k, s in
            zip(spatial, pairs, kernel, strides)):
        raise Unsupported(f"{op} with ceil_mode=1 that rounds up")
    kind = "Max" if op == "MaxPool" else "Average"
    cls = getattr(L, f"{kind}Pooling{rank}D")
    same = None not in spatial and pairs == tuple(
        same_padding(n, k, s) for n, k, s in zip(spatial, kernel, strides))
    if all(p == (0, 0) for p in pairs):
        padding = "valid"
    elif same and (op == "MaxPool" or not attrs.get("count_include_pad", 0)):
        padding = "same"
    elif op == "AveragePool" and attrs.get("count_include_pad", 0) and rank == 2:
        x = _out(L.ZeroPadding2D(pairs, data_format=fmt), x)
        padding = "valid"
    else:
        raise Unsupported(f"{op} with pads {pairs} (dojang pools pad as 'same' or not at all)")
    return _out(cls(kernel, strides=strides, padding=padding, data_format=fmt), x)


def global_pool(x: Sym, op: str) -> Sym:
    rank = x.rank - 2
    kind = "Max" if op == "GlobalMaxPool" else "Average"
    layer = getattr(L, f"Global{kind}Pooling{rank}D")(keepdims=True,
                                                        data_format=_format(x, op))
    return _out(layer, x)


def batch_norm(x: Sym, consts, attrs) -> Sym:
    scale, beta, mean, var = consts
    layer = L.BatchNormalization(axis=x.perm[1], epsilon=float(attrs.get("epsilon", 1e-5)),
                                 momentum=float(attrs.get("momentum", 0.9)))
    return _out(layer, x, [scale, beta, mean, var])


def dense(x: Sym, kernel: np.ndarray, bias) -> Sym:
    if x.perm != _identity(x.rank):
        raise Unsupported("a matrix product over a permuted tensor")
    layer = L.Dense(kernel.shape[1], use_bias=bias is not None)
    return _out(layer, x, [kernel] + ([np.broadcast_to(bias, kernel.shape[1:]).copy()]
                                      if bias is not None else []))


def gemm(x: Sym, b: np.ndarray, c, attrs) -> Sym:
    if attrs.get("transA", 0) or x.rank != 2 or b.ndim != 2:
        raise Unsupported("Gemm with transA or inputs that are not matrices")
    kernel = float(attrs.get("alpha", 1.0)) * (b.T if attrs.get("transB", 0) else b)
    bias = None if c is None else float(attrs.get("beta", 1.0)) * c
    return dense(x, kernel.astype(b.dtype), None if bias is None else bias.astype(b.dtype))


def _plain_order(x: Sym) -> bool:
    """True when reading ``x`` in ONNX order equals reading its dojang tensor in order."""
    sized = [a for a in x.perm[1:] if x.tensor.shape[a] != 1]
    return sized == sorted(sized)


def flatten(x: Sym, axis: int) -> Sym:
    if axis != 1 or not _plain_order(x):
        raise Unsupported(f"Flatten with axis={axis} or over a permuted tensor")
    return Sym(L.Flatten()(x.tensor), (0, 1))


def reshape(x: Sym, shape: np.ndarray) -> Sym:
    target = [int(v) for v in shape]
    if not target or target[0] not in (0, -1) or not _plain_order(x):
        raise Unsupported(f"Reshape to {target} (the batch axis must stay first)")
    rest = [x.shape[i + 1] if v == 0 else v for i, v in enumerate(target[1:])]
    if target[0] == -1 and -1 in rest:
        raise Unsupported(f"Reshape to {target} with two unknown sizes")
    layer = L.Flatten() if len(rest) == 1 else L.Reshape(tuple(rest))
    return Sym(layer(x.tensor), _identity(len(rest) + 1))


def elementwise(x: Sym, op: str, attrs, opset: int) -> Sym:
    if op == "Relu":
        layer = L.ReLU()
    elif op in ("Sigmoid", "Tanh"):
        layer = L.Activation(op.lower())
    elif op == "Elu":
        layer = L.ELU(float(attrs.get("alpha", 1.0)))
    elif op == "LeakyRelu":
        layer = L.LeakyReLU(float(attrs.get("alpha", 0.01)))
    elif op == "Gelu":
        if attrs.get("approximate", "none") != "none":
            raise Unsupported("Gelu with the tanh approximation")
        layer = L.Activation("gelu")
    else:  # Softmax, LogSoftmax
        axis = int(attrs.get("axis", -1 if opset >= 13 else 1)) % x.rank
        if opset < 13 and axis != x.rank - 1:
            raise Unsupported(f"{op} of opset {opset} over axes {axis}..{x.rank - 1}")
        if op == "Softmax":
            layer = L.Softmax(axis=x.perm[axis])
        elif x.perm[axis] == x.rank - 1:
            layer = L.Activation("log_softmax")
        else:
            raise Unsupported("LogSoftmax over an axis other than the last")
    return _out(layer, x)


def _scalar(value):
    if value is None:
        return None
    if np.size(value) != 1:
        raise Unsupported(f"a bound of shape {np.shape(value)} where a scalar belongs")
    return float(np.reshape(value, -1)[0])


def clip(x: Sym, low, high) -> Sym:
    low, high = _scalar(low), _scalar(high)
    if low != 0.0:
        raise Unsupported("Clip with a lower bound other than 0 (only ReLU-like clips)")
    return _out(L.ReLU(max_value=high), x)


def merge(xs: list[Sym], op: str, axis: int = 0) -> Sym:
    perms = {x.perm for x in xs}
    if len(perms) != 1:
        raise Unsupported(f"{op} of tensors laid out differently")
    perm = xs[0].perm
    layer = L.Add() if op == "Add" else L.Concatenate(axis=perm[axis % len(perm)])
    return Sym(layer([x.tensor for x in xs]), perm)


def pad(x: Sym, pads: np.ndarray, mode: str, value) -> Sym | Pending:
    rank = x.rank
    pairs = _pairs([int(v) for v in pads], rank)
    if any(p != (0, 0) for p in pairs[:2]) or any(v < 0 for p in pairs for v in p):
        raise Unsupported("Pad of the batch or channel axes, or a negative pad")
    spatial = pairs[2:]
    if mode == "constant":
        if _scalar(value) not in (None, 0.0) or rank != 4:
            raise Unsupported("constant Pad other than zeros of a 4-d tensor")
        return _out(L.ZeroPadding2D(spatial, data_format=_format(x, "Pad")), x)
    modes = {"reflect": "reflect", "edge": "replicate", "wrap": "circular"}
    if mode not in modes:
        raise Unsupported(f"Pad mode {mode!r}")
    return Pending("pad", x, (spatial, modes[mode]))


def crop(x: Sym, starts, ends, axes, steps) -> Sym:
    if x.rank != 4 or steps is not None and any(int(s) != 1 for s in steps):
        raise Unsupported("Slice other than a crop of a 4-d tensor's spatial axes")
    axes = [int(a) % 4 for a in (range(len(starts)) if axes is None else axes)]
    crops = [[0, 0], [0, 0]]
    for a, s, e in zip(axes, starts, ends):
        n = x.shape[a]
        if a < 2 or n is None:
            raise Unsupported("Slice of the batch or channel axis, or of an unknown size")
        s, e = int(s), int(e)
        s = max(s + n if s < 0 else s, 0)
        e = min(e + n if e < 0 else e, n) if e < INT64_MAX // 2 else n
        crops[a - 2] = [s, n - e]
    return _out(L.Cropping2D(tuple(map(tuple, crops)), data_format=_format(x, "Slice")), x)


def resize(x: Sym, scales, sizes, attrs) -> Sym:
    if attrs.get("mode", "nearest") != "nearest" or attrs.get(
            "coordinate_transformation_mode", "half_pixel") != "asymmetric" or \
            attrs.get("nearest_mode", "round_prefer_floor") != "floor" or x.rank != 4:
        raise Unsupported("Resize other than 4-d nearest with asymmetric coordinates and floor")
    if scales is None or not len(scales):
        shape = x.shape
        if sizes is None or None in shape[2:]:
            raise Unsupported("Resize without scales or sizes")
        scales = [s / n for s, n in zip(sizes, shape)]
    factors = [float(s) for s in scales]
    if factors[:2] != [1.0, 1.0] or any(f != int(f) or f < 1 for f in factors[2:]):
        raise Unsupported(f"Resize by {factors} (only integer upsampling of the spatial axes)")
    size = tuple(int(f) for f in factors[2:])
    return _out(L.UpSampling2D(size, data_format=_format(x, "Resize")), x)
