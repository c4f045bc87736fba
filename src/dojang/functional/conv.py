"""``tf.nn``-style convolution and transposed convolution for 1, 2 and 3 spatial dims.

Every argument is checked here, before any array work; ``dojang.ops.conv`` then runs
on resolved per-dimension tuples. Shapes (channels-last; channels-first swaps C to axis 1):

    conv:            input (N, *L, C), filters (*K, C / groups, C_out) -> (N, *O, C_out)
                     O = floor((L + P_before + P_after - D*(K-1) - 1) / S) + 1
    conv_transpose:  input (N, *L, C_in), filters (*K, C_out, C_in) -> (N, *O, C_out)
                     O = (L-1)*S - P_before - P_after + D*(K-1) + 1 + output_padding
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dojang import ops
from dojang.autograd import Tensor
from dojang.autograd.tensor import as_array
from dojang.config import get_default_dtype
from dojang.shapes import conv_output_length, resolve_padding, same_padding
from dojang.validation import check_choice, check_data_format, check_int, is_int, standardize_tuple

__all__ = [
    "conv", "conv1d", "conv2d", "conv3d",
    "conv_transpose", "conv1d_transpose", "conv2d_transpose", "conv3d_transpose",
]

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_LAST = {1: "NWC", 2: "NHWC", 3: "NDHWC"}


def _fail(owner, name, what, value, error=ValueError):
    raise error(f"{owner}: Expected {name} to be {what}. Received: {name}={value!r}")


def _as_tensor(value, name: str, owner: str) -> Tensor:
    """Wrap an array-like in a Tensor (no copy), rejecting non-numeric data."""
    if not isinstance(value, Tensor):
        try:
            value = Tensor(as_array(value))
        except TypeError:
            _fail(owner, name, "a numeric array or Tensor", value, TypeError)
    if value.dtype.kind not in "biuf":
        _fail(owner, name, "a numeric array or Tensor", value, TypeError)
    return value


def _cast_all(w: Tensor, *others):
    """Cast to the filters' (the parameters') float dtype; integer data to the default float."""
    dtype = w.dtype if w.dtype.kind == "f" else get_default_dtype()
    return tuple(t if t is None or t.dtype == dtype else ops.cast(t, dtype)
                 for t in (w,) + others)


def _spatial_arg(value, rank: int, name: str, owner: str, channels_last: bool):
    """An int, a tuple per spatial dim, or TF's full-rank list (batch/channel entries 1)."""
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == rank + 2:
        inner = value[1:-1] if channels_last else value[2:]
        outer = (value[0], value[-1]) if channels_last else tuple(value[:2])
        if any(v != 1 for v in outer):
            _fail(owner, name, "a full-rank list with 1 at the batch and channel "
                  "positions", value)
        value = list(inner)
    return standardize_tuple(value, rank, name, owner)


def _padding_arg(padding, rank: int, channels_last: bool, owner: str):
    """Strip TF's explicit full-rank padding list down to the spatial pairs."""
    if isinstance(padding, Sequence) and not isinstance(padding, str) \
            and len(padding) == rank + 2:
        outer = (padding[0], padding[-1]) if channels_last else tuple(padding[:2])
        if any(not isinstance(p, Sequence) or tuple(p) != (0, 0) for p in outer):
            _fail(owner, "padding", "an explicit full-rank list with [0, 0] at the batch and "
                  "channel positions", padding)
        return tuple(tuple(p) for p in (padding[1:-1] if channels_last else padding[2:]))
    return padding


def _common(input, filters, rank, data_format, strides, dilations, owner):
    """Checks shared by conv and conv_transpose; returns resolved pieces."""
    channels_last = check_data_format(data_format, rank, "data_format", owner)
    x = _as_tensor(input, "input", owner)
    w = _as_tensor(filters, "filters", owner)
    layout = _LAST[rank] if channels_last else "NC" + _LAST[rank][1:-1]
    if x.ndim != rank + 2:
        raise ValueError(f"{owner}: Expected input to be a {rank + 2}-d array of shape "
                         f"{layout}. Received: input.shape={x.shape}")
    if w.ndim != rank + 2:
        raise ValueError(f"{owner}: Expected filters to be a {rank + 2}-d array (*kernel_size, "
                         f"in, out) for a {rank}-d input. Received: filters.shape={w.shape}")
    if any(v < 1 for v in w.shape):
        raise ValueError(f"{owner}: Expected every dimension of filters to be >= 1. "
                         f"Received: filters.shape={w.shape}")
    strides = _spatial_arg(strides, rank, "strides", owner, channels_last)
    dilations = _spatial_arg(dilations, rank, "dilations", owner, channels_last)
    spatial = x.shape[1:-1] if channels_last else x.shape[2:]
    channels = x.shape[-1] if channels_last else x.shape[1]
    return x, w, channels_last, strides, dilations, tuple(spatial), channels


