"""Slow, obviously-correct nested-loop convolution references (NumPy, channels-last).

Written straight from the definitions, one output pixel at a time, to check the fast
im2col path independently of PyTorch:

    y[n, *o, g*Cog + j] = sum_{k, c} xp[n, *(o*S + k*D), g*Cg + c] * w[*k, c, g*Cog + j]

where ``xp`` is ``x`` zero-padded by ``pads``. The transposed convolution scatters each
input pixel into the output instead (its definition as the adjoint).
"""

from __future__ import annotations

import itertools

import numpy as np


def conv_ref(x, w, strides, dilations, pads, groups=1):
    """x (N, *L, C), w (*K, C/groups, C_out), pads ((before, after), ...) -> (N, *O, C_out)."""
    rank = x.ndim - 2
    xp = np.pad(x, [(0, 0)] + list(pads) + [(0, 0)])
    kernel = w.shape[:rank]
    cg, cout = w.shape[-2], w.shape[-1]
    cog = cout // groups
    out = tuple((xp.shape[1 + i] - dilations[i] * (kernel[i] - 1) - 1) // strides[i] + 1
                for i in range(rank))
    y = np.zeros((x.shape[0],) + out + (cout,), dtype=x.dtype)
    for n in range(x.shape[0]):
        for o in itertools.product(*(range(v) for v in out)):
            for co in range(cout):
                g = co // cog
                total = 0.0
                for k in itertools.product(*(range(v) for v in kernel)):
                    pos = tuple(o[i] * strides[i] + k[i] * dilations[i] for i in range(rank))
                    for c in range(cg):
                        total += xp[(n,) + pos + (g * cg + c,)] * w[k + (c, co)]
                y[(n,) + o + (co,)] = total
    return y


def conv_transpose_ref(x, w, strides, dilations, pads, out_spatial):
    """x (N, *L, C_in), w (*K, C_out, C_in) -> (N, *out_spatial, C_out).

    Each input pixel ``l`` adds ``x[l] * w[k]`` at output position ``l*S + k*D - P_before``
    (positions that land in the padding are dropped).
    """
    rank = x.ndim - 2
    kernel = w.shape[:rank]
    cout = w.shape[-2]
    y = np.zeros((x.shape[0],) + tuple(out_spatial) + (cout,), dtype=x.dtype)
    for n in range(x.shape[0]):
        for pos in itertools.product(*(range(v) for v in x.shape[1:-1])):
            for k in itertools.product(*(range(v) for v in kernel)):
                q = tuple(pos[i] * strides[i] + k[i] * dilations[i] - pads[i][0]
                          for i in range(rank))
                if all(0 <= q[i] < out_spatial[i] for i in range(rank)):
                    y[(n,) + q] += w[k] @ x[(n,) + pos]
    return y
