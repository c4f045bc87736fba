"""Every registered variant of every kernel op against the op's NumPy reference.

``CASES`` gives each op a few argument sets (odd sizes, strides, dilations, rank 1 and 2,
float32 and float64); every variant registered in ``dojang.kernels.registry`` must take
them (its ``usable`` rule says yes) and give the reference's values, its in-place writes
included, and, for ops that return a backward, the reference's gradients. An op without
cases fails the coverage test, so a new variant cannot go untested. The registry, the
forcing scope, the planner and the settings are tested here too.
"""

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import dojang as dj
from dojang import settings, shapes
from dojang.kernels import compile, plan, registry
from tests.helpers import assert_close

DTYPES = [np.float32, np.float64]


def _rng(seed=0):
    return np.random.default_rng(seed)


def _conv_geometry(rank):
    """(spatial, kernel, strides, dilations, pads): odd sizes, a stride and a dilation."""
    if rank == 1:
        return (9,), (3,), (2,), (1,), ((1, 2),)
    return (7, 6), (3, 2), (2, 1), (1, 2), ((1, 0), (2, 1))


def _im2col_case(dtype, rank, backward=False):
    spatial, kernel, strides, dilations, pads = _conv_geometry(rank)
    n, c = 2, 3
    out = shapes.window_output_shape(spatial, kernel, strides, dilations, pads)
    ranges = tuple((0, o) for o in out)
    m, kc = n * int(np.prod(out)), int(np.prod(kernel)) * c
    rng = _rng(rank)
    if backward:
        dcols = rng.standard_normal((1, m, kc)).astype(dtype)
        gx = np.zeros((n,) + spatial + (c,), dtype)
        return (dcols, gx, kernel, strides, dilations, pads, ranges, 1), {}
    x = rng.standard_normal((n,) + spatial + (c,)).astype(dtype)
    return (x, np.zeros((1, m, kc), dtype), kernel, strides, dilations, pads, ranges, 1), {}


def _direct_case(dtype, rank, filters=False, c_in=4):
    """``c_in`` = 6: the filter gradient pads the channels to whole tiles of 4."""
    spatial, kernel, strides, dilations, pads = _conv_geometry(rank)
    n, c_out = 2, 16
    out = shapes.window_output_shape(spatial, kernel, strides, dilations, pads)
    rng = _rng(10 + rank)
    x = rng.standard_normal((n,) + spatial + (c_in,)).astype(dtype)
    w_shape = kernel + (c_in, c_out)
    if filters:
        gy = rng.standard_normal((n,) + out + (c_out,)).astype(dtype)
        return (x, gy, w_shape, strides, dilations, pads, 1), {}
    w = rng.standard_normal(w_shape).astype(dtype)
    return (x, w, np.zeros((n,) + out + (c_out,), dtype), strides, dilations, pads, 1), {}


def _winograd_case(dtype, pads):
    """A 3x3 stride-1 correlation (what Winograd takes) with sizes that 4x4 tiles do not
    divide."""
    rng = _rng(12)
    x = rng.standard_normal((2, 7, 6, 3)).astype(dtype)
    w = rng.standard_normal((3, 3, 3, 5)).astype(dtype)
    out = shapes.window_output_shape((7, 6), (3, 3), (1, 1), (1, 1), pads)
    return (x, w, np.zeros((2,) + out + (5,), dtype), (1, 1), (1, 1), pads, 1), {}


# (spatial, kernel, strides, dilations, pads, multiplier): the 3x3 two-pixel fast path
# (stride 1 and 2, dilation 2), other kernels, rank 1 and the depth multiplier
_DEPTHWISE = [((7, 9), (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1)), 1),
              ((9, 8), (3, 3), (2, 2), (1, 2), ((1, 0), (2, 2)), 1),
              ((7, 6), (3, 2), (2, 1), (1, 2), ((1, 0), (2, 1)), 2),
              ((9,), (3,), (2,), (1,), ((1, 2),), 1)]