def _bias(bias, channels: int, owner: str):
    if bias is None:
        return None
    b = _as_tensor(bias, "bias", owner)
    if b.shape != (channels,):
        raise ValueError(f"{owner}: Expected bias to have shape ({channels},) (one per output "
                         f"channel). Received: bias.shape={b.shape}")
    return b


def _check_mode_padding(mode, pads, spatial, padding, owner):
    for i, ((a, b), n) in enumerate(zip(pads, spatial, strict=True)):
        if mode == "reflect" and max(a, b) >= n:
            raise ValueError(f"{owner}: Expected padding to be smaller than the input for "
                             f"padding_mode='reflect'; spatial dim {i} has size {n}. "
                             f"Received: padding={padding!r}")
        if mode in ("replicate", "circular") and (a or b) and (n == 0 or (
                mode == "circular" and max(a, b) > n)):
            raise ValueError(f"{owner}: Expected padding to be at most the input size for "
                             f"padding_mode='{mode}'; spatial dim {i} has size {n}. "
                             f"Received: padding={padding!r}")


def _conv(rank, owner, input, filters, strides, padding, data_format, dilations, groups,
          padding_mode, bias) -> Tensor:
    x, w, last, strides, dilations, spatial, channels = _common(
        input, filters, rank, data_format, strides, dilations, owner)
    groups = check_int(groups, "groups", owner, min_value=1)
    kernel, cg, cout = w.shape[:rank], w.shape[-2], w.shape[-1]
    if channels != cg * groups:
        raise ValueError(f"{owner}: Expected input channels to equal filters.shape[{rank}] * "
                         f"groups = {cg} * {groups} = {cg * groups}. Received: input.shape="
                         f"{x.shape}, filters.shape={w.shape}, groups={groups}")
    if cout % groups:
        raise ValueError(f"{owner}: Expected groups to divide the output channels "
                         f"filters.shape[-1]={cout}. Received: groups={groups}")
    mode = check_choice(padding_mode, PADDING_MODES, "padding_mode", owner)
    pads = resolve_padding(_padding_arg(padding, rank, last, owner), spatial, kernel, strides,
                           dilations, "padding", owner)
    _check_mode_padding(mode, pads, spatial, padding, owner)
    for i, (n, k, d, (a, b)) in enumerate(zip(spatial, kernel, dilations, pads, strict=True)):
        if n + a + b < d * (k - 1) + 1:
            raise ValueError(f"{owner}: Expected the dilated kernel (size {d * (k - 1) + 1}) to "
                             f"fit in the padded input (size {n + a + b}) along spatial dim "
                             f"{i}. Received: input.shape={x.shape}, filters.shape={w.shape}, "
                             f"dilations={dilations}, padding={padding!r}")
    w, x, b = _cast_all(w, x, _bias(bias, cout, owner))
    return ops.conv(x, w, b, strides=strides, dilations=dilations, groups=groups, pads=pads,
                    padding_mode=mode, channels_last=last)


def _output_shape_arg(output_shape, rank, batch_channels, last, owner):
    """Spatial sizes from ``output_shape`` given per spatial dim or as the full shape."""
    shape = tuple(output_shape) if isinstance(output_shape, Sequence) else None
    if shape is None or not all(is_int(v) for v in shape) or len(shape) not in (rank, rank + 2):
        _fail(owner, "output_shape", f"{rank} spatial sizes or a full {rank + 2}-d shape",
              output_shape)
    if len(shape) == rank + 2:
        if ((shape[0], shape[-1]) if last else shape[:2]) != batch_channels:
            _fail(owner, "output_shape", f"a shape with (batch, channels) = {batch_channels}",
                  output_shape)
        shape = shape[1:-1] if last else shape[2:]
    return tuple(int(v) for v in shape)


