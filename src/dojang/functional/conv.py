"""``tf.nn``-style convolution and transposed convolution for 1, 2 and 3 spatial dims.

Every argument is checked here, before any array work; ``dojang.ops.conv`` then runs
on resolved per-dimension tuples. Shapes (channels-last; channels-first swaps C to axis 1):

    conv:            input (N, *L, C), filters (*K, C / groups, C_out) -> (N, *O, C_out)
                     O = floor((L + P_before + P_after - D*(K-1) - 1) / S) + 1
    conv_transpose:  input (N, *L, C_in), filters (*K, C_out, C_in) -> (N, *O, C_out)
                     O = (L-1)*S - P_before - P_after + D*(K-1) + 1 + output_padding
"""

from __future__ import annotations

import numpy as np

from dojang import ops
from dojang.autograd import Tensor
from dojang.config import get_default_dtype
from dojang.functional._args import (
    DATA_FORMATS,
    as_tensor,
    check_name,
    check_ndim,
    fail,
    is_list,
    padding_arg,
    spatial_arg,
    split_axes,
)
from dojang.ops.conv import FUSED_ACTIVATIONS
from dojang.shapes import (
    PADDING_MODES,
    conv_output_length,
    conv_transpose_output_length,
    resolve_padding,
    same_padding,
)
from dojang.validation import check_choice, check_data_format, check_int, is_int, standardize_tuple

__all__ = [
    "conv", "conv_arguments", "conv1d", "conv2d", "conv3d",
    "conv_transpose", "conv1d_transpose", "conv2d_transpose", "conv3d_transpose",
]

_FULL_RANK = "to be a full-rank list with 1 at the batch and channel positions"
_FULL_RANK_PADDING = ("to be an explicit full-rank list with [0, 0] at the batch and channel "
                      "positions")


def _cast_all(w: Tensor, *others):
    """Cast to the filters' (the parameters') float dtype; integer data to the default float."""
    dtype = w.dtype if w.dtype.kind == "f" else get_default_dtype()
    return tuple(t if t is None or t.dtype == dtype else ops.cast(t, dtype)
                 for t in (w,) + others)


def _common(input, filters, rank, data_format, strides, dilations, owner):
    """Checks shared by conv and conv_transpose; returns resolved pieces."""
    channels_last = check_data_format(data_format, rank, "data_format", owner)
    x = as_tensor(input, "input", owner, allow_bool=True)
    w = as_tensor(filters, "filters", owner, allow_bool=True)
    layout = DATA_FORMATS[rank][0 if channels_last else 1]
    check_ndim(x, rank + 2, "input", owner, f"to be a {rank + 2}-d array of shape {layout}")
    check_ndim(w, rank + 2, "filters", owner,
               f"to be a {rank + 2}-d array (*kernel_size, in, out) for a {rank}-d input")
    if any(v < 1 for v in w.shape):
        raise ValueError(f"{owner}: Expected every dimension of filters to be >= 1. "
                         f"Received: filters.shape={w.shape}")
    strides = spatial_arg(strides, rank, channels_last, "strides", owner, _FULL_RANK)
    dilations = spatial_arg(dilations, rank, channels_last, "dilations", owner, _FULL_RANK)
    spatial, (_, channels) = split_axes(x.shape, channels_last)
    return x, w, channels_last, strides, dilations, spatial, channels


def _resolve_pads(padding, spatial, kernel, strides, dilations, last, owner):
    """One ``(before, after)`` pair per spatial dim from any accepted padding form."""
    spec = padding_arg(padding, len(spatial), last, owner, _FULL_RANK_PADDING)
    return resolve_padding(spec, spatial, kernel, strides, dilations, "padding", owner)


def _bias(bias, channels: int, owner: str):
    if bias is None:
        return None
    b = as_tensor(bias, "bias", owner, allow_bool=True)
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
          padding_mode, bias, activation=None) -> Tensor:
    x, w, b, hyper = _conv_arguments(rank, owner, input, filters, strides, padding, data_format,
                                     dilations, groups, padding_mode, bias, activation)
    return ops.conv(x, w, b, **hyper)


