"""The one convolution planner: every decision about how a convolution runs, in one place.

For a convolution of ``x`` (N, *S, C_in) with filters (*K, C_in/G, C_out) it decides:

- **forward**: ``direct`` (the compiled register tiles of ``kernels.conv.direct``, for
  few channels), ``winograd`` (F(4x4, 3x3), ``kernels.conv.winograd``, for 3x3 stride-1
  layers with many channels), ``im2col`` (columns + one GEMM, ``kernels.conv.reference``),
  ``depthwise`` (one multiply-accumulate per kernel offset, compiled in
  ``kernels.conv.depthwise`` where ``compiled_depthwise`` says so) or ``gemm`` (a 1x1
  convolution with stride 1 and no padding: the input *is* its columns, one GEMM on the
  (N*H*W, C) view, no copy, in all three passes);
- **keep columns**: whether a training forward keeps its im2col columns for the filter
  gradient (``keep_columns``) instead of rebuilding them in backward;
- **input gradient**: a stride-1 correlation of ``gy`` with the flipped filters (itself
  direct or im2col), or ``gy @ W^T`` + col2im (``input_gradient``);
- **filter gradient**: the kept columns, the direct kernel, or rebuilt columns + GEMM;
- **bias + ReLU**: fused into one compiled pass over the GEMM output, or NumPy;
- **chunks**: how the columns are cut to fit the im2col budget and the cache
  (``chunks``).

The rules here are also the ``usable`` rules of the compiled variants in
``dojang.kernels.registry`` (so what runs and what the plan says cannot drift apart), and
``plan(layer, input_shape)`` prints them for a layer (the module itself is callable as
``dj.kernels.plan(layer, input_shape)``). The module is over 500 lines because it is that
one place: every path's rule (direct, Winograd, depthwise, 1x1, im2col) sits beside the
others it is weighed against.

Example:
    >>> import dojang as dj
    >>> layer = dj.layers.Conv2D(16, 3, padding="same", activation="relu")
    >>> p = dj.kernels.plan(layer, (32, 28, 28, 8))
    >>> p.forward, p.keep_columns
    ('direct', False)
"""

from __future__ import annotations

import math
import sys
import types
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from dojang.kernels import compile, isa
from dojang.settings import get_im2col_budget, get_isa, get_kernel_variant
from dojang.shapes import window_output_shape

# Columns are built and consumed in chunks of at most this size even under a larger
# budget: a chunk that stays in the last-level cache between the im2col copy and the GEMM
# that reads it measured 15-25% faster per conv (2 and 8 MB alike, 32+ MB slower) on the
# benchmark layers, and columns are then rebuilt in backward instead of kept.
CACHE_CHUNK_BYTES = 8 << 20


@dataclass(frozen=True)
class IsaTable:
    """The direct kernels' tiles and thresholds for one vector ISA family.

    Attributes:
        forward: the forward tiles (``tools/gen_tiles.py``) as (R output pixels of a row,
            B output channels, speed): ``speed`` is the tile's throughput on whole tiles
            relative to the first one. A layer takes the tile with the least time per row,
            (OW rounded up to whole tiles) / speed, among those whose B divides C_out; ties
            go to the earlier one.
        filters: the filter-gradient tiles as (RC input channels, B output channels), in
            order of preference: the first whose RC divides C_in and B divides C_out.
        max_c_out: the direct forward runs while C_out <= this (wider layers' GEMMs run
            near OpenBLAS's peak).
        max_single_channel: with one input channel, where im2col has its own NumPy path,
            the direct forward runs up to this many input pixels x C_out (small work).
        max_filter_cc: the direct filter gradient runs while C_in * C_out <= this.
        max_block_bytes: one block's filters (KH*KW*C_in*B values, B the smallest
            tile's) stay in cache while the forward passes over a sample: the direct
            forward runs while they take at most this many bytes.
        source: where the numbers come from.
    """

    forward: tuple[tuple[int, int, float], ...]
    filters: tuple[tuple[int, int], ...]
    max_c_out: int
    max_single_channel: int
    max_filter_cc: int
    max_block_bytes: int
    source: str


