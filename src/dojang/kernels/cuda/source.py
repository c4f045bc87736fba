"""CUDA C source of dojang's GPU kernels, generated per (kernel, dtype, rank).

Every kernel here is a grid-stride loop over one flat index ``i`` in ``[0, total)``:
one thread computes one output element, reads what it needs and writes only that
element. No shared memory, no atomics and no inter-thread communication, so:

- results do not depend on the launch configuration or the scheduling (the
  deterministic mode costs nothing: each output is one sum in a fixed order);
- the same source compiles for the host (``tests/cuda_host.py`` runs every thread in
  turn under a small shim), which is how the kernels' index arithmetic is tested against
  the NumPy reference on machines without a GPU.

The adjoints (col2im, the pooling gradients) are gathers: each input element sums the
outputs whose windows contain it, in kernel-offset order, instead of scattering with
atomic adds. Rank-dependent quantities (sizes, kernel, strides, dilations, pads per
spatial dimension) are passed as scalar arguments ``name0, name1, ...`` and gathered into
local arrays, so one template serves 1-, 2- and 3-d.

Notation as in ``dojang.kernels``: channels-last ``(N, *spatial, C)``; ``KK`` kernel taps
in row-major order (last spatial dimension fastest); ``Cg = C / G``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CTYPES = {"float32": "float", "float64": "double"}

# Infinity without a math header (NVRTC has none); the host shim defines DJ_INF first.
HEADER = ("#ifndef DJ_INF\n#define DJ_INF __longlong_as_double(0x7ff0000000000000LL)\n"
          "#endif\n")


@dataclass(frozen=True)
class Kernel:
    """One kernel: its family (``kind``), name, parameter list ``[(ctype, name)]`` and
    CUDA C source."""

    kind: str
    name: str
    params: tuple
    source: str


def ctype(dtype) -> str:
    """The C type of a floating dtype (float32 -> float, float64 -> double).

    Raises:
        TypeError: for any other dtype (the GPU kernels are written for these two).
    """
    name = np.dtype(dtype).name
    if name not in CTYPES:
        raise TypeError(f"Expected a float32 or float64 array for a CUDA kernel. "
                        f"Received: dtype={name}")
    return CTYPES[name]


def _dims(names: str, rank: int) -> list[tuple[str, str]]:
    return [("long long", f"{n}{j}") for n in names.split() for j in range(rank)]


def _locals(names: str, rank: int) -> str:
    """``const long long In[R] = {In0, In1};`` for each per-dimension name."""
    return "".join(
        f"    const long long {n}[{rank}] = {{{', '.join(f'{n}{j}' for j in range(rank))}}};\n"
        for n in names.split())


def _render(kind: str, t: str, rank: int | None, params: list, body: str, prelude: str = ""):
    suffix = f"_{rank}d" if rank else ""
    name = f"dj_{kind}{suffix}_{t}"
    args = ", ".join(f"{c} {n}" for c, n in params)
    src = (HEADER + f'extern "C" __global__ void {name}({args}) {{\n{prelude}'
           f"    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; "
           f"i < total; i += (long long)blockDim.x * gridDim.x) {{\n{body}    }}\n}}\n")
    return Kernel(kind, name, tuple(params), src)


def _split(var: str, sizes: str, rank: int, out: str) -> str:
    """C that splits the row-major index ``var`` over ``sizes[R]`` into ``out[R]``."""
    return (f"        long long {out}[{rank}];\n"
            f"        for (int j = {rank} - 1; j >= 0; --j) {{ {out}[j] = {var} % {sizes}[j]; "
            f"{var} /= {sizes}[j]; }}\n")


def _tap_loop(rank: int) -> str:
    """C opening a loop over the taps ``k`` with ``kk[R]`` the tap's offsets per dimension
    (row-major, the last dimension fastest); the caller closes it."""
    return ("        for (long long k = 0; k < KK; ++k) {\n"
            f"            long long kr = k, kk[{rank}];\n"
            f"            for (int j = {rank} - 1; j >= 0; --j) "
            "{ kk[j] = kr % K[j]; kr /= K[j]; }\n")


def _read(rank: int, start: str, tap: str, indent: str) -> str:
    """C for ``pos`` (the flat spatial index of the input a window reads, from ``n``) and
    ``inside`` (whether it is a real pixel, not padding): per dimension
    ``p = start + tap - P``."""
    return (f"{indent}long long pos = n; bool inside = true;\n"
            f"{indent}for (int j = 0; j < {rank}; ++j) {{\n"
            f"{indent}    const long long p = {start} + {tap} - P[j];\n"
            f"{indent}    inside = inside && p >= 0 && p < In[j];\n"
            f"{indent}    pos = pos * In[j] + p;\n"
            f"{indent}}}\n")


def _gather(rank: int, tap: str, first: str, count: str, term: str) -> str:
    """C for the adjoints: for each tap ``k``, the output ``o`` (flat index ``m``) whose
    window read input ``p`` through that tap, ``o = (p + P - tap) / S - first`` where that
    divides exactly and ``0 <= o < count``; then ``term`` (``k`` and ``m`` known)."""
    return (_tap_loop(rank)
            + "            long long m = n; bool hit = true;\n"
            f"            for (int j = 0; j < {rank}; ++j) {{\n"
            f"                const long long q = p[j] + P[j] - {tap};\n"
            f"                const long long o = q / S[j] - {first};\n"
            f"                hit = hit && q >= 0 && q % S[j] == 0 && o >= 0 && o < {count};\n"
            f"                m = m * {count} + o;\n"
            "            }\n"
            f"            if (hit) {term}\n"
            "        }\n")


def _columns(t: str, src: str, dst: str, rank: int) -> list:
    """The parameters im2col and col2im share: source and destination arrays, the columns'
    rows, taps and channels, their element strides, and the geometry per dimension."""
    return [(f"const {t}*", src), (f"{t}*", dst), ("long long", "total"), ("long long", "M"),
            ("long long", "KK"), ("long long", "C"), ("long long", "Cg"), ("long long", "sg"),
            ("long long", "sm"), ("long long", "sk"), *_dims("In Oc A K S D P", rank)]


def _pool(arrays: list, rank: int, flags: tuple = ()) -> list:
    """The parameters of the pooling kernels: ``arrays``, the sizes, ``flags``, and the
    geometry per dimension."""
    return [*arrays, ("long long", "total"), ("long long", "KK"), ("long long", "C"), *flags,
            *_dims("In O K S P", rank)]


_CHANNEL = "        long long r = i;\n        const long long c = r % C; r /= C;\n"


def im2col(dtype, rank: int) -> Kernel:
    """``cols[g, m, k*Cg + c] = x[n, o*S + k*D - P, g*Cg + c]`` (zero in the padding).

    ``cols`` is addressed through element strides (sg, sm, sk) so that transposed column
    buffers (the single-channel layout) are filled in place. Row ``m`` is output pixel
    ``(n, A + o)`` of the chunk whose outputs start at ``A`` and number ``Oc``.
    """
    t = ctype(dtype)
    body = (
        "        long long r = i;\n"
        "        const long long c = r % Cg; r /= Cg;\n"
        "        const long long tap = r % KK; r /= KK;\n"
        "        const long long row = r % M, g = r / M;\n"
        "        long long k = tap, m = row;\n"
        + _split("k", "K", rank, "kk") + _split("m", "Oc", rank, "o")
        + "        const long long n = m;\n"
        + _read(rank, "(A[j] + o[j]) * S[j]", "kk[j] * D[j]", "        ")
        + f"        cols[g * sg + row * sm + (tap * Cg + c) * sk] = "
        f"inside ? x[pos * C + g * Cg + c] : ({t})0;\n")
    return _render("im2col", t, rank, _columns(t, "x", "cols", rank), body,
                   _locals("In Oc A K S D P", rank))


def col2im(dtype, rank: int) -> Kernel:
    """``gx[n, p, ch] += sum over taps k of dcols[g, m(p, k), k*Cg + c]`` (a gather).

    For tap ``k`` the output that read input ``p`` is ``o = (p + P - k*D) / S`` when that
    divides exactly and lies in the chunk ``[A, A + Oc)``. Taps are added to ``gx`` one
    by one in tap order, as the reference's strided adds do.
    """
    t = ctype(dtype)
    body = (
        "        long long r = i;\n"
        "        const long long ch = r % C; r /= C;\n"
        "        const long long g = ch / Cg, c = ch % Cg;\n"
        + _split("r", "In", rank, "p")
        + f"        const long long n = r;\n        {t} acc = gx[i];\n"
        + _gather(rank, "kk[j] * D[j]", "A[j]", "Oc[j]",
                  "acc += dcols[g * sg + m * sm + (k * Cg + c) * sk];")
        + "        gx[i] = acc;\n")
    return _render("col2im", t, rank, _columns(t, "dcols", "gx", rank), body,
                   _locals("In Oc A K S D P", rank))


def max_pool(dtype, rank: int) -> Kernel:
    """``y[n, o, c]`` = max over the window's real taps; ``pick`` = the first max's tap.

    Taps in the padding are skipped (as if -inf). NaN propagates, as ``np.max`` does, and
    a NaN maximum takes no gradient (its pick is -1), as in the reference.
    """
    t = ctype(dtype)
    body = (
        _CHANNEL + _split("r", "O", rank, "o")
        + f"        const long long n = r;\n        {t} best = ({t})0; int chosen = -1;\n"
        + _tap_loop(rank) + _read(rank, "o[j] * S[j]", "kk[j]", "            ")
        + "            if (!inside) continue;\n"
        f"            const {t} v = x[pos * C + c];\n"
        "            if (chosen < 0 || v > best || (v != v && best == best)) "
        "{ best = v; chosen = (int)k; }\n"
        "        }\n"
        f"        y[i] = chosen < 0 ? -({t})DJ_INF : best;\n"
        "        pick[i] = best == best ? chosen : -1;\n")
    arrays = [(f"const {t}*", "x"), (f"{t}*", "y"), ("int*", "pick")]
    return _render("max_pool", t, rank, _pool(arrays, rank), body, _locals("In O K S P", rank))


def max_pool_backward(dtype, rank: int) -> Kernel:
    """``gx[n, p, c]`` = sum of ``gy`` over the windows whose pick is input ``p``."""
    t = ctype(dtype)
    body = (_CHANNEL + _split("r", "In", rank, "p")
            + f"        const long long n = r;\n        {t} acc = ({t})0;\n"
            + _gather(rank, "kk[j]", "0", "O[j]",
                      "{ const long long at = m * C + c; if (pick[at] == k) acc += gy[at]; }")
            + "        gx[i] = acc;\n")
    return _render("max_pool_backward", t, rank,
                   _pool([(f"const {t}*", "gy"), ("const int*", "pick"), (f"{t}*", "gx")], rank),
                   body,
                   _locals("In O K S P", rank))


def _avg_count(rank: int, o: str, indent: str) -> str:
    """C for ``cnt``: the window's real taps (``min(o*S+K, P+L) - max(o*S, P)`` per
    dimension), or all ``KK`` taps when padding counts."""
    return (f"{indent}long long cnt = KK;\n"
            f"{indent}if (!include_pad) {{\n"
            f"{indent}    cnt = 1;\n"
            f"{indent}    for (int j = 0; j < {rank}; ++j) {{\n"
            f"{indent}        const long long lo = {o}[j] * S[j], hi = lo + K[j];\n"
            f"{indent}        cnt *= (hi < P[j] + In[j] ? hi : P[j] + In[j]) - "
            "(lo > P[j] ? lo : P[j]);\n"
            f"{indent}    }}\n"
            f"{indent}}}\n")


def avg_pool(dtype, rank: int) -> Kernel:
    """``y[n, o, c]`` = the sum of the window's real taps divided by its count."""
    t = ctype(dtype)
    body = (
        _CHANNEL + _split("r", "O", rank, "o")
        + f"        const long long n = r;\n        {t} acc = ({t})0;\n"
        + _tap_loop(rank) + _read(rank, "o[j] * S[j]", "kk[j]", "            ")
        + "            if (inside) acc += x[pos * C + c];\n        }\n"
        + _avg_count(rank, "o", "        ") + f"        y[i] = acc / ({t})cnt;\n")
    params = _pool([(f"const {t}*", "x"), (f"{t}*", "y")], rank, (("int", "include_pad"),))
    return _render("avg_pool", t, rank, params, body, _locals("In O K S P", rank))