def _transpose_sizes(owner, spatial, kernel, strides, dilations, padding, output_shape,
                     output_padding, batch_channels, last):
    """Resolve the output spatial size and the forward conv's pads of a transposed conv.

    The sizes that the forward conv maps back to L are ``base + p``: for explicit
    padding ``base = (L-1)*S - P + D*(K-1) + 1`` and ``0 <= p < max(S, D)``; for SAME
    ``base = (L-1)*S + 1`` and ``0 <= p < S`` (the default is ``L*S``, as TensorFlow).
    """
    rank = len(spatial)
    same = isinstance(padding, str) and padding.lower() == "same"
    if same:
        pads = None
        base = tuple((n - 1) * s + 1 for n, s in zip(spatial, strides, strict=True))
        limit, bound = strides, "strides"
    else:
        pads = resolve_padding(_padding_arg(padding, rank, last, owner), spatial, kernel,
                               strides, dilations, "padding", owner)
        base = tuple((n - 1) * s - a - b + d * (k - 1) + 1 for n, s, (a, b), d, k in
                     zip(spatial, strides, pads, dilations, kernel, strict=True))
        limit = tuple(max(s, d) for s, d in zip(strides, dilations, strict=True))
        bound = "max(S, D)"
    extra = tuple(m - 1 for m in strides) if same else (0,) * rank
    if output_padding is not None:
        extra = standardize_tuple(output_padding, rank, "output_padding", owner, min_value=0)
        if any(p >= m for p, m in zip(extra, limit, strict=True)):
            _fail(owner, "output_padding", f"smaller than {bound} = {limit} in every dim",
                  output_padding)
    out = tuple(b + p for b, p in zip(base, extra, strict=True))
    if output_shape is not None:
        target = _output_shape_arg(output_shape, rank, batch_channels, last, owner)
        ok = all(0 <= t - b < m for t, b, m in zip(target, base, limit, strict=True))
        if not ok or (output_padding is not None and target != out):
            hi = tuple(b + m - 1 for b, m in zip(base, limit, strict=True))
            _fail(owner, "output_shape", f"spatial sizes between {base} and {hi}" + (
                f" matching output_padding={output_padding!r}" if output_padding is not None
                else ""), output_shape)
        out = target
    if any(o < 1 for o in out):
        raise ValueError(f"{owner}: Expected a positive output size; padding={padding!r} "
                         f"crops the whole output (size {out}).")
    if same:
        pads = tuple(same_padding(o, k, s, d)
                     for o, k, s, d in zip(out, kernel, strides, dilations, strict=True))
    return out, pads


def _conv_transpose(rank, owner, input, filters, output_shape, strides, padding, data_format,
                    dilations, output_padding, bias) -> Tensor:
    x, w, last, strides, dilations, spatial, channels = _common(
        input, filters, rank, data_format, strides, dilations, owner)
    kernel, cout, cin = w.shape[:rank], w.shape[-2], w.shape[-1]
    if channels != cin:
        raise ValueError(f"{owner}: Expected input channels to equal filters.shape[-1]={cin} "
                         f"(filters are (*kernel_size, out_channels, in_channels)). Received: "
                         f"input.shape={x.shape}, filters.shape={w.shape}")
    out, pads = _transpose_sizes(owner, spatial, kernel, strides, dilations, padding,
                                 output_shape, output_padding, (x.shape[0], cout), last)
    dims = zip(out, kernel, strides, dilations, pads, strict=True)
    for i, (o, k, s, d, (a, b)) in enumerate(dims):
        if conv_output_length(o, k, s, a, b, d) < 1:
            raise ValueError(f"{owner}: Expected the dilated kernel (size {d * (k - 1) + 1}) "
                             f"to fit in the padded output along spatial dim {i}. Received: "
                             f"filters.shape={w.shape}, padding={padding!r}")
    w, x, b = _cast_all(w, x, _bias(bias, cout, owner))
    return ops.conv_transpose(x, w, b, strides=strides, dilations=dilations, pads=pads,
                              out_spatial=out, channels_last=last)


def conv(input, filters, strides=1, padding="VALID", data_format: str | None = None,
         dilations=1, groups: int = 1, padding_mode: str = "zeros", bias=None) -> Tensor:
    """N-d convolution (cross-correlation; the kernel is not flipped), N = filters.ndim - 2.

    Args:
        input: (N, *L, C) array or Tensor (channels-first: (N, C, *L)).
        filters: (*K, C / groups, C_out).
        strides, dilations: an int, one int per spatial dim, or TensorFlow's full-rank
            list (``[1, 2, 2, 1]`` for NHWC, ``[1, 1, 2, 2]`` for NCHW).
        padding: ``"VALID"``, ``"SAME"`` (any case; output ``ceil(L / S)``, the odd pixel
            at the end), an int, one int per dim, one ``(before, after)`` pair per dim, or
            TensorFlow's explicit full-rank list (``[[0, 0], [1, 1], [2, 2], [0, 0]]``).
        data_format: ``"NWC"``/``"NHWC"``/``"NDHWC"`` (default) or the channels-first
            ``"NCW"``/``"NCHW"``/``"NCDHW"``; ``"channels_last"``/``"channels_first"`` too.
        groups: split channels into groups convolved separately (``groups == C``:
            depthwise).
        padding_mode: ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"``.
        bias: optional (C_out,) added to every output pixel.

    Input shape: (N, *L, C). Output shape: (N, *O, C_out),
        ``O = floor((L + P_before + P_after - D*(K-1) - 1) / S) + 1``.

    Raises:
        TypeError: non-numeric input or filters.
        ValueError: wrong ranks, channel mismatch, bad strides/dilations/groups/padding,
            unknown padding mode, reflect padding not smaller than the input, or a kernel
            larger than the padded input.

    Example:
        >>> import numpy as np
        >>> conv(np.ones((1, 5, 5, 1)), np.ones((3, 3, 1, 1))).shape
        (1, 3, 3, 1)
    """
    w_ndim = np.ndim(filters.data if isinstance(filters, Tensor) else filters)
    rank = w_ndim - 2
    if rank not in _LAST:
        raise ValueError(f"conv: Expected filters to be a 3-d, 4-d or 5-d array (*kernel_size, "
                         f"in, out). Received: filters.shape={np.shape(filters)}")
    data_format = _LAST[rank] if data_format is None else data_format
    return _conv(rank, "conv", input, filters, strides, padding, data_format, dilations, groups,
                 padding_mode, bias)


