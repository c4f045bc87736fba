"""Activations: finite differences, the PyTorch oracle (float64 and float32), stability."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dojang as dj
import dojang.functional as djf
from dojang.ops.activations import Sigmoid, Softmax, erf
from tests.helpers import gradcheck, torch_oracle

torch.set_num_threads(1)


def _away_from_kinks(shape, seed=0):
    """Random values at least 0.1 from 0, so finite differences never straddle a kink."""
    x = np.random.default_rng(seed).standard_normal(shape) * 2
    return np.where(x >= 0, x + 0.1, x - 0.1)


# (dojang op, torch op) pairs; each takes one tensor.
CASES = {
    "relu": (djf.relu, F.relu),
    "leaky_relu": (djf.leaky_relu, lambda x: F.leaky_relu(x, 0.2)),
    "leaky_relu_0.01": (lambda x: djf.leaky_relu(x, 0.01), lambda x: F.leaky_relu(x, 0.01)),
    "elu": (djf.elu, F.elu),
    "elu_0.5": (lambda x: djf.elu(x, 0.5), lambda x: F.elu(x, 0.5)),
    "sigmoid": (djf.sigmoid, torch.sigmoid),
    "tanh": (djf.tanh, torch.tanh),
    "gelu": (djf.gelu, F.gelu),
    "gelu_tanh": (lambda x: djf.gelu(x, approximate=True),
                  lambda x: F.gelu(x, approximate="tanh")),
    "softmax": (djf.softmax, lambda x: torch.softmax(x, -1)),
    "softmax_axis0": (lambda x: djf.softmax(x, axis=0), lambda x: torch.softmax(x, 0)),
    "softmax_axis1_4d": (lambda x: djf.softmax(x.reshape(2, 3, 2, 2), axis=1),
                         lambda x: torch.softmax(x.reshape(2, 3, 2, 2), 1)),
    "log_softmax": (djf.log_softmax, lambda x: torch.log_softmax(x, -1)),
    "log_softmax_axis0": (lambda x: djf.log_softmax(x, axis=0),
                          lambda x: torch.log_softmax(x, 0)),
}


@pytest.mark.parametrize("name", CASES)
def test_gradcheck(name):
    gradcheck(CASES[name][0], _away_from_kinks((4, 6)))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", CASES)
def test_torch_oracle(name, dtype, device):
    dj_fn, torch_fn = CASES[name]
    torch_oracle(dj_fn, torch_fn, _away_from_kinks((4, 6), seed=1) * 3, dtype=dtype,
                 device=device)


@pytest.mark.parametrize("name", CASES)
def test_keeps_float32(name):
    y = CASES[name][0](dj.Tensor(np.ones((4, 6), np.float32), requires_grad=True))
    assert y.dtype == np.float32


def test_relu_gradient_at_zero_is_zero():
    x = dj.Tensor(np.array([0.0, -1.0, 1.0]), requires_grad=True)
    djf.relu(x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 1.0])


def test_erf_matches_math_erf():
    x = np.linspace(-7, 7, 1001)
    np.testing.assert_array_equal(erf(x), [math.erf(v) for v in x])
    assert erf(x.astype(np.float32)).dtype == np.float32


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stable_for_huge_inputs(dtype):
    x = np.array([[-1e4, 0.0, 1e4], [1e4, 1e4, -1e4]], dtype=dtype)
    for fn in (djf.sigmoid, djf.tanh, djf.elu, djf.gelu, djf.softmax, djf.log_softmax,
               lambda t: djf.gelu(t, approximate=True)):
        t = dj.Tensor(x, requires_grad=True)
        y = fn(t)
        y.sum().backward()
        assert np.isfinite(y.numpy()).all() and np.isfinite(t.grad.numpy()).all()
    np.testing.assert_allclose(djf.softmax(x).numpy(), [[0, 0, 1], [0.5, 0.5, 0]])
    np.testing.assert_allclose(djf.log_softmax(x).numpy()[0], [-2e4, -1e4, 0])
    np.testing.assert_allclose(djf.sigmoid(x).numpy()[0], [0, 0.5, 1])


def test_softmax_and_sigmoid_expose_their_logits_for_the_losses():
    x = dj.Tensor(np.array([[1.0, 2.0, 3.0]]), requires_grad=True)
    for fn, cls in ((djf.softmax, Softmax), (djf.sigmoid, Sigmoid)):
        logits = x * 2
        y = fn(logits)
        assert isinstance(y.creator, cls) and y.creator.logits is logits
        y.sum().backward()
        assert y.creator.logits is None  # the graph is freed


def test_softmax_rows_sum_to_one_and_log_softmax_is_its_log():
    x = np.random.default_rng(2).standard_normal((3, 5, 4))
    for axis in (0, 1, -1):
        p = djf.softmax(x, axis=axis).numpy()
        np.testing.assert_allclose(p.sum(axis=axis), 1.0, rtol=1e-12)
        np.testing.assert_allclose(djf.log_softmax(x, axis=axis).numpy(), np.log(p),
                                   rtol=1e-12)


@pytest.mark.parametrize("call, exc, match", [
    (lambda: djf.relu("abc"), TypeError, r"relu: Expected features to be a Tensor"),
    (lambda: djf.relu(np.array([1, 2])), TypeError,
     r"relu: Expected features to be a floating-point tensor. Received: features with "
     r"dtype=int64"),
    (lambda: djf.leaky_relu([1.0], alpha="x"), TypeError,
     r"leaky_relu: Expected alpha to be a number. Received: alpha='x'"),
    (lambda: djf.elu([1.0], alpha=None), TypeError, r"elu: Expected alpha to be a number"),
    (lambda: djf.gelu([1.0], approximate="tanh"), TypeError,
     r"gelu: Expected approximate to be a bool. Received: approximate='tanh'"),
    (lambda: djf.softmax([[1.0]], axis=2), ValueError,
     r"softmax: Expected axis to be an int in \[-2, 2\) for an input of rank 2. "
     r"Received: axis=2"),
    (lambda: djf.log_softmax(np.float64(1.0)), ValueError,
     r"log_softmax: Expected logits of rank >= 1. Received: logits.shape=\(\)"),
    (lambda: djf.softmax([1.0], axis=0.5), ValueError, r"Received: axis=0.5"),
])
def test_error_messages(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
