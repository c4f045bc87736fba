"""The tutorials' code typed with dj: tf.nn pooling by rank, name=, Keras-style layers.

Pooling is checked against the loop reference in ``ref_pool`` (windows and TensorFlow's
SAME padding written out by hand, not dojang's shapes module).
"""

import math

import numpy as np
import pytest

import dojang as dj
import dojang.functional as tfnn  # typed as the seeds type tf.nn
from dojang import layers as keras_layers
from tests.ref_pool import ref_avg_pool, ref_max_pool


def tf_same_pads(n, k, s):
    """TensorFlow's SAME padding, from its documentation: output ceil(n / s)."""
    out = math.ceil(n / s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


@pytest.mark.parametrize("shape", [(2, 9, 4), (2, 7, 6, 3), (1, 5, 4, 6, 2)])
@pytest.mark.parametrize("padding", ["VALID", "SAME"])
def test_max_pool_and_avg_pool_take_the_rank_from_the_input(shape, padding):
    rank = len(shape) - 2
    x = np.random.default_rng(rank).standard_normal(shape)
    k, s = 3, 2
    pads = [tf_same_pads(n, k, s) if padding == "SAME" else (0, 0) for n in shape[1:-1]]
    full = [1] + [k] * rank + [1]
    got = tfnn.max_pool(x, ksize=full, strides=[1] + [s] * rank + [1], padding=padding,
                        name="pool1")
    np.testing.assert_allclose(got.numpy(), ref_max_pool(x, (k,) * rank, (s,) * rank, pads)[0])
    got = tfnn.avg_pool(x, k, s, padding, name="pool2")
    np.testing.assert_allclose(got.numpy(), ref_avg_pool(x, (k,) * rank, (s,) * rank, pads),
                               rtol=1e-6)
    got = tfnn.pool(x, [k] * rank, "AVG", strides=[s] * rank, padding=padding, name="p")
    np.testing.assert_allclose(got.numpy(), ref_avg_pool(x, (k,) * rank, (s,) * rank, pads),
                               rtol=1e-6)


def test_pool_strides_default_to_one_and_channels_first():
    x = np.random.default_rng(0).standard_normal((1, 3, 6, 5))  # NCHW
    got = tfnn.pool(x, [2, 2], "max", data_format="NCHW")
    expected = ref_max_pool(np.moveaxis(x, 1, -1), (2, 2), (1, 1), [(0, 0), (0, 0)])[0]
    np.testing.assert_allclose(got.numpy(), np.moveaxis(expected, -1, 1))


def test_pool_argument_errors():
    x = np.ones((1, 4, 4, 1))
    with pytest.raises(ValueError, match="pool: Expected pooling_type to be 'MAX' or 'AVG'"):
        tfnn.pool(x, [2, 2], "MIN")
    with pytest.raises(ValueError, match="dilated pooling is not supported"):
        tfnn.pool(x, [2, 2], "MAX", dilations=[2, 2])
    with pytest.raises(ValueError, match="max_pool: Expected input to have rank 3, 4 or 5"):
        tfnn.max_pool(np.ones((4, 4)), 2, 2, "VALID")
    with pytest.raises(TypeError, match="max_pool: Expected name to be None or a string"):
        tfnn.max_pool(x, 2, 2, "VALID", name=3)


@pytest.mark.parametrize("call", [
    lambda x, w: tfnn.conv2d(x, w, strides=[1, 1, 1, 1], padding="SAME", name="conv"),
    lambda x, w: tfnn.conv(x, w, name="conv"),
    lambda x, w: tfnn.conv2d_transpose(x, np.swapaxes(w, 2, 3), None, 1, "SAME", name="t"),
    lambda x, w: tfnn.relu(x, name="relu"),
    lambda x, w: tfnn.softmax(x, name="softmax"),
    lambda x, w: tfnn.max_pool2d(x, 2, 2, "VALID", name="pool"),
    lambda x, w: tfnn.avg_pool2d(x, 2, 2, "VALID", name="pool"),
    lambda x, w: tfnn.sigmoid_cross_entropy_with_logits(np.zeros(x.shape), x, name="xent"),
])
def test_name_is_accepted_where_tf_nn_takes_it(call):
    x = np.random.default_rng(0).standard_normal((1, 4, 4, 2)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((3, 3, 2, 2)).astype(np.float32)
    assert call(x, w).numpy().size > 0


def test_seed_000_tf_nn_code():
    """Chapter 13: tf.nn.conv2d with a [3, 3, 1, 32] filter, then tf.nn.max_pool."""
    inputs = np.random.default_rng(0).random((2, 28, 28, 1)).astype(np.float32)
    filter = dj.initializers.get("glorot_uniform")((3, 3, 1, 32))
    conv = tfnn.conv2d(inputs, filter, strides=[1, 1, 1, 1], padding="SAME")
    pool = tfnn.max_pool(conv, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="SAME")
    assert conv.shape == (2, 28, 28, 32) and pool.shape == (2, 14, 14, 32)
    assert tfnn.avg_pool(conv, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1],
                         padding="SAME").shape == (2, 14, 14, 32)
    layer = keras_layers.MaxPooling2D(pool_size=[2, 2], strides=[2, 2], padding="same")
    assert layer(conv).shape == (2, 14, 14, 32)


def test_seed_001_code_on_the_flower():
    """Conv2D(32, 3, same, relu) then MaxPool2D(2) on flower.jpg: (1, 213, 320, 32)."""
    from sklearn.datasets import load_sample_image

    flower = load_sample_image("flower.jpg") / 255
    assert flower.shape == (427, 640, 3)
    flower = np.expand_dims(flower, axis=0)
    output = keras_layers.Conv2D(filters=32, kernel_size=3, strides=1, padding="same",
                                 activation="relu")(flower)
    output = keras_layers.MaxPool2D(pool_size=2)(output)
    assert output.shape == (1, 213, 320, 32)
    assert output[0, :, :, 4].shape == (213, 320)
    fc = keras_layers.Dense(units=64, activation="relu")
    assert fc(np.ones((1, 5))).shape == (1, 64)


def test_seed_004_keras_layers():
    """keras.layers.Conv2D(10, kernel_size=(3, 3), activation='relu', padding='same', ...)."""
    x = np.ones((1, 4, 4, 1))
    assert keras_layers.Conv2D(10, kernel_size=(3, 3), activation="relu")(x).shape == \
        (1, 2, 2, 10)
    assert keras_layers.Conv2D(10, kernel_size=(3, 3), activation="relu", padding="same",
                               strides=1)(x).shape == (1, 4, 4, 10)
    assert keras_layers.MaxPooling2D(2)(np.ones((1, 2, 2, 3))).shape == (1, 1, 1, 3)


def test_keras_book_feature_map_idiom():
    """keras.Model(model.input, model.layers[0].output), then predict, as chapter 8-3 types it."""
    from dojang import viz

    dj.layers.clear_session()
    model = dj.zoo.fashion_cnn()
    conv_acti = dj.Model(model.input, model.layers[0].output)
    inputs = np.random.default_rng(0).random((2, 28, 28, 1)).astype(np.float32)
    feature_maps = conv_acti.predict(inputs[0:1])
    assert feature_maps.shape == (1, 28, 28, 32)
    expected = viz.layer_output(model, model.layers[0], inputs[0:1]).numpy()
    # predict and the probe may take different kernels: equal to float32 rounding of the
    # output's scale (1e-6, as the oracle suite)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(feature_maps, expected, rtol=1e-5, atol=1e-6 * scale)
    # the extractor shares the weights: changing the model's kernel changes its maps
    model.layers[0].kernel.data[...] *= 2
    doubled = conv_acti.predict(inputs[0:1])
    assert np.abs(doubled - feature_maps).max() > 1e-3 * scale
    np.testing.assert_allclose(doubled,
                               viz.layer_output(model, model.layers[0], inputs[0:1]).numpy(),
                               rtol=1e-5, atol=2e-6 * scale)
    second = dj.Model(model.input, model.layers[2].output)
    assert second.predict(inputs).shape == (2, 14, 14, 64)
    both = dj.Model(model.input, [model.layers[0].output, model.layers[2].output])
    maps0, maps2 = both.predict(inputs)
    assert maps0.shape == (2, 28, 28, 32) and maps2.shape == (2, 14, 14, 64)
