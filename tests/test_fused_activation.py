"""Every layer that takes ``activation=``: with 'relu' or 'tanh' it equals the unfused
computation.

The reference is the same layer with ``activation=None`` and the same weights, followed by
the activation written in NumPy: ``y = max(z, 0)`` forward and the upstream gradient masked
by ``z > 0`` backward; ``y = tanh(z)`` and the gradient times ``1 - tanh(z)**2``. Fused or
not is the layer's business; the numbers must not change.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import dojang as dj
from dojang.layers.base import REGISTRY
from dojang.layers.fusion import fused_activation

L = dj.layers

# class name -> (constructor arguments, input shape); channels differ from filters on purpose.
CASES = {
    "Dense": ({"units": 5}, (3, 4)),
    "Activation": ({}, (2, 3, 4)),
    "Conv1D": ({"filters": 5, "kernel_size": 3, "strides": 2}, (2, 9, 3)),
    "Conv2D": ({"filters": 5, "kernel_size": 3, "padding": "same"}, (2, 6, 5, 3)),
    "Conv3D": ({"filters": 2, "kernel_size": 2}, (1, 4, 3, 4, 3)),
    "Conv1DTranspose": ({"filters": 5, "kernel_size": 3, "strides": 2}, (2, 4, 3)),
    "Conv2DTranspose": ({"filters": 5, "kernel_size": 3}, (2, 5, 5, 4)),
    "Conv3DTranspose": ({"filters": 2, "kernel_size": 2, "strides": 2}, (1, 2, 3, 2, 3)),
    "DepthwiseConv2D": ({"kernel_size": 3, "depth_multiplier": 2}, (2, 6, 5, 3)),
    "SeparableConv2D": ({"filters": 5, "kernel_size": 3, "padding": "same"}, (2, 5, 6, 3)),
    "Conv": ({"filters": 5, "kernel_size": 3, "padding_mode": "reflect", "padding": "same"},
             (2, 6, 5, 3)),
    "ConvTranspose": ({"filters": 5, "kernel_size": 3, "strides": 2, "padding": "same"},
                      (2, 4, 5, 3)),
}


def _takes_activation(cls) -> bool:
    return "activation" in inspect.signature(cls.__init__).parameters


def test_every_layer_with_an_activation_argument_is_covered():
    names = sorted(n for n, cls in REGISTRY.items()
                   if _takes_activation(cls) and not n.startswith("Base"))  # Base*: abstract
    assert names == sorted(CASES)


# name -> (forward of the pre-activation z, d activation / dz at z)
ACTIVATIONS = {"relu": (lambda z: np.maximum(z, 0), lambda z: (z > 0).astype(z.dtype)),
               "tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2)}


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("name", sorted(CASES))
def test_activation_equals_the_unfused_computation(name, activation):
    cls = REGISTRY[name]
    kwargs, shape = CASES[name]
    forward, slope = ACTIVATIONS[activation]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    fused = cls(**kwargs, activation=activation)
    plain = cls(**kwargs, activation=None)
    plain(x)
    fused(x)
    # nonzero biases so the bias is inside the activation as well
    fused.set_weights([rng.standard_normal(w.shape) for w in plain.weights])
    plain.set_weights(fused.get_weights())

    xt = dj.Tensor(x, requires_grad=True)
    y = fused(xt)
    xr = dj.Tensor(x, requires_grad=True)
    z = plain(xr)
    assert y.shape == z.shape
    np.testing.assert_allclose(y.numpy(), forward(z.numpy()), rtol=1e-5, atol=1e-6)

    g = rng.standard_normal(y.shape).astype(np.float32)
    (y * dj.Tensor(g)).sum().backward()
    (z * dj.Tensor(g * slope(z.numpy()))).sum().backward()
    np.testing.assert_allclose(xt.grad.numpy(), xr.grad.numpy(), rtol=1e-4, atol=1e-5)
    for wf, wp in zip(fused.weights, plain.weights):
        np.testing.assert_allclose(wf.grad.numpy(), wp.grad.numpy(), rtol=1e-4, atol=1e-5,
                                   err_msg=wf.name)


def test_transposed_conv_with_relu_has_the_transposed_shape():
    # The case: filters == input channels used to return (2, 3, 3, 4).
    layer = L.Conv2DTranspose(4, 3, activation="relu")
    out = layer(np.random.default_rng(1).standard_normal((2, 5, 5, 4)))
    assert out.shape == (2, 7, 7, 4)
    assert out.numpy().min() >= 0


def test_fusion_is_decided_from_the_layer_metadata():
    assert fused_activation(L.Conv2D(2, 3, activation="relu")) == "relu"
    assert fused_activation(L.SeparableConv2D(2, 3, activation="relu")) == "relu"
    assert fused_activation(L.Conv2D(2, 3, activation="tanh")) == "tanh"
    assert fused_activation(L.Conv2D(2, 3, activation="sigmoid")) is None
    assert fused_activation(L.Conv2DTranspose(2, 3, activation="relu")) is None
    assert fused_activation(L.Dense(2, activation="relu")) is None


def test_the_plan_says_which_activation_is_fused():
    """A tanh layer's plan names the fused tanh and no bias+ReLU pass; relu's names the pass;
    the plan agrees with the layer's own fusion rule."""
    shape = (4, 9, 9, 6)
    tanh = L.Conv2D(8, 3, activation="tanh")
    relu = L.Conv2D(8, 3, activation="relu")
    assert fused_activation(tanh) == "tanh" and fused_activation(relu) == "relu"
    tp, rp = dj.kernels.plan(tanh, shape), dj.kernels.plan(relu, shape)
    assert tp.bias_relu == "none" and any(r.startswith("tanh fused") for r in tp.reasons)
    assert rp.bias_relu != "none" and not any("tanh" in r for r in rp.reasons)
