"""Slow, obviously-correct pooling: nested Python loops over every window and offset.

Layout channels-last ``(N, *spatial, C)``; ``pads`` is one ``(before, after)`` pair per
spatial dim. Padding positions are simply skipped (for max: -inf never wins; for an
average they count only when ``count_include_pad``).
"""

from __future__ import annotations

import itertools
import math

import numpy as np


def _out_shape(spatial, ksize, strides, pads):
    return tuple((n + pb + pa - k) // s + 1
                 for n, k, s, (pb, pa) in zip(spatial, ksize, strides, pads, strict=True))


def _window(o, ksize, strides, pads, spatial):
    """Input coordinates of window ``o`` in row-major offset order (None for padding)."""
    for offset in itertools.product(*(range(k) for k in ksize)):
        pos = tuple(oi * s + d - pb for oi, s, d, (pb, _)
                    in zip(o, strides, offset, pads, strict=True))
        inside = all(0 <= p < n for p, n in zip(pos, spatial, strict=True))
        yield pos if inside else None


def _loop(x, ksize, strides, pads):
    spatial = x.shape[1:-1]
    for n in range(x.shape[0]):
        for o in itertools.product(*(range(m) for m in _out_shape(spatial, ksize, strides, pads))):
            for c in range(x.shape[-1]):
                yield n, o, c, list(_window(o, ksize, strides, pads, spatial))


def ref_max_pool(x, ksize, strides, pads):
    """Returns ``(y, gx_index)``: the max and, per output, the input index of its first max."""
    spatial = x.shape[1:-1]
    out = np.zeros((x.shape[0], *_out_shape(spatial, ksize, strides, pads), x.shape[-1]),
                   dtype=x.dtype)
    where = {}
    for n, o, c, window in _loop(x, ksize, strides, pads):
        best, arg = -np.inf, None
        for pos in window:
            if pos is not None and x[(n, *pos, c)] > best:  # strict: the first maximum wins
                best, arg = x[(n, *pos, c)], (n, *pos, c)
        out[(n, *o, c)] = best
        where[(n, *o, c)] = arg
    return out, where


def ref_max_pool_grad(x, gy, ksize, strides, pads):
    """Input gradient of max pooling: each output's gradient added at its first maximum."""
    _, where = ref_max_pool(x, ksize, strides, pads)
    gx = np.zeros_like(x)
    for out_index, in_index in where.items():
        gx[in_index] += gy[out_index]
    return gx


def ref_avg_pool(x, ksize, strides, pads, count_include_pad=False):
    spatial = x.shape[1:-1]
    out = np.zeros((x.shape[0], *_out_shape(spatial, ksize, strides, pads), x.shape[-1]),
                   dtype=x.dtype)
    for n, o, c, window in _loop(x, ksize, strides, pads):
        real = [pos for pos in window if pos is not None]
        count = math.prod(ksize) if count_include_pad else len(real)
        out[(n, *o, c)] = sum(x[(n, *pos, c)] for pos in real) / count
    return out


def ref_avg_pool_grad(x, gy, ksize, strides, pads, count_include_pad=False):
    gx = np.zeros_like(x)
    for n, o, c, window in _loop(x, ksize, strides, pads):
        real = [pos for pos in window if pos is not None]
        count = math.prod(ksize) if count_include_pad else len(real)
        for pos in real:
            gx[(n, *pos, c)] += gy[(n, *o, c)] / count
    return gx
