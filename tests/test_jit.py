"""The compiled kernels (``dojang.kernels.*.numba``) against the NumPy kernels they replace.

The NumPy kernels are the reference (themselves checked against PyTorch and loop
references elsewhere); here every compiled kernel must give the same values, the same
first-maximum picks and NaN handling, and results that do not depend on numba's thread
count. The op-level oracle tests run on both paths through the ``kernels`` fixture.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dojang as dj
from dojang import functional as fn
from dojang import shapes
from dojang.kernels import compile
from dojang.kernels.batchnorm import numba as jbn
from dojang.kernels.conv import numba as jconv
from dojang.kernels.pool import numba as jpool
from dojang.kernels.pool import reference as kpool
from tests.helpers import conv_pool_dense_steps, run_in_threads

numba = pytest.importorskip("numba", reason="numba is not installed (the `fast` extra)")


def _pool_case(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    h, w = draw(st.integers(kh, 9)), draw(st.integers(kw, 9))
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 7))
    return (n, h, w, c), (kh, kw), (sh, sw), ((ph, ph), (pw, pw))


@st.composite
def pool_cases(draw):
    return _pool_case(draw)


def _data(shape, rng, ties):
    if ties:  # few distinct values: many windows have tied maxima
        return rng.integers(0, 3, shape).astype(np.float32)
    return rng.standard_normal(shape).astype(np.float32)


@settings(max_examples=60, deadline=None)
@given(case=pool_cases(), ties=st.booleans(), seed=st.integers(0, 2**16))
def test_max_pool_equals_numpy_kernel(case, ties, seed):
    shape, k, s, p = case
    rng = np.random.default_rng(seed)
    x = _data(shape, rng, ties)
    out = shapes.pool_output_shape(shape[1:3], k, s, p)
    y, pick = jpool.max_pool(x, k, s, p, out)
    y_ref = kpool.max_pool(x, k, s, p)
    np.testing.assert_array_equal(y, y_ref)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    gx = jpool.max_pool_backward(gy, pick, x.shape, k, s, p)
    gx_ref = kpool.max_pool_backward(x, y_ref, gy, k, s, p)
    np.testing.assert_allclose(gx, gx_ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("k,s,p", [((2, 2), (2, 2), ((0, 0), (0, 0))),
                                   ((3, 3), (2, 2), ((1, 1), (1, 1)))], ids=["2x2", "3x3"])
def test_max_pool_nan_and_infinity_as_numpy(k, s, p):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 7, 7, 3))
    x[0, 0, 1, 0] = np.nan  # a NaN after a finite first tap
    x[0, 4, 4, 1] = np.nan
    x[1, 2:5, 2:5, 2] = -np.inf  # windows of -inf only: gradient to the first tap
    x[1, 0, 0, 0] = np.inf
    out = shapes.pool_output_shape(x.shape[1:3], k, s, p)
    y, pick = jpool.max_pool(x, k, s, p, out)
    y_ref = kpool.max_pool(x, k, s, p)
    np.testing.assert_array_equal(y, y_ref)  # NaN in the same places
    gy = rng.standard_normal(y.shape)
    gx = jpool.max_pool_backward(gy, pick, x.shape, k, s, p)
    # overlapping windows may add into one input in another order
    np.testing.assert_allclose(gx, kpool.max_pool_backward(x, y_ref, gy, k, s, p), rtol=1e-12)


@pytest.mark.parametrize("shape", [(3, 9, 7, 5), (2, 8, 8, 1)])
def test_max_pool_2x2_odd_edges_get_no_gradient(shape):
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    k = s = (2, 2)
    p = ((0, 0), (0, 0))
    y, pick = jpool.max_pool(x, k, s, p, (shape[1] // 2, shape[2] // 2))
    gx = jpool.max_pool_backward(np.ones_like(y), pick, x.shape, k, s, p)
    np.testing.assert_array_equal(gx, kpool.max_pool_backward(x, y, np.ones_like(y), k, s, p))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("relu", [True, False])
def test_bias_relu_equals_numpy(dtype, relu):
    rng = np.random.default_rng(3)
    y = rng.standard_normal((4, 5, 6, 7)).astype(dtype)
    y[0, 0, 0, :2] = np.nan
    b = rng.standard_normal(7).astype(dtype)
    ref = y + b
    if relu:
        ref = np.maximum(ref, 0)
    jconv.bias_relu_(y, b, relu)
    np.testing.assert_array_equal(y, ref)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_grad_bias_equals_numpy(dtype):
    rng = np.random.default_rng(4)
    y = np.maximum(rng.standard_normal((6, 5, 4, 8)), 0).astype(dtype)
    gy = rng.standard_normal(y.shape).astype(dtype)
    g, gb = jconv.relu_grad_bias(gy, y)
    ref = gy * (y > 0)
    np.testing.assert_array_equal(g, ref)
    np.testing.assert_allclose(gb, ref.sum(axis=(0, 1, 2)), rtol=1e-5, atol=1e-5)
    # a strided (channels-first, moved) gradient is read correctly
    g2, gb2 = jconv.relu_grad_bias(np.moveaxis(np.ascontiguousarray(np.moveaxis(gy, -1, 1)),
                                             1, -1), y)
    np.testing.assert_array_equal(g2, g)
    np.testing.assert_array_equal(gb2, gb)


def _seed_step(cin: int = 2, filters: int = 8):
    return conv_pool_dense_steps(n=16, cin=cin, filters=filters)


# 2 -> 8 channels: im2col + GEMM; 8 -> 16: the direct convolution (see test_direct.py)
LAYERS = pytest.mark.parametrize("cin,filters", [(2, 8), (8, 16)], ids=["im2col", "direct"])


@LAYERS
def test_results_do_not_depend_on_thread_count(cin, filters):
    before = numba.get_num_threads()
    try:
        runs = []
        for threads in sorted({1, before}):
            numba.set_num_threads(threads)
            runs.append(_seed_step(cin, filters))
    finally:
        numba.set_num_threads(before)
    for u, v in zip(runs[0], runs[-1], strict=True):
        np.testing.assert_array_equal(u, v)


@LAYERS
def test_training_steps_agree_with_the_numpy_kernels(cin, filters):
    with dj.config.jit(True):
        fast = _seed_step(cin, filters)
    with dj.config.jit(False):
        ref = _seed_step(cin, filters)
    for u, v in zip(fast, ref, strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-5)


def test_switches():
    assert compile.available()
    with dj.config.jit(False):
        assert not compile.enabled() and not compile.usable(np.zeros(2, np.float32))
        with dj.config.jit(True):
            assert compile.usable(np.zeros(2, np.float32))
    assert not compile.usable(np.zeros(2, np.int64))  # integers and float16 take NumPy
    assert not compile.usable(np.zeros(2, np.float16))
    with pytest.raises(TypeError, match="Expected enabled to be a bool. Received: enabled=1"):
        dj.config.jit(1)
    code = "from dojang.kernels import compile; print(compile.enabled())"
    env = dict(os.environ, DOJANG_JIT="0")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_equals_numpy_on_large_arrays(dtype):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((compile.MIN_ELEMENTWISE // 5 + 999, 5)).astype(dtype)
    x[0, :3] = [np.nan, -np.inf, np.inf]
    gy = rng.standard_normal(x.shape).astype(dtype)
    t = dj.Tensor(x, requires_grad=True)
    y = fn.relu(t)
    np.testing.assert_array_equal(y.numpy(), np.maximum(x, 0))
    y.backward(dj.Tensor(gy))
    np.testing.assert_array_equal(t.grad.numpy(), np.where(x > 0, gy, 0))
    with dj.config.jit(False):
        t2 = dj.Tensor(x, requires_grad=True)
        fn.relu(t2).backward(dj.Tensor(gy))
    np.testing.assert_array_equal(t.grad.numpy(), t2.grad.numpy())


def test_batch_norm_large_mean_is_exact_enough():
    """Two passes with float64 sums: a mean far from zero does not swamp the variance."""
    rng = np.random.default_rng(7)
    x = (1000 + rng.standard_normal((64, 8, 8, 4))).astype(np.float32)
    mean, var = jbn.batch_norm_stats(x)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(mean, x64.mean(axis=(0, 1, 2)), rtol=1e-6)
    np.testing.assert_allclose(var, x64.var(axis=(0, 1, 2)), rtol=1e-4)


@pytest.mark.parametrize("shape", [(300, 70), (300, 250)], ids=["serial", "threaded"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_step_is_bitwise_the_numpy_step(dtype, shape):
    rng = np.random.default_rng(8)
    start = rng.standard_normal(shape).astype(dtype)
    grads = [rng.standard_normal(start.shape).astype(dtype) for _ in range(3)]
    results = []
    for flag in (True, False):
        p = dj.Tensor(start.copy(), requires_grad=True)
        opt = dj.optimizers.Adam(learning_rate=0.01)
        with dj.config.jit(flag):
            for g in grads:
                p.grad = dj.Tensor(g)
                opt.apply([p])
        results.append(p.numpy())
    np.testing.assert_array_equal(results[0], results[1])


def test_compiles_without_the_disk_cache_when_it_is_not_writable(monkeypatch):
    real = numba.njit
    calls = []

    def njit(fn, **options):
        calls.append(options["cache"])
        if options["cache"]:
            raise RuntimeError("cannot cache function 'f': no locator available for file")
        return real(fn, **options)

    monkeypatch.setattr(numba, "njit", njit)
    f = compile.kernel(parallel=False)(lambda a: a + 1)
    assert f(np.float32(1)) == 2 and calls == [True, False]
    f2 = compile.kernel(parallel=False)(lambda a: a + 1)
    monkeypatch.setattr(numba, "njit", lambda fn, **o: (_ for _ in ()).throw(RuntimeError("x")))
    with pytest.raises(RuntimeError, match="x"):  # any other error is not swallowed
        f2(1)


def test_python_threads_may_run_kernels_at_once():
    """numba's workqueue pool takes one parallel launch at a time; a second thread runs
    the serial variant instead of aborting the process."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((512, 1024)).astype(np.float32)
    expected = np.maximum(x, 0)

    def work():
        for _ in range(100):
            np.testing.assert_array_equal(fn.relu(dj.Tensor(x)).numpy(), expected)

    run_in_threads(work, 3)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # 0/0 statistics
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_of_an_empty_batch(training):
    for flag in (True, False):
        with dj.config.jit(flag):
            x = dj.Tensor(np.zeros((0, 4, 4, 3), np.float32), requires_grad=True)
            mean, var = np.full(3, 0.5, np.float32), np.ones(3, np.float32)
            y = fn.batch_normalization(x, None, None, mean, var, training)
            assert y.shape == (0, 4, 4, 3)
            # an empty batch leaves the running statistics alone (no 0/0 NaN)
            np.testing.assert_array_equal(mean, np.full(3, 0.5, np.float32))
            np.testing.assert_array_equal(var, np.ones(3, np.float32))


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # NaN through GEMMs
def test_nonfinite_gradients_are_routed_alike_on_both_paths():
    """Masked positions get 0 even when the incoming gradient is inf or NaN (a select,
    as PyTorch's ReLU and max-pool backward), on the compiled and the NumPy path."""
    rng = np.random.default_rng(10)
    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    w = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    grads = []
    for flag in (True, False):
        with dj.config.jit(flag):
            tx, tw, tb = (dj.Tensor(a, requires_grad=True) for a in (x, w, b))
            h = fn.conv2d(tx, tw, bias=tb, activation="relu", padding="SAME")
            y = fn.max_pool2d(h, 2) * 1.0 + fn.max_pool2d(h, 3, 2, padding="SAME").sum()
            gy = np.ones(y.shape, np.float32)
            gy[0, 0, 0, :] = np.inf
            gy[1, 1, 1, :] = np.nan
            y.backward(dj.Tensor(gy))
            grads.append([t.grad.numpy() for t in (tx, tw, tb)])
    for u, v in zip(*grads, strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-4)  # same NaN/inf places


def test_relu_of_negative_zero_is_positive_zero_on_both_paths():
    x = np.full(compile.MIN_ELEMENTWISE, -0.0, np.float32)
    for flag in (True, False):
        with dj.config.jit(flag):
            assert not np.signbit(fn.relu(dj.Tensor(x)).numpy()).any()


def test_bias_gradient_sums_in_float64():
    rng = np.random.default_rng(11)
    y = np.ones((1, 512, 512, 2), np.float32)
    gy = rng.random(y.shape, dtype=np.float32)
    _, gb = jconv.relu_grad_bias(gy, y)
    exact = gy.astype(np.float64).sum(axis=(0, 1, 2))
    np.testing.assert_allclose(gb, exact, rtol=1e-6)