def avg_pool_backward(dtype, rank: int) -> Kernel:
    """``gx[n, p, c]`` = sum over the windows holding ``p`` of ``gy / count``."""
    t = ctype(dtype)
    term = ("{\n"
            f"                long long mr = m, oo[{rank}];\n"
            f"                for (int j = {rank} - 1; j >= 0; --j) "
            "{ oo[j] = mr % O[j]; mr /= O[j]; }\n"
            + _avg_count(rank, "oo", "                ")
            + f"                acc += gy[m * C + c] / ({t})cnt;\n            }}")
    body = (_CHANNEL + _split("r", "In", rank, "p")
            + f"        const long long n = r;\n        {t} acc = ({t})0;\n"
            + _gather(rank, "kk[j]", "0", "O[j]", term) + "        gx[i] = acc;\n")
    params = _pool([(f"const {t}*", "gy"), (f"{t}*", "gx")], rank, (("int", "include_pad"),))
    return _render("avg_pool_backward", t, rank, params, body, _locals("In O K S P", rank))


def bias_relu(dtype) -> Kernel:
    """In place: ``y = y + b[c]`` then, if ``relu``, ``max(y, 0)`` (NaN stays, -0 -> 0)."""
    t = ctype(dtype)
    params = [(f"{t}*", "y"), (f"const {t}*", "b"), ("long long", "total"), ("long long", "C"),
              ("int", "relu")]
    body = (f"        const {t} v = y[i] + b[i % C];\n"
            f"        y[i] = (relu && !(v > ({t})0) && v == v) ? ({t})0 : v;\n")
    return _render("bias_relu", t, None, params, body)


