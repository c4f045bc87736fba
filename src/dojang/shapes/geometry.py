"""Shape arithmetic of convolution and pooling, in plain integers.

Notation (used everywhere below): for one spatial dimension, ``L`` is the input length
(H or W), ``K`` the kernel size, ``S`` the stride, ``D`` the dilation and ``P_before``,
``P_after`` the padding on each side. The output length is the seeds' formula
generalized with dilation::

    O = floor((L + P_before + P_after - D*(K-1) - 1) / S) + 1

which for D=1 is ``(n + 2p - f) / s + 1``. Nothing here knows about arrays or tensors;
the kernels, ops, functional entry points, layers and ``summary()`` all call these
functions: output lengths (``conv_output_length``, ``window_output_shape``,
``pool_output_shape``), transposed lengths (``conv_transpose_output_length``,
``transpose_output_length``), padding (``same_padding``, ``resolve_padding``,
``PADDING_MODES``) and the layers' sliding-window geometry (``SlidingWindow``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from dojang.validation import check_bool, check_choice, check_int, is_int, standardize_tuple


def _check_ints(owner: str, **args: tuple) -> None:
    """``name=(value, minimum)`` pairs, each checked as an int >= minimum (any int for None)."""
    for name, (value, minimum) in args.items():
        check_int(value, name, owner, min_value=minimum)


PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def conv_output_length(
    length: int, kernel: int, stride: int = 1, pad_before: int = 0, pad_after: int = 0,
    dilation: int = 1,
) -> int:
    """Output length of a convolution or pooling along one dimension.

    A negative padding crops (the kernels' full correlation uses it).

    Example:
        >>> conv_output_length(4, 3, 1, 1, 1)     # 4x4 input, 3x3 filter, padding 1
        4
        >>> conv_output_length(5, 3)              # 5x5 input, 3x3 filter, no padding
        3

    Raises:
        TypeError/ValueError: "conv_output_length: Expected stride to be an int >= 1.
            Received: stride=0" (length >= 0; kernel, stride, dilation >= 1; paddings ints).
    """
    _check_ints("conv_output_length", length=(length, 0), kernel=(kernel, 1),
                stride=(stride, 1), pad_before=(pad_before, None), pad_after=(pad_after, None),
                dilation=(dilation, 1))
    return _output_length(length, kernel, stride, pad_before, pad_after, dilation)


def _output_length(length, kernel, stride, pad_before, pad_after, dilation) -> int:
    """``conv_output_length`` without the argument checks, for callers whose arguments
    were checked once already (the kernels run it several times per step)."""
    span = dilation * (kernel - 1) + 1
    padded = length + pad_before + pad_after
    if padded < span:
        return 0
    return (padded - span) // stride + 1


def window_output_shape(spatial: Sequence[int], kernel: Sequence[int], strides: Sequence[int],
                        dilations: Sequence[int],
                        pads: Sequence[tuple[int, int]]) -> tuple[int, ...]:
    """Output sizes of a window op with resolved ``(before, after)`` pads, one per dim.

    The arguments are not checked here: this runs on every kernel call, after the layer or
    ``dj.functional`` checked them (``conv_output_length`` checks one dimension's).

    Example:
        >>> window_output_shape((28, 28), (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1)))
        (28, 28)
    """
    return tuple(_output_length(n, k, s, pb, pa, d) for n, k, s, d, (pb, pa)
                 in zip(spatial, kernel, strides, dilations, pads, strict=True))


def pool_output_shape(spatial: Sequence[int], ksize: Sequence[int], strides: Sequence[int],
                      pads: Sequence[tuple[int, int]]) -> tuple[int, ...]:
    """Pooling's output sizes: ``O = floor((L + P_before + P_after - K) / S) + 1`` per dim.

    Example:
        >>> pool_output_shape((28, 28), (2, 2), (2, 2), ((0, 0), (0, 0)))
        (14, 14)
    """
    return window_output_shape(spatial, ksize, strides, (1,) * len(spatial), pads)


def same_padding(length: int, kernel: int, stride: int = 1, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's SAME padding for one dimension: output = ceil(L / S).

    The total padding is split with the odd pixel at the end (bottom/right).

    Example:
        >>> same_padding(13, 6, 5)   # width 13, filter 6, stride 5 -> output 3
        (1, 2)

    Raises:
        TypeError/ValueError: as ``conv_output_length``.
    """
    _check_ints("same_padding", length=(length, 0), kernel=(kernel, 1), stride=(stride, 1),
                dilation=(dilation, 1))
    return _same_padding(length, kernel, stride, dilation)


def _same_padding(length, kernel, stride, dilation) -> tuple[int, int]:
    """``same_padding`` without the argument checks (see ``_output_length``)."""
    out = -(-length // stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - length, 0)
    return total // 2, total - total // 2


def resolve_padding(
    padding, spatial: Sequence[int], kernel: Sequence[int], strides: Sequence[int],
    dilations: Sequence[int], name: str = "padding", owner: str | None = None,
) -> tuple[tuple[int, int], ...]:
    """Turn any accepted padding spec into one ``(before, after)`` pair per spatial dim.

    Accepted: ``"valid"``, ``"same"`` (any case), an int (the same on every side), a
    tuple of ints (symmetric per dimension) or a tuple of ``(before, after)`` pairs.
    """
    n = len(spatial)
    if isinstance(padding, str):
        mode = check_choice(padding, ("valid", "same"), name, owner)
        if mode == "valid":
            return ((0, 0),) * n
        return tuple(
            _same_padding(spatial[i], kernel[i], strides[i], dilations[i]) for i in range(n)
        )
    if is_int(padding):
        p = check_int(padding, name, owner, min_value=0)
        return ((p, p),) * n
    what = (
        f"'valid', 'same', an int >= 0, a tuple of {n} ints or a tuple of {n} "
        f"(before, after) pairs"
    )
    where = f"{owner}: " if owner else ""
    msg = f"{where}Expected {name} to be {what}. Received: {name}={padding!r}"
    if not isinstance(padding, Sequence) or len(padding) != n:
        raise ValueError(msg)
    pairs = []
    for p in padding:
        if is_int(p):
            pairs.append((int(p), int(p)))
        elif isinstance(p, Sequence) and len(p) == 2 and all(is_int(v) for v in p):
            pairs.append((int(p[0]), int(p[1])))
        else:
            raise ValueError(msg)
    if any(v < 0 for pair in pairs for v in pair):
        raise ValueError(msg)
    return tuple(pairs)


def conv_output_shape(
    spatial: Sequence[int], kernel: Sequence[int] | int, strides: Sequence[int] | int = 1,
    padding="valid", dilations: Sequence[int] | int = 1,
) -> tuple[int, ...]:
    """Spatial output shape of an N-d convolution or pooling.

    Example:
        >>> conv_output_shape((427, 640), (3, 3), 1, "same")
        (427, 640)
        >>> conv_output_shape((427, 640), (2, 2), 2, "valid")
        (213, 320)
    """
    n = len(spatial)
    kernel = standardize_tuple(kernel, n, "kernel_size")
    strides = standardize_tuple(strides, n, "strides")
    dilations = standardize_tuple(dilations, n, "dilations")
    pads = resolve_padding(padding, spatial, kernel, strides, dilations)
    return tuple(
        conv_output_length(spatial[i], kernel[i], strides[i], *pads[i], dilations[i])
        for i in range(n)
    )


def conv_transpose_output_length(
    length: int, kernel: int, stride: int = 1, pad_before: int = 0, pad_after: int = 0,
    dilation: int = 1, output_padding: int = 0,
) -> int:
    """Output length of a transposed convolution (the adjoint of ``conv_output_length``).

    ``O = (L - 1)*S - P_before - P_after + D*(K - 1) + 1 + output_padding``; every
    ``output_padding`` in ``[0, S)`` gives a size that the forward conv maps back to ``L``.

    Example:
        >>> conv_transpose_output_length(3, 3, 2)
        7

    Raises:
        TypeError/ValueError: lengths and paddings must be ints >= 0, kernel, stride and
            dilation ints >= 1, ``output_padding`` an int in ``[0, max(stride, dilation))``.
    """
    _check_ints("conv_transpose_output_length", length=(length, 0), kernel=(kernel, 1),
                stride=(stride, 1), pad_before=(pad_before, 0), pad_after=(pad_after, 0),
                dilation=(dilation, 1), output_padding=(output_padding, 0))
    if output_padding >= max(stride, dilation):
        raise ValueError(f"conv_transpose_output_length: Expected output_padding to be "
                         f"smaller than the stride or the dilation. Received: "
                         f"output_padding={output_padding}, stride={stride}, "
                         f"dilation={dilation}")
    return ((length - 1) * stride - pad_before - pad_after + dilation * (kernel - 1) + 1
            + output_padding)


def transpose_output_length(length: int | None, kernel: int, stride: int, dilation: int,
                            padding, output_padding: int | None) -> int | None:
    """A transposed-convolution layer's output length, as Keras computes it (None: unknown).

    With ``output_padding`` None: ``'valid'`` gives ``L*S + max(K' - S, 0)``, ``'same'``
    ``L*S`` (``K' = D*(K-1) + 1``). Otherwise, or with an explicit ``(before, after)``
    pair, ``conv_transpose_output_length`` (``'same'`` pads ``K' // 2`` on each side).

    Example:
        >>> transpose_output_length(7, 3, 2, 1, "same", None)
        14
        >>> transpose_output_length(7, 3, 2, 1, (1, 1), 1)
        14
    """
    if length is None:
        return None
    span = dilation * (kernel - 1) + 1
    if isinstance(padding, str):
        if output_padding is None:
            return length * stride + max(span - stride, 0) if padding == "valid" else (
                length * stride)
        pad = span // 2 if padding == "same" else 0
        return conv_transpose_output_length(length, kernel, stride, pad, pad, dilation,
                                            output_padding)
    return conv_transpose_output_length(length, kernel, stride, padding[0], padding[1],
                                        dilation, output_padding or 0)


def conv_params(
    kernel_size: Sequence[int], in_channels: int, filters: int, groups: int = 1,
    use_bias: bool = True,
) -> int:
    """Parameter count of a convolution: ``(prod(K) * C_in / groups + bias) * C_out``.

    Example:
        >>> conv_params((3, 3), 1, 32)      # seed 004: Conv2D(32, 3) on 28x28x1
        320
        >>> conv_params((5, 5), 3, 6)       # seed 003: six 5x5x3 filters
        456

    Raises:
        TypeError/ValueError: kernel sizes, channels, filters and groups must be ints
            >= 1, ``groups`` must divide ``in_channels``, ``use_bias`` a bool.
    """
    owner = "conv_params"
    kernel_size = standardize_tuple(kernel_size, len(kernel_size) if isinstance(
        kernel_size, Sequence) else 1, "kernel_size", owner)
    _check_ints(owner, in_channels=(in_channels, 1), filters=(filters, 1), groups=(groups, 1))
    check_bool(use_bias, "use_bias", owner)
    if in_channels % groups:
        raise ValueError(f"{owner}: Expected groups to divide in_channels. Received: "
                         f"groups={groups}, in_channels={in_channels}")
    return (math.prod(kernel_size) * (in_channels // groups) + int(use_bias)) * filters


def dense_params(in_features: int, units: int, use_bias: bool = True) -> int:
    """Parameter count of a dense layer: ``(in_features + bias) * units``.

    Example:
        >>> dense_params(3, 2)
        8

    Raises:
        TypeError/ValueError: ``in_features`` and ``units`` must be ints >= 1.
    """
    _check_ints("dense_params", in_features=(in_features, 1), units=(units, 1))
    check_bool(use_bias, "use_bias", "dense_params")
    return (in_features + int(use_bias)) * units


def conv_macs(output_spatial: Sequence[int], kernel_size: Sequence[int], in_channels: int,
              filters: int, groups: int = 1) -> int:
    """Multiply-accumulates of one convolution per example.

    Example:
        >>> conv_macs((26, 26), (3, 3), 1, 32)
        194688

    Raises:
        TypeError/ValueError: as ``conv_params``; output sizes must be ints >= 0.
    """
    owner = "conv_macs"
    output_spatial = standardize_tuple(output_spatial, len(output_spatial) if isinstance(
        output_spatial, Sequence) else 1, "output_spatial", owner, min_value=0)
    kernel_size = standardize_tuple(kernel_size, len(kernel_size) if isinstance(
        kernel_size, Sequence) else 1, "kernel_size", owner)
    _check_ints(owner, in_channels=(in_channels, 1), filters=(filters, 1), groups=(groups, 1))
    return math.prod(output_spatial) * filters * math.prod(kernel_size) * (in_channels // groups)


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive field of one layer's output unit, per spatial dimension.

    ``size``: how many input pixels one output unit sees; ``jump``: the distance in
    input pixels between neighbouring output units (the product of strides so far);
    ``start``: the input coordinate of the centre of the first output unit's field.
    """

    size: tuple[int, ...]
    jump: tuple[int, ...]
    start: tuple[float, ...]


def receptive_field_step(
    rf: ReceptiveField, kernel: Sequence[int], stride: Sequence[int],
    pad_before: Sequence[int], dilation: Sequence[int] | None = None,
) -> ReceptiveField:
    """Receptive field after one more conv/pool layer.

    ``size' = size + D*(K-1)*jump``, ``jump' = jump*S``,
    ``start' = start + (D*(K-1)/2 - P_before)*jump``.
    """
    n = len(rf.size)
    dilation = dilation or (1,) * n
    return ReceptiveField(
        size=tuple(rf.size[i] + dilation[i] * (kernel[i] - 1) * rf.jump[i] for i in range(n)),
        jump=tuple(rf.jump[i] * stride[i] for i in range(n)),
        start=tuple(
            rf.start[i] + (dilation[i] * (kernel[i] - 1) / 2 - pad_before[i]) * rf.jump[i]
            for i in range(n)
        ),
    )


def receptive_fields(layers: Sequence[dict], rank: int = 2) -> list[ReceptiveField]:
    """Receptive field after each layer of a stack.

    Args:
        layers: one dict per layer with ``kernel``, and optionally ``stride``,
            ``pad_before`` and ``dilation`` (ints or per-dimension tuples); a layer with
            no spatial effect (activation, batch norm) is ``{"kernel": 1}``.
        rank: number of spatial dimensions.

    Example:
        >>> [r.size for r in receptive_fields([{"kernel": 3}, {"kernel": 3}], rank=1)]
        [(3,), (5,)]
    """
    rf = ReceptiveField((1,) * rank, (1,) * rank, (0.5,) * rank)
    out = []
    for i, layer in enumerate(layers):
        k = standardize_tuple(layer["kernel"], rank, f"layers[{i}]['kernel']")
        s = standardize_tuple(layer.get("stride", 1), rank, f"layers[{i}]['stride']")
        p = standardize_tuple(layer.get("pad_before", 0), rank, f"layers[{i}]['pad_before']",
                              min_value=0)
        d = standardize_tuple(layer.get("dilation", 1), rank, f"layers[{i}]['dilation']")
        rf = receptive_field_step(rf, k, s, p, d)
        out.append(rf)
    return out


class SlidingWindow:
    """Geometry of a window sliding over the spatial axes, shared by convolution and pooling
    layers.

    The layer sets ``rank``, ``strides``, ``padding`` and ``_channels_last`` and defines
    ``_window`` (kernel size) and ``_dilation``; shapes may hold None (unknown sizes).
    Per spatial dim ``O = floor((L + P_before + P_after - D*(K-1) - 1) / S) + 1``.
    """

    def _spatial(self, shape):
        return tuple(shape[1:-1] if self._channels_last else shape[2:])

    def _pads(self, spatial):
        known = tuple(1 if s is None else s for s in spatial)
        return resolve_padding(self.padding, known, self._window, self.strides, self._dilation)

    def _out_spatial(self, spatial):
        pads = self._pads(spatial)
        return tuple(None if L is None else conv_output_length(L, k, s, *p, d)
                     for L, k, s, p, d in zip(spatial, self._window, self.strides, pads,
                                              self._dilation))

    def _layout(self, batch, spatial, channels):
        return ((batch,) + tuple(spatial) + (channels,) if self._channels_last
                else (batch, channels) + tuple(spatial))

    def receptive_field_spec(self, input_shape):
        pads = self._pads(self._spatial(input_shape))
        return {"kernel": self._window, "stride": self.strides,
                "pad_before": tuple(p[0] for p in pads), "dilation": self._dilation}
