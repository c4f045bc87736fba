"""The worked examples of the five tutorials in ``seeds/``, each reproduced with dojang.

Seed 000: "Chap13 - Convolutional Neural Networks" (TensorFlow); 001: "[Tensorflow] CNN
개념"; 002: "[AI Math] CNN" (boostcamp); 003: cs231n summary (9) - CNN; 004: "합성곱
신경망의 구성 요소" (Keras). Expected numbers are the seeds' own, or independent NumPy
arithmetic written from the seeds' formulas.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import dojang as dj
from dojang import functional as djf
from dojang import shapes


def _participations(size: int, kernel: int, padding: int) -> np.ndarray:
    """How many convolutions each input pixel takes part in (seed 004's figure).

    With an all-ones kernel, d(sum of outputs)/d(input pixel) counts the windows that
    cover the pixel: the adjoint of the convolution applied to ones.
    """
    x = dj.Tensor(np.zeros((1, size, size, 1)), requires_grad=True)
    djf.conv2d(x, np.ones((kernel, kernel, 1, 1)), padding=padding).sum().backward()
    return x.grad.numpy()[0, :, :, 0]


# ---------------------------------------------------------------- output sizes


def test_seed000_4x4_input_3x3_filter_padding1_stride1_gives_4x4():
    y = djf.conv2d(np.ones((1, 4, 4, 1)), np.ones((3, 3, 1, 1)), strides=1, padding=1)
    assert y.shape == (1, 4, 4, 1)
    assert ((4 + 2 * 1 - 3) // 1 + 1, (4 + 2 * 1 - 3) // 1 + 1) == (4, 4)  # seed's formula


def test_seed001_5x5_input_3x3_filter_no_padding_gives_3x3():
    assert djf.conv2d(np.ones((1, 5, 5, 1)), np.ones((3, 3, 1, 1))).shape == (1, 3, 3, 1)
    assert 5 - 3 + 1 == 3  # (n - f + 1)
    # and with padding 1: (n + 2p - f + 1) = 5
    assert djf.conv2d(np.ones((1, 5, 5, 1)), np.ones((3, 3, 1, 1)), padding=1).shape[1:3] == (
        5, 5)


@pytest.mark.parametrize("kernel", [1, 3, 6])
def test_seed000_same_padding_stride5_on_width13_gives_3(kernel):
    y = djf.conv2d(np.ones((1, 1, 13, 1)), np.ones((1, kernel, 1, 1)), strides=5,
                   padding="SAME")
    assert y.shape[2] == math.ceil(13 / 5) == 3
    assert shapes.conv_output_shape((13,), kernel, 5, "same") == (3,)


def test_seed001_flower_same_conv32_then_maxpool2_gives_213x320x32():
    try:
        from sklearn.datasets import load_sample_image

        flower = load_sample_image("flower.jpg") / 255
    except ImportError:  # the shape is what matters; the seed's image when available
        flower = np.random.default_rng(0).random((427, 640, 3))
    assert flower.shape == (427, 640, 3)
    images = np.expand_dims(flower, axis=0).astype(np.float32)  # batch size 1 added
    filters = np.random.default_rng(1).standard_normal((3, 3, 3, 32)).astype(np.float32)
    with dj.no_grad():
        out = djf.conv2d(images, filters, strides=1, padding="same")
        assert out.shape == (1, 427, 640, 32)
        out = djf.max_pool2d(dj.ops.maximum(out, 0.0), 2)  # relu, MaxPool2D(pool_size=2)
    assert out.shape == (1, 213, 320, 32)


def test_seed000_tf_nn_calls_with_full_rank_lists():
    # tf.nn.conv2d(inputs, filter [3, 3, 1, 32], strides=[1, 1, 1, 1], padding='SAME')
    x = np.random.default_rng(2).standard_normal((2, 28, 28, 1))
    conv = djf.conv2d(x, np.ones((3, 3, 1, 32)), strides=[1, 1, 1, 1], padding="SAME")
    assert conv.shape == (2, 28, 28, 32)
    # tf.nn.max_pool(inputs, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding='SAME')
    pool = djf.max_pool2d(conv, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="SAME")
    assert pool.shape == (2, 14, 14, 32)
    # on the seed-001 image size, SAME pooling keeps the odd row: ceil(427 / 2) = 214
    assert shapes.conv_output_shape((427, 640), 2, 2, "same") == (214, 320)


def test_seed004_feature_maps_and_pooling_shapes():
    x = np.random.default_rng(3).standard_normal((1, 4, 4, 1))
    maps = djf.conv2d(x, np.ones((3, 3, 1, 3)))  # three (3, 3) filters on a (4, 4) input
    assert maps.shape == (1, 2, 2, 3)  # (2, 2, 3): the maps stack along the last axis
    assert djf.max_pool2d(maps, 2).shape == (1, 1, 1, 3)  # (2, 2) pooling: (1, 1, 3)
    assert djf.avg_pool2d(maps, 2).shape == (1, 1, 1, 3)
    # "(2, 2) pooling halves the input"
    assert djf.max_pool2d(np.ones((1, 28, 28, 32)), 2).shape == (1, 14, 14, 32)


def test_seed004_one_dimensional_stamp_10_inputs_3_weights_8_outputs():
    x = np.arange(1.0, 11.0)
    w = np.array([0.5, -1.0, 2.0])
    b = 0.25
    y = djf.conv2d(x.reshape(1, 1, 10, 1), w.reshape(1, 3, 1, 1), bias=np.array([b]))
    assert y.shape == (1, 1, 8, 1)
    # every output uses the SAME weights W1..W3 and bias b, moved one step at a time
    want = [w[0] * x[i] + w[1] * x[i + 1] + w[2] * x[i + 2] + b for i in range(8)]
    np.testing.assert_allclose(y.numpy().ravel(), want, rtol=1e-12)


# ------------------------------------------------ pixels' share of the convolutions


def test_seed004_participation_counts_without_padding():
    counts = _participations(4, 3, 0)
    corner, edge, centre = counts[0, 0], counts[0, 1], counts[1, 1]
    assert (corner, edge, centre) == (1, 2, 4)
    assert centre / corner == 4  # 4:1
    np.testing.assert_array_equal(counts, [[1, 2, 2, 1], [2, 4, 4, 2], [2, 4, 4, 2],
                                           [1, 2, 2, 1]])


def test_seed004_participation_counts_with_one_pixel_padding():
    counts = _participations(4, 3, 1)
    assert (counts[0, 0], counts[0, 1], counts[1, 1]) == (4, 6, 9)  # 9:4


def test_seed004_two_pixel_padding_makes_every_pixel_equal():
    np.testing.assert_array_equal(_participations(4, 3, 2), np.full((4, 4), 9.0))  # 1:1


# ------------------------------------------------------------- parameter counts


def test_seed003_parameter_count_formula():
    # (kernel size x kernel size x C_in + 1) x C_out; without bias the "+ 1" goes
    assert shapes.conv_params((5, 5), 3, 10) == (5 * 5 * 3 + 1) * 10 == 760
    assert shapes.conv_params((5, 5), 3, 10, use_bias=False) == 5 * 5 * 3 * 10 == 750
    assert shapes.conv_params((3, 3), 3, 32) == 896  # seed 001's Conv2D(32, 3) on RGB
    assert shapes.conv_params((3, 3), 1, 32) == 320  # seed 004's Conv2D(32, 3) on 28x28x1
    # the filter bank really has that many numbers: (K, K, C_in, C_out) + C_out biases
    filters, bias = np.zeros((5, 5, 3, 10)), np.zeros(10)
    assert filters.size + bias.size == 760


def test_seed003_fully_connected_input_sizes():
    # one fully connected neuron on CIFAR-10 / ImageNet images needs this many weights
    assert shapes.dense_params(32 * 32 * 3, 1, use_bias=False) == 3072
    assert shapes.dense_params(224 * 224 * 3, 1, use_bias=False) == 150528
    # seed 004: a dense neuron on 10 inputs has 10 weights; the conv neuron 3 (and 8 outputs)
    assert shapes.dense_params(10, 1, use_bias=False) == 10
    assert shapes.conv_params((3,), 1, 1, use_bias=False) == 3


def test_seed003_rgb_filter_sums_channels_7_plus_15_plus_4_is_26():
    # one 3x3 window of an RGB image and a 3x3x3 filter whose per-channel products sum to
    # 7 (R), 15 (G) and 4 (B)
    patch = np.zeros((3, 3, 3))
    kernel = np.zeros((3, 3, 3))
    patch[0, 0, 0], kernel[0, 0, 0] = 1, 7
    patch[1, 1, 1], kernel[1, 1, 1] = 3, 5
    patch[2, 2, 2], kernel[2, 2, 2] = 2, 2
    patch[0, 2, 2], kernel[0, 2, 2] = 5, 0  # zero weight: no contribution
    per_channel = djf.conv2d(patch[None], kernel[:, :, :, None].transpose(0, 1, 3, 2),
                             groups=3)
    np.testing.assert_array_equal(per_channel.numpy().ravel(), [7, 15, 4])
    whole = djf.conv2d(patch[None], kernel[..., None])
    assert whole.numpy().item() == 26
    with_bias = djf.conv2d(patch[None], kernel[..., None], bias=np.array([0.5]))
    assert with_bias.numpy().item() == 26.5


def test_seed000_input_and_filter_channels_must_match():
    with pytest.raises(ValueError, match=r"(?i)conv2d.*channel"):
        djf.conv2d(np.ones((1, 5, 5, 3)), np.ones((3, 3, 2, 4)))


# ------------------------------------------- cross-correlation versus convolution


def test_seed000_convolution_layer_is_cross_correlation_with_strides_and_bias():
    # z[i, j, k] = b[k] + sum_u sum_v sum_k' x[i*sh + u, j*sw + v, k'] * w[u, v, k', k]
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal((7, 8, 2)), rng.standard_normal((3, 2, 2, 4))
    b = rng.standard_normal(4)
    sh, sw = 2, 3
    z = djf.conv2d(x[None], w, strides=(sh, sw), bias=b).numpy()[0]
    want = np.zeros(z.shape)
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            for k in range(4):
                want[i, j, k] = b[k] + sum(
                    x[i * sh + u, j * sw + v, kk] * w[u, v, kk, k]
                    for u in range(3) for v in range(2) for kk in range(2))
    np.testing.assert_allclose(z, want, rtol=1e-12, atol=1e-12)


def test_seed002_seed003_flipped_kernel_gives_true_convolution():
    rng = np.random.default_rng(5)
    # 1-d: np.convolve is true convolution (kernel reversed); conv2d is cross-correlation
    x, w = rng.standard_normal(9), rng.standard_normal(4)
    cross = djf.conv2d(x.reshape(1, 1, 9, 1), w.reshape(1, 4, 1, 1)).numpy().ravel()
    true = djf.conv2d(x.reshape(1, 1, 9, 1), w[::-1].reshape(1, 4, 1, 1)).numpy().ravel()
    np.testing.assert_allclose(cross, np.correlate(x, w, "valid"), rtol=1e-12)
    np.testing.assert_allclose(true, np.convolve(x, w, "valid"), rtol=1e-12)
    assert not np.allclose(cross, true)
    # 2-d: y(m, n) = sum_i sum_j x(i, j) h(m - i, n - j), kept where h fits inside x
    x2, h = rng.standard_normal((6, 7)), rng.standard_normal((3, 2))
    flipped = djf.conv2d(x2[None, :, :, None], h[::-1, ::-1, None, None].copy())
    flipped = flipped.numpy()[0, :, :, 0]
    want = np.zeros((4, 6))
    for m in range(4):
        for n in range(6):
            mm, nn = m + 2, n + 1  # full-convolution index of this valid output
            want[m, n] = sum(x2[i, j] * h[mm - i, nn - j] for i in range(6) for j in range(7)
                             if 0 <= mm - i < 3 and 0 <= nn - j < 2)
    np.testing.assert_allclose(flipped, want, rtol=1e-12, atol=1e-12)


def test_seed002_backprop_of_a_convolution_is_a_convolution():
    # O_i = sum_j W_j x_{i+j-1}: 5 inputs, 3 weights, 3 outputs with errors delta_1..3
    x = np.array([1.0, -2.0, 3.0, 0.5, 4.0])
    w = np.array([2.0, -1.0, 0.5])
    delta = np.array([0.3, -0.7, 1.1])
    tx = dj.Tensor(x.reshape(1, 1, 5, 1), requires_grad=True)
    tw = dj.Tensor(w.reshape(1, 3, 1, 1), requires_grad=True)
    out = djf.conv2d(tx, tw)
    np.testing.assert_allclose(out.numpy().ravel(), [sum(w[j] * x[i + j] for j in range(3))
                                                     for i in range(3)], rtol=1e-12)
    (out * dj.Tensor(delta.reshape(1, 1, 3, 1))).sum().backward()
    gx, gw = tx.grad.numpy().ravel(), tw.grad.numpy().ravel()
    # dL/dW_1 = delta_1 x_1 + delta_2 x_2 + delta_3 x_3 (the seed's example), in general
    # dL/dW_i = sum_j delta_j x_{i+j-1}: a cross-correlation of x with delta
    assert gw[0] == pytest.approx(delta[0] * x[0] + delta[1] * x[1] + delta[2] * x[2])
    np.testing.assert_allclose(gw, np.correlate(x, delta, "valid"), rtol=1e-12)
    # x_3 receives delta_1 W_3 + delta_2 W_2 + delta_3 W_1: a full convolution of delta by W
    assert gx[2] == pytest.approx(delta[0] * w[2] + delta[1] * w[1] + delta[2] * w[0])
    np.testing.assert_allclose(gx, np.convolve(delta, w, "full"), rtol=1e-12)


# ---------------------------------------------------------------------- pooling


def test_seed001_max_pool_figure_2x2_stride2():
    # cs231n's max-pool figure (linked by seed 001): 2x2 filters, stride 2
    x = np.array([[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]], dtype=float)
    y = djf.max_pool2d(x[None, :, :, None], ksize=2, strides=2)
    np.testing.assert_array_equal(y.numpy()[0, :, :, 0], [[6, 8], [3, 4]])
    avg = djf.avg_pool2d(x[None, :, :, None], 2)
    np.testing.assert_array_equal(avg.numpy()[0, :, :, 0], [[13 / 4, 21 / 4], [2, 2]])


def test_seed001_pool_output_size_uses_the_conv_formula():
    # OH = (H + 2P - FH) / S + 1 for pooling too
    for h, f, s, p in [(28, 2, 2, 0), (7, 3, 2, 1), (10, 3, 1, 1)]:
        y = djf.max_pool2d(np.ones((1, h, h, 1)), f, s, p)
        assert y.shape[1] == (h + 2 * p - f) // s + 1
