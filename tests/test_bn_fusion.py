"""Batch norm with the residual sum and the ReLU in one op (``relu(bn(x) + residual)``):
the PyTorch oracle in training and inference mode, running statistics, gradients, the
argument checks, and a functional model that runs its chains fused against the same model
run layer by layer."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dojang as dj
import dojang.functional as djf
from dojang import layers as L
from dojang.layers import fusion
from dojang.viz.probe import layer_output
from tests.helpers import assert_close, gradcheck, torch_oracle

torch.set_num_threads(1)

SHAPE = (2, 3, 4, 6)  # NHWC


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(SHAPE) * 2 + 0.5, rng.standard_normal(6) + 1,
            rng.standard_normal(6), rng.standard_normal(SHAPE))


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("residual, relu", [(True, True), (False, True), (True, False)])
def test_fused_batch_norm_matches_torch(training, residual, relu, device, kernels):
    x, gamma, beta, r = _inputs()
    rm, rv = np.linspace(-0.5, 0.5, 6), np.linspace(0.5, 2.0, 6)

    def dj_fn(x, g, b, r):
        return djf.batch_normalization(
            x, g, b, dj.backend.to_device(rm.copy(), device),
            dj.backend.to_device(rv.copy(), device), training=training,
            residual=r if residual else None, activation="relu" if relu else None)

    def torch_fn(x, g, b, r):
        y = F.batch_norm(x.movedim(-1, 1), torch.tensor(rm, dtype=x.dtype),
                         torch.tensor(rv, dtype=x.dtype), g, b, training=training, eps=1e-3)
        y = y.movedim(1, -1) + (r if residual else 0)
        return y.relu() if relu else y

    wrt = range(4) if residual else range(3)
    if device == "cpu" and residual and relu:
        gradcheck(dj_fn, x, gamma, beta, r)
    for dtype in (np.float64, np.float32):
        torch_oracle(dj_fn, torch_fn, x, gamma, beta, r, dtype=dtype, device=device, wrt=wrt)


def test_fused_batch_norm_updates_running_statistics_as_the_plain_one(kernels):
    x, gamma, beta, r = (a.astype(np.float32) for a in _inputs(1))
    stats = [[np.zeros(6, np.float32), np.ones(6, np.float32)] for _ in range(2)]
    djf.batch_normalization(x, gamma, beta, *stats[0], training=True, momentum=0.9)
    djf.batch_normalization(x, gamma, beta, *stats[1], training=True, momentum=0.9,
                            residual=r, activation="relu")
    for a, b in zip(*stats, strict=True):
        np.testing.assert_array_equal(a, b)


def test_fused_batch_norm_is_deterministic(kernels):
    x, gamma, beta, r = (a.astype(np.float32) for a in _inputs(2))
    runs = []
    for _ in range(2):
        ts = [dj.Tensor(a, requires_grad=True) for a in (x, gamma, beta, r)]
        y = djf.batch_normalization(ts[0], ts[1], ts[2], None, None, training=True,
                                    residual=ts[3], activation="relu")
        (y * y).sum().backward()
        runs.append([y.numpy()] + [t.grad.numpy() for t in ts])
    for a, b in zip(*runs, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"residual": np.ones((2, 3, 4, 5))}, ValueError,
     r"^batch_normalization: Expected residual to have the shape of x, \(2, 3, 4, 6\)\. "
     r"Received: residual\.shape=\(2, 3, 4, 5\)$"),
    ({"activation": "tanh"}, ValueError,
     r"^batch_normalization: Expected activation to be one of \('relu',\)\. "
     r"Received: activation='tanh'$"),
])
def test_fused_batch_norm_rejects_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        djf.batch_normalization(np.ones(SHAPE), None, None, None, None, training=True,
                                **kwargs)


# ---------------------------------------------------------------------------- models
def _block_model():
    """A stem and two residual blocks (identity and 1x1 projection shortcuts), plus a
    BN -> ReLU whose BN output is also a model output (not fusable)."""
    inputs = L.Input((6, 6, 3))
    x = L.ReLU()(L.BatchNormalization()(L.Conv2D(4, 3, padding="same")(inputs)))
    for filters, stride in ((4, 1), (8, 2)):
        y = L.ReLU()(L.BatchNormalization()(L.Conv2D(filters, 3, strides=stride,
                                                     padding="same")(x)))
        y = L.BatchNormalization()(L.Conv2D(filters, 3, padding="same")(y))
        if stride != 1:
            x = L.BatchNormalization()(L.Conv2D(filters, 1, strides=stride)(x))
        x = L.ReLU()(L.Add()([x, y]))
    side = L.BatchNormalization()(x)
    capped = L.ReLU(max_value=6.0)(L.BatchNormalization()(x))
    outputs = L.Dense(3)(L.GlobalAveragePooling2D()(L.Add()([L.ReLU()(side), capped])))
    return dj.Model(inputs, [outputs, side])


def test_residual_chains_are_found_where_they_are_safe():
    model = _block_model()
    chains = list(model._chains.values())
    # the stem, two per block; not the model output's ReLU nor the capped ReLU
    assert len(chains) == 5
    assert [c.shortcut is None for c in chains] == [True, True, False, True, False]
    norms = [c.norm.node.layer for c in chains]
    assert all(isinstance(n, L.BatchNormalization) for n in norms)
    assert fusion.residual_chains(model._order, model._order) == {}  # every tensor an output


def test_fused_model_equals_the_layer_by_layer_model(kernels):
    runs = []
    for fused in (True, False):
        dj.random.set_seed(3)
        model = _block_model()
        if not fused:
            model._chains = {}
        rng = np.random.default_rng(4)
        x = rng.standard_normal((5, 6, 6, 3)).astype(np.float32)
        out = []
        for training in (True, False):
            xt = dj.Tensor(x, requires_grad=True)
            head, side = model(xt, training=training)
            ((head * head).sum() + side.sum()).backward()
            out += [head.numpy(), side.numpy(), xt.grad.numpy()]
        runs.append(out + [w.numpy() for w in model.weights])
    for a, b in zip(*runs, strict=True):
        assert_close(a, b, np.float32)


def test_a_tapped_layer_sees_its_own_output():
    """``viz.probe`` replaces a layer's ``call`` to see its output: that chain runs layer
    by layer, so the norm and the sum are called and give their values before the ReLU."""
    dj.random.set_seed(5)
    model = _block_model()
    x = np.random.default_rng(6).standard_normal((2, 6, 6, 3)).astype(np.float32)
    norm, add, relu = list(model._chains.values())[2].layers  # the first block's sum
    after = layer_output(model, relu, x).numpy()
    for layer in (norm, add):
        before = layer_output(model, layer, x).numpy()
        assert (before < 0).any() and (after >= 0).all()
    np.testing.assert_array_equal(np.maximum(before, 0), after)
