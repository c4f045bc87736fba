"""Dropout and batch normalization: reproducible masks, the PyTorch oracle in training and
inference mode for both layouts, running statistics, gradients and argument checks."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dojang as dj
import dojang.functional as djf
from tests.helpers import assert_close, gradcheck, torch_oracle

torch.set_num_threads(1)


# ---------------------------------------------------------------------------- dropout
def _expected_mask(seed, shape, rate, dtype=np.float32):
    keep = np.random.default_rng(seed).random(shape, dtype=np.float32) >= rate
    return keep.astype(dtype) / dtype(1 - rate)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_mask_comes_from_the_generator(dtype):
    x = np.random.default_rng(1).standard_normal((4, 5)).astype(dtype)
    a = djf.dropout(x, 0.3, np.random.default_rng(7))
    b = djf.dropout(x, 0.3, np.random.default_rng(7))
    c = djf.dropout(x, 0.3, np.random.default_rng(8))
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.array_equal(a.numpy(), c.numpy())
    np.testing.assert_allclose(a.numpy(), x * _expected_mask(7, x.shape, 0.3, dtype),
                               rtol=1e-6)
    assert a.dtype == dtype


def test_dropout_successive_calls_draw_new_masks():
    rng = np.random.default_rng(0)
    x = np.ones((50,), np.float32)
    assert not np.array_equal(djf.dropout(x, 0.5, rng).numpy(), djf.dropout(x, 0.5, rng).numpy())


def test_dropout_keeps_the_expectation():
    x = np.ones(200_000, np.float32)
    y = djf.dropout(x, 0.4, np.random.default_rng(3)).numpy()
    assert abs(y.mean() - 1.0) < 0.01
    assert abs((y == 0).mean() - 0.4) < 0.01
    np.testing.assert_allclose(np.unique(y), [0.0, 1 / 0.6], rtol=1e-6)


def test_dropout_gradient_is_mask_times_scale():
    x = dj.Tensor(np.random.default_rng(4).standard_normal((3, 6)), requires_grad=True)
    djf.dropout(x, 0.5, np.random.default_rng(5)).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), _expected_mask(5, (3, 6), 0.5, np.float64))
    gradcheck(lambda t: djf.dropout(t, 0.5, np.random.default_rng(5)), x.numpy())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dropout_torch_oracle_with_the_same_mask(dtype, device):
    x = np.random.default_rng(6).standard_normal((2, 3, 4))
    mask = _expected_mask(9, x.shape, 0.25, np.float64)
    torch_oracle(lambda t: djf.dropout(t, 0.25, np.random.default_rng(9)),
                 lambda t: t * torch.tensor(mask.astype(dtype)), x, dtype=dtype, device=device)


def test_dropout_noise_shape_shares_the_mask():
    x = np.ones((2, 3, 3, 4), np.float32)
    y = djf.dropout(x, 0.5, np.random.default_rng(0), noise_shape=(None, 1, 1, 4)).numpy()
    expected = _expected_mask(0, (2, 1, 1, 4), 0.5)
    np.testing.assert_array_equal(y, np.broadcast_to(expected, x.shape))


def test_dropout_off_returns_the_input():
    x = dj.Tensor(np.ones((2, 2), np.float32), requires_grad=True)
    assert djf.dropout(x, 0.5, np.random.default_rng(0), training=False) is x
    assert djf.dropout(x, 0.0, np.random.default_rng(0)) is x


# ---------------------------------------------------------------------------- batch norm
def _bn_inputs(shape, axis, seed=0):
    rng = np.random.default_rng(seed)
    c = shape[axis]
    x = rng.standard_normal(shape) * 2 + 0.5
    return x, rng.standard_normal(c) + 1, rng.standard_normal(c)


def _to_nchw(t, axis):
    """torch wants channels on axis 1."""
    return t if axis == 1 else torch.movedim(t, axis, 1)


def _from_nchw(t, axis):
    return t if axis == 1 else torch.movedim(t, 1, axis)


LAYOUTS = {
    "nhwc": ((2, 3, 5, 4), -1),
    "nchw": ((2, 4, 3, 5), 1),
    "dense": ((6, 3), -1),
    "nwc_batch1": ((1, 5, 3), -1),
    "ncdhw": ((2, 3, 2, 2, 3), 1),
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_matches_torch(layout, training, device, kernels):
    shape, axis = LAYOUTS[layout]
    x, gamma, beta = _bn_inputs(shape, axis)
    c = shape[axis]
    rm, rv = np.linspace(-0.5, 0.5, c), np.linspace(0.5, 2.0, c)
    eps = 1e-3

    def dj_fn(x, g, b):
        return djf.batch_normalization(x, g, b, dj.backend.to_device(rm, device),
                                       dj.backend.to_device(rv, device), training=training,
                                       epsilon=eps, axis=axis)

    def torch_fn(x, g, b):
        y = F.batch_norm(_to_nchw(x, axis), torch.tensor(rm, dtype=x.dtype),
                         torch.tensor(rv, dtype=x.dtype), g, b, training=training, eps=eps)
        return _from_nchw(y, axis)

    if device == "cpu":
        gradcheck(dj_fn, x, gamma, beta)
    for dtype in (np.float64, np.float32):
        torch_oracle(dj_fn, torch_fn, x, gamma, beta, dtype=dtype, device=device)


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_without_gamma_and_beta(training, kernels):
    x, _, _ = _bn_inputs((4, 3, 2), 1)
    rm, rv = np.zeros(3), np.full(3, 2.0)

    def dj_fn(x):
        return djf.batch_normalization(x, None, None, rm, rv, training=training, axis=1)

    gradcheck(dj_fn, x)
    torch_oracle(dj_fn, lambda x: F.batch_norm(x, torch.tensor(rm), torch.tensor(rv),
                                               training=training, eps=1e-3), x)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
def test_batch_norm_updates_running_statistics_like_keras(layout, dtype, device, kernels):
    shape, axis = LAYOUTS[layout]
    x, gamma, beta = (a.astype(dtype) for a in _bn_inputs(shape, axis, seed=1))
    c = shape[axis]
    old_mean, old_var = np.linspace(-1, 1, c).astype(dtype), np.linspace(1, 2, c).astype(dtype)
    moved = dj.backend.to_device(old_mean.copy(), device)  # updated in place
    running_var = dj.Tensor(old_var.copy()).to(device)  # a Tensor's data is updated in place too
    momentum = 0.9
    djf.batch_normalization(*(dj.Tensor(a).to(device) for a in (x, gamma, beta)), moved,
                            running_var, training=True, momentum=momentum, axis=axis)
    rm = dj.backend.to_numpy(moved)
    axes = tuple(i for i in range(x.ndim) if i != axis % x.ndim)
    x64 = x.astype(np.float64)
    tol = 1e-12 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(rm, momentum * old_mean + (1 - momentum) * x64.mean(axis=axes),
                               rtol=tol, atol=tol)
    np.testing.assert_allclose(running_var.numpy(),
                               momentum * old_var + (1 - momentum) * x64.var(axis=axes),
                               rtol=tol, atol=tol)
    assert rm.dtype == dtype and running_var.dtype == dtype
    # torch agrees on the mean with momentum = 1 - keras momentum (its variance is unbiased)
    t_mean, t_var = torch.tensor(old_mean.copy()), torch.tensor(old_var.copy())
    F.batch_norm(_to_nchw(torch.tensor(x), axis), t_mean, t_var, training=True,
                 momentum=1 - momentum)
    assert_close(rm, t_mean.numpy(), dtype)


def test_batch_norm_updates_running_statistics_under_no_grad():
    rm, rv = np.zeros(2), np.ones(2)
    with dj.no_grad():
        djf.batch_normalization(np.array([[1.0, 2.0], [3.0, 6.0]]), None, None, rm, rv,
                                training=True, momentum=0.5)
    np.testing.assert_allclose(rm, [1.0, 2.0])
    np.testing.assert_allclose(rv, [1.0, 2.5])


def test_batch_norm_training_output_is_normalized(kernels):
    x = np.random.default_rng(2).standard_normal((8, 4, 4, 3)) * 5 + 3
    y = djf.batch_normalization(x, None, None, None, None, training=True, epsilon=0.0).numpy()
    np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 1, 2)), 1, rtol=1e-12)


def test_batch_norm_keeps_float32(kernels):
    x = np.ones((2, 3), np.float32)
    for training in (True, False):
        y = djf.batch_normalization(x, np.ones(3), np.zeros(3), np.zeros(3), np.ones(3),
                                    training=training)
        assert y.dtype == np.float32


# ---------------------------------------------------------------------------- errors
BN = djf.batch_normalization


@pytest.mark.parametrize("call, exc, match", [
    (lambda: djf.dropout(np.ones(2), 1.0, np.random.default_rng(0)), ValueError,
     r"dropout: Expected rate to be a number in \[0.0, 1.0\). Received: rate=1.0"),
    (lambda: djf.dropout(np.ones(2), 0.5, 0), TypeError,
     r"dropout: Expected rng to be a numpy.random.Generator .* Received: rng=0"),
    (lambda: djf.dropout(np.ones((2, 3)), 0.5, np.random.default_rng(0), noise_shape=(2, 2)),
     ValueError, r"dropout: Expected noise_shape to have one entry per axis of x \(shape "
     r"\(2, 3\)\), each None, 1 or that axis' length. Received: noise_shape=\(2, 2\)"),
    (lambda: djf.dropout(np.ones(2), 0.5, np.random.default_rng(0), noise_shape=(1, 1)),
     ValueError, r"Received: noise_shape=\(1, 1\)"),
    (lambda: djf.dropout(np.ones(2), 0.5, np.random.default_rng(0), training=1), TypeError,
     r"dropout: Expected training to be a bool. Received: training=1"),
    (lambda: BN(np.ones((2, 3)), np.ones(4), None, None, None, True), ValueError,
     r"batch_normalization: Expected gamma of shape \(3,\). Received: gamma.shape=\(4,\)"),
    (lambda: BN(np.ones((2, 3)), None, None, None, None, False), ValueError,
     r"batch_normalization: Expected running_mean and running_var for inference"),
    (lambda: BN(np.ones((2, 3)), None, None, [0.0] * 3, np.ones(3), True), TypeError,
     r"Expected running_mean to be an array or a Tensor \(it is updated in place\). "
     r"Received: running_mean of type list"),
    (lambda: BN(np.ones((2, 3)), None, None, None, None, True, momentum=1.5), ValueError,
     r"Expected momentum to be a number in \[0.0, 1.0\]. Received: momentum=1.5"),
    (lambda: BN(np.ones((2, 3)), None, None, None, None, True, epsilon=-1.0), ValueError,
     r"Expected epsilon to be a number in \[0.0, inf\)"),
    (lambda: BN(np.ones((2, 3)), None, None, None, None, True, axis=2), ValueError,
     r"batch_normalization: Expected axis to be an int in \[-2, 2\)"),
    (lambda: BN(np.ones((2, 3), int), None, None, None, None, True), TypeError,
     r"Expected x to be a floating-point tensor"),
])
def test_error_messages(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
