"""Receptive fields and Grad-CAM: the arrays behind the figures against PyTorch autograd.

A small functional CNN with a residual branch, batch norm (inference statistics), max
pooling and a softmax head is rebuilt in torch with the same weights; the ERF, Grad-CAM
and saliency of the torch twin are computed from their definitions in float64 with
``torch.autograd.grad`` and ``torch.nn.functional.interpolate``.
"""

import time

import numpy as np
import pytest

import dojang as dj
from dojang import layers as L
from dojang import viz

torch = pytest.importorskip("torch")
F = torch.nn.functional


@pytest.fixture(autouse=True)
def _fresh_names():
    dj.layers.clear_session()
    dj.random.set_seed(0)


def branchy(size=(12, 10)):
    """conv-BN-ReLU, a residual block (conv + identity), max pool, conv, dense softmax."""
    x = L.Input((*size, 3))
    h = L.ReLU()(L.BatchNormalization()(L.Conv2D(4, 3, padding="same", name="c1")(x)))
    r = L.Conv2D(4, 3, padding="same", activation="relu", name="c2")(h)
    h = L.ReLU()(L.Add()([h, r]))
    h = L.MaxPooling2D(2)(h)
    h = L.Conv2D(5, 3, activation="relu", name="c3")(h)
    y = L.Dense(3, activation="softmax")(L.Flatten()(h))
    model = dj.Model(x, y)
    bn = next(lay for lay in model.layers if type(lay).__name__ == "BatchNormalization")
    rng = np.random.default_rng(1)
    bn.moving_mean.data[...] = rng.normal(size=4)
    bn.moving_variance.data[...] = rng.uniform(0.5, 2.0, size=4)
    bn.gamma.data[...] = rng.uniform(0.5, 1.5, size=4)
    bn.beta.data[...] = rng.normal(size=4) * 0.1
    return model


def torch_twin(model):
    """forward(x NHWC float64) -> (the named conv outputs after activation, NCHW; logits)
    with model's weights."""
    t = {lay.name: [torch.tensor(w.numpy(), dtype=torch.float64) for w in lay.weights]
         for lay in model.layers}
    bn = next(lay for lay in model.layers if type(lay).__name__ == "BatchNormalization")
    dense = next(lay for lay in model.layers if type(lay).__name__ == "Dense")

    def conv(x, name, padding):
        k, b = t[name]
        return F.conv2d(x, k.permute(3, 2, 0, 1), b, padding=padding)

    def forward(x):
        x = x.permute(0, 3, 1, 2)
        g, beta, mean, var = t[bn.name]
        c1 = conv(x, "c1", 1)
        h = F.relu((c1 - mean[:, None, None]) / torch.sqrt(var[:, None, None] + bn.epsilon)
                   * g[:, None, None] + beta[:, None, None])
        c2 = F.relu(conv(h, "c2", 1))
        h = F.relu(h + c2)
        h = F.max_pool2d(h, 2)
        c3 = F.relu(conv(h, "c3", 0))
        flat = c3.permute(0, 2, 3, 1).reshape(len(x), -1)
        k, b = t[dense.name]
        return {"c1": c1, "c2": c2, "c3": c3}, flat @ k + b

    return forward