def conv_transpose(input, filters, output_shape=None, strides=1, padding="VALID",
                   data_format: str | None = None, dilations=1, output_padding=None,
                   bias=None) -> Tensor:
    """N-d transposed convolution: the exact adjoint of ``conv`` w.r.t. its input.

    Args:
        input: (N, *L, C_in) (channels-first: (N, C_in, *L)).
        filters: (*K, C_out, C_in), as ``tf.nn.conv2d_transpose``.
        output_shape: spatial sizes, or the full output shape, picking one of the sizes
            the forward conv maps back to L (default: ``output_padding`` 0, or ``L*S``
            for SAME).
        strides, padding, data_format, dilations: as ``conv`` (the forward conv's).
        output_padding: extra size at the end of each dim, each ``< max(S, D)``
            (``< S`` for SAME).
        bias: optional (C_out,).

    Input shape: (N, *L, C_in). Output shape: (N, *O, C_out),
        ``O = (L-1)*S - P_before - P_after + D*(K-1) + 1 + output_padding``.

    Raises:
        TypeError: non-numeric input or filters.
        ValueError: as ``conv``, plus an ``output_shape``/``output_padding`` that no
            forward conv maps back to L.

    Example:
        >>> import numpy as np
        >>> conv_transpose(np.ones((1, 3, 3, 1)), np.ones((3, 3, 1, 1))).shape
        (1, 5, 5, 1)
    """
    w_ndim = np.ndim(filters.data if isinstance(filters, Tensor) else filters)
    rank = w_ndim - 2
    if rank not in _LAST:
        raise ValueError(f"conv_transpose: Expected filters to be a 3-d, 4-d or 5-d array "
                         f"(*kernel_size, out, in). Received: filters.shape={np.shape(filters)}")
    data_format = _LAST[rank] if data_format is None else data_format
    return _conv_transpose(rank, "conv_transpose", input, filters, output_shape, strides,
                           padding, data_format, dilations, output_padding, bias)


def _conv_rank(rank: int):
    name = f"conv{rank}d"

    def wrapper(input, filters, strides=1, padding="VALID", data_format: str = _LAST[rank],
                dilations=1, groups: int = 1, padding_mode: str = "zeros", bias=None) -> Tensor:
        return _conv(rank, name, input, filters, strides, padding, data_format, dilations,
                     groups, padding_mode, bias)

    wrapper.__name__ = wrapper.__qualname__ = name
    wrapper.__doc__ = (f"{rank}-d convolution; ``conv`` with input (N, *L, C) of {rank} spatial "
                       f"dims and data_format ``{_LAST[rank]}`` by default. See ``conv``.")
    return wrapper


def _conv_transpose_rank(rank: int):
    name = f"conv{rank}d_transpose"

    def wrapper(input, filters, output_shape=None, strides=1, padding="VALID",
                data_format: str = _LAST[rank], dilations=1, output_padding=None,
                bias=None) -> Tensor:
        return _conv_transpose(rank, name, input, filters, output_shape, strides, padding,
                               data_format, dilations, output_padding, bias)

    wrapper.__name__ = wrapper.__qualname__ = name
    wrapper.__doc__ = (f"{rank}-d transposed convolution (filters (*K, C_out, C_in)); data_format "
                       f"``{_LAST[rank]}`` by default. See ``conv_transpose``.")
    return wrapper


conv1d, conv2d, conv3d = (_conv_rank(r) for r in (1, 2, 3))
conv1d_transpose, conv2d_transpose, conv3d_transpose = (_conv_transpose_rank(r) for r in (1, 2, 3))
