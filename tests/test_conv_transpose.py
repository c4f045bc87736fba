"""Transposed convolution: adjoint identity, PyTorch oracle, loop reference, gradcheck, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dojang as dj
from dojang import functional as fn
from tests.helpers import assert_close, gradcheck, torch_oracle
from tests.ref_conv import conv_transpose_ref
from tests.test_conv import explicit_pads, torch_conv

torch.set_num_threads(1)

TORCH_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


@pytest.mark.parametrize("spatial,kernel,strides,dilations,padding,groups", [
    ((9,), (3,), (2,), (1,), "SAME", 1),
    ((7, 8), (3, 2), (2, 3), (1, 2), ((1, 2), (0, 1)), 1),
    ((6, 7), (2, 3), (1, 1), (2, 1), ((2, 0), (1, 3)), 1),
    ((5, 4, 6), (2, 2, 3), (1, 2, 2), (1, 1, 1), "VALID", 1),
    ((8, 7), (3, 3), (3, 2), (1, 1), "same", 1),
])
def test_adjoint_identity(spatial, kernel, strides, dilations, padding, groups, kernels):
    """<conv(x), y> == <x, conv_transpose(y)> with the same filters."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2,) + spatial + (3,))
    w = rng.standard_normal(kernel + (3, 4))
    cx = fn.conv(x, w, strides=strides, padding=padding, dilations=dilations)
    y = rng.standard_normal(cx.shape)
    ty = fn.conv_transpose(y, w, output_shape=spatial, strides=strides, padding=padding,
                           dilations=dilations)
    assert ty.shape == x.shape
    np.testing.assert_allclose(np.sum(cx.numpy() * y), np.sum(x * ty.numpy()), rtol=1e-11)


