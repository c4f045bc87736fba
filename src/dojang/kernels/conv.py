"""N-d convolution as im2col + one GEMM, and its two adjoints (pure arrays, no Tensor).

Notation as in ``dojang.kernels``: N batch, C = C_in channels, G groups, Cg = C / G,
C_out output channels, Cog = C_out / G, ``*K`` the kernel sizes (KH, KW, ...), ``*O``
the output sizes (OH, OW, ...), KK = prod(K), M = N * prod(O) rows of the GEMM.

Layout. Everything here is channels-last: inputs (N, *spatial, C), outputs
(N, *O, C_out), filters (*K, Cg, C_out) (HWIO). Channels-last keeps each pixel's
channels contiguous, so one im2col copy per kernel offset moves C floats at a time, the
GEMM result (M, C_out) *is* the NHWC output (no transpose after the GEMM) and the
filters reshape to (KK*Cg, C_out) without a copy. Measured on the benchmark layers
(2 threads, float32): an NCHW-internal im2col is no faster even for the C=1 first layer,
whose columns are tiny (M x 9) and whose cost is dominated by the GEMM and bias anyway,
and it needs a transpose of the GEMM output on every other layer. Channels-first callers
are transposed once at the boundary (``ops.conv``).

Lowering. ``cols`` has shape (G, M, KK*Cg): row ``m`` = output pixel ``(n, *o)``, column
``(k, c)`` = ``x[n, o*S + k*D - P_before, g*Cg + c]`` (zero where that falls in the
padding). It is filled by looping over the KK kernel offsets (never over output
pixels), each step copying one strided slice of the input. Then
``y[:, g*Cog:(g+1)*Cog] = cols[g] @ W_g`` with ``W_g`` (KK*Cg, Cog).

Adjoints. ``dW_g = cols[g]^T @ gy_g``; ``dcols[g] = gy_g @ W_g^T`` and col2im adds each
offset's slice of ``dcols`` back into the input gradient (again one strided add per
kernel offset). Zero padding is implicit: the padded input is never built, out-of-range
taps are zero in ``cols`` and are dropped by col2im, so the input gradient comes out
unpadded. The same three primitives serve the transposed convolution (its forward is
``conv_backward_input``).

Compiled path. For rank 1 and 2, one group and C > 1, ``kernels.jit`` fills the
columns (and adds them back) in one compiled pass per chunk, writing the zero padding
inline; the NumPy code here is the reference it is tested against.

Memory. The ``cols`` buffer never exceeds ``config.get_im2col_budget()`` bytes, nor
``CACHE_CHUNK_BYTES`` (so that each chunk is still in cache when its GEMM reads it): work
is split into chunks of whole samples, and when one sample alone is over budget, into
chunks of rows of the first output dimension (at least one row). Depthwise convolution
(Cg == 1, G == C) skips im2col and multiply-accumulates one offset at a time.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Iterator, Sequence

import numpy as np

from dojang.backend import get_array_module
from dojang.config import get_im2col_budget
from dojang.kernels import alloc, direct, jit
from dojang.kernels.threads import split_batch

Pads = Sequence[tuple[int, int]]


def output_shape(spatial: Sequence[int], kernel: Sequence[int], strides: Sequence[int],
                 dilations: Sequence[int], pads: Pads) -> tuple[int, ...]:
    """Output sizes ``O = floor((L + P_before + P_after - D*(K-1) - 1) / S) + 1``."""
    return tuple(
        (L + p[0] + p[1] - d * (k - 1) - 1) // s + 1
        for L, k, s, d, p in zip(spatial, kernel, strides, dilations, pads, strict=True)
    )


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
    region = _scratch(xp, "region", math.prod(shape), x.dtype).reshape(shape)
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


def im2col(x, cols, kernel, strides, dilations, pads, ranges, groups: int) -> None:
    """Fill ``cols`` (G, n*prod(O_chunk), KK*Cg) from ``x`` (n, *spatial, C).

    ``ranges`` gives, per spatial dim, the output positions ``[a, b)`` of this chunk.
    All kernel offsets are copied by one strided copy from a window view of the
    (chunk-sized, zero-padded) input: writes to ``cols`` stay sequential, which measures
    2-3x faster than one strided copy per offset. Single-channel input (``C == 1``)
    uses transposed columns instead (see ``_im2col_single``). With one group the
    samples are split over threads (each fills its own rows).
    """
    if jit.im2col_usable(x, len(kernel), groups):  # one compiled pass, padding inline
        jit.im2col(x, cols[0], kernel, strides, dilations, pads, ranges)
        return
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


def col2im(dcols, gx, kernel, strides, dilations, pads, ranges, groups: int) -> None:
    """Add ``dcols`` (G, n*prod(O_chunk), KK*Cg) into ``gx`` (n, *spatial, C) in place.

    One strided add per kernel offset (taps that fall in the zero padding are dropped).
    """
    if jit.im2col_usable(gx, len(kernel), groups) and gx.flags.c_contiguous:
        jit.col2im(dcols[0], gx, kernel, strides, dilations, pads, ranges)
        return
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
CACHE_CHUNK_BYTES = 8 << 20


def _chunks(n: int, out: Sequence[int], row_bytes: int) -> list[tuple[slice, tuple]]:
    """Split the work into (batch slice, output ranges) chunks whose cols fit the budget
    (and ``CACHE_CHUNK_BYTES``)."""
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


def _split_w(w, groups: int):
    """Filters (*K, Cg, C_out) as (G, KK*Cg, Cog), contiguous per group."""
    xp = get_array_module(w)
    kc, cout = math.prod(w.shape[:-1]), w.shape[-1]
    w2 = w.reshape(kc, cout)
    if groups == 1:
        return w2[None]
    return xp.ascontiguousarray(w2.reshape(kc, groups, cout // groups).transpose(1, 0, 2))


def _rows(a, chunk, groups: int):
    """The (G, rows, Cog) view of the chunk of an output-shaped array (n, *O, C_out)."""
    bs, ranges = chunk
    sub = a[(bs,) + tuple(slice(lo, hi) for lo, hi in ranges)]
    return sub, sub.reshape(-1, groups, sub.shape[-1] // groups).transpose(1, 0, 2)


def cols_bytes(x_shape, w_shape, strides, dilations, pads, itemsize: int) -> int:
    """Bytes of the whole batch's im2col columns for this convolution."""
    out = output_shape(x_shape[1:-1], w_shape[:-2], strides, dilations, pads)
    return x_shape[0] * math.prod(out) * math.prod(w_shape[:-1]) * itemsize


