"""Pooling: PyTorch oracle, finite differences, loop reference, fast path, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dojang as dj
from dojang import functional as djf
from dojang import shapes
from dojang.kernels.pool import reference as kpool
from tests import ref_pool
from tests.helpers import assert_close, gradcheck, torch_oracle

torch.set_num_threads(1)

FORMATS = {1: ("NWC", "NCW"), 2: ("NHWC", "NCHW"), 3: ("NDHWC", "NCDHW")}
WINDOW = {("max", r): getattr(djf, f"max_pool{r}d") for r in (1, 2, 3)}
WINDOW.update({("avg", r): getattr(djf, f"avg_pool{r}d") for r in (1, 2, 3)})

# (batch, spatial, ksize, strides, padding): non-square windows, strides 1-3, odd sizes,
# VALID / SAME / symmetric / asymmetric padding, tiling (fast path) with and without crop.
CASES = [
    (2, (7, 9), (3, 2), (1, 2), "VALID"),
    (1, (6, 8), 2, None, "VALID"),
    (2, (7, 9), (2, 3), None, "valid"),
    (2, (5, 7), (3, 3), (2, 3), "SAME"),
    (1, (8, 5), (2, 3), (3, 1), "same"),
    (2, (6, 7), (3, 4), 2, ((1, 0), (2, 1))),
    (1, (5, 5), 3, 1, 1),
    (2, (11,), 3, 2, "SAME"),
    (1, (10,), 2, None, "VALID"),
    (2, (9,), 4, 3, ((2, 1),)),
    (1, (4, 5, 6), (2, 3, 2), (2, 1, 3), "VALID"),
    (2, (4, 4, 6), 2, None, "VALID"),
    (1, (3, 5, 4), (3, 2, 2), (1, 2, 1), "SAME"),
]


def _ids(case):
    n, spatial, k, s, p = case
    return f"N{n}-{'x'.join(map(str, spatial))}-k{k}-s{s}-{p}".replace(" ", "")


def _tup(v, rank):
    return (v,) * rank if isinstance(v, int) else tuple(v)


def _tf_same(n, k, s):
    """TensorFlow's SAME rule, written from its documentation: odd pixel after."""
    total = max((math.ceil(n / s) - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def _pairs(padding, spatial, k, s):
    if isinstance(padding, str):
        if padding.upper() == "VALID":
            return tuple((0, 0) for _ in spatial)
        return tuple(_tf_same(n, kk, ss) for n, kk, ss in zip(spatial, k, s, strict=True))
    if isinstance(padding, int):
        return tuple((padding, padding) for _ in spatial)
    return tuple(tuple(p) for p in padding)


def _resolve(case):
    n, spatial, k, s, padding = case
    rank = len(spatial)
    k = _tup(k, rank)
    s = k if s is None else _tup(s, rank)
    return n, spatial, k, s, _pairs(padding, spatial, k, s)


def _torch_pool(kind, rank, k, s, pads, channels_last, count_include_pad=False):
    """The same pooling in PyTorch; asymmetric padding through F.pad."""
    pool = getattr(F, f"{kind}_pool{rank}d")
    flat = [v for pair in reversed(pads) for v in pair]
    symmetric = all(pb == pa for pb, pa in pads)

    def fn(t):
        if channels_last:
            t = t.movedim(-1, 1)
        if symmetric and kind == "max":
            y = pool(t, k, s, padding=tuple(pb for pb, _ in pads))
        elif symmetric:
            y = pool(t, k, s, padding=tuple(pb for pb, _ in pads),
                     count_include_pad=count_include_pad)
        elif kind == "max":
            y = pool(F.pad(t, flat, value=-math.inf), k, s)
        elif count_include_pad:
            y = pool(F.pad(t, flat), k, s)
        else:  # mean over real inputs = sum over window / number of real inputs
            y = pool(F.pad(t, flat), k, s) / pool(F.pad(torch.ones_like(t), flat), k, s)
        return y.movedim(1, -1) if channels_last else y

    return fn


def _layout(x, channels_last):
    return x if channels_last else np.moveaxis(x, -1, 1)


@pytest.mark.parametrize("channels_last", [True, False], ids=["last", "first"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("kind", ["max", "avg", "avg_incl"])
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_window_pool_matches_torch(case, kind, dtype, channels_last, device, kernels):
    n, spatial, k, s, pads = _resolve(case)
    rank = len(spatial)
    base, incl = kind[:3], kind == "avg_incl"
    x = _layout(np.random.default_rng(0).standard_normal((n, *spatial, 3)), channels_last)
    fmt = FORMATS[rank][0 if channels_last else 1]
    extra = {"count_include_pad": incl} if base == "avg" else {}

    def dj_fn(t):
        return WINDOW[base, rank](t, case[2], case[3], case[4], data_format=fmt, **extra)

    torch_oracle(dj_fn, _torch_pool(base, rank, k, s, pads, channels_last, incl), x,
                 dtype=dtype, device=device)


TIE_CASES = [
    (2, (6, 7), 3, 1, "VALID"),
    (2, (6, 8), 2, None, "VALID"),
    (1, (7, 7), 2, None, "VALID"),
    (2, (5, 6), (3, 2), (2, 1), "SAME"),
    (1, (9,), 3, 2, 1),
    (1, (4, 4, 4), 2, 1, "VALID"),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", TIE_CASES, ids=_ids)
def test_max_pool_ties_follow_torch_first_max(case, dtype, device, kernels):
    n, spatial, k, s, pads = _resolve(case)
    x = np.random.default_rng(1).integers(0, 3, (n, *spatial, 2)).astype(dtype)
    fn = WINDOW["max", len(spatial)]
    torch_oracle(lambda t: fn(t, case[2], case[3], case[4]),
                 _torch_pool("max", len(spatial), k, s, pads, True), x, dtype=dtype,
                 device=device)
    # And the loop reference: the gradient lands on ONE input per window.
    t = dj.Tensor(x.astype(np.float64), requires_grad=True)
    fn(t, case[2], case[3], case[4]).sum().backward()
    ones = np.ones((n, *shapes.pool_output_shape(spatial, k, s, pads), 2))
    np.testing.assert_array_equal(t.grad.numpy(), ref_pool.ref_max_pool_grad(
        x.astype(np.float64), ones, k, s, pads))


GRAD_CASES = [
    (1, (5, 6), (3, 2), (2, 1), "SAME"),
    (2, (4, 4), 2, None, "VALID"),
    (1, (5, 5), 3, 2, ((1, 0), (0, 1))),
    (1, (7,), 3, 2, 1),
    (1, (3, 4, 3), 2, 1, "SAME"),
]


@pytest.mark.parametrize("kind", ["max", "avg", "avg_incl"])
@pytest.mark.parametrize("case", GRAD_CASES, ids=_ids)
def test_window_pool_gradcheck(case, kind, kernels):
    n, spatial, *_ = case
    size = n * math.prod(spatial) * 2
    # a permutation keeps every value distinct (no max ties) with gaps far above eps
    x = np.random.default_rng(2).permutation(size).reshape((n, *spatial, 2)) * 0.1
    extra = {"count_include_pad": kind == "avg_incl"} if kind != "max" else {}
    fn = WINDOW[kind[:3], len(spatial)]
    gradcheck(lambda t: fn(t, case[2], case[3], case[4], **extra), x)


REF_CASES = CASES[::2] + [(1, (6, 5), (3, 3), (1, 2), ((0, 1), (1, 1))), (1, (7,), 5, 1, 2)]


@pytest.mark.parametrize("case", REF_CASES, ids=_ids)
def test_window_pool_matches_loop_reference(case):
    n, spatial, k, s, pads = _resolve(case)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, *spatial, 2))
    gy = rng.standard_normal((n, *shapes.pool_output_shape(spatial, k, s, pads), 2))
    for kind, incl in (("max", False), ("avg", False), ("avg", True)):
        extra = {"count_include_pad": incl} if kind == "avg" else {}
        t = dj.Tensor(x, requires_grad=True)
        y = WINDOW[kind, len(spatial)](t, case[2], case[3], case[4], **extra)
        (y * dj.Tensor(gy)).sum().backward()
        if kind == "max":
            want, grad = ref_pool.ref_max_pool(x, k, s, pads)[0], ref_pool.ref_max_pool_grad(
                x, gy, k, s, pads)
        else:
            want = ref_pool.ref_avg_pool(x, k, s, pads, incl)
            grad = ref_pool.ref_avg_pool_grad(x, gy, k, s, pads, incl)
        np.testing.assert_allclose(y.numpy(), want, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(t.grad.numpy(), grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("shape,k", [((2, 6, 8, 3), (2, 2)), ((1, 7, 9, 2), (2, 3)),
                                     ((2, 9, 2), (3,)), ((1, 4, 6, 5, 2), (2, 3, 2))])
def test_fast_path_equals_general_path(shape, k, ties):
    rng = np.random.default_rng(4)
    x = rng.integers(0, 2, shape).astype(np.float64) if ties else rng.standard_normal(shape)
    pads = ((0, 0),) * len(k)
    assert kpool.tiles(k, k, pads)
    y = kpool.max_pool(x, k, k, pads)
    gy = rng.standard_normal(y.shape)
    np.testing.assert_array_equal(kpool._max_pool_backward_tiled(x, y, gy, k),
                                  kpool._max_pool_backward_windows(x, y, gy, k, k, pads))
    np.testing.assert_allclose(kpool._avg_pool_backward_tiled(gy, x.shape, k),
                               kpool._avg_pool_backward_windows(gy, x.shape, k, k, pads, False),
                               rtol=1e-13)


@dj.config.jit(False)
def test_fast_path_is_taken_when_windows_tile(monkeypatch):
    def fail(*args):
        raise AssertionError("general path used")

    for name in ("_max_pool_backward_windows", "_avg_pool_backward_windows"):
        monkeypatch.setattr(kpool, name, fail)
    x = dj.Tensor(np.random.default_rng(5).standard_normal((2, 8, 6, 3)), requires_grad=True)
    (djf.max_pool2d(x, 2).sum() + djf.avg_pool2d(x, (2, 3)).sum()).backward()
    with pytest.raises(AssertionError, match="general path"):
        djf.max_pool2d(x, 2, 1).sum().backward()


GLOBAL_SHAPES = [(2, 5, 3), (1, 4, 6, 3), (2, 3, 4, 5, 2)]


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("channels_last", [True, False], ids=["last", "first"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("shape", GLOBAL_SHAPES, ids=str)
def test_global_pools_match_torch(shape, dtype, channels_last, ties, device):
    rank = len(shape) - 2
    rng = np.random.default_rng(6)
    x = rng.integers(0, 3, shape).astype(dtype) if ties else rng.standard_normal(shape)
    x = _layout(x, channels_last)
    fmt = FORMATS[rank][0 if channels_last else 1]
    dims = tuple(range(1, rank + 1)) if channels_last else tuple(range(2, rank + 2))
    adaptive = getattr(F, f"adaptive_max_pool{rank}d")

    def torch_max(t):
        t = t.movedim(-1, 1) if channels_last else t
        return adaptive(t, 1).flatten(1)

    for keep in (False, True):
        avg = getattr(djf, f"global_avg_pool{rank}d")
        mx = getattr(djf, f"global_max_pool{rank}d")
        torch_oracle(lambda t, f=avg, k=keep: f(t, fmt, k),
                     lambda t, k=keep: t.mean(dim=dims, keepdim=k), x, dtype=dtype,
                     device=device)
        torch_oracle(lambda t, f=mx: f(t, fmt), torch_max, x, dtype=dtype, device=device)
    kept = djf.global_max_pool2d(np.ones((2, 3, 4, 5)), "NCHW", keepdims=True)
    assert kept.shape == (2, 3, 1, 1)


@pytest.mark.parametrize("shape", GLOBAL_SHAPES, ids=str)
def test_global_pools_gradcheck(shape):
    rank = len(shape) - 2
    x = np.random.default_rng(7).permutation(math.prod(shape)).reshape(shape) * 0.1
    for kind in ("avg", "max"):
        fn = getattr(djf, f"global_{kind}_pool{rank}d")
        gradcheck(fn, x)
        gradcheck(lambda t, f=fn: f(t, FORMATS[rank][1], keepdims=True), x)


def test_argument_forms_agree():
    x = np.random.default_rng(8).standard_normal((2, 7, 6, 3))
    want = djf.max_pool2d(x, 2, 2, "SAME").numpy()
    np.testing.assert_array_equal(djf.max_pool2d(x, [1, 2, 2, 1], [1, 2, 2, 1], "SAME").numpy(),
                                  want)
    xf = np.moveaxis(x, -1, 1)
    got = djf.max_pool2d(xf, [1, 1, 2, 2], (2, 2), "same", data_format="NCHW").numpy()
    np.testing.assert_array_equal(np.moveaxis(got, 1, -1), want)
    a = djf.avg_pool2d(x, 3, 2, [[0, 0], [1, 1], [1, 0], [0, 0]]).numpy()
    np.testing.assert_array_equal(a, djf.avg_pool2d(x, 3, 2, ((1, 1), (1, 0))).numpy())
    np.testing.assert_array_equal(djf.max_pool2d(dj.Tensor(x), (2, 2)).numpy(),
                                  djf.max_pool2d(x, 2, None, "valid", "channels_last").numpy())


def test_inputs_lists_ints_and_no_grad():
    y = djf.max_pool1d([[[1.0], [3.0], [2.0], [0.0]]], 2)
    assert y.dtype == np.float32 and y.numpy().ravel().tolist() == [3.0, 2.0]
    xi = np.random.default_rng(9).integers(-50, 50, (1, 5, 4, 2))
    yi = djf.max_pool2d(xi, 2, 1, "SAME")
    assert yi.dtype == xi.dtype
    pads = _pairs("SAME", (5, 4), (2, 2), (1, 1))
    np.testing.assert_array_equal(yi.numpy(), ref_pool.ref_max_pool(xi, (2, 2), (1, 1), pads)[0])
    ya = djf.avg_pool2d(xi, 2)
    assert ya.dtype == np.float32
    assert_close(ya.numpy(), ref_pool.ref_avg_pool(xi.astype(np.float64), (2, 2), (2, 2),
                                                   ((0, 0), (0, 0))), np.float32)
    assert djf.global_avg_pool1d(np.arange(6).reshape(1, 3, 2)).numpy().tolist() == [[2.0, 3.0]]
    t = dj.Tensor(np.ones((1, 4, 4, 1)), requires_grad=True)
    with dj.no_grad():
        assert not djf.avg_pool2d(t, 2).requires_grad


def test_nan_propagates_without_gradient(kernels):
    x = np.arange(16.0).reshape(1, 4, 4, 1)
    x[0, 0, 1, 0] = np.nan
    for s in (2, 1):  # fast path and general path
        t = dj.Tensor(x, requires_grad=True)
        y = djf.max_pool2d(t, 2, s)
        assert np.isnan(y.numpy()[0, 0, 0, 0])
        y.sum().backward()
        assert np.isfinite(t.grad.numpy()).all()


E = "max_pool2d: Expected"
X4 = np.zeros((1, 5, 5, 2))


@pytest.mark.parametrize("call,exc,match", [
    (lambda: djf.max_pool2d(np.zeros((5, 5, 2)), 2), ValueError,
     r"max_pool2d: Expected input to have rank 4 \(batch, H, W and channels\)\. "
     r"Received: input.shape=\(5, 5, 2\)"),
    (lambda: djf.avg_pool1d(np.zeros((1, 5, 5, 2)), 2), ValueError,
     r"avg_pool1d: Expected input to have rank 3"),
    (lambda: djf.max_pool2d(X4, 6), ValueError,
     r"Expected the window to fit in the padded input .* Received: ksize=\(6, 6\) for "
     r"spatial shape \(5, 5\)"),
    (lambda: djf.max_pool2d(X4, (6, 2), padding=((0, 0), (1, 1))), ValueError,
     r"max_pool2d: Expected the window to fit"),
    (lambda: djf.max_pool2d(X4, 0), ValueError,
     r"max_pool2d: Expected ksize to be an int or a tuple of 2 ints, each >= 1\. "
     r"Received: ksize=0"),
    (lambda: djf.max_pool2d(X4, 2, (1, -1)), ValueError,
     r"Expected strides to be an int or a tuple of 2 ints, each >= 1\. "
     r"Received: strides=\(1, -1\)"),
    (lambda: djf.avg_pool3d(np.zeros((1, 4, 4, 4, 1)), (2, 2)), ValueError,
     r"avg_pool3d: Expected ksize to be an int or a tuple of 3 ints, each >= 1\. "
     r"Received: ksize=\(2, 2\)"),
    (lambda: djf.max_pool2d(X4, 2.0), TypeError, r"Expected ksize to be an int"),
    (lambda: djf.max_pool2d(X4, [2, 2, 2, 2]), ValueError,
     r"max_pool2d: Expected ksize as a list of 4 ints to be 1 for the batch and channel "
     r"dimensions\. Received: ksize=\[2, 2, 2, 2\]"),
    (lambda: djf.max_pool2d(X4, 2, padding="FULL"), ValueError,
     r"max_pool2d: Expected padding to be one of \('valid', 'same'\)\. "
     r"Received: padding='FULL'"),
    (lambda: djf.max_pool2d(X4, 2, padding=(1, 2, 3)), ValueError,
     r"max_pool2d: Expected padding to be 'valid', 'same', an int >= 0"),
    (lambda: djf.max_pool2d(X4, 2, padding=[[1, 1], [0, 0], [0, 0], [0, 0]]), ValueError,
     r"Expected padding as a list of 4 pairs to be \(0, 0\) for the batch and channel"),
    (lambda: djf.max_pool2d(X4, 3, padding=2), ValueError,
     r"max_pool2d: Expected padding to be at most half the window \(ksize // 2 = \(1, 1\)\) "
     r"on each side\. Received: padding=2"),
    (lambda: djf.avg_pool2d(X4, (2, 4), padding=((0, 0), (0, 3))), ValueError,
     r"avg_pool2d: Expected padding to be at most half the window"),
    (lambda: djf.max_pool2d(X4, 2, data_format="NWHC"), ValueError,
     r"max_pool2d: Expected data_format to be one of \('NHWC', 'NCHW', 'channels_last', "
     r"'channels_first'\)\. Received: data_format='NWHC'"),
    (lambda: djf.global_avg_pool1d(np.zeros((1, 3, 2)), data_format="NHWC"), ValueError,
     r"global_avg_pool1d: Expected data_format to be one of \('NWC', 'NCW'"),
    (lambda: djf.max_pool2d(np.array([[["a"]]]), 2), TypeError,
     r"max_pool2d: Expected input to be a numeric \(integer or floating-point\) array or "
     r"Tensor\. Received: input of type ndarray"),
    (lambda: djf.max_pool1d("abc", 2), TypeError, r"max_pool1d: Expected input to be numeric"
     r"|max_pool1d: Expected input to be a numeric"),
    (lambda: djf.global_max_pool2d(np.zeros((1, 2, 2, 1), dtype=bool)), TypeError,
     r"global_max_pool2d: Expected input to be a numeric .* dtype bool"),
    (lambda: djf.avg_pool2d(X4, 2, count_include_pad=1), TypeError,
     r"avg_pool2d: Expected count_include_pad to be a bool\. Received: count_include_pad=1"),
    (lambda: djf.global_max_pool3d(np.zeros((1, 2, 2, 2, 1)), keepdims="yes"), TypeError,
     r"global_max_pool3d: Expected keepdims to be a bool"),
    (lambda: djf.global_max_pool2d(np.zeros((1, 0, 2, 1))), ValueError,
     r"global_max_pool2d: Expected every spatial dimension to be > 0\. "
     r"Received: input.shape=\(1, 0, 2, 1\)"),
    (lambda: djf.global_avg_pool2d(np.zeros((1, 2, 2))), ValueError,
     r"global_avg_pool2d: Expected input to have rank 4"),
])
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_errors_come_before_array_work(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("array work started")

    monkeypatch.setattr(dj.ops.pool, "dispatch", fail)
    with pytest.raises(ValueError, match="ksize"):
        djf.max_pool2d(X4, (2, 2, 2))
    with pytest.raises(AssertionError, match="array work"):
        djf.max_pool2d(X4, 2)
