"""The convolution-arithmetic explainer behind ``dojang explain conv`` (``dj.shapes.explain``).

The formulas of ``dojang.shapes.geometry`` with the numbers filled in, as data
(``ConvExplanation``) and as text (``.text()``), for a convolution or a transposed one.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from dojang.shapes.geometry import (
    conv_macs,
    conv_output_length,
    conv_params,
    conv_transpose_output_length,
    resolve_padding,
    same_padding,
)
from dojang.validation import check_choice, standardize_tuple

__all__ = ["ConvExplanation", "explain"]

_AXES = {1: ("W",), 2: ("H", "W"), 3: ("D", "H", "W")}
_SIDES = {"H": ("top", "bottom"), "W": ("left", "right"), "D": ("front", "back")}


@dataclass(frozen=True)
class ConvExplanation:
    """One convolution's arithmetic, per spatial dimension (``axes``: ``("H", "W")``).

    ``pads``: the forward convolution's ``(before, after)`` zeros; ``formulas``/``notes``:
    lines of ``text()``; ``params``, ``macs``: None without channels. The animation draws
    the input on a ``canvas`` of cells (``real[i]``: which cells of axis i hold inputs, not
    padding or a transposed convolution's inserted zeros), the kernel moving ``step`` cells
    with taps ``dilation`` apart; ``coverage``: windows per input value (forward only).
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
            lines += [f"params: {self.params:,}", f"MACs: {self.macs:,}"]
        return "\n".join(lines + [f"output: {_size(self.output)}"])


def _size(values) -> str:
    return "x".join(str(v) for v in values)


def _forward_formula(axis, n, k, s, d, a, b, out) -> str:
    span = f"{k}" if d == 1 else f"{d}*({k}-1) - 1"
    form = "K" if d == 1 else "D*(K-1) - 1"
    pad_sym, pad_num = ("2P", f"2*{a}") if a == b else ("P_before + P_after", f"{a} + {b}")
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
    k, s, d = (standardize_tuple(v, rank, name, owner) for v, name in
               ((kernel, "kernel"), (stride, "stride"), (dilation, "dilation")))
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
    cols = [math.prod(c) for c in itertools.product(*per_axis[1:])]
    return tuple(tuple(r * c for c in cols) for r in per_axis[0])
