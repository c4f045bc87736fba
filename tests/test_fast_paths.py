"""The performance paths: fused conv+relu and conv+tanh, single-channel im2col, tiled
max-pool picks, and the batch split over threads, each against the plain path or PyTorch."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dojang as dj
from dojang import functional as fn
from dojang.kernels import threads
from dojang.kernels.pool import reference as kpool
from tests.helpers import conv_pool_dense_steps, gradcheck, torch_oracle
from tests.ref_pool import ref_max_pool, ref_max_pool_grad

torch.set_num_threads(1)


@pytest.fixture(params=[1, 3], ids=["1thread", "3threads"])
def split(request, monkeypatch):
    """Run with no threads, and with every array split over 3 threads."""
    monkeypatch.setattr(threads, "num_threads", lambda: request.param)
    monkeypatch.setattr(threads, "MIN_ITEMS", 0)
    return request.param


def _torch_conv(activation):
    def conv(x, w, b):
        y = F.conv2d(x.permute(0, 3, 1, 2), w.permute(3, 2, 0, 1), b, padding=1)
        return getattr(torch, activation)(y).permute(0, 2, 3, 1)
    return conv


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("cin", [1, 3])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_fused_conv_activation_matches_torch(cin, dtype, activation, split, device, kernels):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 6, 7, cin))
    w = rng.standard_normal((3, 3, cin, 4))
    b = rng.standard_normal(4)
    torch_oracle(lambda x, w, b: fn.conv2d(x, w, padding="SAME", bias=b,
                                           activation=activation),
                 _torch_conv(activation), x, w, b, dtype=dtype, device=device)


@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
def test_fused_conv_relu_equals_conv_then_relu(data_format, split, kernels):
    rng = np.random.default_rng(1)
    shape = (3, 5, 6, 2) if data_format == "NHWC" else (3, 2, 5, 6)
    x0, w0 = rng.standard_normal(shape), rng.standard_normal((3, 3, 2, 4))
    b0 = rng.standard_normal(4)
    grads = []
    for fused in (True, False):
        x, w, b = (dj.Tensor(a.copy(), requires_grad=True) for a in (x0, w0, b0))
        if fused:
            y = fn.conv2d(x, w, padding="SAME", bias=b, data_format=data_format,
                          activation="relu")
        else:
            y = fn.relu(fn.conv2d(x, w, padding="SAME", bias=b, data_format=data_format))
        (y * y).sum().backward()
        grads.append([y.numpy(), x.grad.numpy(), w.grad.numpy(), b.grad.numpy()])
    for a, e in zip(*grads, strict=True):
        np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_fused_conv_activation_gradcheck(activation, kernels):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 4, 5, 1))
    w = rng.standard_normal((3, 3, 1, 3))
    b = rng.standard_normal(3)
    gradcheck(lambda x, w, b: fn.conv2d(x, w, padding="SAME", bias=b, activation=activation),
              x, w, b)


def test_conv_activation_is_checked():
    with pytest.raises(ValueError, match=r"conv2d: Expected activation to be None, 'relu' or "
                                         r"'tanh' .*activation='sigmoid'"):
        fn.conv2d(np.ones((1, 3, 3, 1)), np.ones((3, 3, 1, 1)), activation="sigmoid")


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("shape,k", [((4, 6, 8, 3), (2, 2)), ((3, 7, 9, 2), (2, 3)),
                                     ((3, 9, 2), (3,)), ((2, 4, 6, 5, 2), (2, 3, 2)),
                                     ((3, 4, 5, 2), (1, 1))])
def test_tiled_max_pool_picks_match_loop_reference(shape, k, ties, split):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 2, shape).astype(np.float64) if ties else rng.standard_normal(shape)
    pads = ((0, 0),) * len(k)
    picks = []
    y = kpool.max_pool(x, k, k, pads, picks=picks)
    np.testing.assert_array_equal(y, ref_max_pool(x, k, k, pads)[0])
    assert not np.shares_memory(y, x)
    gy = rng.standard_normal(y.shape)
    gx = kpool.max_pool_tiled_backward(gy, y, picks, x.shape, k)
    np.testing.assert_array_equal(gx, ref_max_pool_grad(x, gy, k, k, pads))


def test_tiled_max_pool_nan_window_passes_no_gradient():
    x = np.arange(32.0).reshape(2, 4, 4, 1)
    x[0, 0, 1, 0] = np.nan
    picks = []
    y = kpool.max_pool(x, (2, 2), (2, 2), ((0, 0), (0, 0)), picks=picks)
    gx = kpool.max_pool_tiled_backward(np.ones_like(y), y, picks, x.shape, (2, 2))
    assert np.isnan(y[0, 0, 0, 0]) and gx[0, :2, :2].sum() == 0 and gx.sum() == y.size - 1


def test_training_step_is_deterministic():
    """The same seed gives bitwise the same weights after a few threaded training steps."""
    a, b = conv_pool_dense_steps(), conv_pool_dense_steps()
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("cin,groups", [(1, 1), (4, 1), (4, 2)])
def test_kept_columns_filled_in_cache_sized_chunks(cin, groups, monkeypatch, split, device):
    """Several chunks whose columns are all kept for backward give the unchunked result."""
    kplan = importlib.import_module("dojang.kernels.plan")
    monkeypatch.setattr(kplan, "CACHE_CHUNK_BYTES", 600)  # about one sample per chunk
    rng = np.random.default_rng(6)
    x, w, b = (rng.standard_normal((4, 5, 6, cin)), rng.standard_normal((3, 3, cin // groups, 4)),
               rng.standard_normal(4))

    def torch_fn(x, w, b):
        y = F.conv2d(x.permute(0, 3, 1, 2), w.permute(3, 2, 0, 1), b, padding=1, groups=groups)
        return y.permute(0, 2, 3, 1)

    torch_oracle(lambda x, w, b: fn.conv2d(x, w, padding="SAME", bias=b, groups=groups),
                 torch_fn, x, w, b, device=device)


def test_conv_layer_with_relu_uses_the_fused_path_and_equals_conv_then_relu():
    import dojang as dj

    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 7, 6, 3))
    fused = dj.layers.Conv2D(4, 3, padding="same", activation="relu", dtype="float64")
    plain = dj.layers.Conv2D(4, 3, padding="same", dtype="float64")
    fused.build(x.shape)
    plain.build(x.shape)
    plain.set_weights(fused.get_weights())
    y_fused = fused(x)
    y_plain = dj.functional.relu(plain(x))
    assert type(y_fused.creator).__name__ == "Conv"
    np.testing.assert_allclose(y_fused.numpy(), y_plain.numpy(), rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(y_fused.shape)
    y_fused.backward(g)
    y_plain.backward(g)
    for a, b in zip(fused.trainable_weights, plain.trainable_weights):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-12, atol=1e-12)