def relu(dtype) -> Kernel:
    """``y = max(x, 0)`` with NaN kept and -0 written as 0 (as ``np.maximum(x, 0)``)."""
    t = ctype(dtype)
    params = [(f"const {t}*", "x"), (f"{t}*", "y"), ("long long", "total")]
    body = (f"        const {t} v = x[i];\n"
            f"        y[i] = (!(v > ({t})0) && v == v) ? ({t})0 : v;\n")
    return _render("relu", t, None, params, body)


def relu_grad(dtype) -> Kernel:
    """``gx = gy where y > 0, else 0``."""
    t = ctype(dtype)
    params = [(f"const {t}*", "gy"), (f"const {t}*", "y"), (f"{t}*", "gx"),
              ("long long", "total")]
    return _render("relu_grad", t, None, params,
                   f"        gx[i] = y[i] > ({t})0 ? gy[i] : ({t})0;\n")


def normalize(dtype) -> Kernel:
    """``y = (x - mean[c]) * a[c] + b[c]``; with ``gy`` given it is batch norm's input
    gradient ``a * gy + b2 * (x - mean) + c0`` (``mode`` 1)."""
    t = ctype(dtype)
    params = [(f"const {t}*", "x"), (f"const {t}*", "gy"), (f"const {t}*", "mean"),
              (f"const {t}*", "a"), (f"const {t}*", "b"), (f"const {t}*", "c0"),
              (f"{t}*", "out"), ("long long", "total"), ("long long", "C"), ("int", "mode")]
    body = ("        const long long c = i % C;\n"
            "        if (mode == 0) out[i] = (x[i] - mean[c]) * a[c] + b[c];\n"
            "        else out[i] = a[c] * gy[i] + b[c] * (x[i] - mean[c]) + c0[c];\n")
    return _render("normalize", t, None, params, body)


