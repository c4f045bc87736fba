"""The direct convolution (``dojang.kernels.direct``) against the im2col + GEMM kernels
(NumPy path, ``jit(False)``) and against PyTorch through the op, with gradients.

The shapes here are picked so that ``kernels.conv`` does take the direct path (each
test asserts it), including strides, dilations, asymmetric and cropping pads, rank 1,
widths that the 4-pixel tile does not divide, and float64.
"""

import importlib.util
import json
import os
import subprocess
import sys

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dojang as dj
from dojang import functional as fn
from dojang import shapes
from dojang.kernels import compile, isa, plan
from dojang.kernels.conv import direct
from dojang.kernels.conv import numba as jconv
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
        dw = jconv.filter_grad(x, gy, w.shape, strides, dilations, pads, 1)  # pads C_in
        assert dw.dtype == dtype
        np.testing.assert_allclose(dw, dw_ref, rtol=tol, atol=tol * np.sqrt(gy[..., 0].size))


def test_conv_takes_the_direct_path_only_where_it_is_faster():
    """The rules with the AVX2 table (``plan.ISA_TABLES``), on any host."""
    f32 = np.zeros((2, 8, 8, 16), np.float32)
    with dj.settings.isa("avx2"):
        assert plan.direct_forward(f32, (3, 3, 16, 16), 1)  # ResNet-20's first stage
        assert plan.direct_filters(f32, np.zeros((2, 8, 8, 16), np.float32), (3, 3, 16, 16), 1)
        assert plan.direct_forward(f32, (3, 3, 16, 128), 1)
        assert not plan.direct_forward(f32, (3, 3, 16, 256), 1)  # wide: the GEMM is fast
        assert not plan.direct_forward(f32, (3, 3, 16, 24), 1)  # C_out not a multiple of 16
        assert not plan.direct_forward(f32, (3, 3, 16, 32), 2)  # groups
        one = np.zeros((1, 28, 28, 1), np.float32)  # C_in 1: direct for small work only
        assert plan.direct_forward(one, (3, 3, 1, 32), 1)
        assert not plan.direct_forward(np.zeros((8, 28, 28, 1), np.float32), (3, 3, 1, 32), 1)
        assert plan.direct_forward(np.zeros((2, 8, 8, 64), np.float32), (3, 3, 64, 32), 1)
        # one block's filters, 3 * 3 * 200 * 16 float32, over 108 KiB
        assert not plan.direct_forward(np.zeros((2, 8, 8, 200), np.float32), (3, 3, 200, 32), 1)
        assert not plan.direct_forward(f32.astype(np.float16), (3, 3, 16, 16), 1)
        x3d = np.zeros((2, 4, 4, 4, 16), np.float32)
        assert not plan.direct_forward(x3d, (1, 1, 1, 16, 16), 1)
        assert plan.direct_filters(f32, f32, (3, 3, 32, 32), 1)
        assert not plan.direct_filters(f32, f32, (3, 3, 32, 64), 1)  # 32 * 64 > 1024
        # C_in not a multiple of 4: padded to 8 (LeNet-5's 6 -> 16), but not from 1
        assert plan.direct_filters(np.zeros((2, 8, 8, 6), np.float32), f32, (3, 3, 6, 16), 1)
        assert not plan.direct_filters(np.zeros((2, 8, 8, 1), np.float32), f32,
                                       (3, 3, 1, 32), 1)
        assert not plan.direct_filters(np.zeros((2, 8, 8, 21), np.float32), f32,
                                       (3, 3, 21, 48), 1)  # 21 * 48 <= 1024 < 24 * 48
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


# ------------------------------------------------------------- tiles per vector ISA
def _host_has(family):
    return family == "avx2" or isa.detected() == "avx512"


def _tiles_of(kind):
    """(family, tile) for every tile of every ISA table, each family's own ones."""
    return [pytest.param(family, tile[:2], id=f"{family}-r{tile[0]}b{tile[1]}", marks=[
        pytest.mark.skipif(not _host_has(family), reason="host has no AVX-512")])
        for family, t in plan.ISA_TABLES.items()
        for tile in (t.forward if kind == "forward" else t.filters)]


# (spatial, kernel, strides, dilations, pads): odd sizes, rank 1 and 2, cropping pads
_GEOMETRIES = [((9, 11), (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1))),
               ((7, 10), (3, 2), (2, 1), (1, 2), ((1, 0), (2, -1))),
               ((13,), (4,), (3,), (1,), ((2, 1),))]


def _tile_case(rng, geometry, c_in, c_out):
    """float32 x, w, gy and (strides, dilations, pads) of a batch of 2 (float64 goes
    through the tiles in ``test_direct_kernels_equal_im2col``)."""
    spatial, kernel, strides, dilations, pads = geometry
    x = rng.standard_normal((2,) + spatial + (c_in,), dtype=np.float32)
    w = rng.standard_normal(kernel + (c_in, c_out), dtype=np.float32)
    out = shapes.window_output_shape(spatial, kernel, strides, dilations, pads)
    gy = rng.standard_normal((2,) + out + (c_out,), dtype=np.float32)
    return x, w, gy, (strides, dilations, pads)


