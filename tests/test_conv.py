"""Convolution: PyTorch oracle sweep, loop reference, gradcheck, shapes, chunking, errors."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import dojang as dj
from dojang import functional as fn
from dojang import shapes
from dojang.kernels.conv import im2col
from tests.helpers import assert_close, gradcheck, torch_oracle
from tests.ref_conv import conv_ref

torch.set_num_threads(1)

CONV = {1: fn.conv1d, 2: fn.conv2d, 3: fn.conv3d}
TORCH_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
TORCH_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate",
              "circular": "circular"}


def same_pads(length, k, s, d):
    """TF SAME, written out independently: output ceil(L/S), odd pixel at the end."""
    total = max((-(-length // s) - 1) * s + d * (k - 1) + 1 - length, 0)
    return total // 2, total - total // 2


def explicit_pads(padding, spatial, kernel, strides, dilations, last):
    """The (before, after) pairs every accepted padding spec stands for."""
    r = len(spatial)
    if isinstance(padding, str):
        if padding.lower() == "valid":
            return [(0, 0)] * r
        return [same_pads(spatial[i], kernel[i], strides[i], dilations[i]) for i in range(r)]
    if isinstance(padding, int):
        return [(padding, padding)] * r
    if len(padding) == r + 2:
        padding = padding[1:-1] if last else padding[2:]
    return [tuple(p) if isinstance(p, (tuple, list)) else (p, p) for p in padding]


def per_dim(v, r, last):
    if isinstance(v, int):
        return (v,) * r
    if len(v) == r + 2:
        return tuple(v[1:-1] if last else v[2:])
    return tuple(v)


def torch_conv(x, w, b, *, r, strides, dilations, pads, groups, mode, last):
    """The same convolution in PyTorch: F.pad with the mode, then F.convNd (no padding)."""
    if last:
        x = x.movedim(-1, 1)
    flat = [v for p in reversed(pads) for v in p]
    if any(flat):
        x = F.pad(x, flat, mode=TORCH_MODE[mode])
    tw = w.permute(r + 1, r, *range(r))  # (*K, Cg, C_out) -> (C_out, Cg, *K)
    y = TORCH_CONV[r](x, tw, b, stride=strides, dilation=dilations, groups=groups)
    return y.movedim(1, -1) if last else y


# (N, spatial, C, C_out, kernel, strides, dilations, padding, groups, mode, data_format, bias)
SWEEP = [
    (2, (7, 6), 3, 4, (3, 2), 1, 1, "VALID", 1, "zeros", "NHWC", True),
    (1, (8, 9), 4, 6, (3, 3), 2, 1, "SAME", 2, "zeros", "NHWC", True),
    (2, (9, 7), 4, 4, (2, 3), (3, 1), (1, 2), ((1, 2), (0, 1)), 1, "zeros", "NCHW", True),
    (1, (6, 7), 4, 8, (3, 3), 1, 2, 2, 4, "zeros", "NHWC", True),
    (2, (7, 8), 3, 5, (3, 3), 2, 1, (1, 2), 1, "reflect", "NCHW", True),
    (1, (6, 5), 2, 3, (3, 1), 1, (2, 1), ((2, 0), (1, 1)), 1, "replicate", "NHWC", False),
    (2, (5, 7), 2, 2, (3, 5), 1, 1, "same", 1, "circular", "NHWC", True),
    (2, (5, 6), 4, 6, (2, 2), (1, 2), 1, ((0, 3), (2, 1)), 2, "circular", "NCHW", True),
    (3, (11,), 3, 2, (4,), 3, 2, "SAME", 1, "zeros", "NWC", True),
    (2, (10,), 3, 6, (3,), 1, 1, 2, 3, "reflect", "NCW", True),
    (1, (9,), 2, 2, (1,), 2, 1, "valid", 1, "zeros", "NWC", False),
    (2, (5, 4, 6), 2, 3, (2, 3, 2), (1, 2, 1), (2, 1, 1), ((1, 0), (1, 1), (0, 2)), 1, "zeros",
     "NDHWC", True),
    (1, (5, 6, 5), 4, 4, (3, 2, 2), 2, 1, "SAME", 2, "zeros", "NCDHW", True),
    (1, (4, 5, 4), 2, 2, (2, 2, 3), 1, 1, 1, 1, "replicate", "NDHWC", True),
    (2, (8, 7), 2, 3, (3, 3), [1, 2, 2, 1], [1, 1, 2, 1], [[0, 0], [1, 1], [2, 0], [0, 0]], 1,
     "zeros", "NHWC", True),
    (1, (8, 7), 2, 3, (2, 2), [1, 1, 3, 2], 1, [[0, 0], [0, 0], [1, 2], [0, 1]], 1, "zeros",
     "NCHW", True),
    (1, (13, 11), 2, 2, (2, 2), 3, 3, "valid", 1, "zeros", "NHWC", True),
    (1, (7, 7), 3, 3, (1, 1), 2, 1, "valid", 3, "zeros", "NHWC", True),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", SWEEP, ids=lambda c: f"{c[10]}-{c[7]}-{c[9]}-g{c[8]}")
def test_conv_matches_torch(case, dtype, device, kernels):
    n, spatial, c, cout, kernel, strides, dilations, padding, groups, mode, fmt, bias = case
    r = len(spatial)
    last = fmt.endswith("C")
    rng = np.random.default_rng(len(spatial) * 100 + c)
    x = rng.standard_normal((n,) + spatial + (c,) if last else (n, c) + spatial)
    w = rng.standard_normal(kernel + (c // groups, cout))
    b = rng.standard_normal(cout)
    s, d = per_dim(strides, r, last), per_dim(dilations, r, last)
    pads = explicit_pads(padding, spatial, kernel, s, d, last)
    kw = dict(strides=strides, padding=padding, data_format=fmt, dilations=dilations,
              groups=groups, padding_mode=mode)
    tkw = dict(r=r, strides=s, dilations=d, pads=pads, groups=groups, mode=mode, last=last)
    if bias:
        torch_oracle(lambda x, w, b: CONV[r](x, w, bias=b, **kw),
                     lambda x, w, b: torch_conv(x, w, b, **tkw), x, w, b, dtype=dtype,
                     device=device)
    else:
        torch_oracle(lambda x, w: CONV[r](x, w, **kw),
                     lambda x, w: torch_conv(x, w, None, **tkw), x, w, dtype=dtype,
                     device=device)


@pytest.mark.parametrize("spatial,kernel,strides,dilations,pads,groups", [
    ((7,), (3,), (2,), (2,), ((1, 2),), 1),
    ((5, 6), (2, 3), (2, 1), (1, 2), ((1, 0), (2, 1)), 2),
    ((4, 3, 4), (2, 2, 3), (1, 2, 1), (1, 1, 1), ((0, 1), (1, 1), (1, 0)), 1),
])
def test_conv_matches_loop_reference(spatial, kernel, strides, dilations, pads, groups, kernels):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2,) + spatial + (4,))
    w = rng.standard_normal(kernel + (4 // groups, 6))
    y = fn.conv(x, w, strides=strides, padding=pads, dilations=dilations, groups=groups)
    assert_close(y.numpy(), conv_ref(x, w, strides, dilations, pads, groups), np.float64)


@pytest.mark.parametrize("kwargs,shape_x,shape_w", [
    (dict(strides=(2, 1), dilations=(1, 2), padding=((1, 0), (1, 1))), (1, 4, 5, 2), (2, 2, 2, 3)),
    (dict(groups=2, padding=1, padding_mode="reflect", strides=2), (2, 5, 4), (3, 2, 4)),
    (dict(groups=2, padding="SAME", dilations=2), (1, 4, 4, 2), (2, 2, 1, 4)),
    (dict(padding=1, padding_mode="circular", data_format="NCDHW"), (1, 2, 3, 2, 3),
     (2, 1, 2, 2, 2)),
])
def test_conv_gradcheck(kwargs, shape_x, shape_w, kernels):
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal(shape_x), rng.standard_normal(shape_w)
    b = rng.standard_normal(shape_w[-1])
    gradcheck(lambda x, w, b: fn.conv(x, w, bias=b, **kwargs), x, w, b)


def test_first_layer_input_grad_skipped_and_numpy_inputs():
    rng = np.random.default_rng(3)
    x = dj.Tensor(rng.standard_normal((2, 5, 5, 1)).astype(np.float32))
    w = dj.Tensor(rng.standard_normal((3, 3, 1, 4)).astype(np.float32), requires_grad=True)
    y = fn.conv2d(x, w, padding="SAME")
    y.sum().backward()
    assert x.grad is None and w.grad.shape == (3, 3, 1, 4)
    y_np = fn.conv2d(rng.integers(0, 255, (1, 4, 4, 1)), np.ones((3, 3, 1, 1), np.float32))
    assert isinstance(y_np, dj.Tensor) and y_np.dtype == np.float32 and y_np.shape == (1, 2, 2, 1)


@settings(max_examples=30, deadline=None)
@given(data=st.data(), rank=st.integers(1, 3))
def test_output_shape_property(data, rank):
    spatial = tuple(data.draw(st.integers(1, 9)) for _ in range(rank))
    kernel = tuple(data.draw(st.integers(1, 4)) for _ in range(rank))
    strides = tuple(data.draw(st.integers(1, 3)) for _ in range(rank))
    dilations = tuple(data.draw(st.integers(1, 3)) for _ in range(rank))
    padding = data.draw(st.one_of(
        st.sampled_from(["valid", "same"]), st.integers(0, 2),
        st.tuples(*[st.tuples(st.integers(0, 2), st.integers(0, 2)) for _ in range(rank)])))
    pads = explicit_pads(padding, spatial, kernel, strides, dilations, True)
    if any(spatial[i] + sum(pads[i]) < dilations[i] * (kernel[i] - 1) + 1 for i in range(rank)):
        return
    predicted = shapes.conv_output_shape(spatial, kernel, strides, padding, dilations)
    x = np.zeros((1,) + spatial + (2,), np.float32)
    y = fn.conv(x, np.zeros(kernel + (2, 3), np.float32), strides=strides, padding=padding,
                dilations=dilations)
    t = torch_conv(torch.tensor(x), torch.zeros(kernel + (2, 3)), None, r=rank,
                   strides=strides, dilations=dilations, pads=pads, groups=1, mode="zeros",
                   last=True)
    assert y.shape == (1,) + predicted + (3,) == tuple(t.shape)


def _grads(x, w, b, **kwargs):
    xt = dj.Tensor(x, requires_grad=True)
    wt = dj.Tensor(w, requires_grad=True)
    bt = dj.Tensor(b, requires_grad=True)
    y = fn.conv(xt, wt, bias=bt, **kwargs)
    (y * y).sum().backward()
    return y.numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()


@pytest.mark.parametrize("budget", [1, 2000, 9000])
@pytest.mark.parametrize("kwargs", [
    dict(strides=(2, 1), dilations=(1, 2), padding=((1, 2), (0, 3)), groups=2),
    dict(padding="SAME"),
])
def test_chunked_equals_unchunked(budget, kwargs, kernels):
    rng = np.random.default_rng(4)
    x, w, b = rng.standard_normal((3, 9, 8, 4)), rng.standard_normal((3, 2, 2, 6)), np.ones(6)
    if kwargs.get("groups") is None:
        w = rng.standard_normal((3, 2, 4, 6))
    full = _grads(x, w, b, **kwargs)
    with dj.im2col_budget(budget):  # 1 byte: one output row per chunk
        chunked = _grads(x, w, b, **kwargs)
    for a, e in zip(chunked, full, strict=True):
        np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-12)


def _peak_bytes(f):
    tracemalloc.start()
    try:
        f()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_im2col_buffer_stays_under_budget():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 64, 64, 8), dtype=np.float32)
    w = rng.standard_normal((3, 3, 8, 16), dtype=np.float32)
    out_bytes = 2 * 64 * 64 * 16 * 4
    cols_bytes = 2 * 64 * 64 * 9 * 8 * 4  # 2.4 MB unchunked
    budget = 64 * 1024

    def run():  # the im2col path (the compiled direct conv makes no columns)
        with dj.no_grad(), dj.config.jit(False):
            fn.conv2d(x, w, padding="SAME")

    with dj.im2col_budget(budget):
        peak = _peak_bytes(run)
    assert peak < out_bytes + budget + 64 * 1024, peak
    # a scratch buffer as large, left by an earlier test, would be reused unseen
    im2col._workspace.__dict__.pop("buffers", None)
    with dj.im2col_budget(10 * cols_bytes):
        assert _peak_bytes(run) > cols_bytes  # the measurement does see the buffer


ERRORS = [
    (dict(x=(2, 5, 5)), ValueError, r"conv2d: Expected input to be a 4-d array of shape NHWC"),
    (dict(w=(3, 3, 1)), ValueError, r"conv2d: Expected filters to be a 4-d array"),
    (dict(x=(1, 5, 5, 3)), ValueError,
     r"Expected input channels to equal filters.shape\[2\] \* groups = 1 \* 1 = 1"),
    (dict(w=(6, 3, 1, 2)), ValueError,
     r"Expected the dilated kernel \(size 6\) to fit in the padded input \(size 5\)"),
    (dict(dilations=3, padding=((0, 1), (1, 1))), ValueError,
     r"dilated kernel \(size 7\) to fit in the padded input \(size 6\) along spatial dim 0"),
    (dict(strides=0), ValueError, r"conv2d: Expected strides to be an int or a tuple of 2 ints, "
     r"each >= 1. Received: strides=0"),
    (dict(dilations=(1, -1)), ValueError, r"Expected dilations to be .* Received: dilations"),
    (dict(strides=(1, 2, 3)), ValueError, r"Expected strides to be an int or a tuple of 2 ints"),
    (dict(strides=[2, 1, 1, 1]), ValueError, r"Expected strides to be a full-rank list with 1"),
    (dict(w=(0, 3, 1, 2)), ValueError, r"Expected every dimension of filters to be >= 1"),
    (dict(x=(1, 5, 5, 4), w=(3, 3, 2, 5), groups=2), ValueError,
     r"Expected groups to divide the output channels filters.shape\[-1\]=5"),
    (dict(x=(1, 5, 5, 4), w=(3, 3, 2, 4), groups=3), ValueError,
     r"Expected input channels to equal filters.shape\[2\] \* groups = 2 \* 3 = 6"),
    (dict(groups=0), ValueError, r"Expected groups to be an int >= 1"),
    (dict(padding="FULL"), ValueError, r"conv2d: Expected padding to be one of \('valid', "
     r"'same'\). Received: padding='FULL'"),
    (dict(padding=((1, 1),)), ValueError, r"Expected padding to be 'valid', 'same'"),
    (dict(padding=[[1, 0], [1, 1], [0, 0], [0, 0]]), ValueError,
     r"explicit full-rank list with \[0, 0\] at the batch and channel positions"),
    (dict(padding_mode="mirror"), ValueError, r"Expected padding_mode to be one of \('zeros', "
     r"'reflect', 'replicate', 'circular'\). Received: padding_mode='mirror'"),
    (dict(padding=5, padding_mode="reflect"), ValueError,
     r"Expected padding to be smaller than the input for padding_mode='reflect'; spatial dim 0 "
     r"has size 5"),
    (dict(data_format="NCWH"), ValueError, r"Expected data_format to be one of"),
    (dict(bias=np.zeros(3)), ValueError, r"Expected bias to have shape \(2,\)"),
]


@pytest.mark.parametrize("spec,error,match", ERRORS, ids=[m[:40] for _, _, m in ERRORS])
def test_conv_errors(spec, error, match):
    spec = dict(spec)
    x = np.zeros(spec.pop("x", (1, 5, 5, 1)))
    w = np.zeros(spec.pop("w", (3, 3, 1, 2)))
    with pytest.raises(error, match=match):
        fn.conv2d(x, w, **spec)


def test_conv_type_errors():
    with pytest.raises(TypeError, match=r"conv2d: Expected input to be a numeric array or "
                                        r"Tensor"):
        fn.conv2d([["a"]], np.zeros((1, 1, 1, 1)))
    with pytest.raises(TypeError, match=r"conv1d: Expected filters to be a numeric array"):
        fn.conv1d(np.zeros((1, 3, 1)), np.array([[["x"]]]))
    with pytest.raises(ValueError, match=r"conv: Expected filters to be a 3-d, 4-d or 5-d array"):
        fn.conv(np.zeros((1, 3, 1)), np.zeros((3, 1)))


@pytest.mark.parametrize("strides", [1, 2])
def test_empty_batch_gives_empty_outputs_and_zero_filter_gradient(strides, kernels):
    x = dj.Tensor(np.zeros((0, 8, 8, 3), np.float32), requires_grad=True)
    w = dj.Tensor(np.ones((3, 3, 3, 4), np.float32), requires_grad=True)
    y = fn.conv2d(x, w, strides=strides, padding="SAME")
    assert y.shape == (0, 8 // strides, 8 // strides, 4)
    y.sum().backward()
    assert x.grad.shape == (0, 8, 8, 3)
    np.testing.assert_array_equal(w.grad.numpy(), np.zeros((3, 3, 3, 4)))
