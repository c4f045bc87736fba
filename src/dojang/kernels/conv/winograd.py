"""Winograd convolution F(m x m, 3 x 3) for 3x3, stride-1, undilated, ungrouped 2-d layers.

A 3x3 correlation computes an m x m block of outputs from an (m + 2) x (m + 2) tile of
input (``a = m + 2``). Winograd's minimal filtering algorithm does it with a x a
elementwise products instead of 9 m^2 multiply-adds per (input, output) channel pair:

    Y = A^T [ (G g G^T) * (B^T d B) ] A      (``*``: elementwise, per channel pair)

With many channels the products become T = a^2 independent GEMMs over the channels:
``M[t] = V[t] @ U[t]``, ``V`` (T, P, C) the transformed input tiles (P tiles),
``U`` (T, C, C_out) the transformed filters. Three steps, here:

1. input transform (numba): each tile of the (implicitly zero-padded) input to
   ``V[:, p, :] = B^T d B``, vectorised over the channels (channels-last);
2. T GEMMs through NumPy's matmul (OpenBLAS), ``(P, C) @ (C, C_out)``;
3. output transform (numba): ``Y = A^T M A`` for each tile, written straight into
   ``y`` (the last row and column of tiles cut at the output's edge).

The filter transform ``U = G g G^T`` is two small tensor products in NumPy. The work is
done in chunks of whole samples whose ``V`` and ``M`` together fit
``plan.CACHE_CHUNK_BYTES``, so that the GEMMs read from the cache what the input
transform has just written.

Multiplications per output: 9 C C_out for the direct convolution, (a/m)^2 C C_out here
(F(2x2, 3x3): 4, i.e. 2.25x fewer; F(4x4, 3x3): 2.25, 4x fewer). The price is rounding:
the transforms' coefficients (up to 8 in A^T and 1/24 in G for F(4x4)) amplify
float32's. Error of float32 results against a float64 direct result, relative to the
output's largest magnitude (standard-normal inputs, filters scaled by 1/sqrt(9 C), 3x3
"same" layers of 5 to 64 channels, ``bench/winograd.py`` prints the 16x16x64 -> 64 row):

=====================  ====================  =====================
float32 path           max error             mean error
=====================  ====================  =====================
direct / im2col        2e-7 to 8e-7          2e-8 to 6e-8
F(2x2, 3x3)            2e-7 to 3e-7          2e-8 to 4e-8
F(4x4, 3x3)            2.7e-6 to 6.6e-6      1.2e-7 to 2.2e-7
=====================  ====================  =====================

F(4x4, 3x3) is about 10x further from the exact result than the direct sum, and 15x
inside the oracle suite's float32 bound (1e-4 of the output's scale); float64 stays
near 1e-15. F(2x2, 3x3) keeps the direct sum's accuracy but was slower than F(4x4) on
every layer the plan gives Winograd (its GEMMs do 1.8x the work, over 1.8x more
transformed data): on one thread 22.2, 144.8 and 61.6 ms against 16.5, 101.7 and 44.7
on the three wide layers below. So the variant uses F(4x4, 3x3).

Speed against the plan's other paths (direct kernel or im2col), ``bench/winograd.py
--best``: alternating, best of 9 windows, on the AVX2 host shared with other work (load
average 7-9 on its 2 cores), against the 4x16 direct tiles from before the per-ISA
tiles, forward / input gradient; two threads in two runs:

========================  ===============  ==============================
layer (batch)             one thread       two threads
========================  ===============  ==============================
8x8, 64 -> 64 (128)       1.28x / 1.45x    0.94x / 1.01x, 1.27x / 0.82x
32x32, 64 -> 64 (64)      1.35x / 1.63x    2.01x / 1.47x, 1.24x / 1.59x
16x16, 128 -> 128 (32)    2.24x / 1.04x    1.01x / 1.55x, 1.22x / 1.74x
14x14, 32 -> 64 (128)     1.05x / 1.06x    0.90x / 0.95x, 0.66x / 1.35x
16x16, 32 -> 32 (128)     0.75x / 0.32x    0.64x / 0.84x, 0.61x / 0.29x
32x32, 16 -> 16 (128)     0.77x / 0.49x    0.55x / 0.35x, 0.43x / 0.37x
========================  ===============  ==============================

With 16 or 32 channels the transforms cost more than the GEMMs save. On two threads
the 36 GEMMs of a chunk are 36 OpenBLAS calls, and each wakes OpenBLAS's threads: with
``OPENBLAS_THREAD_TIMEOUT=4`` (what the benchmarks set) the GEMMs of the 8x8 layer took
7.7 ms instead of 1.75 ms, and the 16x16 128-channel forward measured 0.8x in another
alternating run; with OpenBLAS's default spinning, its spinning threads take the cores
from the transforms' threads on a busy machine instead (ResNet-20 training measured
0.69x with the 8x8 layers on Winograd). After the direct kernels got their per-ISA
register tiles, in a quieter window (load average 1.5, two threads, best of 9) it
measured 0.87x / 0.88x at 32x32, 64 -> 64, 0.95x / 0.97x at 16x16, 128 -> 128 and
1.00x / 1.03x at 16x16, 64 -> 64. So ``kernels.plan`` picks it nowhere by itself yet; a
GEMM inside the transforms' own parallel region (no OpenBLAS call per t) is what would
let it pay on two threads.

A non-finite input spoils its whole output tile (the transforms mix the tile), where
the direct sum spoils only the outputs whose window holds it.

The stride-1 input gradient is a correlation of ``gy`` with the flipped filters
(``conv.reference._full_correlation``), so it runs here too when forced.

Registered as the ``"winograd"`` variant of ``"conv.correlate"``; it runs where
``dojang.config.kernels("winograd")`` forces it, wherever it applies (the NumPy
reference elsewhere), and ``kernels.plan`` (``winograd_forward``) names it then.
"""

