"""Initializers: fans as Keras, distribution statistics, determinism, registry round trips."""

import math

import numpy as np
import pytest

import dojang as dj
from dojang import activations as A
from dojang import initializers as I
from dojang import regularizers as R
from dojang.random import make_rng, set_seed


@pytest.mark.parametrize("shape, fans", [
    ((), (1, 1)), ((7,), (7, 7)), ((5, 3), (5, 3)), ((3, 3, 4, 8), (36, 72)),
    ((5, 4, 6), (20, 30)), ((2, 3, 3, 2, 5), (36, 90)),
])
def test_compute_fans(shape, fans):
    assert I.compute_fans(shape) == fans


# (name, expected variance as a function of fans, bound or None, truncated)
_CASES = [
    ("glorot_uniform", lambda i, o: 2 / (i + o), lambda i, o: math.sqrt(6 / (i + o)), False),
    ("glorot_normal", lambda i, o: 2 / (i + o), None, True),
    ("he_uniform", lambda i, o: 2 / i, lambda i, o: math.sqrt(6 / i), False),
    ("he_normal", lambda i, o: 2 / i, None, True),
    ("lecun_uniform", lambda i, o: 1 / i, lambda i, o: math.sqrt(3 / i), False),
    ("lecun_normal", lambda i, o: 1 / i, None, True),
]


@pytest.mark.parametrize("name, var, bound, truncated", _CASES)
def test_variance_scaling_statistics(name, var, bound, truncated):
    shape = (3, 3, 16, 32)  # fan_in 144, fan_out 288, 4608 values
    fan_in, fan_out = I.compute_fans(shape)
    w = I.get(name)(shape, "float64", make_rng(0))
    assert w.shape == shape and w.dtype == np.float64
    n = w.size
    expected = var(fan_in, fan_out)
    # sample variance of n draws: relative standard error about sqrt(2 / n) ~ 2 %
    assert abs(w.var() / expected - 1) < 6 * math.sqrt(2 / n)
    assert abs(w.mean()) < 6 * math.sqrt(expected / n)
    if bound is not None:
        assert np.abs(w).max() <= bound(fan_in, fan_out)
    if truncated:  # Keras truncates at two stddevs of the untruncated normal
        stddev = math.sqrt(expected) / 0.87962566103423978
        assert np.abs(w).max() <= 2 * stddev
        assert np.abs(w).max() > 1.8 * stddev


def test_random_normal_uniform_constant():
    w = I.RandomNormal(mean=1.0, stddev=0.5)((100, 100), rng=make_rng(1))
    assert w.dtype == np.float32
    assert abs(w.mean() - 1.0) < 6 * 0.5 / 100 and abs(w.std() / 0.5 - 1) < 0.05
    u = I.get({"class_name": "RandomUniform", "config": {"minval": 2.0, "maxval": 3.0}})(
        (1000,), "float64", make_rng(2))
    assert u.min() >= 2.0 and u.max() < 3.0 and abs(u.mean() - 2.5) < 0.05
    np.testing.assert_array_equal(I.get("zeros")((2, 3)), np.zeros((2, 3), np.float32))
    np.testing.assert_array_equal(I.get("ones")((2,), "float64"), np.ones(2))
    np.testing.assert_array_equal(I.Constant(3.5)((2, 2)), np.full((2, 2), 3.5, np.float32))
    t = I.TruncatedNormal(stddev=2.0)((5000,), "float64", make_rng(3))
    assert np.abs(t).max() <= 4.0


def test_determinism():
    init = I.get("glorot_uniform")
    a = init((4, 5), "float32", make_rng(11))
    b = init((4, 5), "float32", make_rng(11))
    np.testing.assert_array_equal(a, b)
    # one seed gives the same draws in float32 and float64 (drawn in float64, then cast)
    np.testing.assert_allclose(init((4, 5), "float64", make_rng(11)), a, rtol=1e-6)
    set_seed(3)
    c1, c2 = init((4, 5)), init((4, 5))
    set_seed(3)
    np.testing.assert_array_equal(init((4, 5)), c1)
    np.testing.assert_array_equal(init((4, 5)), c2)
    seeded = I.HeNormal(seed=9)
    np.testing.assert_array_equal(seeded((3, 3)), seeded((3, 3)))