def _conv_arguments(rank, owner, input, filters, strides, padding, data_format, dilations,
                    groups, padding_mode, bias, activation):
    """Every check of ``_conv``: the Tensors (cast alike) and ``ops.conv``'s keywords."""
    x, w, last, strides, dilations, spatial, channels = _common(
        input, filters, rank, data_format, strides, dilations, owner)
    groups = check_int(groups, "groups", owner, min_value=1)
    if activation not in FUSED_ACTIVATIONS:
        fail(owner, "activation", "to be None, 'relu' or 'tanh' (the fused activation)",
             f"activation={activation!r}")
    kernel, cg, cout = w.shape[:rank], w.shape[-2], w.shape[-1]
    if channels != cg * groups:
        raise ValueError(f"{owner}: Expected input channels to equal filters.shape[{rank}] * "
                         f"groups = {cg} * {groups} = {cg * groups}. Received: input.shape="
                         f"{x.shape}, filters.shape={w.shape}, groups={groups}")
    if cout % groups:
        raise ValueError(f"{owner}: Expected groups to divide the output channels "
                         f"filters.shape[-1]={cout}. Received: groups={groups}")
    mode = check_choice(padding_mode, PADDING_MODES, "padding_mode", owner)
    pads = _resolve_pads(padding, spatial, kernel, strides, dilations, last, owner)
    _check_mode_padding(mode, pads, spatial, padding, owner)
    for i, (n, k, d, (a, b)) in enumerate(zip(spatial, kernel, dilations, pads, strict=True)):
        if n + a + b < d * (k - 1) + 1:
            raise ValueError(f"{owner}: Expected the dilated kernel (size {d * (k - 1) + 1}) to "
                             f"fit in the padded input (size {n + a + b}) along spatial dim "
                             f"{i}. Received: input.shape={x.shape}, filters.shape={w.shape}, "
                             f"dilations={dilations}, padding={padding!r}")
    w, x, b = _cast_all(w, x, _bias(bias, cout, owner))
    return x, w, b, dict(strides=strides, dilations=dilations, groups=groups, pads=pads,
                         padding_mode=mode, channels_last=last, activation=activation)


def _output_shape_arg(output_shape, rank, batch_channels, last, owner):
    """Spatial sizes from ``output_shape`` given per spatial dim or as the full shape."""
    received = f"output_shape={output_shape!r}"
    shape = tuple(output_shape) if is_list(output_shape) else None
    if shape is None or not all(is_int(v) for v in shape) or len(shape) not in (rank, rank + 2):
        fail(owner, "output_shape", f"to be {rank} spatial sizes or a full {rank + 2}-d shape",
             received)
    if len(shape) == rank + 2:
        shape, outer = split_axes(shape, last)
        if outer != batch_channels:
            fail(owner, "output_shape", f"to be a shape with (batch, channels) = "
                 f"{batch_channels}", received)
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
        pads = _resolve_pads(padding, spatial, kernel, strides, dilations, last, owner)
        base = tuple(conv_transpose_output_length(n, k, s, a, b, d) for n, s, (a, b), d, k in
                     zip(spatial, strides, pads, dilations, kernel, strict=True))
        limit = tuple(max(s, d) for s, d in zip(strides, dilations, strict=True))
        bound = "max(S, D)"
    extra = tuple(m - 1 for m in strides) if same else (0,) * rank
    if output_padding is not None:
        extra = standardize_tuple(output_padding, rank, "output_padding", owner, min_value=0)
        if any(p >= m for p, m in zip(extra, limit, strict=True)):
            fail(owner, "output_padding", f"to be smaller than {bound} = {limit} in every dim",
                 f"output_padding={output_padding!r}")
    out = tuple(b + p for b, p in zip(base, extra, strict=True))
    if output_shape is not None:
        target = _output_shape_arg(output_shape, rank, batch_channels, last, owner)
        ok = all(0 <= t - b < m for t, b, m in zip(target, base, limit, strict=True))
        if not ok or (output_padding is not None and target != out):
            hi = tuple(b + m - 1 for b, m in zip(base, limit, strict=True))
            fail(owner, "output_shape", f"to be spatial sizes between {base} and {hi}" + (
                f" matching output_padding={output_padding!r}" if output_padding is not None
                else ""), f"output_shape={output_shape!r}")
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


def _rank_and_format(filters, data_format, owner: str, channels: str) -> tuple[int, str]:
    """The spatial rank ``filters.ndim - 2`` and the data format, defaulted for that rank."""
    rank = np.ndim(filters.data if isinstance(filters, Tensor) else filters) - 2
    if rank not in DATA_FORMATS:
        fail(owner, "filters", f"to be a 3-d, 4-d or 5-d array (*kernel_size, {channels})",
             f"filters.shape={np.shape(filters)}")
    return rank, DATA_FORMATS[rank][0] if data_format is None else data_format


