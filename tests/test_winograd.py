"""Winograd F(4x4, 3x3) (``kernels.conv.winograd``): forced on through
``dj.config.kernels("winograd")``, against the NumPy loop reference and PyTorch (output
and gradients, the oracle suite's tolerances), finite differences, and where the
planner takes it."""

import numpy as np
import pytest
import torch.nn.functional as F

import dojang as dj
from dojang import functional as fn
from dojang.kernels import plan, registry
from dojang.kernels.conv import winograd
from tests.helpers import assert_close, gradcheck, torch_oracle
from tests.ref_conv import conv_ref


@pytest.fixture
def counted(monkeypatch):
    """Count the calls of ``winograd.forward`` (the registered variant calls it)."""
    calls = []
    original = winograd.forward

    def forward(*args, **kwargs):
        calls.append(args[0].shape)
        return original(*args, **kwargs)

    monkeypatch.setattr(winograd, "forward", forward)
    return calls


# (N, H, W, C, C_out, padding, bias): heights and widths that 4x4 tiles do not divide,
# valid and same, pads over 2 (the input gradient's correlation then crops), batch 1,
# one input channel, channel counts that are multiples of nothing
CASES = [
    (2, 7, 9, 3, 5, "same", True),
    (1, 6, 5, 1, 4, "valid", True),
    (3, 9, 4, 4, 7, "valid", False),
    (2, 5, 6, 2, 3, ((3, 0), (1, 2)), True),
]


def _pads(padding):
    if padding == "same":
        return ((1, 1), (1, 1))
    return ((0, 0), (0, 0)) if padding == "valid" else padding


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[1]}x{c[2]}x{c[3]}->{c[4]}")
def test_winograd_matches_torch_and_the_loop_reference(case, dtype, counted):
    n, h, w_, c, co, padding, bias = case
    rng = np.random.default_rng(h * 10 + w_)
    x = rng.standard_normal((n, h, w_, c))
    w = rng.standard_normal((3, 3, c, co))
    b = rng.standard_normal(co)
    pads = _pads(padding)
    flat = [v for p in reversed(pads) for v in p]

    def torch_fn(x, w, *b):
        y = F.conv2d(F.pad(x.movedim(-1, 1), flat), w.permute(3, 2, 0, 1), *b)
        return y.movedim(1, -1)

    with dj.config.kernels("winograd"):
        if bias:
            torch_oracle(lambda x, w, b: fn.conv2d(x, w, bias=b, padding=padding), torch_fn,
                         x, w, b, dtype=dtype)
        else:
            torch_oracle(lambda x, w: fn.conv2d(x, w, padding=padding), torch_fn, x, w,
                         dtype=dtype)
        y = fn.conv2d(x.astype(dtype), w.astype(dtype), padding=padding).numpy()
    assert len(counted) == 3  # the forward, the input gradient, the forward again
    assert_close(y, conv_ref(x, w, (1, 1), (1, 1), pads), dtype)


def test_winograd_gradients_by_finite_differences(counted):
    rng = np.random.default_rng(7)
    x, w, b = (rng.standard_normal(s) for s in ((2, 5, 6, 2), (3, 3, 2, 3), (3,)))
    with dj.config.kernels("winograd"):
        gradcheck(lambda x, w, b: fn.conv2d(x, w, bias=b, padding="same"), x, w, b)
    assert counted


def test_winograd_in_chunks_equals_one_chunk(monkeypatch):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((5, 9, 7, 6)).astype(np.float32)
    w = rng.standard_normal((3, 3, 6, 5)).astype(np.float32)
    whole, parts = (np.empty((5, 9, 7, 5), np.float32) for _ in range(2))
    winograd.forward(x, w, whole, ((1, 1), (1, 1)))
    monkeypatch.setattr(plan, "CACHE_CHUNK_BYTES", 1)  # one sample per chunk
    winograd.forward(x, w, parts, ((1, 1), (1, 1)))
    np.testing.assert_array_equal(parts, whole)


def test_f2x2_matches_the_reference():
    rng = np.random.default_rng(9)
    x, w = rng.standard_normal((2, 7, 6, 3)), rng.standard_normal((3, 3, 3, 4))
    y = np.empty((2, 7, 6, 4))
    winograd.forward(x, w, y, ((1, 1), (1, 1)), m=2)
    assert_close(y, conv_ref(x, w, (1, 1), (1, 1), ((1, 1), (1, 1))), np.float64)


def _plan(c_in, c_out, side=32, **kwargs):
    return dj.kernels.plan(dj.layers.Conv2D(c_out, kwargs.pop("k", 3), padding="same",
                                            **kwargs), (64, side, side, c_in))


def test_the_planner_takes_winograd_only_where_it_is_forced():
    p = _plan(64, 64)  # measured no faster than the direct kernel: not planned
    assert p.forward == "direct" and "winograd" not in p.input_gradient
    with dj.config.kernels("winograd"):  # forced: wherever it applies
        p = _plan(16, 16, side=8)
        assert p.forward == "winograd" and p.input_gradient == "correlation (winograd)"
        assert "Winograd F(4x4, 3x3)" in str(p) and "forced" in str(p)
        for other in (_plan(64, 64, strides=2), _plan(64, 64, dilation_rate=2),
                      _plan(64, 64, k=5), _plan(64, 64, groups=2)):
            assert other.forward != "winograd" and "winograd" not in other.input_gradient
    with dj.config.kernels("numba"):  # "numba" names the other compiled variants only
        assert _plan(64, 64).forward == "direct"
    x = np.zeros((2, 8, 8, 16), np.float32)
    w = np.zeros((3, 3, 16, 16), np.float32)
    args = (x, w, x, (1, 1), (1, 1), ((1, 1),) * 2, 1)
    assert registry.select("conv.correlate", *args).name != "winograd"
    with dj.config.kernels("winograd"):
        assert registry.select("conv.correlate", *args).name == "winograd"
        assert not plan.winograd_forward(x.astype(np.float16), w.shape, (1, 1), (1, 1), 1)
