"""Pooling windows for any number of spatial dimensions, on NumPy or CuPy arrays.

Layout: channels-last, ``x`` is ``(N, *spatial, C)`` (NWC, NHWC, NDHWC). Pooling acts on
each channel separately, so channels-last keeps the innermost axis contiguous in every
strided window view; the ops transpose channels-first data once at the boundary.
Symbols (N, C, H, W, KH, KW, SH, SW, PH, PW, OH, OW) are those of ``dojang.kernels``;
``ksize``, ``strides`` are per-dimension tuples and ``pads`` is one ``(before, after)``
pair per spatial dimension.

General path: loop over the ``prod(ksize)`` WINDOW OFFSETS, never over output pixels.
For offset ``(kh, kw)`` the inputs seen by every window at once are the strided view
``xpad[:, kh : kh + SH*(OH-1) + 1 : SH, kw : kw + SW*(OW-1) + 1 : SW, :]``, of shape
``(N, OH, OW, C)``; max pooling keeps a running maximum over these views and average
pooling a running sum. Max pooling pads with ``-inf``.

Max-pool gradient: each window sends its gradient to ONE input, the first maximum in
row-major window order (what PyTorch's strict ``>`` scan picks). Backward walks the
offsets in that same order and gives the gradient to the first offset whose value
equals the window's maximum, tracking which windows are already served; so forward
needs no argmax array and inference pays only for ``maximum``. A window whose
maximum is NaN passes no gradient (NaN propagates to the output, as in NumPy).

Fast path (``tiles``): when ``strides == ksize`` and there is no padding, the windows
tile the input (the last ``L mod K`` pixels, if any, are seen by no window), so the
offset views never overlap. Backward then writes each offset's gradient straight into
its view (no zero fill, no accumulation): max pooling selects ``gy`` where ``hit``,
average pooling as a broadcast of ``gy / prod(K)`` through the
``(N, OH, KH, OW, KW, C)`` reshape of the gradient. Max-pool forward stays the offset
loop: reducing that reshape over the K axes in one NumPy call measured 1.5-10x slower
(NumPy reduces over strided inner axes slowly, worst for small C). Average pooling
adds the window axes one at a time, OUTERMOST first (``_avg_pool_tiled``): the first
adds work on long contiguous runs and shrink the array before the short runs of ``C``
items are met (LeNet-5's 6 channels: 1.6x faster than the offset loop). When a gradient
will be wanted, ``max_pool(..., picks=[])`` instead records where each maximum is
(``max_pool_tiled``: about 2x the offset loop's forward time) and
``max_pool_tiled_backward`` routes ``gy`` with one multiply per offset and axis
(about 0.6x the comparison-based backward); the pair measured slightly faster than
the offset loop plus its backward on the seed CNN and keeps no copy of ``x``.

Average pooling divides by the number of REAL inputs under each window by default
(padding excluded, as TensorFlow); ``count_include_pad=True`` divides by ``prod(ksize)``
(PyTorch's default).

Global pooling reduces all spatial axes; the global max gradient goes to the first
maximum in row-major spatial order, as ``torch.nn.functional.adaptive_max_pool2d(x, 1)``
does (``amax`` would share ties evenly instead).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from functools import partial

from dojang.backend import all_finite, get_array_module
from dojang.kernels.registry import register
from dojang.kernels.threads import split_batch
from dojang.shapes import pool_output_shape

Pads = Sequence[tuple[int, int]]

# Channel runs up to this many bytes are short: NumPy pays per run (see avg-pool backward).
SHORT_RUN = 64


def tiles(ksize: Sequence[int], strides: Sequence[int], pads: Pads) -> bool:
    """True when the windows tile the input (``strides == ksize``, no padding): fast path."""
    return tuple(strides) == tuple(ksize) and not any(p for pair in pads for p in pair)


def _spatial_index(slices) -> tuple:
    return (slice(None), *slices, slice(None))


def _pad(x, pads: Pads, value):
    """``x`` with ``value`` around its spatial axes (``x`` itself when there is no padding)."""
    if not any(p for pair in pads for p in pair):
        return x
    out = get_array_module(x).full(_padded_shape(x.shape, pads), value, dtype=x.dtype)
    out[_interior(x.shape[1:-1], pads)] = x
    return out


def _padded_shape(shape: Sequence[int], pads: Pads) -> tuple[int, ...]:
    spatial = shape[1:-1]
    return (shape[0], *(n + pb + pa for n, (pb, pa) in zip(spatial, pads, strict=True)),
            shape[-1])


def _interior(spatial: Sequence[int], pads: Pads) -> tuple:
    return _spatial_index(slice(pb, pb + n) for n, (pb, _) in zip(spatial, pads, strict=True))


def _windows(ksize: Sequence[int], strides: Sequence[int], out: Sequence[int]) -> Iterator:
    """Index of the strided view seen by each window offset, in row-major window order."""
    for offset in itertools.product(*(range(k) for k in ksize)):
        yield _spatial_index(
            slice(o, o + s * (n - 1) + 1, s) for o, s, n in zip(offset, strides, out, strict=True)
        )


def _lowest(xp, dtype):
    return -xp.inf if xp.dtype(dtype).kind == "f" else xp.iinfo(dtype).min


def _expand_tiles(y):
    """``(N, OH, OW, C)`` -> ``(N, OH, 1, OW, 1, C)``, to broadcast against the tiles."""
    shape = (y.shape[0], *itertools.chain.from_iterable((o, 1) for o in y.shape[1:-1]),
             y.shape[-1])
    return y.reshape(shape)


def _tiled_grad(xp, x_shape, out, ksize, dtype, fill):
    """Gradient buffer for tiling windows: ``fill`` writes the part the windows cover.

    ``fill`` gets a fresh contiguous ``(N, *(O*K), C)`` array; pixels beyond it (when
    ``L mod K != 0``) get zero gradient.
    """
    cover = (x_shape[0], *(o * k for o, k in zip(out, ksize, strict=True)), x_shape[-1])
    gcover = xp.empty(cover, dtype=dtype)
    fill(gcover)
    if cover == tuple(x_shape):
        return gcover
    gx = xp.zeros(x_shape, dtype=dtype)
    gx[_spatial_index(slice(0, n) for n in cover[1:-1])] = gcover
    return gx


def max_pool(x, ksize: Sequence[int], strides: Sequence[int], pads: Pads, picks=None):
    """Max pooling forward: ``y[n, o, c] = max over the window of o`` (padding is -inf).

    Input shape ``(N, *spatial, C)``; output ``(N, *O, C)`` with ``pool_output_shape``.
    ``picks``: when a list is given and the windows tile, the tiled path runs and the
    per-axis positions of the maxima are appended to it (for ``max_pool_tiled_backward``).
    """
    if picks is not None and tiles(ksize, strides, pads):
        y, found = max_pool_tiled(x, ksize)
        picks.extend(found)
        return y
    xp = get_array_module(x)
    xpad = _pad(x, pads, _lowest(xp, x.dtype))
    out = pool_output_shape(x.shape[1:-1], ksize, strides, pads)
    y = None
    for index in _windows(ksize, strides, out):
        y = xpad[index].copy() if y is None else xp.maximum(y, xpad[index], out=y)
    return y


def max_pool_backward(x, y, gy, ksize: Sequence[int], strides: Sequence[int], pads: Pads):
    """Gradient of ``max_pool`` w.r.t. ``x``: each window's ``gy`` goes to its first maximum."""
    if tiles(ksize, strides, pads):
        return _max_pool_backward_tiled(x, y, gy, ksize)
    return _max_pool_backward_windows(x, y, gy, ksize, strides, pads)