def is_depthwise(c_in: int, groups: int) -> bool:
    """True when every group holds one input channel (the offset-loop fast path)."""
    return groups > 1 and groups == c_in


def _plan(x_shape, w_shape, strides, dilations, pads, itemsize, out=None):
    kernel = tuple(w_shape[:-2])
    out = out or output_shape(x_shape[1:-1], kernel, strides, dilations, pads)
    row_bytes = math.prod(out[1:]) * math.prod(kernel) * x_shape[-1] * itemsize
    return kernel, out, _chunks(x_shape[0], out, row_bytes)


_workspace = threading.local()


def _alloc_cols(xp, chunks, groups, kc, dtype):
    """A flat scratch buffer for the biggest chunk's columns.

    One per-thread buffer per backend and dtype is reused (at most the chunk size), which
    saves the page faults of a fresh multi-MB allocation on every call.
    """
    size = groups * kc * max((c[0].stop - c[0].start) * math.prod(hi - lo for lo, hi in c[1])
                             for c in chunks)
    return _scratch(xp, "cols", size, dtype)


_MAX_RECYCLED = 4  # kept-column buffers waiting for reuse, per size


def _take_kept(xp, size: int, dtype):
    """A flat array for columns that outlive the call: a recycled one of this exact size
    when ``recycle_cols`` returned one (no fresh multi-MB allocation and page faults on
    every training step), else a new one."""
    free = _workspace.__dict__.setdefault("kept", {}).get((xp.__name__, str(dtype), size))
    return free.pop() if free else xp.empty(size, dtype=dtype)


def recycle_cols(cols) -> None:
    """Give the columns ``conv_forward`` kept back for reuse; the caller must hold no
    other reference to them (``ops.conv`` calls this when its graph node is released)."""
    flat = cols.base if cols.base is not None else cols
    xp = get_array_module(flat)
    free = _workspace.__dict__.setdefault("kept", {}).setdefault(
        (xp.__name__, str(flat.dtype), flat.size), [])
    if len(free) < _MAX_RECYCLED:
        free.append(flat)