@pytest.mark.parametrize("family,tile", _tiles_of("forward"))
def test_every_forward_tile_equals_the_reference(family, tile):
    """Each tile on odd widths (that its R does not divide), C_in of 3 and 5, C_out of
    one and of three blocks of B, strides, dilations, padding and cropping."""
    rng = np.random.default_rng(tile[0] * 100 + tile[1])
    r, b = tile
    for geometry in _GEOMETRIES:
        for c_in, c_out in ((3, b), (5, 3 * b)):
            x, w, gy, args = _tile_case(rng, geometry, c_in, c_out)
            y_ref, _ = _reference(x, w, *args, gy)
            y = np.full(y_ref.shape, np.nan, np.float32)
            direct.forward(x, w, y, *args, tile=tile)
            np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5 * np.sqrt(c_in * 12))


@pytest.mark.parametrize("family,tile", _tiles_of("filters"))
def test_every_filter_tile_equals_the_reference(family, tile):
    rng = np.random.default_rng(tile[0] * 100 + tile[1])
    rc, b = tile
    for geometry in _GEOMETRIES:
        for c_in, c_out in ((rc, b), (3 * rc, 2 * b)):
            x, w, gy, args = _tile_case(rng, geometry, c_in, c_out)
            _, dw_ref = _reference(x, w, *args, gy)
            dw = direct.filters(x, gy, w.shape, *args, tile=tile)
            np.testing.assert_allclose(dw, dw_ref, rtol=1e-5, atol=1e-5 * np.sqrt(gy[..., 0].size))


@pytest.mark.parametrize("family", [pytest.param(f, marks=pytest.mark.skipif(
    not _host_has(f), reason="host has no AVX-512")) for f in plan.ISA_TABLES])
def test_the_input_gradient_runs_each_forward_tile_of_the_isa(family):
    """The stride-1 input gradient is the forward on gy with flipped filters: through the
    op, with shapes on which the planner of ``family`` picks each of its forward tiles."""
    rng = np.random.default_rng(7)
    pads, one = ((1, 1), (2, 0)), (1, 1)
    with dj.settings.isa(family):
        for tile in [t[:2] for t in plan.table().forward]:
            # x's C (the flipped filters' C_out) and width such that the planner takes tile
            c_in, width = next((c, wd) for c in (tile[1], 3 * tile[1]) for wd in range(5, 40)
                               if plan.forward_tile((3, 3, 6, c), wd) == tile)
            x, w, gy, _ = _tile_case(rng, ((6, width), (3, 3), one, one, pads), c_in, 6)
            assert plan.conv_plan(x, w, one, one, 1, pads).input_gradient == (
                "correlation (direct)")
            gx = kc.conv_backward_input(gy, w, x.shape, one, one, 1, pads)
            with dj.config.jit(False):
                gx_ref = kc.conv_backward_input(gy, w, x.shape, one, one, 1, pads)
            np.testing.assert_allclose(gx, gx_ref, rtol=1e-5, atol=1e-4)


def test_the_remembered_forward_tiles_follow_the_isa_table(monkeypatch):
    """``forward_tile`` remembers its answers per table: a forced ISA or a changed table
    plans afresh, the same question under the first table again gets the first answer."""
    from dataclasses import replace
    key = ((3, 3, 16, 64), 14)
    with dj.settings.isa("avx2"):
        first = plan.forward_tile(*key)
    with dj.settings.isa("avx512"):
        assert plan.forward_tile(*key) in [t[:2] for t in plan.table().forward]
    with dj.settings.isa("avx2"):
        assert plan.forward_tile(*key) == first
        only16 = tuple(t for t in plan.table().forward if t[1] == 16)
        monkeypatch.setitem(plan.ISA_TABLES, "avx2",
                            replace(plan.ISA_TABLES["avx2"], forward=only16))
        assert plan.forward_tile(*key) in [t[:2] for t in only16]