def _depthwise_case(dtype, geometry, op, bias=True, relu=False):
    spatial, kernel, strides, dilations, pads, mult = geometry
    n, c = 2, 5
    out = shapes.window_output_shape(spatial, kernel, strides, dilations, pads)
    rng = _rng(len(spatial) + mult)
    x = rng.standard_normal((n,) + spatial + (c,)).astype(dtype)
    w = rng.standard_normal(kernel + (1, c * mult)).astype(dtype)
    gy = rng.standard_normal((n,) + out + (c * mult,)).astype(dtype)
    if op == "forward":
        b = rng.standard_normal(c * mult).astype(dtype) if bias else None
        return (x, w, np.zeros(gy.shape, dtype), strides, dilations, pads, b, relu), {}
    if op == "input":
        return (gy, w, np.zeros(x.shape, dtype), strides, dilations, pads), {}
    return (x, gy, w.shape, strides, dilations, pads, bias), {}


def _pool_case(dtype, geometry):
    ksize, strides, pads = geometry
    x = _rng(20).standard_normal((2, 7, 6)[:len(ksize) + 1] + (3,)).astype(dtype)
    flat = x.reshape(-1)
    flat[[5, 11, 20]] = np.nan, np.inf, -np.inf  # NaN propagates and takes no gradient
    return (x, ksize, strides, pads, True), {}


def _bn_case(dtype, inference):
    rng = _rng(30)
    x = (3 + rng.standard_normal((3, 5, 4, 6))).astype(dtype)
    gamma, beta = rng.standard_normal(6).astype(dtype), rng.standard_normal(6).astype(dtype)
    if inference:
        mean, var = rng.standard_normal(6), rng.random(6) + 0.5
        return (x, gamma, beta, mean, var, 3, 1e-3), {}
    return (x, gamma, beta, 3, 1e-3), {}


def _bn_act_case(dtype, residual, relu):
    (x, gamma, beta, axis, eps), _ = _bn_case(dtype, False)
    r = _rng(31).standard_normal(x.shape).astype(dtype) if residual else None
    return (x, gamma, beta, axis, eps, r, relu), {}


def _adam_case(dtype, size):
    rng = _rng(40)
    p, g, m = (rng.standard_normal(size).astype(dtype) for _ in range(3))
    v = rng.random(size).astype(dtype)
    return (p, g, m, v, 0.1, 0.001, 0.01, 1e-7), {}


def _avg_case(dtype, include_pad, backward=False, rank=2):
    """Tiling windows (the compiled variant's case), with a row no window reaches."""
    ksize = (2, 3)[-rank:]
    strides, pads = ksize, ((0, 0),) * rank
    x = _rng(21).standard_normal((2, 7, 6, 3)[:rank + 1] + (3,)).astype(dtype)
    if backward:
        out = shapes.pool_output_shape(x.shape[1:-1], ksize, strides, pads)
        gy = _rng(22).standard_normal((2, *out, 3)).astype(dtype)
        return (gy, x.shape, ksize, strides, pads, include_pad), {}
    return (x, ksize, strides, pads, include_pad), {}


def _tanh_case(dtype, shape, bias, out):
    """``x`` spanning the clamp at +-9 with NaN and infinities; a bias on the last axis;
    a separate output array."""
    x = (_rng(7).standard_normal(shape) * 6).astype(dtype)
    x.reshape(-1)[:3] = np.nan, np.inf, -np.inf
    b = _rng(8).standard_normal(shape[-1]).astype(dtype) if bias else None
    return (x, b, np.empty(shape, dtype) if out else None), {}


def _sgd_case(dtype, momentum, nesterov):
    rng = _rng(41)
    p, g, m = (rng.standard_normal(33).astype(dtype) for _ in range(3))
    return (p, g, m if momentum else None, 0.1, momentum, nesterov), {}


