"""The direct convolution (``dojang.kernels.direct``) against the im2col + GEMM kernels
(NumPy path, ``jit(False)``) and against PyTorch through the op, with gradients.

The shapes here are picked so that ``kernels.conv`` does take the direct path (each
test asserts it), including strides, dilations, asymmetric and cropping pads, rank 1,
widths that the 4-pixel tile does not divide, and float64.
"""

import importlib.util
import os

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dojang as dj
from dojang import functional as fn
from dojang import shapes
from dojang.kernels import compile, plan
from dojang.kernels.conv import direct
from dojang.kernels.conv import reference as kc


def _reference(x, w, strides, dilations, pads, gy):
    """(y, dw) from the NumPy im2col + GEMM kernels."""
    with dj.config.jit(False):
        y, _ = kc.conv_forward(x, w, strides, dilations, 1, pads)
        dw, _ = kc.conv_backward_filter(x, gy, w.shape, strides, dilations, 1, pads)
    return y, dw


def _fits(length, k, s, d, pads):
    return length + sum(pads) - d * (k - 1) - 1 >= 0


@st.composite
def _case(draw):
    rank = draw(st.sampled_from([1, 2]))
    n = draw(st.integers(1, 3))
    c_in = draw(st.sampled_from([1, 2, 3, 4, 8, 12, 32]))
    c_out = draw(st.sampled_from([16, 32, 48, 64]))
    dims = []
    for _ in range(rank):
        k = draw(st.integers(1, 4))
        s = draw(st.integers(1, 3))
        d = draw(st.integers(1, 2))
        p = (draw(st.integers(-1, 2)), draw(st.integers(-1, 2)))
        length = draw(st.integers(1, 13))
        if not _fits(length, k, s, d, p):
            length = d * (k - 1) + 1 - min(0, p[0] + p[1]) + 2
        dims.append((length, k, s, d, p))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    return n, c_in, c_out, dims, dtype


@settings(max_examples=40, deadline=None)
@given(_case(), st.integers(0, 2**31 - 1))
def test_direct_kernels_equal_im2col(case, seed):
    n, c_in, c_out, dims, dtype = case
    rng = np.random.default_rng(seed)
    spatial = tuple(d[0] for d in dims)
    kernel = tuple(d[1] for d in dims)
    strides = tuple(d[2] for d in dims)
    dilations = tuple(d[3] for d in dims)
    pads = tuple(d[4] for d in dims)
    x = rng.standard_normal((n,) + spatial + (c_in,)).astype(dtype)
    w = rng.standard_normal(kernel + (c_in, c_out)).astype(dtype)
    out = shapes.window_output_shape(spatial, kernel, strides, dilations, pads)
    gy = rng.standard_normal((n,) + out + (c_out,)).astype(dtype)
    y_ref, dw_ref = _reference(x, w, strides, dilations, pads, gy)

    assert plan.direct_forward(x, w.shape, 1, w)
    y = np.full(y_ref.shape, np.nan, dtype)
    direct.forward(x, w, y, strides, dilations, pads)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, y_ref, rtol=tol, atol=tol * np.sqrt(w[..., 0].size))

    if plan.direct_filters(x, gy, w.shape, 1):
        dw = direct.filters(x, gy, w.shape, strides, dilations, pads)
        assert dw.dtype == dtype
        np.testing.assert_allclose(dw, dw_ref, rtol=tol, atol=tol * np.sqrt(gy[..., 0].size))


def test_conv_takes_the_direct_path_only_where_it_is_faster():
    f32 = np.zeros((2, 8, 8, 16), np.float32)
    assert plan.direct_forward(f32, (3, 3, 16, 16), 1)  # ResNet-20's first stage
    assert plan.direct_filters(f32, np.zeros((2, 8, 8, 16), np.float32), (3, 3, 16, 16), 1)
    assert plan.direct_forward(f32, (3, 3, 16, 64), 1)
    assert not plan.direct_forward(f32, (3, 3, 16, 128), 1)  # wide: the GEMM is fast
    assert not plan.direct_forward(f32, (3, 3, 16, 24), 1)  # C_out not a multiple of 16
    assert not plan.direct_forward(f32, (3, 3, 16, 32), 2)  # groups
    one = np.zeros((1, 28, 28, 1), np.float32)  # C_in 1: direct for small work only
    assert plan.direct_forward(one, (3, 3, 1, 32), 1)
    assert not plan.direct_forward(np.zeros((8, 28, 28, 1), np.float32), (3, 3, 1, 32), 1)
    assert plan.direct_forward(np.zeros((2, 8, 8, 64), np.float32), (3, 3, 64, 32), 1)
    # one block's filters, 3 * 3 * 128 * 16 float32, over 64 KiB
    assert not plan.direct_forward(np.zeros((2, 8, 8, 128), np.float32), (3, 3, 128, 32), 1)
    assert not plan.direct_forward(f32.astype(np.float16), (3, 3, 16, 16), 1)
    assert not plan.direct_forward(np.zeros((2, 4, 4, 4, 16), np.float32), (1, 1, 1, 16, 16), 1)
    assert plan.direct_filters(f32, f32, (3, 3, 32, 32), 1)
    assert not plan.direct_filters(f32, f32, (3, 3, 32, 64), 1)  # 32 * 64 > 1024
    assert not plan.direct_filters(np.zeros((2, 8, 8, 6), np.float32), f32,
                                      (3, 3, 6, 16), 1)  # C_in not a multiple of 4
    with dj.config.jit(False):
        assert not plan.direct_forward(f32, (3, 3, 16, 16), 1)