def test_the_planner_picks_tiles_from_the_isa_table():
    with dj.settings.isa("avx2"):
        assert plan.forward_tile((3, 3, 16, 64), 14) == (3, 32)  # r4b16 pads 14 to 16
        assert plan.forward_tile((3, 3, 16, 64), 16) == (4, 16)  # r3b32 pads 16 to 18
        assert plan.forward_tile((3, 3, 16, 48), 14) == (4, 16)  # 48: no 32-channel tile
        assert plan.forward_tile((3, 3, 16, 64), 32) == (3, 32)  # 1.09 the speed, 33 columns
        assert plan.forward_tile((3, 3, 16, 64), 32, 8) == (4, 16)  # float64: padding decides
        assert plan.filters_tile((3, 3, 8, 64)) == (4, 16)
        assert plan.filters_tile((3, 3, 6, 64)) == (4, 16)
        assert plan.filter_channels((3, 3, 6, 64)) == 8
        assert plan.filters_tile((3, 3, 8, 24)) is None
        text = str(dj.kernels.plan(dj.layers.Conv2D(64, 3, padding="same"), (8, 14, 14, 32),
                                   training=False))
        assert "ISA: avx2" in text and "avx2 (forced)" in text and "tile r3b32" in text
    with dj.settings.isa("avx512"):
        assert plan.table().source.startswith("derived, unmeasured")
        assert plan.forward_tile((3, 3, 16, 64), 14) == (8, 32)
        assert plan.forward_tile((3, 3, 16, 48), 14) == (8, 16)
        assert plan.filters_tile((3, 3, 8, 64)) == (8, 32)
        assert plan.filters_tile((3, 3, 4, 32)) == (4, 16)  # no padding when a tile fits
        assert plan.filters_tile((3, 3, 6, 32)) == (8, 32)  # else the first, padded
        assert plan.filter_channels((3, 3, 6, 32)) == 8
        assert plan.conv_plan(np.zeros((2, 8, 8, 16), np.float32), np.zeros(
            (3, 3, 16, 32), np.float32), (1, 1), (1, 1), 1, ((1, 1),) * 2).isa == "avx512"
    with pytest.raises(ValueError, match=r"Expected family to be one of \('avx2', 'avx512'\)"
                       r" or None. Received: family='sse'"):
        dj.settings.isa("sse")


def test_the_isa_follows_numbas_target_features(monkeypatch):
    """``NUMBA_CPU_FEATURES``, when set, is what numba compiles for; else the host's."""
    isa.target_features.cache_clear()
    try:
        monkeypatch.setenv("NUMBA_CPU_FEATURES", "+avx2,+fma,+avx512f,-avx512vl")
        assert {"avx2", "fma", "avx512f"} == isa.target_features()
        assert isa.detected() == "avx512"
        with dj.settings.isa("avx2"):
            assert isa.family() == "avx2"
        monkeypatch.setenv("NUMBA_CPU_FEATURES", "+avx2,+fma,-avx512f")
        isa.target_features.cache_clear()
        assert isa.detected() == "avx2"
        monkeypatch.delenv("NUMBA_CPU_FEATURES")
        isa.target_features.cache_clear()
        host = numba.core.codegen.get_host_cpu_features()  # numba's own reading
        assert ("+avx512f" in host.split(",")) == (isa.detected() == "avx512")
    finally:
        isa.target_features.cache_clear()


# Compiles tiles for an AVX-512 CPU without running them, and prints each one's FMA
# instructions and numba's cache key (its codegen's magic tuple).
_AVX512_COMPILE = """
import json, re, sys
import numba
from numba import types as nt
from dojang.kernels import compile
from dojang.kernels.conv import _tiles
compile._load()
result = {"key": list(numba.core.registry.cpu_target.target_context.codegen().magic_tuple())}
for name in sys.argv[1:]:
    lazy = getattr(_tiles, name)
    ranks = (4, 4, 4) if name.startswith("forward") else (4, 5, 6)
    sig = tuple(nt.Array(nt.float32, r, "C") for r in ranks) + (nt.float32,) + (nt.int64,) * 9
    fn = compile._njit(lazy.fn, **lazy.options)
    with compile._StraightLine():
        fn.compile(sig)
    result[name] = re.findall(r"vfmadd\\w+\\s+[^\\n]*", fn.inspect_asm(sig))
print(json.dumps(result))
"""


def test_the_avx512_tiles_compile_to_zmm_fmas(tmp_path):
    """For an Intel AVX-512 CPU (which LLVM tunes to prefer 256-bit vectors) every FMA of
    the widest AVX-512 forward and filter tiles is on zmm registers, and numba's cache key
    names that CPU, so its disk cache cannot hand these builds to a process that targets
    another one. Compiled in two processes at once, never run (numba's front end takes
    about 7 CPU seconds per tile of 256 sums; the narrower r8b16 comes from the same
    generator and is left out for time)."""
    t = plan.ISA_TABLES["avx512"]
    names = [[f"forward_r{t.forward[0][0]}b{t.forward[0][1]}"],
             [f"filters_r{t.filters[0][0]}b{t.filters[0][1]}"]]
    env = {**os.environ, "NUMBA_CPU_NAME": "skylake-avx512", "NUMBA_CACHE_DIR": str(tmp_path),
           "NUMBA_CPU_FEATURES": "+avx512f,+avx512vl,+avx512bw,+avx512dq,+avx2,+fma",
           "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [subprocess.Popen([sys.executable, "-c", _AVX512_COMPILE, *group], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for group in names]
    host_key = numba.core.registry.cpu_target.target_context.codegen().magic_tuple()
    for proc, group in zip(procs, names, strict=True):
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        result = json.loads(out)
        assert result["key"][1] == "skylake-avx512" and "+avx512f" in result["key"][2]
        assert tuple(result["key"]) != tuple(host_key)
        for name in group:
            r, b = (int(v) for v in name.split("_r")[1].split("b"))
            fmas = result[name]
            assert len(fmas) >= r * b // 16, (name, fmas)  # one per 16 sums of the tile
            assert all("zmm" in f and "ymm" not in f and "xmm" not in f for f in fmas), fmas
