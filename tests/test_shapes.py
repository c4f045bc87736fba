"""dojang.shapes: unit tests, brute-force receptive fields, and hypothesis vs PyTorch shapes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from dojang import shapes

torch.set_num_threads(1)
SETTINGS = settings(max_examples=50, deadline=None)


def _brute_length(length, kernel, stride, pb, pa, dilation):
    """Count the window starts that fit in the padded input."""
    span = dilation * (kernel - 1) + 1
    return len(range(0, length + pb + pa - span + 1, stride))


def test_conv_output_length_seed_examples_and_brute_force():
    assert shapes.conv_output_length(4, 3, 1, 1, 1) == 4  # seed 000
    assert shapes.conv_output_length(5, 3) == 3  # seed 001: n - f + 1
    assert shapes.conv_output_length(5, 3, 1, 1, 1) == 5  # seed 001: n + 2p - f + 1
    assert shapes.conv_output_length(8, 3, 2) == 3  # (8 - 3) / 2 + 1 = 3.5, floored
    assert shapes.conv_output_length(2, 3) == 0  # window larger than the input
    assert shapes.conv_output_length(7, 3, 1, 0, 0, 3) == 1  # dilated span 7
    for args in [(9, 4, 3, 2, 1, 1), (10, 3, 2, 0, 3, 2), (1, 1, 1, 0, 0, 1), (6, 2, 5, 1, 0, 3)]:
        assert shapes.conv_output_length(*args) == _brute_length(*args)


@pytest.mark.parametrize("length,kernel,stride,dilation,want", [
    (13, 6, 5, 1, (1, 2)),  # TensorFlow's documented example: 3 outputs from 13
    (4, 3, 1, 1, (1, 1)),
    (5, 2, 2, 1, (0, 1)),
    (6, 2, 2, 1, (0, 0)),
    (4, 1, 3, 1, (0, 0)),
    (5, 3, 1, 2, (2, 2)),
    (2, 5, 1, 1, (2, 2)),
    (427, 2, 2, 1, (0, 1)),
])
def test_same_padding_known_values(length, kernel, stride, dilation, want):
    assert shapes.same_padding(length, kernel, stride, dilation) == want


@SETTINGS
@given(st.integers(1, 40), st.integers(1, 7), st.integers(1, 5), st.integers(1, 3))
def test_same_padding_gives_ceil_and_odd_pixel_after(length, kernel, stride, dilation):
    before, after = shapes.same_padding(length, kernel, stride, dilation)
    assert after - before in (0, 1)
    assert shapes.conv_output_length(length, kernel, stride, before, after, dilation) == (
        math.ceil(length / stride))
    # minimal: one pixel less padding would lose an output (unless none is needed)
    if before + after:
        assert shapes.conv_output_length(length, kernel, stride, before, after - 1,
                                         dilation) < math.ceil(length / stride)


def test_resolve_padding_forms():
    r = shapes.resolve_padding
    assert r("VALID", (5, 6), (3, 3), (1, 1), (1, 1)) == ((0, 0), (0, 0))
    assert r("Same", (13, 4), (6, 3), (5, 1), (1, 1)) == ((1, 2), (1, 1))
    assert r(2, (5,), (3,), (1,), (1,)) == ((2, 2),)
    assert r((1, 2), (5, 6), (3, 3), (1, 1), (1, 1)) == ((1, 1), (2, 2))
    assert r(((0, 1), [2, 3]), (5, 6), (3, 3), (1, 1), (1, 1)) == ((0, 1), (2, 3))
    assert r(np.int64(1), (4, 4), (3, 3), (1, 1), (1, 1)) == ((1, 1), (1, 1))


@pytest.mark.parametrize("padding,exc,match", [
    ("full", ValueError, r"conv2d: Expected padding to be one of \('valid', 'same'\)\. "
                         r"Received: padding='full'"),
    (-1, ValueError, r"conv2d: Expected padding to be an int >= 0\. Received: padding=-1"),
    ((1, 2, 3), ValueError, r"conv2d: Expected padding to be 'valid', 'same', an int >= 0, a "
                            r"tuple of 2 ints or a tuple of 2 \(before, after\) pairs\. "
                            r"Received: padding=\(1, 2, 3\)"),
    (((1, 2, 3), 1), ValueError, r"Received: padding=\(\(1, 2, 3\), 1\)"),
    (((0, -1), 1), ValueError, r"Received: padding=\(\(0, -1\), 1\)"),
    (1.5, ValueError, r"Received: padding=1\.5"),
    (None, ValueError, r"Received: padding=None"),
])
def test_resolve_padding_errors(padding, exc, match):
    with pytest.raises(exc, match=match):
        shapes.resolve_padding(padding, (5, 5), (3, 3), (1, 1), (1, 1), owner="conv2d")


def test_conv_output_shape():
    assert shapes.conv_output_shape((427, 640), (3, 3), 1, "same") == (427, 640)
    assert shapes.conv_output_shape((427, 640), (2, 2), 2, "valid") == (213, 320)
    assert shapes.conv_output_shape((427, 640), 2, 2, "same") == (214, 320)
    assert shapes.conv_output_shape((13,), 6, 5, "same") == (3,)
    assert shapes.conv_output_shape((9, 8, 7), (3, 2, 1), (2, 1, 3), ((1, 0), 1, 0),
                                    (1, 2, 1)) == (4, 8, 3)
    with pytest.raises(ValueError, match="Expected strides to be an int or a tuple of 2 ints"):
        shapes.conv_output_shape((5, 5), 3, (1, 1, 1))


def test_conv_transpose_output_length_inverts_conv():
    for length, k, s, pb, pa, d in [(4, 3, 2, 1, 1, 1), (5, 4, 3, 0, 2, 2), (1, 1, 1, 0, 0, 1)]:
        for op in range(s):
            out = shapes.conv_transpose_output_length(length, k, s, pb, pa, d, op)
            assert shapes.conv_output_length(out, k, s, pb, pa, d) == length
    assert shapes.conv_transpose_output_length(4, 3, 2, 1, 1) == 7


@pytest.mark.parametrize("k,cin,cout,groups,bias", [
    ((3, 3), 1, 32, 1, True), ((5, 5), 3, 10, 1, True), ((5, 5), 3, 10, 1, False),
    ((3, 2), 8, 12, 4, True), ((3, 3), 16, 16, 16, False), ((2, 3, 4), 6, 3, 3, True),
    ((7,), 2, 5, 1, True),
])
def test_conv_params_match_torch(k, cin, cout, groups, bias):
    cls = {1: torch.nn.Conv1d, 2: torch.nn.Conv2d, 3: torch.nn.Conv3d}[len(k)]
    module = cls(cin, cout, k, groups=groups, bias=bias)
    want = sum(p.numel() for p in module.parameters())
    assert shapes.conv_params(k, cin, cout, groups, bias) == want


def test_dense_params_match_torch():
    for fin, units, bias in [(784, 100, True), (3072, 10, False), (10, 1, True)]:
        want = sum(p.numel() for p in torch.nn.Linear(fin, units, bias=bias).parameters())
        assert shapes.dense_params(fin, units, bias) == want


@pytest.mark.parametrize("x_shape,w_shape,stride,dilation,groups", [
    ((2, 3, 9, 11), (4, 3, 3, 2), (2, 1), (1, 1), 1),
    ((1, 4, 8, 8), (6, 2, 3, 3), (1, 1), (2, 1), 2),
    ((3, 6, 7, 5), (6, 1, 2, 2), (1, 2), (1, 1), 6),
])
def test_conv_macs_match_torch_flop_counter(x_shape, w_shape, stride, dilation, groups):
    from torch.utils.flop_counter import FlopCounterMode

    x, w = torch.zeros(x_shape), torch.zeros(w_shape)
    with FlopCounterMode(display=False) as counter:
        y = F.conv2d(x, w, stride=stride, dilation=dilation, groups=groups)
    macs = shapes.conv_macs(tuple(y.shape[2:]), w_shape[2:], x_shape[1], w_shape[0], groups)
    assert 2 * macs * x_shape[0] == counter.get_total_flops()


def _brute_receptive_field(layers, unit):
    """Input pixels (unbounded, padding included) that influence ``unit`` of the last layer."""
    pixels = {unit}
    for layer in reversed(layers):
        k, s = layer["kernel"], layer.get("stride", 1)
        p, d = layer.get("pad_before", 0), layer.get("dilation", 1)
        pixels = {i * s - p + t * d for i in pixels for t in range(k)}
    return pixels


def _check_against_brute_force(layers):
    fields = shapes.receptive_fields(layers, rank=1)
    for depth in range(1, len(layers) + 1):
        first = _brute_receptive_field(layers[:depth], 0)
        second = _brute_receptive_field(layers[:depth], 1)
        centre = (min(first) + max(first)) / 2 + 0.5  # pixel i spans [i, i + 1)
        rf = fields[depth - 1]
        assert rf.size == (max(first) - min(first) + 1,)
        assert rf.jump == (min(second) - min(first),)
        assert rf.start == (centre,)


def test_receptive_field_known_stack():
    # two 3x3 stride-2 pad-1 convs: sizes 3 and 7, jumps 2 and 4, centres stay at 0.5
    layers = [{"kernel": 3, "stride": 2, "pad_before": 1}] * 2
    fields = shapes.receptive_fields(layers, rank=2)
    assert [f.size for f in fields] == [(3, 3), (7, 7)]
    assert [f.jump for f in fields] == [(2, 2), (4, 4)]
    assert [f.start for f in fields] == [(0.5, 0.5), (0.5, 0.5)]
    _check_against_brute_force(layers)
    # conv 3 same, pool 2, conv 3 same, pool 2 (a Fashion-MNIST CNN): 3, 4, 8, 10 pixels
    stack = [{"kernel": 3, "pad_before": 1}, {"kernel": 2, "stride": 2}] * 2
    assert [f.size for f in shapes.receptive_fields(stack)] == [(3, 3), (4, 4), (8, 8), (10, 10)]
    _check_against_brute_force(stack)


def test_receptive_field_per_dimension_and_errors():
    fields = shapes.receptive_fields([{"kernel": (3, 1), "stride": (1, 2), "dilation": (2, 1)}])
    assert fields[0].size == (5, 1) and fields[0].jump == (1, 2)
    step = shapes.receptive_field_step(shapes.ReceptiveField((1,), (1,), (0.5,)), (3,), (2,), (1,))
    assert step == shapes.ReceptiveField((3,), (2,), (0.5,))
    with pytest.raises(ValueError, match=r"Expected layers\[1\]\['stride'\] to be an int"):
        shapes.receptive_fields([{"kernel": 3}, {"kernel": 3, "stride": 0}])


_layer = st.fixed_dictionaries({
    "kernel": st.integers(1, 5), "stride": st.integers(1, 3),
    "pad_before": st.integers(0, 2), "dilation": st.integers(1, 3),
})


@SETTINGS
@given(st.lists(_layer, min_size=1, max_size=5))
def test_receptive_field_matches_brute_force(layers):
    _check_against_brute_force(layers)


_dim = st.tuples(st.integers(1, 14), st.integers(1, 4), st.integers(1, 3), st.integers(0, 3),
                 st.integers(0, 3), st.integers(1, 3))  # L, K, S, P_before, P_after, D


def _valid(dims):
    return all(n + pb + pa >= d * (k - 1) + 1 for n, k, s, pb, pa, d in dims)


def _torch_pads(dims):
    return [v for _, _, _, pb, pa, _ in reversed(dims) for v in (pb, pa)]


@SETTINGS
@given(st.lists(_dim, min_size=2, max_size=2).filter(_valid), st.integers(1, 2))
def test_conv_and_pool_shapes_match_torch(dims, groups):
    spatial = tuple(d[0] for d in dims)
    kernel, strides = tuple(d[1] for d in dims), tuple(d[2] for d in dims)
    pads, dil = tuple((d[3], d[4]) for d in dims), tuple(d[5] for d in dims)
    want = shapes.conv_output_shape(spatial, kernel, strides, pads, dil)
    x = F.pad(torch.zeros(1, 2, *spatial), _torch_pads(dims))
    y = F.conv2d(x, torch.zeros(4, 2 // groups, *kernel), stride=strides, dilation=dil,
                 groups=groups)
    assert tuple(y.shape[2:]) == want
    assert tuple(F.max_pool2d(x, kernel, strides, dilation=dil).shape[2:]) == want


@SETTINGS
@given(st.integers(1, 30), st.integers(1, 30), st.integers(1, 6), st.integers(1, 4),
       st.integers(1, 3), st.sampled_from(["same", "valid"]))
def test_string_padding_shapes_match_torch(h, w, k, s, d, padding):
    span = d * (k - 1) + 1
    if padding == "valid" and min(h, w) < span:
        return
    want = shapes.conv_output_shape((h, w), k, s, padding, d)
    pads = shapes.resolve_padding(padding, (h, w), (k, k), (s, s), (d, d))
    y = F.conv2d(F.pad(torch.zeros(1, 1, h, w), [v for p in reversed(pads) for v in p]),
                 torch.zeros(1, 1, k, k), stride=s, dilation=d)
    assert tuple(y.shape[2:]) == want
    if padding == "same":
        assert want == (math.ceil(h / s), math.ceil(w / s))
        if s == 1 and span % 2:  # PyTorch's own 'same' (stride 1, symmetric here) agrees
            assert tuple(F.conv2d(torch.zeros(1, 1, h, w), torch.zeros(1, 1, k, k),
                                  padding="same", dilation=d).shape[2:]) == want


@SETTINGS
@given(st.integers(1, 10), st.integers(1, 5), st.integers(1, 3), st.integers(0, 2),
       st.integers(1, 3), st.integers(0, 2))
def test_conv_transpose_shape_matches_torch(length, k, s, p, d, op):
    op = op % max(s, d)  # PyTorch needs output_padding < max(stride, dilation)
    want = shapes.conv_transpose_output_length(length, k, s, p, p, d, op)
    if want < 1:
        return
    y = F.conv_transpose1d(torch.zeros(1, 1, length), torch.zeros(1, 1, k), stride=s, padding=p,
                           output_padding=op, dilation=d)
    assert y.shape[-1] == want