def _scratch(xp, name: str, size: int, dtype):
    """A flat per-thread scratch array ``name`` of at least ``size`` items, reused."""
    cache = _workspace.__dict__.setdefault("buffers", {})
    key = (name, xp.__name__, str(dtype))
    buf = cache.get(key)
    if buf is None or buf.size < size:
        cache[key] = None  # free the old buffer before allocating the larger one
        buf = cache[key] = xp.empty(size, dtype=dtype)
    return buf[:size]


def _cols_view(buf, chunk, groups, kc, single: bool = False):
    """The (G, m, KK*Cg) columns of a chunk in ``buf``; ``single`` (C_in == 1): stored
    transposed, (KK, m) contiguous, seen through its (m, KK) transpose."""
    m = (chunk[0].stop - chunk[0].start) * math.prod(hi - lo for lo, hi in chunk[1])
    if single:
        return buf[: m * kc].reshape(kc, m).T[None]
    return buf[: groups * m * kc].reshape(groups, m, kc)


def conv_forward(x, w, strides, dilations, groups: int = 1, pads: Pads | None = None,
                 keep_cols: bool = False):
    """Cross-correlate ``x`` (N, *spatial, C) with ``w`` (*K, Cg, C_out).

    ``pads`` are implicit zero paddings (default none: ``x`` is already padded).
    Returns ``(y, cols)``: ``y`` (N, *O, C_out) and, when ``keep_cols`` and the whole
    batch's columns fit the im2col budget (chunks of whole samples), the (G, M, KK*Cg)
    columns for ``conv_backward_filter`` (else None). Kept columns are still filled and
    multiplied chunk by chunk, each chunk's rows of one array that outlives the call.
    """
    xp = get_array_module(x, w)
    pads = pads or ((0, 0),) * (x.ndim - 2)
    kernel, out, chunks = _plan(x.shape, w.shape, strides, dilations, pads, x.dtype.itemsize)
    y = _new(xp, (x.shape[0],) + out + (w.shape[-1],), x.dtype)
    if y.size == 0:  # an empty batch (or no output channels): nothing to lower
        return y, None
    if is_depthwise(x.shape[-1], groups):
        _depthwise_forward(x, w, y, strides, dilations, pads)
        return y, None
    wg = _split_w(w, groups)
    kc = wg.shape[1]
    single = x.shape[-1] == 1
    m_total = x.shape[0] * math.prod(out)
    keep_cols = (keep_cols and all(c[1] == chunks[0][1] for c in chunks)
                 and all(hi - lo == o for (lo, hi), o in zip(chunks[0][1], out, strict=True))
                 and groups * m_total * kc * x.dtype.itemsize <= get_im2col_budget())
    # Few channels: a direct convolution, no columns at all; unless the columns would be
    # kept for a filter gradient that needs them (one that the direct kernel does not
    # take): then im2col's columns serve both passes.
    if direct.usable(x, w.shape, groups, w) and not (
            keep_cols and not direct.filters_usable(x, x, w.shape, groups)):
        direct.forward(x, w, y, strides, dilations, pads)
        return y, None
    if keep_cols:
        kept = _full_cols(_take_kept(xp, groups * m_total * kc, x.dtype), groups, m_total,
                          kc, single)
    else:
        buf = _alloc_cols(xp, chunks, groups, kc, x.dtype)
    per_sample = math.prod(out)
    for chunk in chunks:
        if keep_cols:
            cols = kept[:, chunk[0].start * per_sample: chunk[0].stop * per_sample]
        else:
            cols = _cols_view(buf, chunk, groups, kc, single)
        im2col(x[chunk[0]], cols, kernel, strides, dilations, pads, chunk[1], groups)
        sub, yg = _rows(y, chunk, groups)
        if groups == 1:
            xp.matmul(cols[0], wg[0], out=sub.reshape(-1, sub.shape[-1]))
        else:
            yg[...] = xp.matmul(cols, wg)
    return y, (kept if keep_cols else None)


def _new(xp, shape, dtype, zero: bool = False):
    """A new output array; NumPy ones come from ``alloc`` (recycled, no page faults)."""
    if xp is np:
        return alloc.zeros(shape, dtype) if zero else alloc.empty(shape, dtype)
    return xp.zeros(shape, dtype=dtype) if zero else xp.empty(shape, dtype=dtype)


