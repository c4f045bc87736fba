"""Depthwise-separable blocks: the compiled depthwise kernels and the 1x1 GEMM path.

The block (``DepthwiseConv2D`` then a 1x1 ``Conv2D``) runs through the planner's
compiled depthwise kernels and one GEMM per pass for the 1x1 convolution; here it is
compared with the same block in PyTorch (forward, the input gradient and every weight
gradient), with finite differences on a tiny case, and its plan is checked to name what
runs. ``tests/test_kernel_variants.py`` compares each compiled kernel with the NumPy
reference on its own.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dojang as dj
from dojang import functional as fn
from dojang import layers as L
from dojang.kernels import registry
from tests.helpers import assert_close, gradcheck
from tests.test_conv import same_pads

torch.set_num_threads(1)

# (batch, H, W, C, kernel, strides, padding, multiplier, activation, data format, dtype)
BLOCKS = [
    (2, 7, 9, 5, 3, 1, "same", 1, "relu", "channels_last", np.float32),
    (1, 8, 10, 4, 3, 2, "valid", 1, None, "channels_last", np.float64),
    (3, 9, 7, 3, 3, 2, "same", 2, None, "channels_last", np.float32),
    (2, 6, 5, 3, (5, 3), 1, "valid", 2, "relu", "channels_last", np.float64),
    (2, 6, 7, 4, 3, 1, "same", 1, None, "channels_first", np.float64),
]


def _torch_block(x, dw_layer, pw_layer, strides, padding, activation, channels_last):
    """The block in PyTorch on the same weights (float64): explicit padding, grouped
    conv2d, optional ReLU, 1x1 conv2d; returns (output NHWC or NCHW, leaf tensors)."""
    k = dw_layer.depthwise_kernel.numpy()  # (KH, KW, C, M) -> (C*M, 1, KH, KW)
    kh, kw, c, m = k.shape
    tdw = torch.tensor(k.reshape(kh, kw, c * m).transpose(2, 0, 1)[:, None].astype(np.float64),
                       requires_grad=True)
    tdb = torch.tensor(dw_layer.bias.numpy().astype(np.float64), requires_grad=True)
    tpw = torch.tensor(pw_layer.kernel.numpy().transpose(3, 2, 0, 1).astype(np.float64),
                       requires_grad=True)
    tpb = torch.tensor(pw_layer.bias.numpy().astype(np.float64), requires_grad=True)
    tx = torch.tensor(x.astype(np.float64), requires_grad=True)
    nchw = tx.permute(0, 3, 1, 2) if channels_last else tx
    if padding == "same":
        (pt, pb), (pl, pr) = (same_pads(n, kk, strides, 1)
                              for n, kk in zip(nchw.shape[2:], (kh, kw), strict=True))
        nchw = F.pad(nchw, (pl, pr, pt, pb))
    mid = F.conv2d(nchw, tdw, tdb, stride=strides, groups=c)
    if activation == "relu":
        mid = torch.relu(mid)
    y = F.conv2d(mid, tpw, tpb)
    return (y.permute(0, 2, 3, 1) if channels_last else y), (tx, tdw, tdb, tpw, tpb)


@pytest.mark.parametrize("case", BLOCKS, ids=lambda c: f"n{c[0]}-s{c[5]}-{c[6]}-m{c[7]}-{c[9]}")
def test_block_matches_torch(case):
    n, h, w, c, kernel, strides, padding, mult, activation, fmt, dtype = case
    last = fmt == "channels_last"
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, h, w, c) if last else (n, c, h, w)).astype(dtype)
    with dj.default_dtype(dtype):
        dw = L.DepthwiseConv2D(kernel, strides=strides, padding=padding, depth_multiplier=mult,
                               activation=activation, data_format=fmt,
                               bias_initializer="random_normal")
        pw = L.Conv2D(6, 1, data_format=fmt, bias_initializer="random_normal")
        tx = dj.Tensor(x, requires_grad=True)
        y = pw(dw(tx))
    ty, leaves = _torch_block(x, dw, pw, strides, padding, activation, last)
    assert_close(y.numpy(), ty.detach().numpy(), dtype)
    r = rng.standard_normal(y.shape)
    (y * dj.Tensor(r.astype(dtype))).sum().backward()
    (ty * torch.tensor(r)).sum().backward()
    kh, kw = dw.depthwise_kernel.shape[:2]
    ours = [tx.grad.numpy(), dw.depthwise_kernel.grad.numpy(), dw.bias.grad.numpy(),
            pw.kernel.grad.numpy(), pw.bias.grad.numpy()]
    theirs = [leaves[0].grad.numpy(),
              leaves[1].grad.numpy()[:, 0].transpose(1, 2, 0).reshape(kh, kw, c, mult),
              leaves[2].grad.numpy(), leaves[3].grad.numpy().transpose(2, 3, 1, 0),
              leaves[4].grad.numpy()]
    for a, b in zip(ours, theirs, strict=True):
        assert_close(a, b, dtype)


def test_plan_names_the_compiled_depthwise_and_the_1x1_gemm():
    dwp = dj.kernels.plan(L.DepthwiseConv2D(3, padding="same", activation="relu"),
                          (64, 32, 32, 64))
    assert (dwp.forward, dwp.input_gradient, dwp.filter_gradient, dwp.bias_relu) == (
        "depthwise (compiled)",) * 3 + ("fused",)
    assert "vector multiply-add across the channels" in str(dwp)
    pwp = dj.kernels.plan(L.Conv2D(64, 1), (64, 32, 32, 64))
    assert (pwp.forward, pwp.input_gradient, pwp.filter_gradient, pwp.keep_columns) == (
        "gemm", "gemm", "direct", False)
    assert "no im2col copy" in str(pwp) and "long N*H*W inner dimension" in str(pwp)
    odd = dj.kernels.plan(L.Conv2D(5, 1), (2, 9, 9, 3))  # no direct tile: the GEMM
    assert (odd.forward, odd.input_gradient, odd.filter_gradient) == ("gemm",) * 3
    assert dj.kernels.plan(L.Conv2D(64, 1, strides=2), (8, 9, 9, 64)).forward != "gemm"
    with dj.config.kernels("reference"):
        assert dj.kernels.plan(L.DepthwiseConv2D(3), (2, 9, 9, 4)).forward == "depthwise (numpy)"


@pytest.mark.parametrize("mult,strides,padding", [(1, 2, "SAME"), (2, 1, "VALID")])
def test_depthwise_gradients_match_finite_differences(mult, strides, padding):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 5, 6, 2))
    w = rng.standard_normal((3, 3, 1, 2 * mult))
    b = rng.standard_normal(2 * mult)
    assert registry.select("conv.depthwise", x, w, np.empty((1, 1, 1, 2 * mult)), (1, 1),
                           (1, 1), ((0, 0), (0, 0)), b, False).name == "numba"

    def f(x, w, b):
        return fn.conv2d(x, w, strides=strides, padding=padding, groups=2, bias=b,
                         activation="relu")

    gradcheck(f, x, w, b, atol=1e-6, rtol=1e-5)


def test_depthwise_filter_gradient_does_not_depend_on_the_threads():
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba has one thread here; two are needed to compare")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 11, 9, 8)).astype(np.float32)
    gy = rng.standard_normal((5, 11, 9, 8)).astype(np.float32)
    args = (x, gy, (3, 3, 1, 8), (1, 1), (1, 1), ((1, 1), (1, 1)), True)
    results = []
    for threads in (1, 2):
        saved = numba.get_num_threads()
        numba.set_num_threads(threads)
        try:
            results.append(registry.dispatch("conv.depthwise_filter_grad", *args))
        finally:
            numba.set_num_threads(saved)
    for a, b in zip(*results, strict=True):
        np.testing.assert_array_equal(a, b)
