"""The GPU kernels without a GPU: their CUDA source compiles (nvcc), and the same source,
run thread by thread on the CPU (``cuda_host``), equals the NumPy reference kernels.

The launch configuration and the engine's argument conversion are unit-tested here too.
On a machine with a GPU, ``make test-gpu`` runs the oracle suite on CuPy arrays instead.
"""

from __future__ import annotations

import math
import shutil
import subprocess

import numpy as np
import pytest

import dojang as dj
from dojang import config, shapes
from dojang.kernels import registry
from dojang.kernels.conv import im2col as ref_conv
from dojang.kernels.cuda import engine, launch, ops, source
from dojang.kernels.pool import reference as ref_pool
from tests import cuda_host
from tests.test_kernel_variants import assert_equals_reference

pytestmark = pytest.mark.skipif(cuda_host.compiler() is None,
                                reason="no host C++ compiler (g++) to run the CUDA sources")


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    eng = cuda_host.HostEngine(source.every_kernel(), str(tmp_path_factory.mktemp("cuda")))
    with engine.use(eng), config.jit(False):
        yield eng


def _rng(seed=0):
    return np.random.default_rng(seed)


# ---------------------------------------------------------------- source and launch
@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed")
def test_every_kernel_compiles_with_nvcc_for_hopper(tmp_path):
    kernels = source.every_kernel()
    path = tmp_path / "all.cu"
    path.write_text("".join(k.source for k in kernels))
    done = subprocess.run(["nvcc", "-arch=sm_90", "--ptx", "-o", str(tmp_path / "all.ptx"),
                           str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    ptx = (tmp_path / "all.ptx").read_text()
    for k in kernels:
        assert f".entry {k.name}(" in ptx


def test_kernel_names_are_unique_and_name_dtype_and_rank():
    names = [k.name for k in source.every_kernel()]
    assert len(names) == len(set(names))
    assert "dj_im2col_3d_double" in names and "dj_adam_float" in names


def test_only_float32_and_float64_get_kernels():
    with pytest.raises(TypeError, match="Expected a float32 or float64 array.*float16"):
        source.relu(np.float16)


@pytest.mark.parametrize("total, sms, expected", [
    (0, 132, 1), (1, 132, 1), (256, 132, 1), (257, 132, 2), (10**9, 132, 32 * 132),
    (10**6, 1, 32)])
def test_grid_covers_the_work_and_caps_the_blocks(total, sms, expected):
    blocks = launch.grid(total, sms)
    assert blocks == expected
    assert blocks * launch.BLOCK >= min(total, launch.WAVES * sms * launch.BLOCK)


def test_grid_refuses_nonsense():
    with pytest.raises(ValueError, match="Received: total=-1"):
        launch.grid(-1, 132)


def test_engine_converts_scalars_to_the_kernels_c_types():
    assert engine.scalar("long long", 3).dtype == np.int64
    assert engine.scalar("int", 1).dtype == np.int32
    assert engine.scalar("float", 0.5).dtype == np.float32
    assert engine.scalar("double*", 0) is None


def test_numpy_arrays_outside_a_host_scope_are_refused():
    with pytest.raises(TypeError, match="Expected a CuPy array"):
        ops.relu(np.ones(3, np.float32))


# ---------------------------------------------------------------- im2col / col2im
CONV_CASES = [
    # spatial, kernel, strides, dilations, pads, C, groups
    ((9,), (3,), (2,), (1,), ((1, 2),), 4, 2),
    ((7, 6), (3, 2), (1, 2), (2, 1), ((2, 1), (0, 1)), 3, 1),
    ((6, 5), (3, 3), (2, 1), (1, 1), ((1, 1), (1, 1)), 1, 1),
    ((4, 5, 3), (2, 3, 2), (1, 1, 2), (1, 1, 1), ((0, 1), (1, 1), (1, 0)), 4, 2),
]


def _geometry(spatial, kernel, strides, dilations, pads):
    return shapes.window_output_shape(spatial, kernel, strides, dilations, pads)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CONV_CASES)
def test_im2col_and_col2im_equal_the_reference(host, case, dtype):
    spatial, kernel, strides, dilations, pads, c, groups = case
    out = _geometry(spatial, kernel, strides, dilations, pads)
    x = _rng().standard_normal((2, *spatial, c)).astype(dtype)
    # a chunk of rows of the first output dim, as the memory-bounded path makes
    ranges = ((1, out[0]),) + tuple((0, o) for o in out[1:])
    m = 2 * math.prod(b - a for a, b in ranges)
    kc = math.prod(kernel) * c // groups
    want = np.full((groups, m, kc), np.nan, dtype)
    ref_conv._im2col_rows(x, want, kernel, strides, dilations, pads, ranges, groups)
    got = np.full_like(want, np.nan)
    ops.im2col(x, got, kernel, strides, dilations, pads, ranges, groups)
    np.testing.assert_array_equal(got, want)

    if groups == 1:  # the transposed (single-channel) column layout, filled in place
        transposed = np.full((kc, m), np.nan, dtype).T[None]
        ops.im2col(x, transposed, kernel, strides, dilations, pads, ranges)
        np.testing.assert_array_equal(transposed, want)

    dcols = _rng(1).standard_normal(want.shape).astype(dtype)
    gx_want = _rng(2).standard_normal(x.shape).astype(dtype)
    gx_got = gx_want.copy()
    ref_conv.col2im(dcols, gx_want, kernel, strides, dilations, pads, ranges, groups)
    ops.col2im(dcols, gx_got, kernel, strides, dilations, pads, ranges, groups)
    np.testing.assert_allclose(gx_got, gx_want, rtol=1e-6 if dtype == np.float32 else 1e-13,
                               atol=1e-6 if dtype == np.float32 else 1e-13)


def test_a_small_grid_loops_every_thread(host):
    x = _rng().standard_normal((1, 40, 3)).astype(np.float32)
    y = ops.relu(x)
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    assert host.grid * host.block < x.size  # the grid-stride loop was exercised


# ---------------------------------------------------------------- pooling
POOL_CASES = [
    ((7,), (3,), (2,), ((1, 1),)),
    ((6, 7), (2, 2), (2, 2), ((0, 0), (0, 1))),
    ((5, 6), (3, 2), (1, 2), ((1, 1), (0, 1))),
    ((4, 5, 4), (2, 3, 2), (2, 1, 2), ((0, 1), (1, 1), (0, 0))),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", POOL_CASES)
def test_max_pool_and_its_gradient_equal_the_reference(host, case, dtype):
    spatial, ksize, strides, pads = case
    rng = _rng()
    x = rng.integers(-3, 4, (2, *spatial, 3)).astype(dtype)  # ties: the first max wins
    out = shapes.pool_output_shape(spatial, ksize, strides, pads)
    want = ref_pool.max_pool(x, ksize, strides, pads)
    y, pick = ops.max_pool(x, ksize, strides, pads, out)
    np.testing.assert_array_equal(y, want)
    gy = rng.standard_normal(y.shape).astype(dtype)
    np.testing.assert_allclose(ops.max_pool_backward(gy, pick, x.shape, ksize, strides, pads),
                               ref_pool.max_pool_backward(x, want, gy, ksize, strides, pads),
                               rtol=1e-6, atol=1e-6)


def test_max_pool_propagates_nan_like_numpy(host):
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    x[0, 1, 0, 0] = np.nan
    x[0, 3, 3, 0] = -np.inf
    y, pick = ops.max_pool(x, (2, 2), (2, 2), ((0, 0), (0, 0)), (2, 2))
    np.testing.assert_array_equal(y, ref_pool.max_pool(x, (2, 2), (2, 2), ((0, 0), (0, 0))))
    assert pick[0, 0, 0, 0] == -1 and pick[0, 0, 1, 0] == 3  # NaN takes no gradient


@pytest.mark.parametrize("include_pad", [False, True])
@pytest.mark.parametrize("case", POOL_CASES)
def test_avg_pool_and_its_gradient_equal_the_reference(host, case, include_pad):
    spatial, ksize, strides, pads = case
    x = _rng().standard_normal((2, *spatial, 3))
    want = ref_pool.avg_pool(x, ksize, strides, pads, include_pad)
    np.testing.assert_allclose(ops.avg_pool(x, ksize, strides, pads, include_pad), want,
                               rtol=1e-12)
    gy = _rng(1).standard_normal(want.shape)
    np.testing.assert_allclose(
        ops.avg_pool_backward(gy, x.shape, ksize, strides, pads, include_pad),
        ref_pool.avg_pool_backward(gy, x.shape, ksize, strides, pads, include_pad),
        rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------- elementwise and sums
def test_bias_relu_and_relu_gradients(host):
    rng = _rng()
    y = rng.standard_normal((3, 5, 4, 6)).astype(np.float32)
    y[0, 0, 0, :2] = (np.nan, -0.0)
    b = rng.standard_normal(6).astype(np.float32)
    got = y.copy()
    ops.bias_relu_(got, b, relu=True)
    np.testing.assert_array_equal(got, np.maximum(y + b, 0))
    assert not np.signbit(got).any()
    plain = y.copy()
    ops.bias_relu_(plain, None, relu=False)
    np.testing.assert_array_equal(plain, y)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    g, sums = ops.relu_grad_bias(gy, got)
    np.testing.assert_array_equal(g, np.where(got > 0, gy, 0))
    np.testing.assert_allclose(sums, np.where(got > 0, gy, 0).sum(axis=(0, 1, 2)), rtol=1e-5)
    from dojang.kernels.conv import cuda as conv_cuda

    g_only, none = conv_cuda.relu_grad_bias(gy, got, bias=False)  # no sum without a bias
    assert none is None
    np.testing.assert_array_equal(g_only, g)
    np.testing.assert_array_equal(ops.relu(y), np.maximum(y, 0))


def test_batch_norm_kernels_equal_the_formulas(host):
    rng = _rng()
    x = rng.standard_normal((4, 3, 5, 7)) * 3 + 1
    mean, var = ops.batch_norm_stats(x)
    np.testing.assert_allclose(mean, x.mean(axis=(0, 1, 2)), rtol=1e-12)
    np.testing.assert_allclose(var, x.var(axis=(0, 1, 2)), rtol=1e-12)
    scale, shift = rng.standard_normal(7), rng.standard_normal(7)
    np.testing.assert_allclose(ops.normalize(x, mean, scale, shift),
                               (x - mean) * scale + shift, rtol=1e-12)
    gy = rng.standard_normal(x.shape)
    s_gy, s_gyxc = ops.batch_norm_grad_sums(gy, x, mean)
    np.testing.assert_allclose(s_gy, gy.sum(axis=(0, 1, 2)), rtol=1e-12)
    np.testing.assert_allclose(s_gyxc, (gy * (x - mean)).sum(axis=(0, 1, 2)), rtol=1e-12)
    a, b, c0 = (rng.standard_normal(7) for _ in range(3))
    np.testing.assert_allclose(ops.batch_norm_grad(gy, x, mean, a, b, c0),
                               a * gy + b * (x - mean) + c0, rtol=1e-12)


def test_softmax_cross_entropy_and_gradient_equal_torch(host):
    torch = pytest.importorskip("torch")
    rng = _rng()
    z = rng.standard_normal((9, 5)) * 4
    labels = rng.integers(0, 5, 9)
    loss, p = ops.sparse_softmax_xent(z, labels)
    zt = torch.tensor(z, requires_grad=True)
    lt = torch.nn.functional.cross_entropy(zt, torch.tensor(labels), reduction="none")
    np.testing.assert_allclose(loss, lt.detach().numpy(), rtol=1e-12)
    scale = np.full(9, 1 / 9)
    lt.mean().backward()
    np.testing.assert_allclose(ops.sparse_softmax_xent_grad(p, labels, scale),
                               zt.grad.numpy(), rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("nesterov", [False, True])
def test_optimizer_kernels_equal_dojangs_optimizers(host, nesterov):
    rng = _rng()
    p0, g = rng.standard_normal(50), rng.standard_normal(50)
    adam = dj.optimizers.Adam(0.01)
    want, slots = p0.copy(), {"momentum": np.zeros(50), "velocity": np.zeros(50)}
    got, m, v = p0.copy(), np.zeros(50), np.zeros(50)
    for step in (1, 2, 3):
        adam.update(want, g, slots, 0.01, step)
        alpha = 0.01 * math.sqrt(1 - 0.999**step) / (1 - 0.9**step)
        ops.adam_update(got, g, m, v, 1 - 0.9, 1 - 0.999, alpha, 1e-7)
    np.testing.assert_allclose(got, want, rtol=1e-13)

    for momentum in (0.0, 0.9):
        sgd = dj.optimizers.SGD(0.1, momentum=momentum, nesterov=nesterov and momentum > 0)
        want, slots = p0.copy(), {"momentum": np.zeros(50)}
        got, m = p0.copy(), (np.zeros(50) if momentum else None)
        for step in (1, 2):
            sgd.update(want, g, slots, 0.1, step)
            ops.sgd_update(got, g, m, 0.1, momentum, sgd.nesterov)
        np.testing.assert_allclose(got, want, rtol=1e-13)


def test_every_kernel_was_run_by_this_module(host):
    kinds = {k.name: k.kind for k in source.every_kernel()}
    ran = {kinds[name] for name in host.launches}
    assert ran == set(kinds.values()), sorted(set(kinds.values()) - ran)


GPU_VARIANTS = registry.variants(backend="cupy")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("variant", GPU_VARIANTS, ids=lambda v: f"{v.op}-{v.name}")
def test_every_gpu_variant_equals_the_reference(host, variant, dtype):
    """The registered CuPy variants themselves (their argument handling, the backward
    they return), on the host engine, against the NumPy reference of the same op."""
    assert_equals_reference(variant, dtype)


def test_the_gpu_variants_cover_the_hot_loops():
    ops_ = {v.op for v in GPU_VARIANTS}
    assert {"conv.im2col", "conv.col2im", "pool.max", "pool.avg", "pool.avg_backward",
            "conv.bias_relu", "conv.relu_grad_bias", "batch_norm.train",
            "loss.sparse_softmax_xent", "optim.adam", "optim.sgd"} <= ops_
    assert all(v.name == "cuda" for v in GPU_VARIANTS)