def softmax_xent(dtype) -> Kernel:
    """Per row of ``z`` (M, K): ``loss = log(sum exp(z - max)) - (z[label] - max)`` and
    ``p = softmax(z)`` (kept for the gradient). One thread per row; rows are short."""
    t = ctype(dtype)
    params = [(f"const {t}*", "z"), ("const long long*", "labels"), (f"{t}*", "p"),
              (f"{t}*", "loss"), ("long long", "total"), ("long long", "K")]
    body = (f"        const {t}* row = z + i * K; {t}* out = p + i * K;\n"
            f"        {t} top = row[0];\n"
            "        for (long long k = 1; k < K; ++k) top = row[k] > top ? row[k] : top;\n"
            f"        {t} sum = ({t})0;\n"
            "        for (long long k = 0; k < K; ++k) { out[k] = exp(row[k] - top); "
            "sum += out[k]; }\n"
            "        for (long long k = 0; k < K; ++k) out[k] /= sum;\n"
            "        loss[i] = log(sum) - (row[labels[i]] - top);\n")
    return _render("softmax_xent", t, None, params, body)


def softmax_xent_grad(dtype) -> Kernel:
    """``g[m, k] = (p[m, k] - [k == label_m]) * scale[m]``."""
    t = ctype(dtype)
    params = [(f"const {t}*", "p"), ("const long long*", "labels"), (f"const {t}*", "scale"),
              (f"{t}*", "g"), ("long long", "total"), ("long long", "K")]
    body = ("        const long long m = i / K, k = i % K;\n"
            f"        g[i] = (p[i] - (k == labels[m] ? ({t})1 : ({t})0)) * scale[m];\n")
    return _render("softmax_xent_grad", t, None, params, body)