def _full_cols(buf, groups: int, m: int, kc: int, single: bool):
    """(G, M, KK*Cg) columns over ``buf``; ``single``: stored transposed (see ``_cols_view``)."""
    if single:
        return buf.reshape(kc, m).T[None]
    return buf.reshape(groups, m, kc)


def conv_backward_input(gy, w, x_shape, strides, dilations, groups: int = 1,
                        pads: Pads | None = None):
    """Gradient of ``conv_forward`` w.r.t. its input, of shape ``x_shape`` (unpadded).

    This is also the forward of the transposed convolution.
    """
    xp = get_array_module(gy, w)
    pads = pads or ((0, 0),) * (len(x_shape) - 2)
    depthwise = is_depthwise(x_shape[-1], groups)
    # With the compiled col2im, widening layers (C_out > C_in) are faster through the
    # GEMM + col2im below: the correlation's columns would be C_out/C_in times wider
    # (measured 12-15% less time on the seed CNN's second conv).
    r = len(x_shape) - 2
    widening = (w.shape[-1] > x_shape[-1] > 1  # C_in = 1 has no compiled col2im
                and jit.im2col_usable(gy, r, groups)
                # unless the correlation below runs as a direct convolution
                and not direct.usable(gy, w.shape[:r] + (w.shape[-1], w.shape[-2]), groups, w)
                and output_shape(x_shape[1:-1], w.shape[:-2], strides, dilations, pads)
                == gy.shape[1:-1])  # not a transposed conv's output padding
    if not depthwise and not widening and all(s == 1 for s in strides):
        return _full_correlation(gy, w, x_shape, dilations, groups, pads)
    # the outputs are gy's (a transposed conv's output padding makes x_shape larger than
    # the tight size, whose extra rows get no gradient)
    kernel, _, chunks = _plan(x_shape, w.shape, strides, dilations, pads, gy.dtype.itemsize,
                              out=gy.shape[1:-1])
    gx = _new(xp, x_shape, gy.dtype, zero=True)
    if gy.size == 0:
        return gx
    if depthwise:
        _depthwise_backward_input(gy, w, gx, strides, dilations, pads)
        return gx
    wg = _split_w(w, groups)
    kc = wg.shape[1]
    buf = _alloc_cols(xp, chunks, groups, kc, gy.dtype)
    for chunk in chunks:
        dcols = _cols_view(buf, chunk, groups, kc)
        sub, gyg = _rows(gy, chunk, groups)
        if groups == 1:
            xp.matmul(sub.reshape(-1, sub.shape[-1]), wg[0].T, out=dcols[0])
        else:
            xp.matmul(gyg, wg.transpose(0, 2, 1), out=dcols)
        col2im(dcols, gx[chunk[0]], kernel, strides, dilations, pads, chunk[1], groups)
    return gx