def test_forward_keeps_im2col_when_its_columns_serve_the_filter_gradient():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 6, 6, 32)).astype(np.float32)
    pads = ((1, 1), (1, 1))
    for c_out, direct_filters in ((16, True), (64, False)):
        w = rng.standard_normal((3, 3, 32, c_out)).astype(np.float32)
        assert plan.direct_forward(x, w.shape, 1, w)
        assert plan.direct_filters(x, x, w.shape, 1) == direct_filters
        y, cols = kc.conv_forward(x, w, (1, 1), (1, 1), 1, pads, training=True)
        # columns are kept only where the filter gradient will use them (32 x 64 > 1024)
        assert (cols is None) == direct_filters
        y_plain, cols_plain = kc.conv_forward(x, w, (1, 1), (1, 1), 1, pads)
        assert cols_plain is None
        np.testing.assert_allclose(y, y_plain, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("kwargs", [
    dict(strides=1, padding="SAME"),
    dict(strides=2, padding="SAME"),
    dict(strides=1, padding="VALID", dilations=2),
    dict(strides=(2, 1), padding=((2, 0), (1, 3))),
])
def test_conv_through_the_direct_path_matches_torch(kwargs):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 11, 13, 8)).astype(np.float32)
    w = rng.standard_normal((3, 3, 8, 32)).astype(np.float32) * 0.2
    b = rng.standard_normal(32).astype(np.float32)
    assert plan.direct_forward(x, w.shape, 1, w) and plan.direct_filters(x, x, w.shape, 1)
    tx, tw, tb = (dj.Tensor(a, requires_grad=True) for a in (x, w, b))
    y = fn.conv2d(tx, tw, bias=tb, activation="relu", **kwargs)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(dj.Tensor(gy))

    pad, strides = kwargs["padding"], kwargs["strides"]
    strides = (strides, strides) if isinstance(strides, int) else strides
    dil = kwargs.get("dilations", 1)
    if pad == "SAME":  # TensorFlow's rule: the odd pixel goes after
        pad = []
        for length, s in zip(x.shape[1:3], strides, strict=True):
            total = max((-(-length // s) - 1) * s + 2 * dil + 1 - length, 0)
            pad.append((total // 2, total - total // 2))
    elif pad == "VALID":
        pad = ((0, 0), (0, 0))
    xt = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
    wt = torch.tensor(w.transpose(3, 2, 0, 1), requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    xin = torch.nn.functional.pad(xt, (pad[1][0], pad[1][1], pad[0][0], pad[0][1]))
    yt = torch.relu(torch.nn.functional.conv2d(xin, wt, bt, stride=strides, dilation=dil))
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy().transpose(0, 2, 3, 1),
                               rtol=1e-4, atol=1e-4)
    yt.backward(torch.tensor(gy.transpose(0, 3, 1, 2)))
    np.testing.assert_allclose(tx.grad.numpy(), xt.grad.numpy().transpose(0, 2, 3, 1),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(tw.grad.numpy(), wt.grad.numpy().transpose(2, 3, 1, 0),
                               rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(tb.grad.numpy(), bt.grad.numpy(), rtol=1e-4, atol=1e-3)


def test_the_training_steps_of_test_jit_take_the_direct_path():
    """test_jit.py's thread-count and NumPy-agreement tests train an 8 -> 16 conv."""
    x = np.zeros((16, 12, 12, 8), np.float32)
    assert plan.direct_forward(x, (3, 3, 8, 16), 1)
    assert plan.direct_filters(x, np.zeros((16, 12, 12, 16), np.float32), (3, 3, 8, 16), 1)


def test_straight_line_vectoriser_is_switched_back_off():
    before = numba.config.SLP_VECTORIZE
    x = np.ones((1, 4, 4, 4), np.float32)
    y = np.empty((1, 4, 4, 16), np.float32)
    direct.forward(x, np.ones((3, 3, 4, 16), np.float32), y, (1, 1), (1, 1), ((1, 1),) * 2)
    assert numba.config.SLP_VECTORIZE == before
    assert y[0, 1, 1, 0] == 36 and y[0, 0, 0, 0] == 16  # 9 and 4 taps of 4 channels
    with compile._StraightLine():
        assert numba.config.SLP_VECTORIZE == 1
        with compile._StraightLine():
            pass
        assert numba.config.SLP_VECTORIZE == 1
    assert numba.config.SLP_VECTORIZE == before


def test_generated_tiles_are_current():
    path = os.path.join(os.path.dirname(__file__), "..", "tools", "gen_tiles.py")
    spec = importlib.util.spec_from_file_location("gen_tiles", path)
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    with open(gen.TARGET) as f:
        assert f.read() == gen.source(), "run: python tools/gen_tiles.py"
