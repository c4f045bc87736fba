"""Direct convolution: register tiles compiled by numba, for layers with few channels.

``kernels.conv.reference`` lowers a convolution to im2col + GEMM. With few channels that GEMM is
thin (ResNet-20's first stage: M = 131,072 rows, K = 144, N = 16), and OpenBLAS runs
such shapes at a third of its square-GEMM speed, after im2col has written and read a
75 MB column matrix. Here the taps are read straight from ``x`` and each tile keeps
R output pixels x B output channels of partial sums in vector registers (the tiles,
``kernels.conv._tiles``, are written by ``tools/gen_tiles.py``; ``kernels.plan`` picks one
per layer from the table of the host's vector ISA: r4b16 or r3b32 with AVX2, r8b32 or
r8b16 with AVX-512, and for the filter gradient r4b16 or r8b32). On this 2-core machine the
forward of 3x3 layers at batch 128 ran at 130 (16 channels, 32x32) to 160 GFLOP/s
(32-64 channels) alone, against 45-65 and 95-125 for im2col + OpenBLAS; the filter
gradient at 105-125 (``bench/direct.py`` compares the two paths per layer shape).

Layouts (channels-last as everywhere in ``kernels``; rank-1 convs run as height 1).
Both kernels copy each sample into a zero-padded per-thread buffer (its border written
once), so that no tile tests for the edges of ``x``; negative pads crop.

- ``forward``: ``y[n, i, j, o] = sum_{a, b, c} x[n, i*sh + a*dh - ph, j*sw + b*dw - pw, c]
  * w[a, b, c, o]``, taps outside ``x`` read as 0. The filters go in packed as
  (C_out/B, KH, KW*C, B); for each block of B output channels a tile reads, per kernel
  row, one run of KW*C contiguous taps of each pixel (dilation 1). Each thread computes
  whole samples, each output one sum in (a, b, c) order: deterministic, whatever the
  thread count.
- ``filters``: the filter gradient ``sum over n, i, j of x[tap] * gy[n, i, j]``. Groups
  of samples (a number fixed by the batch size, not by the threads) are reduced by one
  thread each, then the group sums are added in group order. Within a sample, the
  output rows go in bands that stay in L1 while every tile passes over them.

The stride-1 input gradient is ``forward`` on ``gy`` with flipped filters (see
``conv.reference._full_correlation``). ``kernels.plan`` keeps im2col + GEMM where it is
faster: wide layers, whose GEMMs OpenBLAS runs near its peak, and groups.
"""

from __future__ import annotations

import math

import numpy as np

from dojang.kernels import alloc, compile, plan
from dojang.kernels.conv import _tiles

# The filter gradient passes over bands of rows whose x and gy fit in L1 (32 KiB per
# core here). The tile shapes and where these kernels run are ``kernels.plan``'s.
_L1_BYTES = 24 * 1024
_GROUPS = 16  # groups of samples the filter gradient sums separately (see ``filters``)


def _as2d(a):
    """A rank-1 (N, L, C) array as (N, 1, L, C); rank 2 as is."""
    return a.reshape(a.shape[0], 1, *a.shape[1:]) if a.ndim == 3 else a


def _geometry(kernel, strides, dilations, pads):
    """(2-d kernel, (sh, sw, dh, dw, ph, pw)) through ``compile.as2d``, the rank-1 -> rank-2
    mapping that the compiled im2col uses too (rank 1: height 1)."""
    _, k, s, d, p, _ = compile.as2d((0,) * (len(kernel) + 2), kernel, strides, dilations, pads,
                                    ((0, 0),) * len(kernel))
    return tuple(k), (s[0], s[1], d[0], d[1], p[0][0], p[1][0])


def _padded(k2, out_shape, geometry, tile: int = 1):
    """(rows, columns) of the zero-padded sample the kernels copy each input into: the
    ones that the taps of the outputs (``out_shape``, as 2-d; each row rounded up to
    whole tiles of ``tile`` outputs) reach."""
    sh, sw, dh, dw = geometry[:4]
    return ((out_shape[1] - 1) * sh + (k2[0] - 1) * dh + 1,
            (-(-out_shape[2] // tile) * tile - 1) * sw + (k2[1] - 1) * dw + 1)


def forward(x, w, y, strides, dilations, pads, tile=None) -> None:
    """Fill ``y`` (N, *O, C_out) with the correlation of ``x`` (N, *S, C) and ``w``
    (*K, C, C_out); ``pads`` are (before, after) zero paddings per spatial dim (only
    the before sides are read: ``y``'s shape says where the outputs end). ``tile``:
    (R, B) of one of ``_tiles``' forward tiles (default: ``kernels.plan``'s choice)."""
    c_in, c_out = w.shape[-2], w.shape[-1]
    x2, y2 = _as2d(np.ascontiguousarray(x)), _as2d(y)
    r, b = tile or plan.forward_tile(w.shape, y2.shape[2], x.itemsize)
    k2, geometry = _geometry(w.shape[:-2], strides, dilations, pads)
    # (C_out/B, KH, KW*C, B): the filters of one block of B output channels, innermost
    wt = np.ascontiguousarray(w.reshape(k2 + (c_in, c_out // b, b)).transpose(3, 0, 1, 2, 4))
    chunks = min(x.shape[0], compile.threads()) if x.shape[0] > 1 else 1
    run = getattr(_tiles, f"forward_r{r}b{b}").sized(chunks, y.size * math.prod(w.shape[:-1]))
    run(x2, wt.reshape(wt.shape[:2] + (-1, b)), y2, x.dtype.type(0), *geometry,
        *_padded(k2, y2.shape, geometry, r), chunks)


def filters(x, gy, w_shape, strides, dilations, pads, tile=None):
    """The filter gradient (``w_shape``) of the correlation of ``x`` that gave ``gy``;
    ``tile``: (RC, B) of one of ``_tiles``' filter tiles (default: ``kernels.plan``'s)."""
    c_in, c_out = w_shape[-2], w_shape[-1]
    rc, b = tile or plan.filters_tile(w_shape)
    k2, geometry = _geometry(w_shape[:-2], strides, dilations, pads)
    x2, g2 = _as2d(np.ascontiguousarray(x)), _as2d(np.ascontiguousarray(gy))
    hp, wp = _padded(k2, g2.shape, geometry)
    # Each group of samples is summed by one thread, then the groups in order: the
    # grouping follows from the batch size, not the thread count (deterministic sums).
    part = alloc.empty((min(x.shape[0], _GROUPS),) + k2 + (c_in, c_out // b, b), gy.dtype)
    # rows of gy per band: the band's gy and x rows should fit in L1
    row = (g2.shape[2] * c_out + geometry[0] * wp * c_in) * x.itemsize
    band = max(1, _L1_BYTES // row)
    run = getattr(_tiles, f"filters_r{rc}b{b}").sized(part.shape[0],
                                                       gy.size * math.prod(w_shape[:-1]))
    run(x2, g2.reshape(g2.shape[:3] + (-1, b)), part, x.dtype.type(0), *geometry, hp, wp,
        band)
    return np.add.reduce(part, axis=0).reshape(w_shape)  # the groups in order
