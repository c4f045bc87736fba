"""dj.callbacks.TensorBoard writes real event files: the tensorboard package's own reader
(EventAccumulator) reads back the tags, steps and values that History recorded."""

import numpy as np
import pytest

import dojang as dj
from dojang import layers as L

pytest.importorskip("tensorboardX")
accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def read(log_dir):
    acc = accumulator.EventAccumulator(str(log_dir), size_guidance={
        accumulator.SCALARS: 0, accumulator.HISTOGRAMS: 0, accumulator.IMAGES: 0})
    acc.Reload()
    return acc


def small_cnn():
    dj.layers.clear_session()
    dj.random.set_seed(0)
    model = dj.Sequential([L.Conv2D(3, 3, activation="relu", input_shape=(8, 8, 1)),
                           L.Flatten(), L.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_scalars_are_history_keys_at_epoch_steps(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 8, 8, 1)), rng.integers(0, 2, 40)
    model = small_cnn()
    tb = dj.callbacks.TensorBoard(tmp_path, histogram_freq=1, write_images=True,
                                  update_freq="batch", images=x[:2])
    history = model.fit(x, y, epochs=3, batch_size=16, validation_split=0.25, verbose=0,
                        callbacks=[tb])
    acc = read(tmp_path)
    tags = acc.Tags()
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    for key, values in history.history.items():
        events = acc.Scalars(key)
        assert [e.step for e in events] == [0, 1, 2]
        np.testing.assert_allclose([e.value for e in events], values, rtol=1e-6)
    batches = acc.Scalars("batch_loss")
    assert [e.step for e in batches] == list(range(3 * 2))  # 30 training images, batch 16
    kernel = model.layers[0].kernel
    assert "conv2d/kernel" in tags["histograms"] and "dense/bias" in tags["histograms"]
    hist = acc.Histograms("conv2d/kernel")
    assert [h.step for h in hist] == [0, 1, 2]
    last = hist[-1].histogram_value
    assert last.num == kernel.size
    assert last.min == pytest.approx(float(kernel.numpy().min()), rel=1e-6)
    assert last.sum == pytest.approx(float(kernel.numpy().sum()), rel=1e-5, abs=1e-6)
    assert {"conv2d/filters", "conv2d/feature_maps"} <= set(tags["images"])
    image = acc.Images("conv2d/feature_maps")[-1]
    assert (image.height, image.width) == (2 * 6 + 1, 2 * 6 + 1)  # 3 maps of 6x6 in 2x2 tiles


def test_epoch_only_by_default_and_argument_errors(tmp_path):
    rng = np.random.default_rng(1)
    model = small_cnn()
    model.fit(rng.random((8, 8, 8, 1)), rng.integers(0, 2, 8), epochs=2, verbose=0,
              callbacks=[dj.callbacks.TensorBoard(tmp_path)])
    tags = read(tmp_path).Tags()
    assert set(tags["scalars"]) == {"loss", "accuracy"}
    assert tags["histograms"] == [] and tags["images"] == []
    with pytest.raises(ValueError, match="update_freq"):
        dj.callbacks.TensorBoard(tmp_path, update_freq="sometimes")
    with pytest.raises(ValueError, match="histogram_freq"):
        dj.callbacks.TensorBoard(tmp_path, histogram_freq=-1)