from __future__ import annotations

import numpy as np

from dojang.kernels import plan
from dojang.kernels.compile import kernel, prange
from dojang.kernels.conv.im2col import scratch
from dojang.kernels.registry import register

# The transforms (Lavin & Gray 2016), interpolation points 0, +-1, infinity (and +-2 for
# F(4x4)): (B^T, G, A^T) per output tile size m.
_TRANSFORMS = {
    2: (np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]),
        np.array([[1, 0, 0], [1 / 2, 1 / 2, 1 / 2], [1 / 2, -1 / 2, 1 / 2], [0, 0, 1]]),
        np.array([[1, 1, 1, 0], [0, 1, -1, -1]])),
    4: (np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                  [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]),
        np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                  [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]),
        np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
                  [0, 1, -1, 8, -8, 1]])),
}


# The most nonzero coefficients in a row of B^T (4) and of A^T (5), for F(4x4) and F(2x2).
_B_TERMS, _A_TERMS = 4, 5


def _terms(mat, dtype, terms: int):
    """Each row of ``mat`` as ``terms`` (column, coefficient) pairs, its nonzero ones
    first; the rest repeat the first column with coefficient 0."""
    cols = np.zeros((mat.shape[0], terms), np.int64)
    coefs = np.zeros((mat.shape[0], terms), dtype)
    for r, row in enumerate(mat):
        nz = np.flatnonzero(row)
        cols[r], coefs[r, :nz.size] = nz[0], row[nz]
        cols[r, :nz.size] = nz
    return cols, coefs