@pytest.mark.parametrize("obj", [
    I.GlorotUniform(seed=1), I.HeNormal(), I.Constant(2.0), I.RandomNormal(0.5, 0.1),
    I.RandomUniform(-1.0, 2.0), I.VarianceScaling(2.0, "fan_out", "untruncated_normal"),
    I.LecunNormal(), I.Zeros(),
])
def test_initializer_serialize_round_trip(obj):
    config = I.serialize(obj)
    again = I.deserialize(config)
    assert type(again) is type(obj) and again.get_config() == obj.get_config()
    assert I.get(type(obj).__name__) is not None


def test_get_variants_and_errors():
    assert isinstance(I.get("GlorotUniform"), I.GlorotUniform)
    assert isinstance(I.get(I.HeUniform), I.HeUniform)
    inst = I.Ones()
    assert I.get(inst) is inst and I.get(None) is None
    with pytest.raises(ValueError, match="Unknown initializer: 'glorot'"):
        I.get("glorot")
    with pytest.raises(TypeError, match="Could not interpret initializer identifier: 3"):
        I.get(3)
    with pytest.raises(ValueError, match="VarianceScaling: Expected mode to be one of"):
        I.VarianceScaling(mode="fan")
    with pytest.raises(ValueError, match=r"RandomNormal: Expected stddev to be a number in "
                                         r"\(0.0, inf\)\. Received: stddev=0"):
        I.RandomNormal(stddev=0)
    with pytest.raises(ValueError, match="Expected a initializer config of the form"):
        I.deserialize({"name": "x"})


def test_regularizers():
    w = dj.Tensor(np.array([[1.0, -2.0], [3.0, 0.5]]), requires_grad=True)
    pen = R.get("l1_l2")
    assert pen.get_config() == {"l1": 0.0, "l2": 0.0} and float(pen(w)) == 0.0
    reg = R.L1L2(l1=0.1, l2=0.01)
    out = reg(w)
    w_np = w.numpy()
    np.testing.assert_allclose(float(out), 0.1 * np.abs(w_np).sum() + 0.01 * (w_np**2).sum())
    out.backward()
    np.testing.assert_allclose(w.grad.numpy(), 0.1 * np.sign(w_np) + 0.02 * w_np)
    assert float(R.get("l2")(w)) == pytest.approx(0.01 * (w_np**2).sum())
    assert float(R.L1(0.5)(w)) == pytest.approx(0.5 * np.abs(w_np).sum())
    for obj in (R.L1(0.3), R.L2(0.2), R.L1L2(0.1, 0.2)):
        again = R.deserialize(R.serialize(obj))
        assert type(again) is type(obj) and again.get_config() == obj.get_config()
    with pytest.raises(ValueError, match="L2: Expected l2 to be a number in"):
        R.L2(-1.0)
    assert R.get(None) is None


def test_activations_registry():
    x = dj.Tensor(np.array([-1.0, 0.5, 2.0]))
    assert A.get(None) is A.linear and A.get("linear")(x) is x
    np.testing.assert_allclose(A.get("relu")(x).numpy(), [0.0, 0.5, 2.0])
    np.testing.assert_allclose(A.get("sigmoid")(x).numpy(), 1 / (1 + np.exp([1.0, -0.5, -2.0])))
    sm = A.get("softmax")(x).numpy()
    np.testing.assert_allclose(sm, np.exp(x.numpy()) / np.exp(x.numpy()).sum())
    np.testing.assert_allclose(A.get("leaky_relu")(x).numpy(), [-0.2, 0.5, 2.0])
    for name in ("relu", "tanh", "elu", "gelu", "softmax", "log_softmax", "sigmoid"):
        fn = A.get(name)
        assert A.serialize(fn) == name and A.deserialize(name) is fn
    with pytest.raises(ValueError, match="Unknown activation: 'relux'"):
        A.get("relux")
    with pytest.raises(ValueError, match="Cannot serialize activation"):
        A.serialize(lambda t: t)
