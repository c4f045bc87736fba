"""Elementwise, reduction, shape and matrix ops: finite differences and the PyTorch oracle
(float64 and float32) with broadcasting, plus the argument checks."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dojang as dj
from dojang import ops
from tests.helpers import gradcheck, torch_oracle

torch.set_num_threads(1)
DTYPES = [np.float64, np.float32]


def _randn(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _positive(shape, seed=0):
    return np.abs(_randn(shape, seed)) + 0.5


def _check(device, dj_fn, torch_fn, *arrays, wrt=None):
    """gradcheck in float64 (on the CPU) plus the torch oracle in float64 and float32."""
    if device == "cpu":
        gradcheck(dj_fn, *arrays, wrt=wrt)
    for dtype in DTYPES:
        torch_oracle(dj_fn, torch_fn, *arrays, dtype=dtype, wrt=wrt, device=device)


# ---------------------------------------------------------------------------- binary
BROADCAST = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((4,), (2, 3, 4)),
             ((), (2, 3))]
BINARY = {
    "add": (lambda a, b: a + b, lambda a, b: a + b, _randn, _randn),
    "sub": (lambda a, b: a - b, lambda a, b: a - b, _randn, _randn),
    "mul": (lambda a, b: a * b, lambda a, b: a * b, _randn, _randn),
    "div": (lambda a, b: a / b, lambda a, b: a / b, _randn, _positive),
    "pow": (lambda a, b: a ** b, lambda a, b: a ** b, _positive, _randn),
    "maximum": (ops.maximum, torch.maximum, _randn, _randn),
    "minimum": (ops.minimum, torch.minimum, _randn, _randn),
}


@pytest.mark.parametrize("shapes", BROADCAST, ids=str)
@pytest.mark.parametrize("name", BINARY)
def test_binary_ops(name, shapes, device):
    dj_fn, torch_fn, make_a, make_b = BINARY[name]
    _check(device, dj_fn, torch_fn, make_a(shapes[0], 1), make_b(shapes[1], 2))


@pytest.mark.parametrize("name", ["add", "sub", "mul", "div"])
def test_binary_ops_with_python_scalars_keep_dtype(name):
    dj_fn = BINARY[name][0]
    x = dj.Tensor(np.ones(3, np.float32) + 1, requires_grad=True)
    assert dj_fn(x, 2.0).dtype == np.float32 and dj_fn(3, x).dtype == np.float32


def test_maximum_ties_split_the_gradient_like_torch():
    a, b = np.array([1.0, 2.0, 3.0]), np.array([1.0, 5.0, 3.0])
    for dj_fn, torch_fn in ((ops.maximum, torch.maximum), (ops.minimum, torch.minimum)):
        torch_oracle(dj_fn, torch_fn, a, b)


# ---------------------------------------------------------------------------- unary
UNARY = {
    "neg": (lambda x: -x, lambda x: -x, _randn),
    "exp": (ops.exp, torch.exp, _randn),
    "log": (ops.log, torch.log, _positive),
    "sqrt": (ops.sqrt, torch.sqrt, _positive),
    "abs": (ops.abs, torch.abs, lambda s, seed: _positive(s, seed) * np.sign(_randn(s, 9))),
    "clip": (lambda x: ops.clip(x, -0.5, 0.7), lambda x: torch.clamp(x, -0.5, 0.7), _randn),
    "clip_low": (lambda x: x.clip(min=0.1), lambda x: torch.clamp(x, min=0.1), _randn),
    "pow_scalar": (lambda x: x ** 3, lambda x: x ** 3, _randn),
    "rpow": (lambda x: 2.0 ** x, lambda x: 2.0 ** x, _randn),
}


@pytest.mark.parametrize("name", UNARY)
def test_unary_ops(name, device):
    dj_fn, torch_fn, make = UNARY[name]
    x = make((3, 4), 3)
    if name.startswith("clip"):  # keep finite differences off the clip bounds
        x = x[(np.abs(x + 0.5) > 0.01) & (np.abs(x - 0.7) > 0.01) & (np.abs(x - 0.1) > 0.01)]
    _check(device, dj_fn, torch_fn, x)


def test_where(device):
    cond = _randn((3, 4), 4) > 0
    on_device = dj.backend.to_device(cond, device)
    _check(device, lambda a, b: ops.where(on_device, a, b),
           lambda a, b: torch.where(torch.tensor(cond), a, b), _randn((3, 4), 5), _randn((4,), 6))


# ---------------------------------------------------------------------------- reductions
AXES = [None, 0, -1, 1, (0, 2), (2, 0)]
REDUCE = {
    "sum": (ops.sum, torch.sum),
    "mean": (ops.mean, torch.mean),
    "max": (ops.max, torch.amax),
    "min": (ops.min, torch.amin),
}


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("name", REDUCE)
def test_reductions(name, axis, keepdims, device):
    dj_op, torch_op = REDUCE[name]
    x = _randn((2, 3, 4), 7)

    def torch_fn(t):
        dims = tuple(range(t.ndim)) if axis is None else axis
        return torch_op(t, dim=dims, keepdim=keepdims)

    _check(device, lambda t: dj_op(t, axis=axis, keepdims=keepdims), torch_fn, x)


def test_max_ties_share_the_gradient_like_torch_amax():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    torch_oracle(lambda t: t.max(axis=1), lambda t: torch.amax(t, dim=1), x)
    torch_oracle(lambda t: t.min(), lambda t: torch.amin(t), x)


# ---------------------------------------------------------------------------- shape
def test_reshape_and_flatten(device):
    x = _randn((2, 3, 4), 8)
    _check(device, lambda t: t.reshape(4, -1), lambda t: t.reshape(4, -1), x)
    _check(device, lambda t: t.flatten(1), lambda t: t.flatten(1), x)


@pytest.mark.parametrize("axes", [None, (1, 0, 2), (2, 0, 1)], ids=str)
def test_transpose(axes, device):
    x = _randn((2, 3, 4), 9)
    torch_fn = (lambda t: t.permute(2, 1, 0)) if axes is None else (lambda t: t.permute(*axes))
    _check(device, lambda t: ops.transpose(t, axes), torch_fn, x)


INDICES = {
    "slices": (slice(None, None, 2), slice(1, None)),
    "negative_stop": (slice(None), slice(None, -1), slice(-3, None)),
    "int": 1,
    "int_array_repeats": np.array([0, 2, 0, 0]),
    "bool_mask": _randn((3, 4), 10) > 0,
    "mixed": (np.array([1, 1, 0]), slice(None), 2),
    "ellipsis_newaxis": (Ellipsis, None, 1),
}


def _torch_index(index):
    if isinstance(index, tuple):
        return tuple(_torch_index(i) for i in index)
    return torch.tensor(index) if isinstance(index, np.ndarray) else index


@pytest.mark.parametrize("name", INDICES)
def test_getitem(name, device):
    index = INDICES[name]
    _check(device, lambda t: t[index], lambda t: t[_torch_index(index)], _randn((3, 4, 5), 11))


def test_getitem_negative_step(device):
    x = _randn((3, 4, 5), 24)
    gradcheck(lambda t: t[:, ::-1, 3:0:-2], x)
    _check(device, lambda t: t[:, ::-1, 3:0:-2], lambda t: t.flip(1)[:, :, [3, 1]], x)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate_and_stack(axis, device):
    a, b, c = _randn((2, 3), 12), _randn((2, 3), 13), _randn((2, 3), 14)
    _check(device, lambda *ts: ops.stack(ts, axis=axis),
           lambda *ts: torch.stack(ts, dim=axis), a, b, c)
    c2 = _randn((2, 3, 2) if axis == -1 else (1, 3, 2) if axis == 0 else (2, 4, 2), 15)
    a3 = _randn((2, 3, 2), 16)
    _check(device, lambda x, y: ops.concatenate([x, y], axis=axis),
           lambda x, y: torch.cat([x, y], dim=axis), a3, c2)


PAD_MODES = {"reflect": "reflect", "replicate": "replicate", "edge": "replicate",
             "circular": "circular", "wrap": "circular"}
PADS = [((1, 1), (1, 1)), ((2, 0), (0, 3)), ((0, 1), (3, 2))]


@pytest.mark.parametrize("pads", PADS, ids=str)
@pytest.mark.parametrize("mode", PAD_MODES)
def test_pad_modes_match_torch(mode, pads, device):
    x = _randn((1, 2, 4, 5), 17)
    (top, bottom), (left, right) = pads

    def dj_fn(t):
        return ops.pad(t, ((0, 0), (0, 0)) + pads, mode=mode)

    def torch_fn(t):
        return F.pad(t, (left, right, top, bottom), mode=PAD_MODES[mode])

    _check(device, dj_fn, torch_fn, x)


@pytest.mark.parametrize("mode", ["constant", "zeros"])
def test_pad_constant(mode, device):
    x = _randn((2, 3), 18)
    value = 1.5 if mode == "constant" else 0.0
    _check(device, lambda t: ops.pad(t, ((1, 0), (2, 3)), mode=mode, constant_values=value),
           lambda t: F.pad(t, (2, 3, 1, 0), value=value), x)


# ---------------------------------------------------------------------------- matmul
MATMUL = [((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((2, 3, 4), (2, 4, 5)),
          ((2, 1, 3, 4), (3, 4, 2)), ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)),
          ((2, 3, 4), (4,)), ((4,), (2, 4, 3))]


@pytest.mark.parametrize("shapes", MATMUL, ids=str)
def test_matmul(shapes, device):
    _check(device, lambda a, b: a @ b, lambda a, b: a @ b, _randn(shapes[0], 19),
           _randn(shapes[1], 20))


@pytest.mark.parametrize("bias", [True, False])
def test_linear(bias, device):
    x, w, b = _randn((2, 3, 4), 21), _randn((4, 5), 22), _randn(5, 23)
    if bias:
        _check(device, ops.linear, lambda x, w, b: x @ w + b, x, w, b)
    else:
        _check(device, ops.linear, lambda x, w: x @ w, x, w)


def test_ndarray_on_the_left_gives_a_tensor_with_gradient():
    x = dj.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = np.array([3.0, 4.0]) * x + np.array([1.0, 1.0])
    assert isinstance(y, dj.Tensor)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 4.0])


# ---------------------------------------------------------------------------- errors
T = dj.Tensor(np.zeros((2, 3)))


@pytest.mark.parametrize("call, exc, match", [
    (lambda: T.reshape(4, 2), ValueError,
     r"reshape: cannot reshape a tensor of shape \(2, 3\) \(6 elements\). "
     r"Received: shape=\(4, 2\)"),
    (lambda: T.reshape(-1, -1), ValueError, r"reshape: cannot reshape"),
    (lambda: T.reshape(2.0, 3), TypeError, r"reshape: Expected shape to be a tuple of ints"),
    (lambda: ops.transpose(T, (0, 0)), ValueError,
     r"transpose: Expected a permutation of 2 axes. Received: axes=\(0, 0\)"),
    (lambda: ops.sum(T, axis=2), ValueError,
     r"sum: Expected axis in \[-2, 2\) for a tensor of rank 2. Received: axis=2"),
    (lambda: ops.mean(T, axis=(0, -2)), ValueError,
     r"mean: Expected distinct axes. Received: axis=\(0, -2\)"),
    (lambda: ops.max(T, axis="0"), TypeError, r"max: Expected axis to be None, an int"),
    (lambda: ops.concatenate([T, dj.Tensor(np.zeros((3, 2)))], axis=0), ValueError,
     r"concatenate: all shapes must match except along axis 0"),
    (lambda: ops.concatenate([]), ValueError, r"concatenate: Expected at least one tensor"),
    (lambda: ops.stack([T, dj.Tensor(np.zeros((3, 2)))]), ValueError,
     r"stack: Expected tensors of one shape"),
    (lambda: ops.pad(T, ((1, 1), (1, 1)), mode="mirror"), ValueError,
     r"pad: Expected mode to be one of \('constant', 'zeros', 'reflect', 'replicate', "
     r"'edge', 'circular', 'wrap'\). Received: mode='mirror'"),
    (lambda: ops.pad(T, ((2, 0), (0, 0)), mode="reflect"), ValueError,
     r"pad: reflect padding must be smaller than the axis it pads; axis 0 has length 2. "
     r"Received: pad_width\[0\]=\(2, 0\)"),
    (lambda: ops.pad(T, ((1, 1),)), ValueError,
     r"pad: Expected pad_width to be 2 \(before, after\) pairs of ints >= 0"),
    (lambda: ops.pad(T, ((-1, 0), (0, 0))), ValueError, r"pairs of ints >= 0"),
    (lambda: T @ dj.Tensor(np.zeros((2, 3))), ValueError,
     r"matmul: inner dimensions differ. Received: shapes \(2, 3\) and \(2, 3\)"),
    (lambda: ops.matmul(T, dj.Tensor(2.0)), ValueError,
     r"matmul: Expected tensors of rank >= 1. Received: shapes \(2, 3\) and \(\)"),
    (lambda: ops.linear(T, np.zeros((3, 4)), np.zeros(3)), ValueError,
     r"linear: Expected b of shape \(4,\). Received: b.shape=\(3,\)"),
    (lambda: ops.linear(T, np.zeros((2, 4))), ValueError,
     r"linear: Expected x of shape \(\.\.\., 2\)"),
    (lambda: ops.clip(T), ValueError, r"clip: Expected at least one of min and max"),
    (lambda: ops.where(np.ones((2, 3)), T, T), TypeError,
     r"Expected condition to be a boolean array. Received: dtype=float64"),
    (lambda: T + "a", TypeError,
     r"Expected numeric data \(bool, int or float\). Received: an array of dtype <U1 from str"),
])
def test_error_messages(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