def adam(dtype) -> Kernel:
    """Adam in place, the operations and order of ``optimizers.Adam.update``:
    ``m += (g - m) c1; v += (g^2 - v) c2; p -= m / (sqrt(v) + eps) * alpha``."""
    t = ctype(dtype)
    params = [(f"{t}*", "p"), (f"const {t}*", "g"), (f"{t}*", "m"), (f"{t}*", "v"),
              ("long long", "total"), (t, "c1"), (t, "c2"), (t, "alpha"), (t, "eps")]
    body = (f"        const {t} gi = g[i];\n"
            f"        const {t} mi = m[i] + (gi - m[i]) * c1;\n"
            f"        const {t} vi = v[i] + (gi * gi - v[i]) * c2;\n"
            "        m[i] = mi; v[i] = vi;\n"
            "        p[i] -= mi / (sqrt(vi) + eps) * alpha;\n")
    return _render("adam", t, None, params, body)


def sgd(dtype) -> Kernel:
    """SGD in place, Keras 3's formulation (``optimizers.SGD``): without momentum
    ``p -= lr g``; else ``m = mu m - lr g`` then ``p += m`` or, Nesterov,
    ``p += mu m - lr g``."""
    t = ctype(dtype)
    params = [(f"{t}*", "p"), (f"const {t}*", "g"), (f"{t}*", "m"), ("long long", "total"),
              (t, "lr"), (t, "mu"), ("int", "momentum"), ("int", "nesterov")]
    body = (f"        const {t} step = lr * g[i];\n"
            "        if (!momentum) { p[i] -= step; continue; }\n"
            f"        const {t} mi = m[i] * mu - step;\n"
            "        m[i] = mi;\n"
            "        if (nesterov) { p[i] -= step; p[i] += mi * mu; } else p[i] += mi;\n")
    return _render("sgd", t, None, params, body)


RANKED = (im2col, col2im, max_pool, max_pool_backward, avg_pool, avg_pool_backward)
FLAT = (bias_relu, relu, relu_grad, normalize, softmax_xent, softmax_xent_grad, adam, sgd)


def every_kernel(ranks=(1, 2, 3), dtypes=("float32", "float64")) -> list[Kernel]:
    """All kernels for the given ranks and dtypes (what the GPU backend can launch)."""
    out = [make(dt) for make in FLAT for dt in dtypes]
    out += [make(dt, r) for make in RANKED for dt in dtypes for r in ranks]
    return out
