"""im2col and col2im on any backend's arrays: the reference of ``conv.numba``'s.

Notation and layout as in ``kernels.conv.reference``. ``cols`` has shape (G, M, KK*Cg):
row ``m`` = output pixel ``(n, *o)``, column ``(k, c)`` = ``x[n, o*S + k*D - P_before,
g*Cg + c]`` (zero where that falls in the padding). It is filled by looping over the KK
kernel offsets (never over output pixels), each step copying one strided slice of the
input; col2im adds each offset's slice back into the input gradient (again one strided
add per kernel offset). Zero padding is implicit: the padded input is never built,
out-of-range taps are zero in ``cols`` and are dropped by col2im, so the input gradient
comes out unpadded.

Ops: ``"conv.im2col"(x, cols, kernel, strides, dilations, pads, ranges, groups)`` and
``"conv.col2im"(dcols, gx, kernel, strides, dilations, pads, ranges, groups)``; ``ranges``
gives, per spatial dim, the output positions ``[a, b)`` of the chunk.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Iterator

from dojang.backend import get_array_module
from dojang.kernels.registry import register
from dojang.kernels.threads import split_batch


def _tap(L: int, k: int, s: int, d: int, p: int, a: int, b: int):
    """For output positions o in [a, b) and tap k: the valid output range and source slice.

    Source index ``i = o*s + k*d - p`` must satisfy ``0 <= i < L``. Returns
    ``(lo, hi, src_slice)`` with ``a <= lo <= hi <= b``; ``lo == hi`` when no o is valid.
    """
    off = k * d - p
    lo = max(a, -(off // s) if off < 0 else 0)  # smallest o with o*s + off >= 0
    hi = min(b, (L - 1 - off) // s + 1) if L - 1 - off >= 0 else a
    hi = max(hi, lo)
    start = lo * s + off
    return lo, hi, slice(start, start + (hi - lo - 1) * s + 1 if hi > lo else start, s)


def _offsets(spatial, kernel, strides, dilations, pads, ranges) -> Iterator:
    """Yield ``(k_index, k, dst, src)`` for every kernel offset ``k`` that has valid taps.

    ``dst`` slices the chunk's output positions (relative to ``ranges``) whose tap lies
    inside the input, ``src`` the matching strided input slice.
    """
    for ki, k in enumerate(itertools.product(*(range(K) for K in kernel))):
        taps = [_tap(spatial[j], k[j], strides[j], dilations[j], pads[j][0], *ranges[j])
                for j in range(len(spatial))]
        if all(hi > lo for lo, hi, _ in taps):
            dst = tuple(slice(lo - r[0], hi - r[0])
                        for (lo, hi, _), r in zip(taps, ranges, strict=True))
            yield ki, k, dst, tuple(sl for _, _, sl in taps)


def _grouped(v, groups: int):
    """View (n, ..., C) as (G, n, ..., Cg): the group axis first, as in ``cols``."""
    xp = get_array_module(v)
    return xp.moveaxis(v.reshape(v.shape[:-1] + (groups, v.shape[-1] // groups)), -2, 0)


def _padded_region(x, kernel, strides, dilations, pads, ranges):
    """The zero-padded input region that the outputs in ``ranges`` read, origin at tap 0.

    A view of ``x`` when the region needs no padding, else a zero-filled copy (only
    the chunk's rows, so its size follows the chunk).
    """
    xp = get_array_module(x)
    spans = []
    for j, (a, b) in enumerate(ranges):
        lo = a * strides[j] - pads[j][0]
        spans.append((lo, lo + (b - a - 1) * strides[j] + dilations[j] * (kernel[j] - 1) + 1))
    spatial = x.shape[1:-1]
    if all(lo >= 0 and hi <= L for (lo, hi), L in zip(spans, spatial, strict=True)):
        return x[(slice(None),) + tuple(slice(lo, hi) for lo, hi in spans)]
    shape = (x.shape[0],) + tuple(hi - lo for lo, hi in spans) + x.shape[-1:]
    region = scratch(xp, "region", math.prod(shape), x.dtype).reshape(shape)
    src = tuple(slice(max(lo, 0), min(hi, L)) for (lo, hi), L in zip(spans, spatial, strict=True))
    dst = tuple(slice(s.start - lo, s.stop - lo) for s, (lo, _) in zip(src, spans, strict=True))
    if not all(s.stop > s.start for s in src):
        region[...] = 0
        return region
    # zero only the padding bands (the reused buffer holds stale data), then the interior
    for j, (d, n) in enumerate(zip(dst, shape[1:-1], strict=True)):
        lead = (slice(None),) * (j + 1)
        region[lead + (slice(0, d.start),)] = 0
        region[lead + (slice(d.stop, n),)] = 0
    region[(slice(None),) + dst] = x[(slice(None),) + src]
    return region


def _windows(xp, region, out, kernel, strides, dilations):
    """Read-only (n, *O, *K, C) view: ``[n, *o, *k, c] = region[n, *(o*S + k*D), c]``."""
    st = region.strides
    sp = st[1:-1]
    shape = region.shape[:1] + tuple(out) + tuple(kernel) + region.shape[-1:]
    strides_ = (st[0],) + tuple(a * s for a, s in zip(sp, strides, strict=True)) + tuple(
        a * d for a, d in zip(sp, dilations, strict=True)) + (st[-1],)
    return xp.lib.stride_tricks.as_strided(region, shape, strides_, writeable=False)


@register("conv.im2col")
def im2col(x, cols, kernel, strides, dilations, pads, ranges, groups: int) -> None:
    """Fill ``cols`` (G, n*prod(O_chunk), KK*Cg) from ``x`` (n, *spatial, C).

    ``ranges`` gives, per spatial dim, the output positions ``[a, b)`` of this chunk.
    All kernel offsets are copied by one strided copy from a window view of the
    (chunk-sized, zero-padded) input: writes to ``cols`` stay sequential, which measures
    2-3x faster than one strided copy per offset. Single-channel input (``C == 1``)
    uses transposed columns instead (see ``_im2col_single``). With one group the
    samples are split over threads (each fills its own rows).
    """
    per_sample = math.prod(b - a for a, b in ranges)
    if groups > 1:
        _im2col_rows(x, cols, kernel, strides, dilations, pads, ranges, groups)
        return

    def part(s):
        rows = slice(s.start * per_sample, s.stop * per_sample)
        _im2col_rows(x[s], cols[:, rows], kernel, strides, dilations, pads, ranges, groups)

    split_batch(part, x.shape[0], cols.size, like=x)


def _im2col_rows(x, cols, kernel, strides, dilations, pads, ranges, groups: int) -> None:
    xp = get_array_module(x)
    oc = tuple(b - a for a, b in ranges)
    region = _padded_region(x, kernel, strides, dilations, pads, ranges)
    if x.shape[-1] == 1:
        _im2col_single(region, cols[0].T, oc, kernel, strides, dilations)
        return
    win = _windows(xp, region, oc, kernel, strides, dilations)
    cg = x.shape[-1] // groups
    target = cols.reshape((groups, x.shape[0]) + oc + tuple(kernel) + (cg,))
    if not xp.shares_memory(target, cols):  # pragma: no cover - a reshape that copied
        raise RuntimeError("im2col: the columns buffer must be contiguous per group")
    xp.copyto(target, _grouped(win, groups))


def _im2col_single(region, cols_t, out, kernel, strides, dilations) -> None:
    """Single-channel im2col into TRANSPOSED columns ``cols_t`` (KK, M), one row per offset.

    With one channel the window copy moves one float at a time; here each kernel offset
    is one strided copy of a whole output-sized plane into a contiguous row (measured
    3-4x faster). The caller sees ``cols_t.T``, an (M, KK) F-ordered view that the
    GEMMs take without a copy (``cols_t`` itself is the left factor of ``dW``).
    """
    plane = (region.shape[0],) + tuple(out)
    for ki, k in enumerate(itertools.product(*(range(K) for K in kernel))):
        src = tuple(slice(kj * d, kj * d + s * (o - 1) + 1, s)
                    for kj, d, s, o in zip(k, dilations, strides, out, strict=True))
        cols_t[ki].reshape(plane)[...] = region[(slice(None),) + src + (0,)]


@register("conv.col2im")
def col2im(dcols, gx, kernel, strides, dilations, pads, ranges, groups: int) -> None:
    """Add ``dcols`` (G, n*prod(O_chunk), KK*Cg) into ``gx`` (n, *spatial, C) in place.

    One strided add per kernel offset (taps that fall in the zero padding are dropped).
    """
    xp = get_array_module(gx)
    n, cg = gx.shape[0], gx.shape[-1] // groups
    oc = tuple(b - a for a, b in ranges)
    view = dcols.reshape((groups, n) + oc + (math.prod(kernel), cg))
    gg = _grouped(gx, groups)
    for ki, _, dst, src in _offsets(gx.shape[1:-1], kernel, strides, dilations, pads, ranges):
        target = gg[(slice(None), slice(None)) + src]
        xp.add(target, view[(slice(None), slice(None)) + dst + (ki,)], out=target)


# Columns are built and consumed in chunks of at most this size even under a larger
# budget: a chunk that stays in the last-level cache between the im2col copy and the GEMM
# that reads it measured 15-25% faster per conv (2 and 8 MB alike, 32+ MB slower) on the
# benchmark layers, and columns are then rebuilt in backward instead of kept.


_workspace = threading.local()


def scratch(xp, name: str, size: int, dtype):
    """A flat per-thread scratch array ``name`` of at least ``size`` items, reused."""
    cache = _workspace.__dict__.setdefault("buffers", {})
    key = (name, xp.__name__, str(dtype))
    buf = cache.get(key)
    if buf is None or buf.size < size:
        cache[key] = None  # free the old buffer before allocating the larger one
        buf = cache[key] = xp.empty(size, dtype=dtype)
    return buf[:size]