# Per ISA family (``kernels.isa``), fixed numbers: no run-time tuning, so the same shapes
# take the same kernels (and give the same sums) on every run. ``python bench/direct.py
# --calibrate`` measures a host's row of this table and prints it.
ISA_TABLES = {
    # AVX2: 16 registers of 8 float32. r4b16 keeps 8 registers of sums; r3b32 12, which
    # hides the FMA latency better: 1.05-1.12x the throughput on whole tiles, so it takes
    # the rows it pads less than r4b16 does (OW = 14: 1.14-1.18x, OW = 32: 1.04x in CPU
    # time on the seed CNN's and the 64x32x32x64 layers; 8 and 16 stay on r4b16), its
    # twice larger blocks of filters included.
    # Filter-gradient r6b16, r12b8 and r2b32 measured 0.5-1.0x of r4b16. Thresholds: three
    # calibrations, 1 thread, CPU time, the smallest of the three (direct 1.10-1.14x at
    # C_out = 128; filter gradient 1.31-1.50x at 1024, 1.02-1.14x at 2048; blocks up to
    # 108 KiB, the largest tried, 1.12-1.24x). Checked at 2 threads in wall time on a
    # loaded machine: C_out = 128 1.01x (16x16, C_in = 32) and 1.27x (8x8, C_in = 64).
    # One input channel (not calibrated by bench/direct.py): a single image's 28x28x1 ->
    # 32 layer ran 3x faster direct (one compiled call, where im2col's single-channel path
    # makes nine NumPy copies and a GEMM of K = 9); the two met at 2-8 such images, so up
    # to one 64x64 image into 16 channels.
    "avx2": IsaTable(
        forward=((4, 16, 1.0), (3, 32, 1.09)), filters=((4, 16),), max_c_out=128,
        max_single_channel=1 << 16, max_filter_cc=1024, max_block_bytes=110592,
        source="measured: bench/direct.py --calibrate on a 2-core AMD EPYC (Zen 3), "
               "2026-12-02"),
    # AVX-512: 32 registers of 16 float32. r8b32 keeps 16 registers of sums (r8b16 8, for
    # C_out = 16, 48), the filter gradient 8 x 32 in 16. Not measured: no AVX-512 host has
    # run the calibration yet. The thresholds are AVX2's, on the assumption that the
    # direct kernels and OpenBLAS's GEMM gain alike from the wider registers; r8b16's 0.9
    # only says that it should not take a layer that r8b32 takes.
    "avx512": IsaTable(
        forward=((8, 32, 1.0), (8, 16, 0.9)), filters=((8, 32), (4, 16)), max_c_out=128,
        max_single_channel=1 << 16, max_filter_cc=1024, max_block_bytes=110592,
        source="derived, unmeasured: tiles sized by register count, AVX2's thresholds"),
}


def table() -> IsaTable:
    """The ``IsaTable`` of ``isa.family()`` (the host's ISA family, or the forced one)."""
    return ISA_TABLES[isa.family()]