# Every 1-d transform step is ``out[c] = sum over 4 or 5 terms of k * src[offset + c]``: one
# pass over C contiguous values that LLVM vectorises. A term with coefficient 0 reads a
# value of the same tile, so a non-finite input spoils only its own tile's outputs
# (the transforms mix the whole tile anyway).
@kernel()
def _input_transform(x, v, cols, coefs, ph, pw, n0, th, tw):
    """``v[i*a + j, p, :] = (B^T d B)[i, j]`` for the tiles ``p`` of samples ``n0...``:
    ``d`` the a x a x C tile at input row ``ti*m - ph``, column ``tj*m - pw`` (zeros
    outside ``x``), ``p = ((n - n0) * th + ti) * tw + tj``; ``cols``, ``coefs``: B^T as
    ``_terms``."""
    h_, w_, c_ = x.shape[1], x.shape[2], x.shape[3]
    a_ = cols.shape[0]
    m = a_ - 2
    rw = (tw * m + 2) * c_  # one input row of a row of tiles, zero padded
    for q in prange(v.shape[1] // tw):
        n, ti = n0 + q // th, q % th
        rows = np.zeros(a_ * rw, x.dtype)
        for r in range(a_):
            h = ti * m + r - ph
            if 0 <= h < h_:
                src = x[n, h]
                for col in range(max(0, pw), min(tw * m + 2, w_ + pw)):
                    s, d = src[col - pw], rows[r * rw + col * c_:]
                    for c in range(c_):
                        d[c] = s[c]
        db = np.empty(a_ * a_ * c_, x.dtype)  # d B, (row, column, channel)
        for tj in range(tw):
            for j in range(a_):
                k0, k1, k2, k3 = coefs[j, 0], coefs[j, 1], coefs[j, 2], coefs[j, 3]
                for r in range(a_):
                    b = r * rw + tj * m * c_
                    o0, o1, o2, o3 = (b + cols[j, 0] * c_, b + cols[j, 1] * c_,
                                      b + cols[j, 2] * c_, b + cols[j, 3] * c_)
                    out = db[(r * a_ + j) * c_:]
                    s0, s1, s2, s3 = rows[o0:], rows[o1:], rows[o2:], rows[o3:]
                    for c in range(c_):
                        out[c] = k0 * s0[c] + k1 * s1[c] + k2 * s2[c] + k3 * s3[c]
            for i in range(a_):
                k0, k1, k2, k3 = coefs[i, 0], coefs[i, 1], coefs[i, 2], coefs[i, 3]
                for j in range(a_):
                    o0, o1, o2, o3 = ((cols[i, 0] * a_ + j) * c_, (cols[i, 1] * a_ + j) * c_,
                                      (cols[i, 2] * a_ + j) * c_, (cols[i, 3] * a_ + j) * c_)
                    out = v[i * a_ + j, q * tw + tj]
                    s0, s1, s2, s3 = db[o0:], db[o1:], db[o2:], db[o3:]
                    for c in range(c_):
                        out[c] = k0 * s0[c] + k1 * s1[c] + k2 * s2[c] + k3 * s3[c]


@kernel()
def _output_transform(mm, y, cols, coefs, n0, th, tw):
    """``y[n, ti*m + r, tj*m + s, :] = (A^T M A)[r, s]`` for the tiles of ``mm`` (T, P,
    C_out) (tile ``p`` as in ``_input_transform``), cut at ``y``'s edges; ``cols``,
    ``coefs``: A^T (m x a) as ``_terms``."""
    oh_, ow_, co = y.shape[1], y.shape[2], y.shape[3]
    m, a_, pc = cols.shape[0], cols.shape[0] + 2, mm.shape[1] * mm.shape[2]
    flat = mm.reshape(-1)  # M[i, j] of tile p at (i*a + j) * P * C_out + p * C_out
    for q in prange(mm.shape[1] // tw):
        n, ti = n0 + q // th, q % th
        am = np.empty(m * a_ * co, y.dtype)  # A^T M, (row, column, channel)
        for tj in range(tw):
            p = (q * tw + tj) * co
            for r in range(m):
                k0, k1, k2, k3, k4 = (coefs[r, 0], coefs[r, 1], coefs[r, 2], coefs[r, 3],
                                      coefs[r, 4])
                for j in range(a_):
                    o0, o1, o2, o3, o4 = (p + (cols[r, 0] * a_ + j) * pc,
                                          p + (cols[r, 1] * a_ + j) * pc,
                                          p + (cols[r, 2] * a_ + j) * pc,
                                          p + (cols[r, 3] * a_ + j) * pc,
                                          p + (cols[r, 4] * a_ + j) * pc)
                    out = am[(r * a_ + j) * co:]
                    s0, s1, s2, s3, s4 = flat[o0:], flat[o1:], flat[o2:], flat[o3:], flat[o4:]
                    for c in range(co):
                        out[c] = k0 * s0[c] + k1 * s1[c] + k2 * s2[c] + k3 * s3[c] + k4 * s4[c]
            for s in range(min(m, ow_ - tj * m)):
                k0, k1, k2, k3, k4 = (coefs[s, 0], coefs[s, 1], coefs[s, 2], coefs[s, 3],
                                      coefs[s, 4])
                for r in range(min(m, oh_ - ti * m)):
                    o0, o1, o2, o3, o4 = ((r * a_ + cols[s, 0]) * co, (r * a_ + cols[s, 1]) * co,
                                          (r * a_ + cols[s, 2]) * co, (r * a_ + cols[s, 3]) * co,
                                          (r * a_ + cols[s, 4]) * co)
                    out = y[n, ti * m + r, tj * m + s]
                    s0, s1, s2, s3, s4 = am[o0:], am[o1:], am[o2:], am[o3:], am[o4:]
                    for c in range(co):
                        out[c] = k0 * s0[c] + k1 * s1[c] + k2 * s2[c] + k3 * s3[c] + k4 * s4[c]


def filters(w, m: int):
    """The transformed filters ``U`` (a^2, C, C_out) = G w G^T of ``w`` (3, 3, C, C_out)."""
    g = _TRANSFORMS[m][1].astype(w.dtype)
    gw = np.tensordot(g, w, (1, 0))  # (a, 3, C, C_out)
    u = np.tensordot(g, gw, (1, 1))  # (a [columns], a [rows], C, C_out)
    return np.ascontiguousarray(u.transpose(1, 0, 2, 3)).reshape(-1, *w.shape[2:])


def forward(x, w, y, pads, m: int = 4) -> None:
    """Fill ``y`` (N, OH, OW, C_out) with the stride-1 correlation of ``x`` (N, H, W, C)
    and ``w`` (3, 3, C, C_out) by F(m x m, 3 x 3) (``m``: 4, or 2 for comparisons), zero
    padding ``pads`` before (``y``'s shape gives the rest; negative pads crop)."""
    a = m + 2
    b_terms = _terms(_TRANSFORMS[m][0], x.dtype, _B_TERMS)
    a_terms = _terms(_TRANSFORMS[m][2], x.dtype, _A_TERMS)
    n_, c_in, c_out = x.shape[0], x.shape[-1], w.shape[-1]
    th, tw = -(-y.shape[1] // m), -(-y.shape[2] // m)
    u = filters(w, m)
    x = np.ascontiguousarray(x)
    tiles = th * tw  # per sample
    step = max(1, min(n_, plan.CACHE_CHUNK_BYTES // (a * a * tiles * (c_in + c_out)
                                                      * x.itemsize)))
    step = -(-n_ // -(-n_ // step))  # chunks of equal size (no small GEMMs at the end)
    v = scratch(np, "winograd.v", a * a * step * tiles * c_in, x.dtype)
    mm = scratch(np, "winograd.m", a * a * step * tiles * c_out, x.dtype)
    for n0 in range(0, n_, step):
        k = min(step, n_ - n0) * tiles
        vk = v[:a * a * k * c_in].reshape(a * a, k, c_in)
        mk = mm[:a * a * k * c_out].reshape(a * a, k, c_out)
        _input_transform(x, vk, *b_terms, pads[0][0], pads[1][0], n0, th, tw)
        np.matmul(vk, u, out=mk)
        _output_transform(mk, y, *a_terms, n0, th, tw)


@register("conv.correlate", variant="winograd", priority=2,
          usable=lambda x, w, y, strides, dilations, pads, groups:
          plan.winograd_forward(x, w.shape, strides, dilations, groups, w, y))
def correlate(x, w, y, strides, dilations, pads, groups: int) -> None:
    """Fill ``y`` with the correlation of ``x`` and ``w``: Winograd F(4x4, 3x3)."""
    forward(x, w, y, pads)