def _xent_case(dtype, grad):
    rng = _rng(42)
    labels = rng.integers(0, 7, 11)
    if grad:
        p = rng.random((11, 7)).astype(dtype)
        return (p / p.sum(axis=1, keepdims=True), labels, np.full(11, 1 / 11, dtype)), {}
    return ((rng.standard_normal((11, 7)) * 5).astype(dtype), labels), {}


_BIG = compile.MIN_ELEMENTWISE + 7  # the compiled ReLU takes large arrays only

CASES = {
    "relu": lambda dt: [((_rng(1).standard_normal(_BIG).astype(dt),), {})],
    "relu_grad": lambda dt: [((_rng(2).standard_normal(_BIG).astype(dt),
                               _rng(3).standard_normal(_BIG).astype(dt)), {})],
    "conv.im2col": lambda dt: [_im2col_case(dt, 1), _im2col_case(dt, 2)],
    "conv.col2im": lambda dt: [_im2col_case(dt, 1, True), _im2col_case(dt, 2, True)],
    "conv.correlate": lambda dt: [_direct_case(dt, 1), _direct_case(dt, 2)],
    "conv.filter_grad": lambda dt: [_direct_case(dt, 1, True), _direct_case(dt, 2, True),
                                    _direct_case(dt, 2, True, c_in=6)],
    "conv.depthwise": lambda dt: [
        _depthwise_case(dt, g, "forward", bias, relu) for g in _DEPTHWISE
        for bias, relu in ((True, False), (False, True))],
    "conv.depthwise_input_grad": lambda dt: [_depthwise_case(dt, g, "input") for g in _DEPTHWISE],
    "conv.depthwise_filter_grad": lambda dt: [
        _depthwise_case(dt, g, "filters", bias) for g in _DEPTHWISE for bias in (True, False)],
    "conv.bias_relu": lambda dt: [
        ((_rng(4).standard_normal((2, 5, 3, 6)).astype(dt), b, relu), {})
        for b in (None, _rng(5).standard_normal(6).astype(dt)) for relu in (False, True)],
    "conv.relu_grad_bias": lambda dt: [
        ((_rng(6).standard_normal((3, 5, 6)).astype(dt),
          _rng(7).standard_normal((3, 5, 6)).astype(dt), True), {})],
    "pool.max": lambda dt: [_pool_case(dt, g) for g in (
        ((3, 2), (2, 1), ((1, 1), (0, 1))), ((2, 2), (2, 2), ((0, 0), (0, 0))),
        ((3,), (2,), ((1, 1),)))],
    "batch_norm.train": lambda dt: [_bn_case(dt, False)],
    "batch_norm.inference": lambda dt: [_bn_case(dt, True)],
    "batch_norm.train_act": lambda dt: [_bn_act_case(dt, r, relu) for r in (False, True)
                                        for relu in (False, True)],
    "optim.adam": lambda dt: [_adam_case(dt, 77), _adam_case(dt, _BIG)],
    "optim.sgd": lambda dt: [_sgd_case(dt, mu, nes) for mu, nes in
                             ((0.0, False), (0.9, False), (0.9, True))],
    "pool.avg": lambda dt: [_avg_case(dt, inc, rank=r) for inc in (False, True) for r in (1, 2)],
    "pool.avg_backward": lambda dt: [_avg_case(dt, inc, True, r) for inc in (False, True)
                                     for r in (1, 2)],
    "tanh": lambda dt: [_tanh_case(dt, shape, bias, out) for shape in ((3, 5, 4), (7,))
                        for bias in (False, True) for out in (False, True)]
    + [_tanh_case(dt, (2, _BIG // 2, 3), True, False)],
    "tanh_grad": lambda dt: [((_rng(8).standard_normal(shape).astype(dt),
                               np.tanh(_rng(9).standard_normal(shape)).astype(dt)), {})
                             for shape in ((3, 5, 4), (2, _BIG // 2))],
    "loss.sparse_softmax_xent": lambda dt: [_xent_case(dt, False)],
    "loss.sparse_softmax_xent_grad": lambda dt: [_xent_case(dt, True)],
}
# variants that take a narrower set of arguments than their op's other variants
VARIANT_CASES = {
    ("conv.correlate", "winograd"): lambda dt: [_winograd_case(dt, ((1, 1), (1, 1))),
                                                _winograd_case(dt, ((0, 2), (2, 0)))],
}


def _cases(variant, dtype):
    return VARIANT_CASES.get((variant.op, variant.name), CASES[variant.op])(dtype)


def _copy(args):
    return tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args)


def _close(a, b, dtype, variant):
    if variant.name == "winograd":  # the transforms round more: the oracle suite's bound
        assert_close(a, b, dtype)
        return
    tol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def _outputs(result):
    """The arrays an op returned, and the gradients of the backward it returned, if any."""
    items = result if isinstance(result, tuple) else (result,)
    return [r for r in items if r is not None and not callable(r)], next(
        (r for r in items if callable(r)), None)


# the arguments after gy of the backward an op returns (which gradients are wanted)
BACKWARD_FLAGS = {"pool.max": (), "batch_norm.train": (True,),
                  "batch_norm.inference": (True, True), "batch_norm.train_act": (True, True)}


def _grad(op, backward, like):
    gy = _rng(50).standard_normal(like.shape).astype(like.dtype)
    grads = backward(gy, *BACKWARD_FLAGS[op])
    return [g for g in (grads if isinstance(grads, tuple) else (grads,)) if g is not None]


COMPILED = [v for v in registry.variants(backend="numpy") if v.name != "reference"]


def assert_equals_reference(variant, dtype):
    """``variant`` gives its op's reference values, in-place writes and gradients on every
    case of ``CASES`` (the arrays handed to it are copies)."""
    reference = registry.variants(variant.op, "numpy")[-1]
    assert reference.name == "reference"
    for args, kwargs in _cases(variant, dtype):
        with dj.config.kernels(variant.name):  # a forced-only variant takes them there
            assert variant.usable is None or variant.usable(*args, **kwargs)
        ours_args, ref_args = _copy(args), _copy(args)
        ours = _outputs(variant.fn(*ours_args, **kwargs))
        ref = _outputs(reference.fn(*ref_args, **kwargs))
        assert len(ours[0]) == len(ref[0])
        for a, b in zip(ours[0] + list(ours_args), ref[0] + list(ref_args), strict=True):
            if isinstance(a, np.ndarray):
                assert a.dtype == b.dtype and a.shape == b.shape
                _close(a, b, dtype, variant)
        if ref[1] is not None:  # the backward each forward returned
            for a, b in zip(_grad(variant.op, ours[1], ours[0][0]),
                            _grad(variant.op, ref[1], ref[0][0]), strict=True):
                _close(a, b, dtype, variant)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("variant", COMPILED, ids=lambda v: f"{v.op}-{v.name}")
def test_every_variant_equals_the_reference(variant, dtype):
    for args, kwargs in _cases(variant, dtype):
        with dj.config.kernels(variant.name):
            assert registry.select(variant.op, *args, **kwargs) is variant
    assert_equals_reference(variant, dtype)


def test_every_op_has_a_reference_and_cases():
    for op in registry.ops():
        names = [v.name for v in registry.variants(op, "numpy")]
        assert names[-1] == "reference", op
        if len(registry.variants(op)) > 1:
            assert op in CASES, f"{op} has compiled variants but no cases here"


def test_dispatch_honours_the_scope_and_falls_back_to_the_reference():
    x = np.ones(_BIG, np.float32)
    with dj.config.kernels("numba"):
        assert registry.select("relu", x).name == "numba"
        assert registry.select("relu", x[:5]).name == "reference"  # small: NumPy
        assert registry.select("relu", x.astype(np.float16)).name == "reference"
        with dj.config.kernels("reference"):
            assert registry.select("relu", x).name == "reference"
            assert dj.config.get_jit() is False
    with pytest.raises(ValueError, match="Expected variant to be one of"):
        dj.config.kernels("fortran")
    with pytest.raises(KeyError, match="Expected a registered kernel op"):
        registry.dispatch("no.such.op", x)
    with pytest.raises(ValueError, match="Expected one registration"):
        registry.register("relu")(lambda x: x)


@pytest.mark.parametrize("c_in,c_out,batch", [(1, 32, 4), (8, 16, 4), (32, 64, 4),
                                              (16, 128, 2), (4, 4, 2)])
def test_the_plan_is_what_runs(c_in, c_out, batch):
    layer = dj.layers.Conv2D(c_out, 3, padding="same", groups=4 if c_in == c_out == 4 else 1)
    p = dj.kernels.plan(layer, (batch, 9, 9, c_in))
    rng = _rng(60)
    x = rng.standard_normal((batch, 9, 9, c_in)).astype(np.float32)
    w = rng.standard_normal((3, 3, c_in // layer.groups, c_out)).astype(np.float32)
    pads = ((1, 1), (1, 1))
    _, cols = registry.dispatch("conv.forward", x, w, (1, 1), (1, 1), layer.groups, pads, True)
    assert (cols is not None) == p.keep_columns
    y = np.empty((batch, 9, 9, c_out), np.float32)
    chosen = registry.select("conv.correlate", x, w, y, (1, 1), (1, 1), pads, layer.groups)
    expected = {"direct": "numba", "winograd": "winograd", "im2col": "reference",
                "depthwise (compiled)": "reference"}
    if not p.keep_columns:
        assert chosen.name == expected[p.forward]
    if p.forward.startswith("depthwise"):  # the forward's own op, with its bias and ReLU
        b = np.zeros(c_out, np.float32)
        chosen = registry.select("conv.depthwise", x, w, y, (1, 1), (1, 1), pads, b, False)
        assert chosen.name == "numba"
    assert p.forward in str(p) and "\n  - " in str(p)
    with dj.config.kernels("reference"):
        assert dj.kernels.plan(layer, (batch, 9, 9, c_in)).forward != "direct"


def test_plan_refuses_other_layers():
    with pytest.raises(TypeError, match="Expected layer to be a Conv1D"):
        dj.kernels.plan(dj.layers.Dense(3), (1, 4))
    with pytest.raises(ValueError, match="Expected input_shape to be 4 positive ints"):
        dj.kernels.plan(dj.layers.Conv2D(3, 3), (1, 4))
    assert plan.is_depthwise(4, 4) and not plan.is_depthwise(4, 1)


def test_without_numba_a_warning_and_the_reference(monkeypatch):
    monkeypatch.setattr(compile, "_numba", None)
    monkeypatch.setitem(sys.modules, "numba", None)  # `import numba` raises ImportError
    x = np.ones(_BIG, np.float32)
    with pytest.warns(RuntimeWarning, match="numba could not be imported.*Slower without"):
        assert registry.select("relu", x).name == "reference"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once only
        assert not compile.enabled()
        np.testing.assert_array_equal(registry.dispatch("relu", x - 2), np.zeros_like(x))


def test_import_loads_no_numba_and_the_environment_sets_the_defaults():
    code = ("import sys, dojang; from dojang import settings as s; "
            "print('numba' in sys.modules, 'llvmlite' in sys.modules, s.get_num_threads(), "
            "s.get_recycling(), s.JIT_DEFAULT, s.get_isa())")
    env = dict(os.environ, DOJANG_NUM_THREADS="3", DOJANG_RECYCLE="0", DOJANG_JIT="0",
               DOJANG_ISA="avx512")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.split() == ["False", "False", "3", "False", "False", "avx512"], out.stderr


def test_settings_scopes():
    with settings.threads(2), settings.recycling(False):
        assert settings.get_num_threads() == 2 and not settings.get_recycling()
    with pytest.raises(ValueError, match="Expected n to be an integer from 1 to 8"):
        settings.threads(9)
    with pytest.raises(TypeError, match="Expected enabled to be a bool"):
        settings.recycling(1)