def torch_erf(forward, inputs, layer):
    x = torch.tensor(inputs, dtype=torch.float64, requires_grad=True)
    y = forward(x)[0][layer]
    centre = y[:, :, y.shape[2] // 2, y.shape[3] // 2].sum()
    (g,) = torch.autograd.grad(centre, x)
    e = g.abs().sum(-1).mean(0).numpy()
    return e / e.sum()


@pytest.mark.parametrize("layer", ["c1", "c2", "c3"])
def test_erf_matches_torch_on_a_residual_cnn(layer):
    model = branchy()
    inputs = np.random.default_rng(2).standard_normal((5, 12, 10, 3))
    erf = viz.effective_receptive_field(model, layer, inputs)
    expected = torch_erf(torch_twin(model), inputs, layer)
    assert erf.shape == (12, 10)
    np.testing.assert_allclose(erf, expected, atol=1e-6 * expected.max() + 1e-9, rtol=1e-4)
    assert erf.sum() == pytest.approx(1.0)


def test_erf_defaults_last_spatial_layer_and_16_normal_images():
    model = branchy()
    erf = viz.effective_receptive_field(model)
    inputs = np.random.default_rng(0).standard_normal((16, 12, 10, 3))
    np.testing.assert_allclose(erf, viz.effective_receptive_field(model, "c3", inputs))
    assert viz.find_layer(model).name == "c3"


def test_erf_is_zero_outside_the_theoretical_box():
    model = branchy((16, 16))
    for layer in ("c1", "c2", "c3"):
        erf = viz.effective_receptive_field(model, layer)
        top, left, bottom, right = viz.receptive_field_box(model, layer)
        outside = erf.copy()
        outside[top:bottom, left:right] = 0
        assert not outside.any(), layer
        assert erf[top:bottom, left:right].sum() == pytest.approx(1.0)
    assert viz.receptive_field(model, "c3").size == (10, 10)  # 3, 5, pool 6, +2*2*... = 10


def test_rms_radius_follows_sqrt_n_on_uniform_stacks():
    ns = np.arange(2, 17)
    radii = np.array([viz.rms_radius(viz.effective_receptive_field(viz.uniform_stack(n)))
                      for n in ns])
    a = (radii * np.sqrt(ns)).sum() / ns.sum()  # least squares fit of a * sqrt(n)
    assert np.all(np.abs(radii - a * np.sqrt(ns)) <= 0.15 * a * np.sqrt(ns))
    theoretical = [viz.receptive_field(viz.uniform_stack(n)).size[0] for n in (2, 9, 16)]
    assert theoretical == [5, 19, 33]  # 2n + 1
    # Gaussian-like: the centre row of n = 16 is close to the normal density of its radius.
    erf = viz.effective_receptive_field(viz.uniform_stack(16))
    row = erf.sum(0)
    sigma = radii[-1] / np.sqrt(2)
    x = np.arange(row.size) - (row * np.arange(row.size)).sum()
    gauss = np.exp(-x**2 / (2 * sigma**2)) / np.sqrt(2 * np.pi * sigma**2)
    assert np.abs(row - gauss).max() < 0.02 * gauss.max() / 0.2


def test_rms_radius_definition():
    e = np.zeros((5, 7))
    e[1, 2], e[3, 6] = 0.25, 0.75
    cy, cx = 0.25 * 1 + 0.75 * 3, 0.25 * 2 + 0.75 * 6
    d2 = 0.25 * ((1 - cy) ** 2 + (2 - cx) ** 2) + 0.75 * ((3 - cy) ** 2 + (6 - cx) ** 2)
    assert viz.rms_radius(e) == pytest.approx(np.sqrt(d2))
    with pytest.raises(ValueError, match="non-negative"):
        viz.rms_radius(np.zeros((3, 3)))


def test_erf_on_resnet20_any_layer():
    model = dj.zoo.resnet20()
    inputs = np.random.default_rng(0).standard_normal((2, 32, 32, 3))
    radii = []
    for layer in (0, "conv2d_6", None):  # stem, a stage-2 conv inside a block, the last ReLU
        erf = viz.effective_receptive_field(model, layer, inputs)
        assert erf.shape == (32, 32) and erf.sum() == pytest.approx(1.0) and erf.min() >= 0
        radii.append(viz.rms_radius(erf))
    assert radii[0] < radii[1] < radii[2]
    with pytest.raises(ValueError, match="has no spatial output"):
        viz.effective_receptive_field(model, "dense")
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        viz.effective_receptive_field(model, "nope")


def test_erf_of_a_trained_seed_cnn_within_10_seconds(tmp_path):
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(0)
    x = rng.random((256, 28, 28, 1)).astype(np.float32)
    y = (x[:, :14].mean((1, 2, 3)) > x[:, 14:].mean((1, 2, 3))).astype(np.int64)
    model = dj.zoo.fashion_cnn()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    start = time.perf_counter()
    erf = viz.effective_receptive_field(model)
    from dojang.viz.plots import plot_receptive_field

    plot_receptive_field(x[0], viz.receptive_field_box(model), erf, viz.rms_radius(erf),
                         tmp_path / "rf.png", "max_pooling2d_1")
    assert time.perf_counter() - start < 10.0
    assert (tmp_path / "rf.png").read_bytes()[:4] == b"\x89PNG"


# ---------------------------------------------------------------- Grad-CAM and saliency


def torch_grad_cam(forward, image, layer, k):
    x = torch.tensor(image[None], dtype=torch.float64, requires_grad=True)
    maps, logits = forward(x)
    a = maps[layer]
    if k is None:
        k = int(logits[0].argmax())
    (g,) = torch.autograd.grad(logits[0, k], a)
    alpha = g[0].mean((1, 2))
    cam = F.relu((a[0] * alpha[:, None, None]).sum(0))
    up = F.interpolate(cam[None, None], size=image.shape[:2], mode="bilinear",
                       align_corners=False)[0, 0].detach().numpy()
    return up / up.max() if up.max() > 0 else up


@pytest.mark.parametrize("layer,k", [(None, None), ("c1", 0), ("c2", 2), ("c3", 1)])
def test_grad_cam_matches_torch(layer, k):
    model = branchy()
    image = np.random.default_rng(3).random((12, 10, 3))
    cam = viz.grad_cam(model, image, layer, k)
    expected = torch_grad_cam(torch_twin(model), image, layer or "c3", k)
    assert cam.shape == (12, 10) and cam.max() in (0.0, 1.0)
    np.testing.assert_allclose(cam, expected, atol=1e-4)
    np.testing.assert_allclose(viz.grad_cam(model, image[None], layer, k), cam)


def test_saliency_matches_torch():
    model = branchy()
    image = np.random.default_rng(4).random((12, 10, 3))
    x = torch.tensor(image[None], dtype=torch.float64, requires_grad=True)
    logits = torch_twin(model)(x)[1]
    (g,) = torch.autograd.grad(logits[0, logits[0].argmax()], x)
    expected = g[0].abs().amax(-1).numpy()
    np.testing.assert_allclose(viz.saliency(model, image), expected / expected.max(),
                               atol=1e-4)


def test_bilinear_resize_matches_torch():
    a = np.random.default_rng(5).random((3, 5))
    for size in ((7, 11), (3, 5), (2, 2), (12, 4)):
        expected = F.interpolate(torch.tensor(a)[None, None], size=size, mode="bilinear",
                                 align_corners=False)[0, 0].numpy()
        np.testing.assert_allclose(viz.resize_bilinear(a, *size), expected, atol=1e-12)


def test_grad_cam_leaves_weight_gradients_and_softmax_alone():
    model = branchy()
    image = np.random.default_rng(6).random((12, 10, 3))
    before = model.predict(image[None])
    viz.grad_cam(model, image)
    viz.saliency(model, image)
    np.testing.assert_array_equal(model.predict(image[None]), before)
    assert all(w.grad is None for w in model.weights)
    with pytest.raises(ValueError, match="class_index"):
        viz.grad_cam(model, image, class_index=3)
    with pytest.raises(ValueError, match="image of shape"):
        viz.grad_cam(model, image[None, None])


def test_box_of_a_chosen_unit_and_subclassed_models():
    model = dj.Sequential([L.Conv2D(1, 3, input_shape=(11, 13, 1)), L.Conv2D(1, 3, strides=2)])
    # unit q of the second conv sees first-conv rows [2q, 2q + 3), input rows [2q, 2q + 5)
    assert viz.receptive_field_box(model, 1, unit=(1, 2)) == (2, 4, 7, 9)
    assert viz.receptive_field_box(model, 1, unit=(3, 4)) == (6, 8, 11, 13)

    class Net(dj.Model):
        def __init__(self):
            super().__init__()
            self.conv = L.Conv2D(2, 3)

        def call(self, x, training=False):
            return self.conv(x)

    net = Net()
    net(np.zeros((1, 6, 6, 1), np.float32))
    assert viz.receptive_field_box(net, 0) == (2, 2, 5, 5)  # unit (2, 2), traced via call
    erf = viz.effective_receptive_field(net, 0, np.ones((2, 6, 6, 1)))
    assert erf.shape == (6, 6) and erf[2:5, 2:5].sum() == pytest.approx(1.0)  # centre (2, 2)
