"""Shape arithmetic of convolution and pooling, in plain integers.

Notation (used everywhere below): for one spatial dimension, ``L`` is the input length
(H or W), ``K`` the kernel size, ``S`` the stride, ``D`` the dilation and ``P_before``,
``P_after`` the padding on each side. The output length is the seeds' formula
generalized with dilation::

    O = floor((L + P_before + P_after - D*(K-1) - 1) / S) + 1

which for D=1 is ``(n + 2p - f) / s + 1``. Nothing here knows about arrays or tensors;
the kernels, layers and ``summary()`` all call these functions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from dojang.validation import check_choice, check_int, is_int, standardize_tuple


def conv_output_length(
    length: int, kernel: int, stride: int = 1, pad_before: int = 0, pad_after: int = 0,
    dilation: int = 1,
) -> int:
    """Output length of a convolution or pooling along one dimension.

    Example:
        >>> conv_output_length(4, 3, 1, 1, 1)     # 4x4 input, 3x3 filter, padding 1
        4
        >>> conv_output_length(5, 3)              # 5x5 input, 3x3 filter, no padding
        3
    """
    span = dilation * (kernel - 1) + 1
    padded = length + pad_before + pad_after
    if padded < span:
        return 0
    return (padded - span) // stride + 1


def same_padding(length: int, kernel: int, stride: int = 1, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's SAME padding for one dimension: output = ceil(L / S).

    The total padding is split with the odd pixel at the end (bottom/right).

    Example:
        >>> same_padding(13, 6, 5)   # width 13, filter 6, stride 5 -> output 3
        (1, 2)
    """
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
            same_padding(spatial[i], kernel[i], strides[i], dilations[i]) for i in range(n)
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
    """
    return ((length - 1) * stride - pad_before - pad_after + dilation * (kernel - 1) + 1
            + output_padding)


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
    """
    return (math.prod(kernel_size) * (in_channels // groups) + int(use_bias)) * filters


def dense_params(in_features: int, units: int, use_bias: bool = True) -> int:
    """Parameter count of a dense layer: ``(in_features + bias) * units``."""
    return (in_features + int(use_bias)) * units


def conv_macs(output_spatial: Sequence[int], kernel_size: Sequence[int], in_channels: int,
              filters: int, groups: int = 1) -> int:
    """Multiply-accumulates of one convolution per example."""
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


# ============================================================================ explain
# The convolution-arithmetic explainer behind ``dojang explain conv``: the formulas above
# with the numbers filled in, as data (``ConvExplanation``) and as text (``.text()``).

_AXES = {1: ("W",), 2: ("H", "W"), 3: ("D", "H", "W")}
_SIDES = {"H": ("top", "bottom"), "W": ("left", "right"), "D": ("front", "back")}


@dataclass(frozen=True)
class ConvExplanation:
    """One convolution's arithmetic, per spatial dimension (``axes``: ``("H", "W")``).

    ``pads``: ``(before, after)`` zero padding of the forward convolution; ``output``:
    the output size; ``formulas``/``notes``: the lines ``text()`` prints; ``params`` and
    ``macs`` (None without channels). The animation's picture: the input drawn on a
    ``canvas`` of cells (``real[i]`` marks which cells of axis i hold input values; the
    rest is padding, or the zeros a transposed convolution inserts between inputs), a
    kernel moving by ``step`` cells with taps ``dilation`` cells apart, and ``coverage``:
    how many windows use each input value (forward convolutions).
    """

    axes: tuple[str, ...]
    input: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: object
    transpose: bool
    pads: tuple[tuple[int, int], ...]
    output: tuple[int, ...]
    params: int | None
    macs: int | None
    formulas: tuple[str, ...]
    notes: tuple[str, ...]
    canvas: tuple[int, ...]
    real: tuple[tuple[bool, ...], ...]
    step: tuple[int, ...]
    coverage: tuple[tuple[int, ...], ...] | None

    def text(self) -> str:
        """The explanation as printed by ``dojang explain conv``, ending ``output: HxW``."""
        kind = "transposed convolution" if self.transpose else "convolution"
        lines = [f"{kind}: input {_size(self.input)}, kernel {_size(self.kernel)}, stride "
                 f"{_size(self.stride)}, dilation {_size(self.dilation)}, padding "
                 f"{self.padding!r}"]
        lines += list(self.formulas)
        lines += [f"padding {a}: {_SIDES[a][0]} {p}, {_SIDES[a][1]} {q}"
                  for a, (p, q) in zip(self.axes, self.pads)]
        lines += [f"note: {n}" for n in self.notes]
        if self.params is not None:
            lines.append(f"params: {self.params:,}")
            lines.append(f"MACs: {self.macs:,}")
        lines.append(f"output: {_size(self.output)}")
        return "\n".join(lines)


def _size(values) -> str:
    return "x".join(str(v) for v in values)


def _forward_formula(axis, n, k, s, d, a, b, out) -> str:
    span = f"{k}" if d == 1 else f"{d}*({k}-1) - 1"
    form = "K" if d == 1 else "D*(K-1) - 1"
    if a == b:
        pad_sym, pad_num = "2P", f"2*{a}"
    else:
        pad_sym, pad_num = "P_before + P_after", f"{a} + {b}"
    return (f"{axis} = floor(({axis}_in + {pad_sym} - {form}) / S) + 1 = "
            f"floor(({n} + {pad_num} - {span}) / {s}) + 1 = {out}")


def explain(input, kernel, stride=1, padding="valid", dilation=1, transpose: bool = False,
            in_channels: int | None = None, filters: int | None = None) -> ConvExplanation:
    """Explain the shape arithmetic of one convolution (or transposed convolution).

    Args:
        input: the spatial size: an int (one dimension) or ``(H, W)`` (or ``(D, H, W)``).
        kernel, stride, dilation: an int or one per dimension.
        padding: ``"valid"``, ``"same"`` (TensorFlow's: output ``ceil(L / S)``, the odd
            padding pixel at the bottom/right; transposed: output ``L * S``, as Keras) or
            an int / one int per dimension (symmetric explicit padding).
        transpose: explain the transposed convolution instead.
        in_channels, filters: both given: count the parameters (with a bias) and MACs.

    Returns:
        A ``ConvExplanation``; ``.text()`` is what ``dojang explain conv`` prints.

    Raises:
        ValueError: sizes < 1, an unknown padding, negative padding, a kernel (dilated)
            larger than the padded input, or only one of in_channels and filters.
        TypeError: arguments of the wrong type.

    Example:
        >>> e = explain((4, 4), 3, padding=1)             # seed 000's worked example
        >>> e.output, e.coverage[1][1], e.coverage[0][0]  # seed 004: 9 and 4 windows
        ((4, 4), 9, 4)
        >>> e = explain(13, 6, stride=5, padding="same")   # seed 000: ceil(13/5) = 3
        >>> e.output, e.pads
        ((3,), ((1, 2),))
    """
    owner = "explain"
    dims = tuple(input) if isinstance(input, Sequence) else (input,)
    if not 1 <= len(dims) <= 3:
        raise ValueError(f"{owner}: Expected input to be 1 to 3 sizes. Received: input={input!r}")
    rank = len(dims)
    dims = standardize_tuple(dims, rank, "input", owner)
    k = standardize_tuple(kernel, rank, "kernel", owner)
    s = standardize_tuple(stride, rank, "stride", owner)
    d = standardize_tuple(dilation, rank, "dilation", owner)
    if (in_channels is None) != (filters is None):
        raise ValueError(f"{owner}: Expected both in_channels and filters, or neither. "
                         f"Received: in_channels={in_channels!r}, filters={filters!r}")
    axes = _AXES[rank]
    same = isinstance(padding, str) and check_choice(padding, ("valid", "same"), "padding",
                                                     owner) == "same"
    formulas, notes = [], []
    if transpose:
        if same:
            out = tuple(n * st for n, st in zip(dims, s))
            pads = tuple(same_padding(o, kk, st, dd) for o, kk, st, dd in zip(out, k, s, d))
            formulas += [f"SAME (transposed): {a} = {a}_in * S = {n} * {st} = {o}"
                         for a, n, st, o in zip(axes, dims, s, out)]
        else:
            pads = resolve_padding(padding, dims, k, s, d, "padding", owner)
            out = tuple(conv_transpose_output_length(n, kk, st, p, q, dd)
                        for n, kk, st, (p, q), dd in zip(dims, k, s, pads, d))
            formulas += [f"{a} = ({a}_in - 1)*S - 2P + D*(K-1) + 1 = ({n} - 1)*{st} - "
                         f"2*{p} + {dd}*({kk}-1) + 1 = {o}"
                         for a, n, st, (p, _), dd, kk, o in zip(axes, dims, s, pads, d, k, out)]
        for a, o, kk, st, dd, (p, q), n in zip(axes, out, k, s, d, pads, dims):
            if o < 1 or conv_output_length(o, kk, st, p, q, dd) != n:
                raise ValueError(f"impossible transposed convolution along {a}: padding "
                                 f"{p}+{q} crops the whole output (size {o})")
        notes.append("a transposed convolution is a direct one (stride 1) over the input "
                     "with S-1 zeros between values and D*(K-1)-P zeros around them")
        # The drawn equivalent: inserted zeros, outer padding D*(K-1) - P.
        real, canvas = [], []
        for n, kk, st, dd, (p, _), o in zip(dims, k, s, d, pads, out):
            outer = dd * (kk - 1)
            cells = [False] * (outer - p) + [i % st == 0 for i in range((n - 1) * st + 1)]
            cells += [False] * (o + dd * (kk - 1) - len(cells))
            real.append(tuple(cells))
            canvas.append(len(cells))
        step, coverage = (1,) * rank, None
        macs = (math.prod(dims) * math.prod(k) * in_channels * filters
                if filters is not None else None)
    else:
        pads = resolve_padding(padding, dims, k, s, d, "padding", owner)
        out = tuple(conv_output_length(n, kk, st, p, q, dd)
                    for n, kk, st, (p, q), dd in zip(dims, k, s, pads, d))
        for a, n, kk, dd, (p, q) in zip(axes, dims, k, d, pads):
            if n + p + q < dd * (kk - 1) + 1:
                raise ValueError(f"impossible convolution along {a}: the kernel (size "
                                 f"{dd * (kk - 1) + 1}) is larger than the padded input "
                                 f"(size {n} + {p} + {q} = {n + p + q})")
        if same:
            for a, n, kk, st, dd, o, (p, q) in zip(axes, dims, k, s, d, out, pads):
                span = f"{kk}" if dd == 1 else f"{dd}*({kk}-1) + 1"
                formulas.append(f"SAME: {a} = ceil({a}_in / S) = ceil({n} / {st}) = {o}; total "
                                f"padding max(({o}-1)*{st} + {span} - {n}, 0) = {p + q} -> "
                                f"{_SIDES[a][0]} {p}, {_SIDES[a][1]} {q}")
            if any(p != q for p, q in pads):
                notes.append("TensorFlow/Keras put the odd padding pixel at the bottom/right")
        formulas += [_forward_formula(a, n, kk, st, dd, p, q, o)
                     for a, n, kk, st, dd, (p, q), o in zip(axes, dims, k, s, d, pads, out)]
        for a, n, kk, st, dd, (p, q) in zip(axes, dims, k, s, d, pads):
            left = (n + p + q - dd * (kk - 1) - 1) % st
            if left:
                notes.append(f"({a}_in + padding - span) / S = {n + p + q - dd * (kk - 1) - 1}"
                             f"/{st} is not whole: frameworks round down, so the last {left} "
                             f"padded {'rows' if a == 'H' else 'columns'} are never used")
        real = tuple((False,) * p + (True,) * n + (False,) * q for n, (p, q) in zip(dims, pads))
        canvas = tuple(len(r) for r in real)
        step = s
        coverage = _coverage(dims, k, s, d, pads, out)
        macs = conv_macs(out, k, in_channels, filters) if filters is not None else None
    params = conv_params(k, in_channels, filters) if filters is not None else None
    return ConvExplanation(axes, dims, k, s, d, padding, bool(transpose), tuple(pads), out,
                           params, macs, tuple(formulas), tuple(notes), tuple(canvas),
                           tuple(tuple(r) for r in real), tuple(step), coverage)


def _coverage(dims, kernel, strides, dilations, pads, out) -> tuple[tuple[int, ...], ...]:
    """How many windows use each input value: per axis counts, multiplied across axes."""
    per_axis = []
    for n, kk, st, dd, (p, _), o in zip(dims, kernel, strides, dilations, pads, out):
        counts = [0] * n
        for i in range(o):
            for j in range(kk):
                pos = i * st + j * dd - p
                if 0 <= pos < n:
                    counts[pos] += 1
        per_axis.append(counts)
    if len(per_axis) == 1:
        return (tuple(per_axis[0]),)
    import itertools

    cols = [math.prod(c) for c in itertools.product(*per_axis[1:])]
    return tuple(tuple(r * c for c in cols) for r in per_axis[0])