def _first_max_hits(xpad, y, ksize, strides) -> Iterator:
    """Per window offset (row-major): its view index and the windows whose FIRST max is there."""
    free = get_array_module(y).ones(y.shape, dtype=bool)  # windows whose max is still unseen
    for index in _windows(ksize, strides, y.shape[1:-1]):
        hit = xpad[index] == y
        hit &= free
        free ^= hit
        yield index, hit


def _select(xp, out, mask, values, finite: bool) -> None:
    """``out = values where mask, else 0``, in place. A select, not ``values * mask``, so
    an infinite or NaN gradient stays out of the inputs that are not a window's maximum
    (as PyTorch's scatter to the argmax and the compiled kernels); for ``finite``
    values the product is that select and much faster than a masked copy."""
    if finite:
        xp.multiply(values, mask, out=out)
    else:
        out[...] = xp.where(mask, values, 0)


def _max_pool_backward_tiled(x, y, gy, ksize):
    xp = get_array_module(x)

    finite = all_finite(gy)

    def fill(gx):
        for index, hit in _first_max_hits(x, y, ksize, ksize):
            _select(xp, gx[index], hit, gy, finite)

    return _tiled_grad(xp, x.shape, y.shape[1:-1], ksize, gy.dtype, fill)


def _tile_view(x, ksize):
    """``(N, O1, K1, O2, K2, ..., C)`` view (a copy if cropping breaks contiguity) of the
    tiled part of ``x``."""
    out = tuple(n // k for n, k in zip(x.shape[1:-1], ksize, strict=True))
    crop = x[_spatial_index(slice(0, o * k) for o, k in zip(out, ksize, strict=True))]
    return crop.reshape((x.shape[0], *itertools.chain.from_iterable(zip(out, ksize)),
                         x.shape[-1]))


def _axis_slice(axis: int, k: int) -> tuple:
    return (slice(None),) * axis + (k,)


def max_pool_tiled(x, ksize: Sequence[int]):
    """Max pooling of tiling windows that also returns where each window's maximum is.

    The ``(N, O1, K1, ..., C)`` view of ``x`` is reduced one window axis at a time, the
    innermost first; along each axis the pick (index of the first maximum, a strict
    ``>`` scan) is recorded. Reducing the innermost axis first makes the combined pick
    the first maximum in row-major window order, the general path's rule. Returns
    ``(y, picks)``, one uint8 pick array per spatial dim (outermost first): about one
    pass over ``x``, and backward then needs neither ``x`` nor any comparison with it.
    The batch is split over threads (``kernels.threads``).
    """
    xp = get_array_module(x)
    a = _tile_view(x, ksize)
    r = len(ksize)
    picks = [None] * r
    shape = a.shape
    for j in reversed(range(r)):
        shape = shape[:2 + 2 * j] + shape[3 + 2 * j:]
        picks[j] = xp.empty(shape, dtype=xp.uint8)
    y = xp.empty(shape, dtype=x.dtype)
    split_batch(lambda s: _max_pool_tiled_into(a[s], ksize, y[s], [p[s] for p in picks]),
                x.shape[0], x.size, like=x)
    if all(k == 1 for k in ksize):
        y[...] = a.reshape(y.shape)
    return y, picks


def _max_pool_tiled_into(a, ksize, y, picks) -> None:
    xp = get_array_module(a)
    for j in reversed(range(len(ksize))):
        axis = 2 + 2 * j
        out = y if j == 0 else None
        best = a[_axis_slice(axis, 0)]
        picks[j][...] = 0
        for k in range(1, ksize[j]):
            cand = a[_axis_slice(axis, k)]
            if k == 1:
                xp.greater(cand, best, out=picks[j].view(bool))
                best = xp.maximum(best, cand, out=out)
            else:
                xp.copyto(picks[j], k, where=cand > best)
                xp.maximum(best, cand, out=best)
        if ksize[j] == 1 and out is not None:
            out[...] = best
        a = best


def max_pool_tiled_backward(gy, y, picks, x_shape: Sequence[int], ksize: Sequence[int]):
    """Gradient of ``max_pool_tiled``: ``gy`` routed back along the picks, outermost first.

    Windows whose maximum is NaN pass no gradient (as the general path).
    """
    xp = get_array_module(gy)
    nan = xp.isnan(y)
    if nan.any():
        gy = xp.where(nan, 0, gy)
    finite = all_finite(gy)
    out = y.shape[1:-1]
    r = len(ksize)

    def route(gcover, s):
        g = gy[s]
        for j in range(r):
            axis = 2 + 2 * j
            shape = g.shape[:axis] + (ksize[j],) + g.shape[axis:]
            gx = gcover[s].reshape(shape) if j == r - 1 else xp.empty(shape, dtype=g.dtype)
            for k in range(ksize[j]):
                _select(xp, gx[_axis_slice(axis, k)], picks[j][s] == k, g, finite)
            g = gx

    def fill(gcover):
        split_batch(lambda s: route(gcover, s), gy.shape[0], 4 * gy.size, like=gy)

    return _tiled_grad(xp, x_shape, out, ksize, gy.dtype, fill)


@register("pool.max")
def max_pool_forward(x, ksize: Sequence[int], strides: Sequence[int], pads: Pads,
                     grad: bool = True):
    """``(y, backward)``: max pooling of ``x`` and, when ``grad``, ``backward(gy) -> gx``
    (None otherwise). When the windows tile the input, forward records where each
    maximum is (``max_pool_tiled``), so backward routes ``gy`` without ``x``; otherwise
    backward compares ``x`` with ``y`` again (``max_pool_backward``)."""
    picks = [] if grad else None
    y = max_pool(x, ksize, strides, pads, picks=picks)
    if not grad:
        return y, None
    if picks:
        return y, partial(max_pool_tiled_backward, y=y, picks=picks, x_shape=x.shape,
                          ksize=ksize)
    return y, partial(_max_pool_backward_of, x=x, y=y, ksize=ksize, strides=strides, pads=pads)


def _max_pool_backward_of(gy, x, y, ksize, strides, pads):
    return max_pool_backward(x, y, gy, ksize, strides, pads)


def _max_pool_backward_windows(x, y, gy, ksize, strides, pads):
    xp = get_array_module(x)
    # NaN padding never equals a maximum, so padding cannot take a window's gradient.
    xpad = _pad(x, pads, xp.nan)
    gxpad = xp.zeros(xpad.shape, dtype=gy.dtype)
    finite = all_finite(gy)
    for index, hit in _first_max_hits(xpad, y, ksize, strides):
        gxpad[index] += hit * gy if finite else xp.where(hit, gy, 0)
    return gxpad[_interior(x.shape[1:-1], pads)]


def _avg_divisor(xp, spatial, ksize, strides, pads, out, count_include_pad: bool, dtype):
    """Number of inputs averaged by each window, broadcastable to ``(N, *O, C)``.

    Excluding padding, along one axis window ``o`` covers padded positions
    ``[o*S, o*S + K)`` of which ``[P_before, P_before + L)`` are real, so its count is
    ``min(o*S + K, P_before + L) - max(o*S, P_before)``; the N-d count is the product.
    """
    if count_include_pad or not any(p for pair in pads for p in pair):
        return math.prod(ksize)
    divisor = xp.ones((1,) * (len(ksize) + 2), dtype=dtype)
    dims = zip(spatial, ksize, strides, pads, out, strict=True)
    for axis, (n, k, s, (pb, _), o) in enumerate(dims):
        start = xp.arange(o) * s
        count = xp.minimum(start + k, pb + n) - xp.maximum(start, pb)
        shape = [1] * (len(ksize) + 2)
        shape[axis + 1] = o
        divisor = divisor * count.astype(dtype).reshape(shape)
    return divisor


@register("pool.avg")
def avg_pool(x, ksize: Sequence[int], strides: Sequence[int], pads: Pads,
             count_include_pad: bool = False):
    """Average pooling forward (floating ``x``); padding counts only if ``count_include_pad``.

    Input shape ``(N, *spatial, C)``; output ``(N, *O, C)`` with ``pool_output_shape``.
    """
    if tiles(ksize, strides, pads) and all(n >= k for n, k in zip(x.shape[1:-1], ksize)):
        return _avg_pool_tiled(x, ksize)
    xp = get_array_module(x)
    xpad = _pad(x, pads, 0)
    out = pool_output_shape(x.shape[1:-1], ksize, strides, pads)
    acc = None
    for index in _windows(ksize, strides, out):
        acc = xpad[index].copy() if acc is None else xp.add(acc, xpad[index], out=acc)
    acc /= _avg_divisor(xp, x.shape[1:-1], ksize, strides, pads, out, count_include_pad,
                        x.dtype)
    return acc


@register("pool.avg_backward")
def avg_pool_backward(gy, x_shape: Sequence[int], ksize: Sequence[int],
                      strides: Sequence[int], pads: Pads, count_include_pad: bool = False):
    """Gradient of ``avg_pool`` w.r.t. ``x``: ``gy / count`` spread over each window."""
    if tiles(ksize, strides, pads):
        return _avg_pool_backward_tiled(gy, x_shape, ksize)
    return _avg_pool_backward_windows(gy, x_shape, ksize, strides, pads, count_include_pad)


def _avg_pool_tiled(x, ksize):
    """Average of tiling windows, reduced one window axis at a time, outermost first.

    On the ``(N, O1, K1, O2, K2, ..., C)`` view, summing over ``K1`` adds runs of
    ``O2*K2*...*C`` contiguous items and leaves a smaller array for the inner axes, so
    the short runs of ``C`` items (slow in NumPy when ``C`` is small) are only met on
    the last, smallest, reduction.
    """
    a = _tile_view(x, ksize)
    for j, k in enumerate(ksize):
        axis = 2 + j  # the window axes reduced so far are gone
        first = a[_axis_slice(axis, 0)]
        acc = first.copy() if k == 1 else first + a[_axis_slice(axis, 1)]
        for i in range(2, k):
            acc += a[_axis_slice(axis, i)]
        a = acc
    a /= get_array_module(x).asarray(math.prod(ksize), dtype=a.dtype)
    return a


def _avg_pool_backward_tiled(gy, x_shape, ksize):
    """``gy / prod(K)`` spread over the tiles of the ``(N, O1, K1, ..., Or, Kr, C)`` view.

    With few channels (runs of ``C`` items up to ``SHORT_RUN`` bytes, slow in NumPy) the
    innermost window axis is expanded first into a buffer, and each outer one is then a
    broadcast copy of long contiguous runs; with more channels one broadcast does it all.
    """
    xp = get_array_module(gy)
    out = gy.shape[1:-1]
    r = len(ksize)
    g = gy / xp.asarray(math.prod(ksize), dtype=gy.dtype)
    staged = gy.shape[-1] * gy.itemsize <= SHORT_RUN

    def fill(gx):
        if not staged:
            tiled = (gy.shape[0], *itertools.chain.from_iterable(zip(out, ksize, strict=True)),
                     gy.shape[-1])
            gx.reshape(tiled)[...] = _expand_tiles(g)  # gx is contiguous: a view
            return
        src = g  # (N, O1, ..., Or, C); gains the window axes Kr, ..., K1 in turn
        for j in reversed(range(r)):
            lead = gy.shape[:j + 2]
            shape = (*lead, ksize[j], *src.shape[len(lead):])
            dst = gx.reshape(shape) if j == 0 else xp.empty(shape, dtype=gy.dtype)
            dst[...] = xp.expand_dims(src, len(lead))
            src = dst

    return _tiled_grad(xp, x_shape, out, ksize, gy.dtype, fill)


def _avg_pool_backward_windows(gy, x_shape, ksize, strides, pads, count_include_pad):
    xp = get_array_module(gy)
    spatial, out = tuple(x_shape[1:-1]), gy.shape[1:-1]
    divisor = _avg_divisor(xp, spatial, ksize, strides, pads, out, count_include_pad,
                           gy.dtype)
    g = gy / xp.asarray(divisor, dtype=gy.dtype)
    gxpad = xp.zeros(_padded_shape(x_shape, pads), dtype=gy.dtype)
    for index in _windows(ksize, strides, out):
        gxpad[index] += g
    return gxpad[_interior(spatial, pads)]


def _flat_spatial(x, channels_last: bool):
    """``(N, S, C)`` (channels-last) or ``(N, C, S)`` view with ``S = prod(spatial)``."""
    if channels_last:
        return x.reshape(x.shape[0], -1, x.shape[-1]), 1
    return x.reshape(x.shape[0], x.shape[1], -1), 2


@register("pool.global_avg")
def global_avg_pool(x, channels_last: bool = True):
    """Mean over all spatial axes: ``(N, *spatial, C)`` or ``(N, C, *spatial)`` -> ``(N, C)``."""
    flat, axis = _flat_spatial(x, channels_last)
    return flat.mean(axis=axis)


@register("pool.global_avg_backward")
def global_avg_pool_backward(gy, x_shape: Sequence[int], channels_last: bool = True):
    """Gradient of ``global_avg_pool``: ``gy / S`` at every spatial position."""
    xp = get_array_module(gy)
    axis = 1 if channels_last else 2
    size = math.prod(x_shape[1:-1] if channels_last else x_shape[2:])
    g = xp.expand_dims(gy / xp.asarray(size, dtype=gy.dtype), axis)
    flat = (x_shape[0], size, x_shape[-1]) if channels_last else (*x_shape[:2], size)
    return xp.broadcast_to(g, flat).reshape(x_shape)


@register("pool.global_max")
def global_max_pool(x, channels_last: bool = True):
    """Max over all spatial axes and its flat spatial index (first maximum on ties).

    Returns ``(y, index)``, both ``(N, C)``; ``index`` is what the backward needs.
    """
    xp = get_array_module(x)
    flat, axis = _flat_spatial(x, channels_last)
    index = flat.argmax(axis=axis)
    y = xp.take_along_axis(flat, xp.expand_dims(index, axis), axis=axis)
    return y.squeeze(axis=axis), index


@register("pool.global_max_backward")
def global_max_pool_backward(gy, index, x_shape: Sequence[int], channels_last: bool = True):
    """Gradient of ``global_max_pool``: ``gy`` at the chosen maximum, zero elsewhere."""
    xp = get_array_module(gy)
    n, c = gy.shape
    size = math.prod(x_shape[1:-1] if channels_last else x_shape[2:])
    batch, channel = xp.arange(n)[:, None], xp.arange(c)[None, :]
    if channels_last:
        flat = xp.zeros((n, size, c), dtype=gy.dtype)
        flat[batch, index, channel] = gy
    else:
        flat = xp.zeros((n, c, size), dtype=gy.dtype)
        flat[batch, channel, index] = gy
    return flat.reshape(x_shape)