# (N, L, C_in, C_out, kernel, strides, dilations, symmetric pad, output_padding, data_format)
TORCH_CASES = [
    (2, (7,), 3, 2, (3,), 2, 1, 1, 1, "NWC"),
    (1, (5, 6), 2, 3, (3, 2), (2, 3), (1, 2), (1, 0), (1, 2), "NHWC"),
    (2, (4, 5), 3, 2, (2, 3), 1, (3, 2), (0, 1), (2, 1), "NCHW"),
    (1, (3, 4, 3), 2, 2, (2, 3, 2), (2, 1, 2), 1, (1, 1, 0), (0, 0, 1), "NDHWC"),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", TORCH_CASES, ids=lambda c: f"{c[-1]}-s{c[5]}-d{c[6]}")
def test_conv_transpose_matches_torch(case, dtype, device, kernels):
    n, spatial, cin, cout, kernel, strides, dilations, pad, out_pad, fmt = case
    r = len(spatial)
    last = fmt.endswith("C")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n,) + spatial + (cin,) if last else (n, cin) + spatial)
    w = rng.standard_normal(kernel + (cout, cin))
    b = rng.standard_normal(cout)
    pads = [(p, p) for p in (pad if isinstance(pad, tuple) else (pad,) * r)]

    def torch_fn(x, w, b):
        tx = x.movedim(-1, 1) if last else x
        y = TORCH_T[r](tx, w.permute(r + 1, r, *range(r)), b, stride=strides,
                       padding=pad, output_padding=out_pad, dilation=dilations)
        return y.movedim(1, -1) if last else y

    torch_oracle(lambda x, w, b: fn.conv_transpose(
        x, w, strides=strides, padding=pads, dilations=dilations, output_padding=out_pad,
        data_format=fmt, bias=b), torch_fn, x, w, b, dtype=dtype, device=device)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_same_transpose_is_torch_conv_vjp(dtype):
    """SAME (asymmetric pads) has no torch conv_transpose twin: compare with the conv's VJP."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 4, 3, 3)).astype(dtype)
    w = rng.standard_normal((3, 4, 2, 3)).astype(dtype)
    out = (7, 6)
    y = fn.conv2d_transpose(x, w, output_shape=(2, 7, 6, 2), strides=2, padding="SAME")
    pads = explicit_pads("SAME", out, (3, 4), (2, 2), (1, 1), True)
    z = torch.zeros((2,) + out + (2,), dtype=torch.from_numpy(x).dtype, requires_grad=True)
    tz = torch_conv(z, torch.tensor(w), None, r=2, strides=(2, 2), dilations=(1, 1), pads=pads,
                    groups=1, mode="zeros", last=True)
    (g,) = torch.autograd.grad(tz, z, grad_outputs=torch.tensor(x))
    assert_close(y.numpy(), g.numpy(), dtype)


def test_conv_transpose_matches_loop_reference():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 3, 3))
    w = rng.standard_normal((2, 3, 2, 3))
    pads = ((1, 0), (0, 2))
    y = fn.conv2d_transpose(x, w, strides=(2, 3), dilations=(2, 1), padding=pads,
                            output_padding=(1, 2))
    ref = conv_transpose_ref(x, w, (2, 3), (2, 1), pads, y.shape[1:-1])
    assert_close(y.numpy(), ref, np.float64)


@pytest.mark.parametrize("kwargs,shape_x,shape_w", [
    (dict(strides=2, padding=((1, 0), (0, 1)), output_padding=1), (1, 3, 2, 2), (2, 3, 2, 2)),
    (dict(strides=1, dilations=2, padding="SAME", data_format="NCW"), (2, 2, 3), (2, 3, 2)),
])
def test_conv_transpose_gradcheck(kwargs, shape_x, shape_w, kernels):
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal(shape_x), rng.standard_normal(shape_w)
    b = rng.standard_normal(shape_w[-2])
    gradcheck(lambda x, w, b: fn.conv_transpose(x, w, bias=b, **kwargs), x, w, b)


def test_output_shape_picks_each_valid_size():
    x = np.ones((1, 3, 3, 1))
    w = np.ones((3, 3, 1, 1))
    sizes = [fn.conv2d_transpose(x, w, output_shape=(h, 7), strides=2).shape[1] for h in (7, 8)]
    assert sizes == [7, 8]
    assert fn.conv2d_transpose(x, w, strides=2, padding="SAME").shape == (1, 6, 6, 1)
    with dj.im2col_budget(1):
        chunked = fn.conv2d_transpose(x, w, strides=2, output_padding=1).numpy()
    np.testing.assert_array_equal(chunked, fn.conv2d_transpose(x, w, strides=2,
                                                               output_padding=1).numpy())


@pytest.mark.parametrize("spec,match", [
    (dict(output_padding=2, strides=2), r"conv2d_transpose: Expected output_padding to be "
     r"smaller than max\(S, D\) = \(2, 2\) in every dim. Received: output_padding=2"),
    (dict(output_padding=1, padding="SAME"), r"Expected output_padding to be smaller than "
     r"strides = \(1, 1\)"),
    (dict(output_shape=(9, 5), strides=2), r"Expected output_shape to be spatial sizes between "
     r"\(7, 7\) and \(8, 8\). Received: output_shape=\(9, 5\)"),
    (dict(output_shape=(1, 7, 7, 5), strides=2), r"Expected output_shape to be a shape with "
     r"\(batch, channels\) = \(1, 2\)"),
    (dict(output_shape=(7, 7), output_padding=1, strides=2), r"matching output_padding=1"),
    (dict(padding=4), r"Expected a positive output size"),
    (dict(w=(3, 3, 2, 4)), r"Expected input channels to equal filters.shape\[-1\]=4"),
])
def test_conv_transpose_errors(spec, match):
    spec = dict(spec)
    w = np.zeros(spec.pop("w", (3, 3, 2, 1)))
    with pytest.raises(ValueError, match=match):
        fn.conv2d_transpose(np.zeros((1, 3, 3, 1)), w, **spec)


@pytest.mark.parametrize("strides,dilations,output_padding", [(2, 3, 2), (3, 3, 2), (3, 2, 1)])
def test_output_padding_not_below_strides_matches_torch(strides, dilations, output_padding,
                                                        kernels):
    """With D > S the output padding may reach S: rows that no input reaches."""
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 4, 5, 2))
    w = rng.standard_normal((3, 3, 5, 2))
    tx, tw = dj.Tensor(x, requires_grad=True), dj.Tensor(w, requires_grad=True)
    y = fn.conv2d_transpose(tx, tw, strides=strides, dilations=dilations,
                            output_padding=output_padding, padding="VALID")
    gy = rng.standard_normal(y.shape)
    y.backward(dj.Tensor(gy))
    X = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
    W = torch.tensor(w.transpose(3, 2, 0, 1), requires_grad=True)
    Y = torch.nn.functional.conv_transpose2d(X, W, stride=strides, dilation=dilations,
                                             output_padding=output_padding)
    Y.backward(torch.tensor(gy.transpose(0, 3, 1, 2)))
    np.testing.assert_allclose(y.numpy(), Y.detach().numpy().transpose(0, 2, 3, 1), atol=1e-12)
    np.testing.assert_allclose(tx.grad.numpy(), X.grad.numpy().transpose(0, 2, 3, 1),
                               atol=1e-12)
    np.testing.assert_allclose(tw.grad.numpy(), W.grad.numpy().transpose(2, 3, 1, 0),
                               atol=1e-12)
