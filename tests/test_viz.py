"""viz: the arrays behind the pictures hold the weights and activations, and PNGs are valid.

Feature maps are checked against a NumPy convolution written here (sliding windows and
einsum), independent of dojang's im2col kernels.
"""

import numpy as np
import pytest

import dojang as dj
from dojang import layers as L
from dojang import viz

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _fresh_names():
    dj.layers.clear_session()
    dj.random.set_seed(0)


def tile(grid: np.ndarray, k: int, cols: int, h: int, w: int, pad: int = 1) -> np.ndarray:
    """The k-th (h, w) tile of a row-major grid with ``pad`` pixels between tiles."""
    r, c = divmod(k, cols)
    return grid[r * (h + pad): r * (h + pad) + h, c * (w + pad): c * (w + pad) + w]


# ---------------------------------------------------------------- filter_grid


@pytest.mark.parametrize("cols", [None, 3, 8])
def test_filter_grid_places_filter_k_at_tile_k(cols):
    kernel = np.random.default_rng(0).normal(size=(3, 2, 1, 8))  # non-square 3x2 filters
    grid = viz.filter_grid(kernel, cols=cols)
    ncols = cols or 3  # ceil(sqrt(8))
    nrows = -(-8 // ncols)
    assert grid.shape == (nrows * 4 - 1, ncols * 3 - 1)
    covered = np.zeros(grid.shape, bool)
    for k in range(8):
        np.testing.assert_array_equal(tile(grid, k, ncols, 3, 2), kernel[:, :, 0, k])
        tile(covered, k, ncols, 3, 2)[...] = True
    assert np.isnan(grid[~covered]).all()  # gaps and unused tiles are NaN


def test_filter_grid_channel_selects_the_input_channel():
    kernel = np.random.default_rng(1).normal(size=(3, 3, 2, 4))
    grid = viz.filter_grid(kernel, channel=1)
    for k in range(4):
        np.testing.assert_array_equal(tile(grid, k, 2, 3, 3), kernel[:, :, 1, k])


def test_filter_grid_rgb_scales_each_filter_to_unit_range():
    rng = np.random.default_rng(2)
    kernel = rng.normal(size=(5, 5, 3, 6)) * np.arange(1, 7)  # filters of different scales
    grid = viz.filter_grid(kernel)
    assert grid.shape == (2 * 6 - 1, 3 * 6 - 1, 3)
    for k in range(6):
        w = kernel[..., k]
        expected = (w - w.min()) / (w.max() - w.min())
        np.testing.assert_allclose(tile(grid, k, 3, 5, 5), expected, rtol=1e-12)
        assert tile(grid, k, 3, 5, 5).min() == 0.0 and tile(grid, k, 3, 5, 5).max() == 1.0


def test_filter_grid_constant_rgb_filter_does_not_divide_by_zero():
    kernel = np.full((3, 3, 3, 2), 0.5)
    grid = viz.filter_grid(kernel)
    np.testing.assert_array_equal(tile(grid, 1, 2, 3, 3), 0.0)


def test_filter_grid_errors():
    with pytest.raises(ValueError, match=r"filter_grid: Expected a 2-d conv kernel of shape "
                                         r"\(KH, KW, C_in, C_out\)\. Received: shape=\(3, 3, 4\)"):
        viz.filter_grid(np.zeros((3, 3, 4)))
    with pytest.raises(ValueError, match=r"filter_grid: Expected channel in \[0, 2\)\. "
                                         r"Received: channel=2"):
        viz.filter_grid(np.zeros((3, 3, 2, 4)), channel=2)


# ---------------------------------------------------------------- feature_map_grid


def test_feature_map_grid_places_channel_c_at_tile_c():
    maps = np.random.default_rng(3).normal(size=(6, 5, 7))
    grid = viz.feature_map_grid(maps, cols=4)
    assert grid.shape == (2 * 7 - 1, 4 * 6 - 1)
    for c in range(7):
        np.testing.assert_array_equal(tile(grid, c, 4, 6, 5), maps[:, :, c])
    assert np.isnan(tile(grid, 7, 4, 6, 5)).all()


def test_feature_map_grid_error():
    with pytest.raises(ValueError, match=r"feature_map_grid: Expected maps of shape \(H, W, C\)"
                                         r"\. Received: shape=\(1, 4, 4, 2\)"):
        viz.feature_map_grid(np.zeros((1, 4, 4, 2)))


# ---------------------------------------------------------------- feature_maps


def conv_same(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """'same' cross-correlation of one (H, W, C) image with an odd (KH, KW, C, F) kernel."""
    kh, kw = kernel.shape[:2]
    xp = np.pad(x, ((kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(0, 1))
    return np.einsum("hwcij,ijcf->hwf", windows, kernel) + bias  # windows: (H, W, C, KH, KW)


def max_pool2(x: np.ndarray) -> np.ndarray:
    h, w, c = x.shape
    return x[: h // 2 * 2, : w // 2 * 2].reshape(h // 2, 2, w // 2, 2, c).max(axis=(1, 3))


def relu(x):
    return np.maximum(x, 0.0)


def test_feature_maps_of_the_seed_model_are_the_conv_outputs():
    model = dj.zoo.fashion_cnn(input_shape=(12, 10, 1))
    image = np.random.default_rng(4).random((12, 10, 1)).astype(np.float32)
    conv1, conv2 = (layer for layer in model.layers if isinstance(layer, L.Conv2D))
    (name1, maps1), (name2, maps2) = viz.feature_maps(model, image)
    x = image.astype(np.float64)
    expected1 = relu(conv_same(x, *conv1.get_weights()))
    expected2 = relu(conv_same(max_pool2(expected1), *conv2.get_weights()))
    assert (name1, name2) == (conv1.name, conv2.name)
    assert maps1.shape == (12, 10, 32) and maps2.shape == (6, 5, 64)
    np.testing.assert_allclose(maps1, expected1, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(maps2, expected2, rtol=1e-4, atol=1e-5)
    assert [name for name, _ in viz.feature_maps(model, image, limit=1)] == [conv1.name]


def test_feature_maps_of_a_functional_model_with_a_skip_connection():
    inputs = dj.Input((8, 9, 2))
    h = L.Conv2D(3, 3, padding="same", activation="relu", name="a")(inputs)
    h = L.Conv2D(2, 3, padding="same", name="b")(h)
    outputs = L.Conv2D(4, 1, name="c")(L.Add()([inputs, h]))
    model = dj.Model(inputs, outputs)
    image = np.random.default_rng(5).normal(size=(8, 9, 2)).astype(np.float32)
    maps = viz.feature_maps(model, image, limit=3)
    a, b, c = (model.get_layer(n).get_weights() for n in "abc")
    ea = relu(conv_same(image.astype(np.float64), *a))
    eb = conv_same(ea, *b)
    ec = conv_same(image + eb, *c)
    assert [name for name, _ in maps] == ["a", "b", "c"]
    for (_, got), expected in zip(maps, (ea, eb, ec)):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(maps[2][1], model.predict(image[None])[0], rtol=1e-6)


def test_feature_maps_of_resnet20_start_at_the_stem():
    model = dj.zoo.resnet20(input_shape=(8, 8, 3))
    image = np.random.default_rng(6).random((8, 8, 3)).astype(np.float32)
    (stem_name, stem), (_, second) = viz.feature_maps(model, image)
    (kernel,) = model.get_layer(stem_name).get_weights()  # no bias: batch norm follows
    np.testing.assert_allclose(stem, conv_same(image.astype(np.float64), kernel, 0.0),
                               rtol=1e-4, atol=1e-5)
    assert second.shape == (8, 8, 16)


def test_feature_maps_of_a_subclassed_model():
    class Net(dj.Model):
        def __init__(self):
            super().__init__()
            self.conv = L.Conv2D(2, 3)
            self.dense = L.Dense(3)

        def call(self, x, training=False):
            return self.dense(L.Flatten()(self.conv(x)))

    net = Net()
    image = np.random.default_rng(0).random((5, 5, 1)).astype(np.float32)
    net(image[None])
    [(name, maps)] = viz.feature_maps(net, image)
    assert name == net.conv.name
    np.testing.assert_allclose(maps, net.conv(image[None]).numpy()[0])


# ---------------------------------------------------------------- PNG files


def read_png(path) -> np.ndarray:
    import matplotlib.image

    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 50 and pixels.shape[1] > 50
    assert pixels.std() > 0  # something was drawn
    return pixels


def test_plot_history_with_and_without_validation(tmp_path):
    pytest.importorskip("matplotlib")
    train_only = {"loss": [1.0, 0.5, 0.25], "accuracy": [0.5, 0.7, 0.8]}
    with_val = {**train_only, "val_loss": [1.1, 0.6, 0.4], "val_accuracy": [0.45, 0.6, 0.7]}
    a = read_png(viz.plot_history(train_only, tmp_path / "a.png"))
    b = read_png(viz.plot_history(with_val, tmp_path / "b.png"))
    assert a.shape[1] > a.shape[0]  # two panels side by side
    assert not np.array_equal(a, b)
    loss_only = read_png(viz.plot_history({"loss": [2.0, 1.0]}, tmp_path / "c.png"))
    assert loss_only.shape[1] < a.shape[1]  # one panel
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png", "c.png"]


@pytest.mark.parametrize("c_in", [1, 3])
def test_plot_filters(tmp_path, c_in):
    pytest.importorskip("matplotlib")
    kernel = np.random.default_rng(6).normal(size=(3, 3, c_in, 16))
    path = viz.plot_filters(kernel, tmp_path / "filters.png")
    assert path == str(tmp_path / "filters.png")
    read_png(path)


def test_plot_feature_maps_and_confusion_matrix(tmp_path):
    pytest.importorskip("matplotlib")
    model = dj.zoo.fashion_cnn(input_shape=(8, 8, 1))
    image = np.random.default_rng(7).random((8, 8, 1)).astype(np.float32)
    maps = viz.feature_maps(model, image)
    wide = read_png(viz.plot_feature_maps(maps, image, tmp_path / "maps.png"))
    assert wide.shape[1] > 2 * wide.shape[0]  # input + two grids side by side
    matrix = np.array([[5, 1, 0], [2, 7, 1], [0, 0, 9]])
    read_png(viz.plot_confusion_matrix(matrix, ["a", "b", "c"], tmp_path / "cm.png"))


def test_figures_leave_pyplots_backend_and_open_figures_alone(tmp_path):
    """In Jupyter the inline backend must survive a dojang figure (no matplotlib.use)."""
    import matplotlib
    import matplotlib.pyplot as plt

    before = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        open_before = plt.get_fignums()
        dj.viz.plot_filters(np.random.default_rng(0).random((3, 3, 1, 4)), tmp_path / "f.png")
        assert matplotlib.get_backend() == "svg"
        assert plt.get_fignums() == open_before
        assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    finally:
        matplotlib.use(before)