def _full_correlation(gy, w, x_shape, dilations, groups, pads):
    """Stride-1 input gradient as a forward conv: ``gx = conv(gy, flip(w)^T)``.

    With stride 1, ``gx[i] = sum_k gy[i + P_before - k*D] w[k]^T``: a correlation of
    ``gy`` with the spatially flipped, in/out-swapped filters and padding
    ``D*(K-1) - P`` on each side (negative = crop, handled by the same im2col). It
    replaces KK strided adds (col2im) by one sequential im2col copy.
    """
    xp = get_array_module(gy, w)
    r = w.ndim - 2
    kernel, cg, cout = w.shape[:r], w.shape[-2], w.shape[-1]
    w5 = w.reshape(kernel + (cg, groups, cout // groups))
    wf = w5[(slice(None, None, -1),) * r].transpose(tuple(range(r)) + (r + 2, r + 1, r))
    wf = xp.ascontiguousarray(wf).reshape(kernel + (cout // groups, groups * cg))
    # before: D*(K-1) - P_before; after: whatever makes the output exactly x_shape
    # (L_x - L_gy + P_before; equal to D*(K-1) - P_after when the conv is tight).
    fpads = tuple((d * (k - 1) - a, lx - ly + a) for d, k, (a, _), lx, ly in
                  zip(dilations, kernel, pads, x_shape[1:-1], gy.shape[1:-1], strict=True))
    gx, _ = conv_forward(gy, wf, (1,) * r, dilations, groups, fpads)
    return gx


def conv_backward_filter(x, gy, w_shape, strides, dilations, groups: int = 1,
                         pads: Pads | None = None, cols=None):
    """Gradient of ``conv_forward`` w.r.t. the filters, of shape ``w_shape``.

    ``cols`` may be the columns ``conv_forward`` kept; otherwise they are rebuilt chunk
    by chunk from ``x``. Only the outputs that ``gy`` covers take part (a transposed conv
    with ``output_padding >= S`` has an ``x`` larger than the tight size).
    """
    xp = get_array_module(x, gy)
    pads = pads or ((0, 0),) * (x.ndim - 2)
    kernel, _, chunks = _plan(x.shape, w_shape, strides, dilations, pads, x.dtype.itemsize,
                              out=gy.shape[1:-1])
    if gy.size == 0:  # an empty batch contributes nothing
        return xp.zeros(w_shape, dtype=gy.dtype)
    if is_depthwise(x.shape[-1], groups):
        return _depthwise_backward_filter(x, gy, w_shape, strides, dilations, pads)
    if cols is None and direct.filters_usable(x, gy, w_shape, groups):
        return direct.filters(x, gy, w_shape, strides, dilations, pads)
    kc = math.prod(w_shape[:-1])
    cout = w_shape[-1]
    dw = xp.zeros((groups, kc, cout // groups), dtype=gy.dtype)
    if cols is not None:  # kept columns cover the whole batch: one GEMM
        chunks = [(slice(0, x.shape[0]), tuple((0, o) for o in gy.shape[1:-1]))]
    else:
        buf = _alloc_cols(xp, chunks, groups, kc, x.dtype)
    for chunk in chunks:
        if cols is None:
            c = _cols_view(buf, chunk, groups, kc, x.shape[-1] == 1)
            im2col(x[chunk[0]], c, kernel, strides, dilations, pads, chunk[1], groups)
        else:
            c = cols
        sub, gyg = _rows(gy, chunk, groups)
        if groups == 1:
            dw[0] += xp.matmul(c[0].T, sub.reshape(-1, cout))
        else:
            dw += xp.matmul(c.transpose(0, 2, 1), gyg)
    if groups == 1:
        return dw[0].reshape(w_shape)
    return dw.transpose(1, 0, 2).reshape(w_shape)


def _depthwise_taps(x_shape, w_shape, strides, dilations, pads):
    """Per kernel offset: (k, output slice, input slice) of the valid taps (no chunks)."""
    kernel = tuple(w_shape[:-2])
    out = output_shape(x_shape[1:-1], kernel, strides, dilations, pads)
    ranges = tuple((0, o) for o in out)
    for _, k, dst, src in _offsets(x_shape[1:-1], kernel, strides, dilations, pads, ranges):
        yield k, (slice(None),) + dst, (slice(None),) + src


def _depthwise_forward(x, w, y, strides, dilations, pads) -> None:
    """``y[..., c, m] = sum_k x[tap k, c] * w[k, 0, c*mult + m]`` (multiplier ``mult``)."""
    c = x.shape[-1]
    yv = y.reshape(y.shape[:-1] + (c, y.shape[-1] // c))
    yv[...] = 0
    for k, dst, src in _depthwise_taps(x.shape, w.shape, strides, dilations, pads):
        yv[dst] += x[src][..., None] * w[k].reshape(c, -1)


def _depthwise_backward_input(gy, w, gx, strides, dilations, pads) -> None:
    c = gx.shape[-1]
    gv = gy.reshape(gy.shape[:-1] + (c, gy.shape[-1] // c))
    for k, dst, src in _depthwise_taps(gx.shape, w.shape, strides, dilations, pads):
        gx[src] += (gv[dst] * w[k].reshape(c, -1)).sum(axis=-1)


def _depthwise_backward_filter(x, gy, w_shape, strides, dilations, pads):
    xp = get_array_module(x, gy)
    c = x.shape[-1]
    gv = gy.reshape(gy.shape[:-1] + (c, gy.shape[-1] // c))
    dw = xp.zeros(w_shape, dtype=gy.dtype)
    for k, dst, src in _depthwise_taps(x.shape, w_shape, strides, dilations, pads):
        prod = x[src][..., None] * gv[dst]
        dw[k] += prod.sum(axis=tuple(range(prod.ndim - 2))).reshape(1, -1)
    return dw