def conv(input, filters, strides=1, padding="VALID", data_format: str | None = None,
         dilations=1, groups: int = 1, padding_mode: str = "zeros", bias=None,
         activation: str | None = None, name: str | None = None) -> Tensor:
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
        activation: None, ``"relu"`` or ``"tanh"``: the activation fused into the op
            (applied in place on the output, the same result as ``relu(conv(...))`` or
            ``tanh(conv(...))``, faster).
        name: accepted for TensorFlow compatibility (None or a string); not used.

    Input shape: (N, *L, C). Output shape: (N, *O, C_out),
        ``O = floor((L + P_before + P_after - D*(K-1) - 1) / S) + 1``.

    Raises:
        TypeError: non-numeric input or filters.
        ValueError: wrong ranks, channel mismatch, bad strides/dilations/groups/padding,
            unknown padding mode, reflect padding not smaller than the input, a kernel
            larger than the padded input, or an activation other than None/'relu'/'tanh'.

    Example:
        >>> import numpy as np
        >>> conv(np.ones((1, 5, 5, 1)), np.ones((3, 3, 1, 1))).shape
        (1, 3, 3, 1)
    """
    check_name(name, "conv")
    rank, data_format = _rank_and_format(filters, data_format, "conv", "in, out")
    return _conv(rank, "conv", input, filters, strides, padding, data_format, dilations, groups,
                 padding_mode, bias, activation)


def conv_arguments(input, filters, strides=1, padding="VALID", data_format: str | None = None,
                   dilations=1, groups: int = 1, padding_mode: str = "zeros", bias=None,
                   activation: str | None = None) -> tuple[Tensor, Tensor, Tensor | None, dict]:
    """``conv``'s checks without the convolution: ``(input, filters, bias, keywords)``.

    The three come back as Tensors, cast as ``conv`` casts them, and
    ``ops.conv(input, filters, bias, **keywords)`` is then what ``conv`` computes. A
    layer runs the checks once per input signature and keeps the keywords
    (``layers._args.per_signature``).

    Raises:
        TypeError, ValueError: as ``conv``.

    Example:
        >>> import numpy as np
        >>> _, _, _, keywords = conv_arguments(np.ones((1, 5, 5, 1)), np.ones((3, 3, 1, 1)),
        ...                                    padding="SAME")
        >>> keywords["pads"]
        ((1, 1), (1, 1))
    """
    rank, data_format = _rank_and_format(filters, data_format, "conv", "in, out")
    return _conv_arguments(rank, "conv", input, filters, strides, padding, data_format,
                           dilations, groups, padding_mode, bias, activation)


def conv_transpose(input, filters, output_shape=None, strides=1, padding="VALID",
                   data_format: str | None = None, dilations=1, output_padding=None,
                   bias=None, name: str | None = None) -> Tensor:
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
        name: accepted for TensorFlow compatibility (None or a string); not used.

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
    check_name(name, "conv_transpose")
    rank, data_format = _rank_and_format(filters, data_format, "conv_transpose", "out, in")
    return _conv_transpose(rank, "conv_transpose", input, filters, output_shape, strides,
                           padding, data_format, dilations, output_padding, bias)


def _conv_rank(rank: int):
    owner, default = f"conv{rank}d", DATA_FORMATS[rank][0]

    def wrapper(input, filters, strides=1, padding="VALID", data_format: str = default,
                dilations=1, groups: int = 1, padding_mode: str = "zeros", bias=None,
                activation: str | None = None, name: str | None = None) -> Tensor:
        check_name(name, owner)
        return _conv(rank, owner, input, filters, strides, padding, data_format, dilations,
                     groups, padding_mode, bias, activation)

    wrapper.__name__ = wrapper.__qualname__ = owner
    wrapper.__doc__ = (f"{rank}-d convolution; ``conv`` with input (N, *L, C) of {rank} spatial "
                       f"dims and data_format ``{default}`` by default. See ``conv``.")
    return wrapper


def _conv_transpose_rank(rank: int):
    owner, default = f"conv{rank}d_transpose", DATA_FORMATS[rank][0]

    def wrapper(input, filters, output_shape=None, strides=1, padding="VALID",
                data_format: str = default, dilations=1, output_padding=None,
                bias=None, name: str | None = None) -> Tensor:
        check_name(name, owner)
        return _conv_transpose(rank, owner, input, filters, output_shape, strides, padding,
                               data_format, dilations, output_padding, bias)

    wrapper.__name__ = wrapper.__qualname__ = owner
    wrapper.__doc__ = (f"{rank}-d transposed convolution (filters (*K, C_out, C_in)); data_format "
                       f"``{default}`` by default. See ``conv_transpose``.")
    return wrapper


conv1d, conv2d, conv3d = (_conv_rank(r) for r in (1, 2, 3))
conv1d_transpose, conv2d_transpose, conv3d_transpose = (_conv_transpose_rank(r) for r in (1, 2, 3))
