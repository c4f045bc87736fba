"""N-d convolution as im2col + one GEMM, its two adjoints, and the bias + ReLU after it.

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

Lowering. ``cols`` (G, M, KK*Cg) holds each output pixel's taps (``kernels.conv.im2col``,
op ``"conv.im2col"``); then ``y[:, g*Cog:(g+1)*Cog] = cols[g] @ W_g`` with ``W_g``
(KK*Cg, Cog).

Adjoints. ``dW_g = cols[g]^T @ gy_g``; ``dcols[g] = gy_g @ W_g^T`` and col2im adds each
offset's slice of ``dcols`` back into the input gradient (again one strided add per
kernel offset). Zero padding is implicit: the padded input is never built, out-of-range
taps are zero in ``cols`` and are dropped by col2im, so the input gradient comes out
unpadded. The same three primitives serve the transposed convolution (its forward is
``conv_backward_input``).

Variants and plan. ``kernels.plan`` decides how each convolution runs (direct or
im2col, kept columns, the input gradient's path); the compiled variants
(``kernels.conv.numba``: im2col/col2im in one pass, the direct kernels, fused bias + ReLU)
are picked through ``kernels.registry``, whose NumPy references are here and in
``kernels.conv.im2col``.

Ops: ``"conv.forward"``, ``"conv.backward_input"``, ``"conv.backward_filter"`` (what
``ops.conv`` calls); ``"conv.correlate"`` and ``"conv.filter_grad"`` (without kept
columns; their compiled variants are the direct kernels); ``"conv.depthwise"``,
``"conv.depthwise_input_grad"`` and ``"conv.depthwise_filter_grad"`` (compiled in
``kernels.conv.depthwise``); ``"conv.bias_relu"``, ``"conv.relu_grad_bias"`` and
``"conv.bias_grad"``.

Memory. The ``cols`` buffer never exceeds ``config.get_im2col_budget()`` bytes, nor
``plan.CACHE_CHUNK_BYTES`` (so that each chunk is still in cache when its GEMM reads it):
work is split into chunks of whole samples, and when one sample alone is over budget,
into chunks of rows of the first output dimension (at least one row; ``plan.chunks``).
Depthwise convolution (Cg == 1, G == C) skips im2col and multiply-accumulates one offset
at a time. A 1x1 convolution with stride 1 and no padding (``plan.is_pointwise``) skips
it too: its columns are the input, so each pass is one GEMM on the (M, C) view.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from dojang import backends
from dojang.backend import get_array_module
from dojang.kernels import plan
from dojang.kernels.conv.im2col import _offsets, _workspace, scratch
from dojang.kernels.registry import dispatch, register
from dojang.kernels.threads import split_batch
from dojang.shapes import window_output_shape

Pads = Sequence[tuple[int, int]]


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


def _alloc_cols(xp, chunks, groups, kc, dtype):
    """A flat scratch buffer for the biggest chunk's columns.

    One per-thread buffer per backend and dtype is reused (at most the chunk size), which
    saves the page faults of a fresh multi-MB allocation on every call.
    """
    size = groups * kc * max((c[0].stop - c[0].start) * math.prod(hi - lo for lo, hi in c[1])
                             for c in chunks)
    return scratch(xp, "cols", size, dtype)


_MAX_RECYCLED = 4  # kept-column buffers waiting for reuse, per size


def _take_kept(xp, size: int, dtype):
    """A flat array for columns that outlive the call: a recycled one of this exact size
    when ``recycle_cols`` returned one (no fresh multi-MB allocation and page faults on
    every training step), else a new one."""
    free = _workspace.__dict__.setdefault("kept", {}).get((xp.__name__, str(dtype), size))
    return free.pop() if free else xp.empty(size, dtype=dtype)


@register("conv.recycle_cols")
def recycle_cols(cols) -> None:
    """Give the columns ``conv_forward`` kept back for reuse; the caller must hold no
    other reference to them (``ops.conv`` calls this when its graph node is released)."""
    flat = cols.base if cols.base is not None else cols
    xp = get_array_module(flat)
    free = _workspace.__dict__.setdefault("kept", {}).setdefault(
        (xp.__name__, str(flat.dtype), flat.size), [])
    if len(free) < _MAX_RECYCLED:
        free.append(flat)


def _cols_view(buf, chunk, groups, kc, single: bool = False):
    """The (G, m, KK*Cg) columns of a chunk in ``buf``; ``single`` (C_in == 1): stored
    transposed, (KK, m) contiguous, seen through its (m, KK) transpose."""
    m = (chunk[0].stop - chunk[0].start) * math.prod(hi - lo for lo, hi in chunk[1])
    if single:
        return buf[: m * kc].reshape(kc, m).T[None]
    return buf[: groups * m * kc].reshape(groups, m, kc)


@register("conv.forward")
def conv_forward(x, w, strides, dilations, groups: int = 1, pads: Pads | None = None,
                 training: bool = False, bias=None, relu: bool = False):
    """Cross-correlate ``x`` (N, *spatial, C) with ``w`` (*K, Cg, C_out), then add
    ``bias`` (C_out,) (None: none) and, if ``relu``, take ``max(y, 0)``.

    ``pads`` are implicit zero paddings (default none: ``x`` is already padded).
    Returns ``(y, cols)``: ``y`` (N, *O, C_out) and, when ``training`` and the plan keeps
    them (``plan.keep_columns``), the (G, M, KK*Cg) columns for ``conv_backward_filter``
    (else None). Kept columns are still filled and multiplied chunk by chunk, each
    chunk's rows of one array that outlives the call. Otherwise ``"conv.depthwise"``
    (bias and ReLU inside), one GEMM (``plan.is_pointwise``) or ``"conv.correlate"`` (the
    direct kernel where the plan takes it) runs, then ``"conv.bias_relu"``.
    """
    xp = get_array_module(x, w)
    pads = pads or ((0, 0),) * (x.ndim - 2)
    out = window_output_shape(x.shape[1:-1], w.shape[:-2], strides, dilations, pads)
    y = _new(x, (x.shape[0],) + out + (w.shape[-1],), x.dtype)
    if y.size == 0:  # an empty batch (or no output channels): nothing to lower
        return y, None
    kept = None
    if plan.is_depthwise(x.shape[-1], groups):
        dispatch("conv.depthwise", x, w, y, strides, dilations, pads, bias, relu)
        return y, None
    if plan.is_pointwise(w.shape, strides, pads, groups):
        xp.matmul(x.reshape(-1, x.shape[-1]), w.reshape(w.shape[-2:]),
                  out=y.reshape(-1, y.shape[-1]))
    elif not plan.keep_columns(x, w, strides, dilations, groups, pads, training):
        dispatch("conv.correlate", x, w, y, strides, dilations, pads, groups)
    else:
        m_total = x.shape[0] * math.prod(out)
        kc = math.prod(w.shape[:-1])
        kept = _full_cols(_take_kept(xp, groups * m_total * kc, x.dtype), groups, m_total, kc,
                          x.shape[-1] == 1)
        _im2col_gemm(x, w, y, strides, dilations, pads, groups, kept)
    if bias is not None or relu:
        dispatch("conv.bias_relu", y, bias, relu)
    return y, kept


@register("conv.correlate")
def correlate(x, w, y, strides, dilations, pads, groups: int) -> None:
    """Fill ``y`` (N, *O, C_out) with the correlation of ``x`` and ``w``: im2col + GEMM
    chunk by chunk through one reused scratch buffer."""
    _im2col_gemm(x, w, y, strides, dilations, pads, groups)


def _im2col_gemm(x, w, y, strides, dilations, pads, groups, kept=None) -> None:
    """``y = cols @ W`` chunk by chunk; the columns go to ``kept`` (whole batch) if given."""
    xp = get_array_module(x, w)
    kernel, out, chunks = plan.lowering(x.shape, w.shape, strides, dilations, pads,
                                        x.dtype.itemsize)
    wg = _split_w(w, groups)
    kc = wg.shape[1]
    if kept is None:
        buf = _alloc_cols(xp, chunks, groups, kc, x.dtype)
    per_sample = math.prod(out)
    for chunk in chunks:
        if kept is not None:
            cols = kept[:, chunk[0].start * per_sample: chunk[0].stop * per_sample]
        else:
            cols = _cols_view(buf, chunk, groups, kc, x.shape[-1] == 1)
        dispatch("conv.im2col", x[chunk[0]], cols, kernel, strides, dilations, pads, chunk[1],
                 groups)
        sub, yg = _rows(y, chunk, groups)
        if groups == 1:
            xp.matmul(cols[0], wg[0], out=sub.reshape(-1, sub.shape[-1]))
        else:
            yg[...] = xp.matmul(cols, wg)


def _new(like, shape, dtype, zero: bool = False):
    """A new output array from the backend of ``like`` (NumPy's: recycled, no page faults)."""
    backend = backends.backend_of(like)
    return backend.zeros(shape, dtype) if zero else backend.empty(shape, dtype)


def _full_cols(buf, groups: int, m: int, kc: int, single: bool):
    """(G, M, KK*Cg) columns over ``buf``; ``single``: stored transposed (see ``_cols_view``)."""
    if single:
        return buf.reshape(kc, m).T[None]
    return buf.reshape(groups, m, kc)


@register("conv.backward_input")
def conv_backward_input(gy, w, x_shape, strides, dilations, groups: int = 1,
                        pads: Pads | None = None):
    """Gradient of ``conv_forward`` w.r.t. its input, of shape ``x_shape`` (unpadded):
    the path ``plan.input_gradient`` picks.

    This is also the forward of the transposed convolution.
    """
    xp = get_array_module(gy, w)
    pads = pads or ((0, 0),) * (len(x_shape) - 2)
    path = plan.input_gradient(gy, w, x_shape, strides, dilations, groups, pads)
    if path == "depthwise":
        gx = _new(gy, x_shape, gy.dtype)
        dispatch("conv.depthwise_input_grad", gy, w, gx, strides, dilations, pads)
        return gx
    if path == "gemm":
        gx = _new(gy, x_shape, gy.dtype)
        xp.matmul(gy.reshape(-1, gy.shape[-1]), w.reshape(w.shape[-2:]).T,
                  out=gx.reshape(-1, gx.shape[-1]))
        return gx
    if path == "correlation":
        return _full_correlation(gy, w, x_shape, dilations, groups, pads)
    # the outputs are gy's (a transposed conv's output padding makes x_shape larger than
    # the tight size, whose extra rows get no gradient)
    kernel, _, chunks = plan.lowering(x_shape, w.shape, strides, dilations, pads,
                                      gy.dtype.itemsize, out=gy.shape[1:-1])
    gx = _new(gy, x_shape, gy.dtype, zero=True)
    if gy.size == 0:
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
        dispatch("conv.col2im", dcols, gx[chunk[0]], kernel, strides, dilations, pads, chunk[1],
                 groups)
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


@register("conv.backward_filter")
def conv_backward_filter(x, gy, w_shape, strides, dilations, groups: int = 1,
                         pads: Pads | None = None, cols=None, bias: bool = False):
    """Gradients of ``conv_forward`` w.r.t. the filters (``w_shape``) and, when ``bias``,
    the bias (C_out,): ``(dw, db)``, ``db`` None without ``bias``.

    ``cols`` may be the columns ``conv_forward`` kept (one GEMM). Otherwise the
    depthwise kernel (``"conv.depthwise_filter_grad"``, which sums the bias gradient in
    the same pass), one GEMM (``plan.is_pointwise``, unless the direct kernel takes it)
    or ``"conv.filter_grad"`` (the direct kernel where the plan takes it) runs. Only the
    outputs that ``gy`` covers take part (a transposed conv with ``output_padding >= S``
    has an ``x`` larger than the tight size).
    """
    xp = get_array_module(x, gy)
    pads = pads or ((0, 0),) * (x.ndim - 2)
    if gy.size == 0:  # an empty batch contributes nothing
        return (xp.zeros(w_shape, dtype=gy.dtype),
                xp.zeros(w_shape[-1], dtype=gy.dtype) if bias else None)
    if plan.is_depthwise(x.shape[-1], groups):
        return dispatch("conv.depthwise_filter_grad", x, gy, w_shape, strides, dilations, pads,
                        bias)
    if cols is not None:
        whole = [(slice(0, x.shape[0]), tuple((0, o) for o in gy.shape[1:-1]))]
        dw = _filter_gemm(x, gy, w_shape, strides, dilations, pads, groups, whole, cols)
    elif (plan.is_pointwise(w_shape, strides, pads, groups) and gy.shape[1:-1] == x.shape[1:-1]
          and not plan.direct_filters(x, gy, w_shape, groups)):
        dw = (x.reshape(-1, x.shape[-1]).T @ gy.reshape(-1, gy.shape[-1])).reshape(w_shape)
    else:
        dw = dispatch("conv.filter_grad", x, gy, w_shape, strides, dilations, pads, groups)
    return dw, dispatch("conv.bias_grad", gy) if bias else None


@register("conv.filter_grad")
def filter_grad(x, gy, w_shape, strides, dilations, pads, groups: int):
    """The filter gradient from ``x`` and ``gy``: columns rebuilt chunk by chunk and one
    GEMM per chunk."""
    _, _, chunks = plan.lowering(x.shape, w_shape, strides, dilations, pads, x.dtype.itemsize,
                                 out=gy.shape[1:-1])
    return _filter_gemm(x, gy, w_shape, strides, dilations, pads, groups, chunks)


def _filter_gemm(x, gy, w_shape, strides, dilations, pads, groups, chunks, cols=None):
    """``dW = sum over chunks of cols^T @ gy``; ``cols``: the whole batch's kept columns."""
    xp = get_array_module(x, gy)
    kernel = tuple(w_shape[:-2])
    kc = math.prod(w_shape[:-1])
    cout = w_shape[-1]
    dw = xp.zeros((groups, kc, cout // groups), dtype=gy.dtype)
    if cols is None:
        buf = _alloc_cols(xp, chunks, groups, kc, x.dtype)
    for chunk in chunks:
        if cols is None:
            c = _cols_view(buf, chunk, groups, kc, x.shape[-1] == 1)
            dispatch("conv.im2col", x[chunk[0]], c, kernel, strides, dilations, pads, chunk[1],
                     groups)
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
    out = window_output_shape(x_shape[1:-1], kernel, strides, dilations, pads)
    ranges = tuple((0, o) for o in out)
    for _, k, dst, src in _offsets(x_shape[1:-1], kernel, strides, dilations, pads, ranges):
        yield k, (slice(None),) + dst, (slice(None),) + src


@register("conv.depthwise")
def depthwise(x, w, y, strides, dilations, pads, b, relu: bool) -> None:
    """Fill ``y`` (N, *O, C*M) with the depthwise correlation of ``x`` (N, *S, C) and
    ``w`` (*K, 1, C*M), plus ``b`` (None: no bias), then ReLU if ``relu``:
    ``y[..., c*M + m] = sum_k x[tap k, c] * w[k, 0, c*M + m]``, one offset at a time."""
    c = x.shape[-1]
    yv = y.reshape(y.shape[:-1] + (c, y.shape[-1] // c))
    yv[...] = 0
    for k, dst, src in _depthwise_taps(x.shape, w.shape, strides, dilations, pads):
        yv[dst] += x[src][..., None] * w[k].reshape(c, -1)
    if b is not None or relu:  # another backend's compiled pass where it has one
        dispatch("conv.bias_relu", y, b, relu)


@register("conv.depthwise_input_grad")
def depthwise_input_grad(gy, w, gx, strides, dilations, pads) -> None:
    """Fill ``gx`` (N, *S, C) with the gradient of ``depthwise`` w.r.t. its input."""
    c = gx.shape[-1]
    gv = gy.reshape(gy.shape[:-1] + (c, gy.shape[-1] // c))
    gx[...] = 0
    for k, dst, src in _depthwise_taps(gx.shape, w.shape, strides, dilations, pads):
        gx[src] += (gv[dst] * w[k].reshape(c, -1)).sum(axis=-1)


@register("conv.depthwise_filter_grad")
def depthwise_filter_grad(x, gy, w_shape, strides, dilations, pads, bias: bool):
    """``(dw, db)``: the gradients of ``depthwise`` w.r.t. its filters (``w_shape``) and,
    when ``bias``, its bias (else None)."""
    xp = get_array_module(x, gy)
    c = x.shape[-1]
    gv = gy.reshape(gy.shape[:-1] + (c, gy.shape[-1] // c))
    dw = xp.zeros(w_shape, dtype=gy.dtype)
    for k, dst, src in _depthwise_taps(x.shape, w_shape, strides, dilations, pads):
        prod = x[src][..., None] * gv[dst]
        dw[k] += prod.sum(axis=tuple(range(prod.ndim - 2))).reshape(1, -1)
    return dw, dispatch("conv.bias_grad", gy) if bias else None


# ------------------------------------------------------------ bias + ReLU after the GEMM
@register("conv.bias_relu")
def bias_relu_(y, b, relu: bool) -> None:
    """``y = y + b`` (``b`` None: no bias) then, if ``relu``, ``max(y, 0)``, in place on a
    channels-last ``y``, the batch split over threads."""
    xp = get_array_module(y)

    def part(s):
        ys = y[s]
        if b is not None:
            xp.add(ys, b, out=ys)
        if relu:
            xp.maximum(ys, 0, out=ys)

    split_batch(part, y.shape[0], y.size, like=y)


@register("conv.bias_grad")
def bias_grad(gy):
    """Sum of a contiguous channels-last ``gy`` over every axis but the channels.

    Computed as the GEMV ``ones(M) @ gy`` (M rows): NumPy's ``sum(axis=0)`` walks the
    rows one at a time and measures ~7x slower on the benchmark layers.
    """
    xp = get_array_module(gy)
    g2 = gy.reshape(-1, gy.shape[-1])
    return xp.ones(g2.shape[0], dtype=g2.dtype) @ g2


@register("conv.relu_grad_bias")
def relu_grad_bias(gy, y, bias: bool = True):
    """``(g, gb)``: the fused ReLU's gradient ``g = gy where y > 0, else 0`` (contiguous,
    channels-last) and, when ``bias``, its sum over every axis but the last (else None)."""
    g = get_array_module(gy).ascontiguousarray(dispatch("relu_grad", gy, y))
    return g, bias_grad(g) if bias else None