def forward_tile(w_shape, out_width: int, itemsize: int = 4) -> tuple[int, int] | None:
    """(R, B) of the forward tile for filters of ``w_shape`` (*K, C_in, C_out) and rows of
    ``out_width`` outputs (see ``IsaTable.forward``), or None when no tile takes C_out.

    The speeds are float32's. With float64 (``itemsize`` 8) a vector holds half as many
    values, every tile needs twice the registers, and none has the edge: padding alone
    decides (AVX2's r3b32 measured 1.03x r4b16 at OW = 14, 0.89-0.95x at OW = 32)."""
    t, key = table(), (w_shape[-1], out_width, itemsize)
    known = _FORWARD_TILES.get(key)
    if known is not None and known[0] is t:  # planned before, with this very table
        return known[1]
    fits = [(-(-out_width // r) * r / (speed if itemsize == 4 else 1.0), i, (r, b))
            for i, (r, b, speed) in enumerate(t.forward) if w_shape[-1] % b == 0]
    _FORWARD_TILES[key] = (t, min(fits)[2] if fits else None)
    return _FORWARD_TILES[key][1]


# (C_out, output width, itemsize) -> (the table, its tile): ``forward_tile`` runs twice per
# direct convolution (rule and kernel), a few microseconds a time at batch 1
_FORWARD_TILES: dict[tuple, tuple] = {}


def filters_tile(w_shape) -> tuple[int, int] | None:
    """(RC, B) of the filter-gradient tile for filters of ``w_shape``: the first of the
    ISA's whose B divides C_out and RC divides C_in, else the first whose B divides C_out
    (C_in then padded, ``filter_channels``), or None."""
    c_in, c_out = w_shape[-2], w_shape[-1]
    fits = [(rc, b) for rc, b in table().filters if c_out % b == 0]
    return next((t for t in fits if c_in % t[0] == 0), fits[0] if fits else None)


def filter_channels(w_shape) -> int:
    """C_in rounded up to whole tiles of the filter tile's RC: the direct filter gradient
    pads the input's channels with zeros to that many (their gradient is dropped)."""
    rc = filters_tile(w_shape)[0]
    return -(-w_shape[-2] // rc) * rc


# Winograd F(4x4, 3x3) (``kernels/conv/winograd.py``, its docstring has the tables) is
# not planned on any host yet: on the AVX2 2-core host it measured 1.3-2.2x faster than
# the old 4x16 direct tiles on one thread from 64 channels, and 1.2-2.7x on two threads
# from 32x32 outputs under load, but against the per-ISA tiles in a quieter window
# (``bench/winograd.py --best``, load average 1.5) 0.87x / 0.88x (forward / input
# gradient) at 32x32, 64 -> 64 and 0.95x / 0.97x at 16x16, 128 -> 128: its 36 separate
# two-thread OpenBLAS GEMMs per chunk cost a thread wake-up each. It runs where
# ``dojang.config.kernels("winograd")`` forces it.

Pads = Sequence[tuple[int, int]]


# ---------------------------------------------------------------------------- the rules
def is_depthwise(c_in: int, groups: int) -> bool:
    """True when every group holds one input channel (the offset-loop fast path)."""
    return groups > 1 and groups == c_in


def compiled_depthwise(x, rank: int, *others) -> bool:
    """True when the compiled depthwise kernels (``kernels.conv.depthwise``) take this
    depthwise convolution: rank 1-2, NumPy float32/64 arrays of one dtype (``others``
    besides ``x``; None entries, such as no bias, are skipped)."""
    others = tuple(a for a in others if a is not None)
    return (rank <= 2 and compile.usable(x, *others)
            and all(a.dtype == x.dtype for a in others))


def is_pointwise(w_shape, strides, pads, groups: int) -> bool:
    """True for a 1x1 convolution with stride 1, no padding and one group: its im2col
    columns are the input itself, so each pass is one GEMM on the (N*prod(S), C) view."""
    return (groups == 1 and all(k == 1 for k in w_shape[:-2]) and all(s == 1 for s in strides)
            and all(p == (0, 0) for p in pads))


def compiled_im2col(x, rank: int, groups: int) -> bool:
    """True when the compiled im2col/col2im (``kernels.conv.numba``) take this lowering:
    rank 1-2, one group, C > 1 (C = 1 has its own NumPy path), NumPy floats."""
    return rank <= 2 and groups == 1 and x.shape[-1] > 1 and compile.usable(x)


def _direct_fits(w_shape, groups: int, x, *others) -> bool:
    """What both direct kernels need: NumPy float32/64 arrays of one dtype with the
    compiled kernels on, rank 1-2, one group."""
    return (len(w_shape) <= 4 and groups == 1 and compile.usable(x, *others)
            and all(a.dtype == x.dtype for a in others))


def direct_forward(x, w_shape, groups: int, w=None) -> bool:
    """True when the direct kernel takes the forward of ``x`` with filters of ``w_shape``
    (and of ``w``'s dtype, if given): 2 <= C_in (or C_in = 1 and at most the ISA's
    ``max_single_channel`` input pixels x C_out), C_out <= its ``max_c_out``, one block of
    filters within its ``max_block_bytes`` and a forward tile that takes C_out."""
    others, t = () if w is None else (w,), table()
    smallest = min(b for _, b, _ in t.forward)
    few = w_shape[-2] >= 2 or x.size * w_shape[-1] <= t.max_single_channel
    return (few and w_shape[-1] <= t.max_c_out
            and math.prod(w_shape[:-1]) * smallest * x.itemsize <= t.max_block_bytes
            and forward_tile(w_shape, 1) is not None
            and _direct_fits(w_shape, groups, x, *others))


def direct_filters(x, gy, w_shape, groups: int) -> bool:
    """True when the direct kernel takes this filter gradient: C_in >= 2, a filter tile
    whose B divides C_out (``filters_tile``), and either C_in (padded to whole tiles,
    ``filter_channels``) * C_out <= the ISA's ``max_filter_cc`` or a 1x1 kernel.

    A 1x1 filter gradient takes the direct kernel at any C_in * C_out: its GEMM
    (C_in x M) @ (M x C_out) has the long inner dimension M = N*H*W, over which OpenBLAS's
    threads meet once per block of M; on a loaded machine (load 7 on 2 cores) that GEMM
    measured 545 ms against the direct kernel's 31 ms (batch 64, 32x32, 64 -> 64
    channels; alone on one thread: 8.6 against 9.8 ms). With C_in not a multiple of the
    tile's RC, its channels padded with zeros, the direct kernel still wins from C_in = 2
    (AVX2: LeNet-5's 6 -> 16 at batch 64: 1.8x a column rebuild + GEMM; ResNet-20's
    3 -> 16: 2.1x; C_in = 1 -> 32: 0.7x, not taken)."""
    return (w_shape[-2] >= 2 and filters_tile(w_shape) is not None
            and (filter_channels(w_shape) * w_shape[-1] <= table().max_filter_cc
                 or all(k == 1 for k in w_shape[:-2]))
            and _direct_fits(w_shape, groups, x, gy))


def winograd_applies(x, w_shape, strides, dilations, groups: int, *others) -> bool:
    """True when ``kernels.conv.winograd`` can compute this correlation: 2-d, 3x3, stride 1,
    dilation 1, one group, NumPy float32/64 arrays of one dtype, compiled kernels on."""
    return (len(w_shape) == 4 and tuple(w_shape[:2]) == (3, 3) and groups == 1
            and tuple(strides) == (1, 1) and tuple(dilations) == (1, 1)
            and compile.usable(x, *others) and all(a.dtype == x.dtype for a in others))


def winograd_forward(x, w_shape, strides, dilations, groups: int, *others) -> bool:
    """True when Winograd takes this correlation: inside
    ``dojang.config.kernels("winograd")``, wherever it applies (the planner picks it
    nowhere by itself, see ``kernels/conv/winograd.py``)."""
    return get_kernel_variant() == "winograd" and winograd_applies(
        x, w_shape, strides, dilations, groups, *others)


def fused_bias_relu(y) -> bool:
    """True when bias + ReLU run as one compiled pass over the GEMM output."""
    return compile.usable(y)


def cols_bytes(x_shape, w_shape, strides, dilations, pads, itemsize: int) -> int:
    """Bytes of the whole batch's im2col columns for this convolution."""
    out = window_output_shape(x_shape[1:-1], w_shape[:-2], strides, dilations, pads)
    return x_shape[0] * math.prod(out) * math.prod(w_shape[:-1]) * itemsize


def chunks(n: int, out: Sequence[int], row_bytes: int) -> list[tuple[slice, tuple]]:
    """Split the work into (batch slice, output ranges) chunks whose columns fit the
    im2col budget and ``CACHE_CHUNK_BYTES``: whole samples when one fits, else rows of
    the first output dimension (at least one row)."""
    budget = min(get_im2col_budget(), CACHE_CHUNK_BYTES)
    sample = row_bytes * out[0]
    full = tuple((0, o) for o in out)
    if n * sample <= budget or sample == 0:
        return [(slice(0, n), full)]
    if sample <= budget:
        step = budget // sample
        return [(slice(i, min(i + step, n)), full) for i in range(0, n, step)]
    rows = max(1, budget // row_bytes)
    return [
        (slice(i, i + 1), ((r, min(r + rows, out[0])),) + full[1:])
        for i in range(n) for r in range(0, out[0], rows)
    ]


def lowering(x_shape, w_shape, strides, dilations, pads, itemsize, out=None):
    """``(kernel, out, chunks)`` of an im2col lowering (``out``: the output sizes, by
    default those of the convolution)."""
    kernel = tuple(w_shape[:-2])
    out = out or window_output_shape(x_shape[1:-1], kernel, strides, dilations, pads)
    row_bytes = math.prod(out[1:]) * math.prod(kernel) * x_shape[-1] * itemsize
    return kernel, out, chunks(x_shape[0], out, row_bytes)


def keep_columns(x, w, strides, dilations, groups: int, pads: Pads, wanted: bool) -> bool:
    """Whether a forward keeps its im2col columns for the filter gradient (``wanted``: a
    gradient may follow).

    The compiled im2col rebuilds a chunk of columns in cache about as fast as DRAM returns
    kept ones, so with it only columns that fit the cache chunk are kept: the seed CNN's
    second conv at batch 32 (7 MB) saves 0.37 ms of its 1.8 ms filter gradient; at batch
    128 (29 MB) and on ResNet-20 (up to 75 MB) a rebuild costs about what keeping costs in
    the forward pass, and no such array lives on. Kept columns must cover whole samples
    and the whole batch must fit the im2col budget. When both direct kernels take the
    layer, the direct forward runs and nothing is kept; so does a forced Winograd
    forward (``kernels("winograd")``). Where columns are kept (small batches: they fit
    the cache chunk), the forward stays im2col even where Winograd would take it: the
    planned Winograd forward was measured against the direct kernel and im2col at
    batches whose columns are not kept.
    """
    if (not wanted or is_depthwise(x.shape[-1], groups)
            or is_pointwise(w.shape, strides, pads, groups)):
        return False
    itemsize = x.dtype.itemsize
    total = cols_bytes(x.shape, w.shape, strides, dilations, pads, itemsize)
    if compiled_im2col(x, w.ndim - 2, groups) and total > CACHE_CHUNK_BYTES:
        return False
    _, out, parts = lowering(x.shape, w.shape, strides, dilations, pads, itemsize)
    whole = all(c[1] == parts[0][1] for c in parts) and all(
        hi - lo == o for (lo, hi), o in zip(parts[0][1], out, strict=True))
    if not whole or groups * total > get_im2col_budget():
        return False
    if winograd_forward(x, w.shape, strides, dilations, groups, w):
        return False  # forced: the forward is Winograd's wherever it applies
    return not (direct_forward(x, w.shape, groups, w)
                and direct_filters(x, x, w.shape, groups))


def input_gradient(gy, w, x_shape, strides, dilations, groups: int, pads: Pads) -> str:
    """How the input gradient runs: ``"depthwise"``, ``"gemm"`` (pointwise: ``gy @ W^T``),
    ``"correlation"`` (stride 1: a forward convolution of ``gy`` with the flipped filters)
    or ``"col2im"``.

    With the compiled col2im, widening layers (C_out > C_in) are faster through the GEMM
    + col2im: the correlation's columns would be C_out/C_in times wider (measured 12-15%
    less time on the seed CNN's second conv), unless the correlation runs as a direct
    or Winograd convolution, and not for a transposed conv's output padding.
    """
    if is_depthwise(x_shape[-1], groups):
        return "depthwise"
    if is_pointwise(w.shape, strides, pads, groups) and gy.shape[1:-1] == x_shape[1:-1]:
        return "gemm"
    r = len(x_shape) - 2
    flipped = w.shape[:r] + (w.shape[-1], w.shape[-2])
    widening = (w.shape[-1] > x_shape[-1] > 1  # C_in = 1 has no compiled col2im
                and compiled_im2col(gy, r, groups)
                and not direct_forward(gy, flipped, groups, w)
                and not winograd_forward(gy, flipped, strides, dilations, groups, w)
                and window_output_shape(x_shape[1:-1], w.shape[:-2], strides, dilations, pads)
                == gy.shape[1:-1])
    if not widening and all(s == 1 for s in strides):
        return "correlation"
    return "col2im"


# ---------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class ConvPlan:
    """How one convolution runs, and why (``str()`` explains it).

    Attributes:
        forward: ``"direct"``, ``"winograd"``, ``"im2col"``, ``"gemm"``,
            ``"depthwise (compiled)"`` or ``"depthwise (numpy)"``.
        keep_columns: a training forward keeps its columns for the filter gradient.
        input_gradient: ``"correlation (direct)"``, ``"correlation (winograd)"``,
            ``"correlation (im2col)"``, ``"col2im"``, ``"gemm"`` or the forward's
            ``"depthwise ..."``.
        filter_gradient: ``"kept columns"``, ``"direct"``, ``"im2col"``, ``"gemm"`` or
            the forward's ``"depthwise ..."`` (which sums the bias gradient too).
        bias_relu: ``"compiled"``, ``"numpy"``, ``"none"`` or ``"fused"`` (inside the
            compiled depthwise kernel).
        im2col: ``"compiled"`` or ``"numpy"`` (how columns are filled, when they are).
        reasons: one line per decision.
        isa: the vector ISA family whose tiles and thresholds were used (``kernels.isa``).
    """

    forward: str
    keep_columns: bool
    input_gradient: str
    filter_gradient: str
    bias_relu: str
    im2col: str
    reasons: tuple[str, ...]
    isa: str

    def __str__(self) -> str:
        head = (f"ISA: {self.isa}; forward: {self.forward}; keep columns: "
                f"{'yes' if self.keep_columns else 'no'}; "
                f"input gradient: {self.input_gradient}; filter gradient: "
                f"{self.filter_gradient}; bias+ReLU: {self.bias_relu}; im2col: {self.im2col}")
        return "\n".join([head] + [f"  - {r}" for r in self.reasons])


def conv_plan(x, w, strides, dilations, groups: int, pads: Pads, training: bool = True,
              bias: bool = True, relu: bool = False) -> ConvPlan:
    """The plan of a convolution of NumPy ``x`` with ``w`` (arrays, or zero-strided
    stand-ins with their shape and dtype), channels-last, with resolved arguments."""
    rank = w.ndim - 2
    c_in, c_out = x.shape[-1], w.shape[-1]
    depthwise = is_depthwise(c_in, groups)
    pointwise = is_pointwise(w.shape, strides, pads, groups)
    keep = keep_columns(x, w, strides, dilations, groups, pads, training)
    compiled = compile.usable(x, w)
    family, t = isa.family(), table()
    out = window_output_shape(x.shape[1:-1], w.shape[:-2], strides, dilations, pads)
    reasons = [f"vector ISA {family} ({'forced' if get_isa() else 'detected'}): "
               f"its tiles and thresholds, {t.source}"]
    if not compiled:
        reasons.append("compiled kernels off or not applicable (numba missing, "
                       "DOJANG_JIT=0, kernels('reference'), or not NumPy float32/64)")
    if depthwise and compiled_depthwise(x, rank, w):
        forward = "depthwise (compiled)"
        reasons.append(f"groups == C_in == {c_in}: depthwise, compiled, each tap one vector "
                       "multiply-add across the channels (bias and ReLU fused)")
    elif depthwise:
        forward = "depthwise (numpy)"
        reasons.append(f"groups == C_in == {c_in}: depthwise, one NumPy multiply-add per "
                       "offset (the compiled kernels take rank <= 2 and NumPy floats)")
    elif pointwise:
        forward = "gemm"
        reasons.append("1x1, stride 1, no padding, one group: the input is its own columns, "
                       "one GEMM on the (N*H*W, C) view in every pass (no im2col copy)")
    elif keep:
        forward = "im2col"
        reasons.append("training: im2col columns kept for the filter gradient (they fit "
                       "the budget and the direct kernels do not take both passes)")
    elif winograd_forward(x, w.shape, strides, dilations, groups, w):
        forward = "winograd"
        reasons.append("3x3, stride 1, one group: Winograd F(4x4, 3x3), 4x fewer "
                       "multiplications (forced: kernels('winograd'))")
    elif direct_forward(x, w.shape, groups, w):
        forward = "direct"
        reasons.append(f"C_in = {c_in}, C_out = {c_out} <= {t.max_c_out}, one group, rank "
                       f"{rank}: the direct kernel beats a thin GEMM" + (
                           " (one input channel: small enough that one compiled call beats "
                           "im2col's copies)" if c_in == 1 else "") + "; "
                       f"{_tile_name(forward_tile(w.shape, out[-1], x.itemsize), 'pixels')}")
    else:
        forward = "im2col"
        reasons.append(f"im2col + GEMM (direct needs rank <= 2, one group, 2 <= C_in or "
                       f"C_in = 1 with at most {t.max_single_channel} input pixels x C_out, "
                       f"C_out <= {t.max_c_out} and a multiple of a tile's B: "
                       f"{sorted({b for _, b, _ in t.forward})})")
    gy = np.broadcast_to(np.zeros((), x.dtype), (x.shape[0],) + out + (c_out,))
    path = input_gradient(gy, w, x.shape, strides, dilations, groups, pads)
    flipped = w.shape[:rank] + (c_out, w.shape[-2])
    if path == "correlation":
        path += (" (winograd)" if winograd_forward(gy, flipped, (1,) * rank, dilations,
                                                   groups, w)
                 else " (direct)" if direct_forward(gy, flipped, groups, w) else " (im2col)")
    if path == "col2im":
        why = ("stride > 1" if any(s > 1 for s in strides) else
               f"C_out = {c_out} > C_in = {c_in}: gy @ W^T + the compiled col2im beats the "
               "correlation's wider columns")
        reasons.append(f"input gradient: col2im ({why})")
    elif path == "correlation (direct)":
        tile = forward_tile(flipped, x.shape[-2], x.itemsize)
        reasons.append(f"input gradient: {path}, stride 1; {_tile_name(tile, 'pixels')}")
    elif path.startswith("correlation"):
        reasons.append(f"input gradient: {path}, stride 1")
    if depthwise:
        path = filters = forward
    elif keep:
        filters = "kept columns"
    elif direct_filters(x, x, w.shape, groups):
        filters = "direct"
        tile = filters_tile(w.shape)
        reasons.append("filter gradient direct: C_in >= 2 and " + (
            "1x1 (a GEMM over the long N*H*W inner dimension stalls OpenBLAS's threads "
            "under load)" if math.prod(w.shape[:-2]) == 1 else
            f"C_in (padded to a multiple of {tile[0]}) * C_out = "
            f"{filter_channels(w.shape) * c_out} <= {t.max_filter_cc}")
            + f"; {_tile_name(tile, 'input channels')}")
    elif pointwise:
        filters = "gemm"
    else:
        filters = "im2col"
    bias_relu = "none" if not (bias or relu) else (
        "fused" if forward == "depthwise (compiled)" else
        "compiled" if fused_bias_relu(x) else "numpy")
    return ConvPlan(forward, keep, path, filters, bias_relu,
                    "compiled" if compiled_im2col(x, rank, groups) else "numpy", tuple(reasons),
                    family)


def _tile_name(tile, rows: str) -> str:
    """How the plan names a tile: its kernel and its shape."""
    return f"tile r{tile[0]}b{tile[1]} ({tile[0]} {rows} x {tile[1]} output channels)"


def plan(layer, input_shape, training: bool = True, dtype=None) -> ConvPlan:
    """How ``layer`` (a convolution layer) runs on inputs of ``input_shape``, and why.

    Args:
        layer: a ``Conv1D``/``Conv2D``/``Conv3D``/``DepthwiseConv2D`` (built or not).
        input_shape: the full input shape, batch included, in the layer's data format.
        training: plan a training step (columns may be kept for the filter gradient).
        dtype: the input dtype (default: the layer's weights', else float32).

    Returns:
        A ``ConvPlan``; print it for the path and the reasons.

    Raises:
        TypeError: ``layer`` is not a layer of one forward convolution.
        ValueError: ``input_shape`` does not have the layer's rank + 2 known sizes.

    Example:
        >>> import dojang as dj
        >>> print(dj.kernels.plan(dj.layers.Conv2D(256, 3), (8, 16, 16, 64)).forward)
        im2col
    """
    # duck-typed (kernels sit below layers): a layer with one forward convolution
    one_conv = all(hasattr(layer, a) for a in ("kernel_size", "_groups", "_out_channels",
                                               "_pads", "_spatial"))
    if not one_conv or hasattr(layer, "output_padding") or (
            hasattr(layer, "depth_multiplier") and hasattr(layer, "filters")):
        raise TypeError(f"Expected layer to be a Conv1D, Conv2D, Conv3D or DepthwiseConv2D "
                        f"layer. Received: layer={layer!r}")
    shape = tuple(input_shape)
    if len(shape) != layer.rank + 2 or not all(isinstance(n, int) and n > 0 for n in shape):
        raise ValueError(f"Expected input_shape to be {layer.rank + 2} positive ints. "
                         f"Received: input_shape={input_shape!r}")
    spatial = layer._spatial(shape)
    c_in = shape[-1] if layer._channels_last else shape[1]
    groups = layer._groups(c_in)
    weights = getattr(layer, "kernel", None)
    dtype = np.dtype(dtype or (np.float32 if weights is None else weights.dtype))
    x = np.broadcast_to(np.zeros((), dtype), (shape[0],) + spatial + (c_in,))
    w = np.broadcast_to(np.zeros((), dtype), tuple(layer.kernel_size)
                        + (c_in // groups, layer._out_channels(c_in)))
    act = getattr(layer.activation, "__name__", "")
    fused = act in getattr(layer, "fusable_activations", ())
    tanh = fused and act == "tanh"
    made = conv_plan(x, w, layer.strides, layer.dilation_rate, groups, layer._pads(spatial),
                     training, layer.use_bias and not tanh, fused and act == "relu")
    if not tanh:
        return made
    how = "one compiled pass" if compile.usable(x) else "NumPy"
    return replace(made, reasons=made.reasons + (
        f"tanh fused: the bias and tanh in {how} over the output (the \"tanh\" op), its "
        "gradient from the output",))


class _PlanModule(types.ModuleType):
    """This module, callable: ``dj.kernels.plan(layer, input_shape)`` is ``plan(...)``,
    while ``from dojang.kernels import plan`` still gives the module and its rules."""

    def __call__(self, layer, input_shape, training: bool = True, dtype=None) -> ConvPlan:
        return plan(layer, input_shape, training, dtype)


sys.modules[__name__].__class__ = _PlanModule

