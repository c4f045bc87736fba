"""Layer contract tests: shapes, parameter counts, config round trip, a training step, errors."""

import numpy as np
import pytest

import dojang as dj
from dojang import layers as L
from tests.helpers import assert_close, fetch


@pytest.fixture(autouse=True)
def _fresh_names():
    dj.layers.clear_session()
    dj.random.set_seed(0)


# (factory, input shape(s), parameter count from the Keras formula written out by hand)
CASES = {
    "conv1d": (lambda: L.Conv1D(4, 3), (2, 9, 3), (3 * 3 + 1) * 4),
    "conv2d_strided_same": (lambda: L.Conv2D(4, (3, 2), strides=2, padding="same"),
                            (2, 7, 8, 3), (3 * 2 * 3 + 1) * 4),
    "conv2d_groups_dilated": (lambda: L.Conv2D(4, 3, groups=2, dilation_rate=2),
                              (2, 9, 9, 4), (3 * 3 * 2 + 1) * 4),
    "conv2d_reflect": (lambda: L.Conv2D(4, 3, padding=1, padding_mode="reflect",
                                        use_bias=False), (2, 6, 6, 3), 3 * 3 * 3 * 4),
    "conv2d_channels_first": (lambda: L.Conv2D(4, 3, data_format="channels_first"),
                              (2, 3, 6, 5), (3 * 3 * 3 + 1) * 4),
    "conv3d": (lambda: L.Conv3D(2, 2), (1, 4, 4, 4, 3), (8 * 3 + 1) * 2),
    "conv1d_transpose": (lambda: L.Conv1DTranspose(3, 3, strides=2), (2, 5, 2), 3 * 3 * 2 + 3),
    "conv2d_transpose": (lambda: L.Conv2DTranspose(4, 3, strides=2, padding="same"),
                         (2, 4, 5, 3), 9 * 4 * 3 + 4),
    "conv3d_transpose": (lambda: L.Conv3DTranspose(2, 2, strides=2), (1, 2, 3, 2, 3),
                         8 * 2 * 3 + 2),
    "depthwise": (lambda: L.DepthwiseConv2D(3, depth_multiplier=2), (2, 6, 6, 3),
                  9 * 3 * 2 + 6),
    "separable": (lambda: L.SeparableConv2D(5, 3, depth_multiplier=2, padding="same"),
                  (2, 6, 6, 3), 9 * 3 * 2 + 6 * 5 + 5),
    "max_pool1d": (lambda: L.MaxPooling1D(2), (2, 8, 3), 0),
    "max_pool2d": (lambda: L.MaxPool2D((2, 3), strides=(1, 2), padding="same"), (2, 7, 8, 3), 0),
    "max_pool3d": (lambda: L.MaxPooling3D(2), (1, 4, 4, 4, 2), 0),
    "avg_pool1d": (lambda: L.AveragePooling1D(3, strides=2), (2, 9, 3), 0),
    "avg_pool2d": (lambda: L.AvgPool2D(2, padding="same"), (2, 5, 7, 3), 0),
    "avg_pool3d": (lambda: L.AveragePooling3D(2), (1, 4, 4, 4, 2), 0),
    "global_avg1d": (lambda: L.GlobalAveragePooling1D(), (2, 5, 3), 0),
    "global_avg2d": (lambda: L.GlobalAveragePooling2D(keepdims=True), (2, 5, 4, 3), 0),
    "global_avg3d": (lambda: L.GlobalAveragePooling3D(), (1, 3, 3, 3, 2), 0),
    "global_max1d": (lambda: L.GlobalMaxPooling1D(), (2, 5, 3), 0),
    "global_max2d": (lambda: L.GlobalMaxPool2D(), (2, 5, 4, 3), 0),
    "global_max3d": (lambda: L.GlobalMaxPooling3D(), (1, 3, 3, 3, 2), 0),
    "zero_padding": (lambda: L.ZeroPadding2D(((1, 2), (0, 1))), (2, 3, 4, 2), 0),
    "cropping": (lambda: L.Cropping2D(((1, 0), (2, 1))), (2, 5, 6, 2), 0),
    "upsampling": (lambda: L.UpSampling2D((2, 3)), (2, 3, 2, 2), 0),
    "dense": (lambda: L.Dense(5, activation="relu"), (2, 4), (4 + 1) * 5),
    "dense_3d": (lambda: L.Dense(5, use_bias=False), (2, 3, 4), 4 * 5),
    "flatten": (lambda: L.Flatten(), (2, 3, 4, 5), 0),
    "reshape": (lambda: L.Reshape((4, -1)), (2, 3, 4), 0),
    "activation": (lambda: L.Activation("tanh"), (2, 4), 0),
    "dropout": (lambda: L.Dropout(0.5, seed=1), (2, 6), 0),
    "spatial_dropout": (lambda: L.SpatialDropout2D(0.5, seed=1), (2, 4, 4, 3), 0),
    "batch_norm": (lambda: L.BatchNormalization(), (4, 3, 3, 3), 4 * 3),
    "relu": (lambda: L.ReLU(max_value=1.0, negative_slope=0.1, threshold=0.5), (2, 6), 0),
    "leaky_relu": (lambda: L.LeakyReLU(0.2), (2, 6), 0),
    "elu": (lambda: L.ELU(0.5), (2, 6), 0),
    "softmax": (lambda: L.Softmax(axis=1), (2, 6), 0),
    "add": (lambda: L.Add(), [(2, 4, 4, 3), (2, 4, 4, 3)], 0),
    "concatenate": (lambda: L.Concatenate(), [(2, 4, 4, 3), (2, 4, 4, 2)], 0),
}


def _data(shape, rng, device="cpu"):
    if isinstance(shape, list):
        return [_data(s, rng, device) for s in shape]
    return dj.Tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=True).to(device)


def _shape(x):
    return [t.shape for t in x] if isinstance(x, list) else x.shape


def _unbatched(shape):
    if isinstance(shape, list):
        return [(None,) + s[1:] for s in shape]
    return (None,) + shape[1:]


@pytest.mark.parametrize("case", sorted(CASES))
def test_layer_contract(case, device):
    factory, shape, params = CASES[case]
    rng = np.random.default_rng(0)
    layer = factory().to(device)
    x = _data(shape, rng, device)
    y = layer(x, training=True)
    assert y.device == device
    # output shape == compute_output_shape, concrete and with a free batch axis
    assert y.shape == tuple(layer.compute_output_shape(_shape(x)))
    assert tuple(layer.compute_output_shape(_unbatched(_shape(x)))) == (None,) + y.shape[1:]
    # symbolic call gives the same shape
    sym_in = ([dj.Input(s[1:]) for s in shape] if isinstance(shape, list)
              else dj.Input(shape[1:]))
    assert factory()(sym_in).shape == (None,) + y.shape[1:]
    # Keras parameter count
    assert layer.count_params() == params
    # config round trip: same config, same outputs with the same weights
    config = layer.get_config()
    clone = type(layer).from_config(config).to(device)
    assert clone.get_config() == config
    clone(x)
    clone.set_weights(layer.get_weights())
    with dj.no_grad():
        assert_close(clone(x).numpy(), layer(x).numpy(), np.float32)
    # one training step changes every trainable weight; gradients reach the input
    before = [w.numpy().copy() for w in layer.trainable_weights]
    out = layer(x, training=True)
    (out * dj.Tensor(rng.standard_normal(out.shape).astype(np.float32)).to(device)).sum() \
        .backward()
    for t in x if isinstance(x, list) else [x]:
        assert t.grad is not None and t.grad.shape == t.shape and t.grad.device == device
    dj.optimizers.SGD(0.1).apply(layer.trainable_weights)
    for w, old in zip(layer.trainable_weights, before):
        assert not np.array_equal(w.numpy(), old), w.name


def test_every_listed_layer_has_a_contract_case():
    listed = ["Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose",
              "Conv3DTranspose", "DepthwiseConv2D", "SeparableConv2D", "MaxPooling1D",
              "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
              "AveragePooling3D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
              "GlobalAveragePooling3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D",
              "GlobalMaxPooling3D", "ZeroPadding2D", "Cropping2D", "UpSampling2D", "Dense",
              "Flatten", "Reshape", "Dropout", "SpatialDropout2D", "BatchNormalization",
              "Activation", "ReLU", "LeakyReLU", "ELU", "Softmax", "Add", "Concatenate"]
    covered = {type(factory()).__name__ for factory, _, _ in CASES.values()}
    assert set(listed) <= covered
    assert L.MaxPool2D is L.MaxPooling2D and L.AvgPool1D is L.AveragePooling1D


def test_auto_names_follow_keras():
    names = [L.Conv2D(1, 1).name, L.Conv2D(1, 1).name, L.MaxPooling2D().name,
             L.BatchNormalization().name, L.Dense(1, name="head").name]
    assert names == ["conv2d", "conv2d_1", "max_pooling2d", "batch_normalization", "head"]


def test_weights_are_kernel_then_bias_and_set_in_place():
    layer = L.Conv2D(2, 3)
    layer(np.zeros((1, 5, 5, 3), np.float32))
    assert [w.name for w in layer.weights] == ["conv2d/kernel", "conv2d/bias"]
    kernel = layer.weights[0]
    layer.set_weights([np.ones((3, 3, 3, 2)), np.zeros(2)])
    assert layer.weights[0] is kernel and kernel.numpy().sum() == 54


def test_inputs_are_cast_to_the_layer_dtype():
    layer = L.Dense(2)
    assert layer(np.ones((1, 3), np.uint8)).dtype == np.float32
    assert layer(np.ones((1, 3), np.float64)).dtype == np.float32
    with dj.default_dtype(np.float64):
        assert L.Dense(2)(np.ones((1, 3), np.float32)).dtype == np.float64


def test_trainable_flag_and_regularizer_losses():
    layer = L.Dense(3, kernel_regularizer=dj.regularizers.L2(0.5))
    layer(np.ones((1, 2), np.float32))
    expected = 0.5 * float((layer.kernel.numpy().astype(np.float64) ** 2).sum())
    assert np.isclose(float(layer.losses[0].item()), expected, rtol=1e-6)
    layer.trainable = False
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 2
    assert not layer.kernel.requires_grad


def test_batch_norm_splits_trainable_and_moving_statistics():
    bn = L.BatchNormalization()
    bn(np.ones((2, 3), np.float32))
    assert [w.name.split("/")[1] for w in bn.trainable_weights] == ["gamma", "beta"]
    assert [w.name.split("/")[1] for w in bn.non_trainable_weights] == [
        "moving_mean", "moving_variance"]


def test_dropout_is_identity_at_inference_and_seeded_in_training():
    x = np.ones((4, 8), np.float32)
    assert np.array_equal(L.Dropout(0.5)(x).numpy(), x)
    a = L.Dropout(0.5, seed=3)(x, training=True).numpy()
    b = L.Dropout(0.5, seed=3)(x, training=True).numpy()
    assert np.array_equal(a, b) and set(np.unique(a)) <= {0.0, 2.0}


def test_repr_shows_non_default_arguments():
    assert repr(L.Conv2D(32, 3, padding="same", name="c")) == \
        "Conv2D(filters=32, kernel_size=(3, 3), padding='same', name='c')"


# ----------------------------------------------------------------------------- numerics
def _torch():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return torch


def test_depthwise_and_separable_match_torch(device):
    torch = _torch()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 6, 5, 3))
    with dj.default_dtype(np.float64):
        dw = L.DepthwiseConv2D((3, 2), depth_multiplier=2, padding="same").to(device)
        sep = L.SeparableConv2D(4, 3, depth_multiplier=2).to(device)
        y_dw, y_sep = fetch(dw(x)), fetch(sep(x))
    k = dw.depthwise_kernel.numpy()  # (KH, KW, C, M) -> torch (C*M, 1, KH, KW)
    tw = torch.tensor(k.reshape(3, 2, 6).transpose(2, 0, 1)[:, None])
    tx = torch.tensor(x.transpose(0, 3, 1, 2))
    ref = torch.nn.functional.conv2d(torch.nn.functional.pad(tx, (0, 1, 1, 1)), tw,
                                     torch.tensor(dw.bias.numpy()), groups=3)
    assert_close(y_dw, ref.numpy().transpose(0, 2, 3, 1), np.float64)
    dk, pk = sep.depthwise_kernel.numpy(), sep.pointwise_kernel.numpy()
    mid = torch.nn.functional.conv2d(tx, torch.tensor(dk.reshape(3, 3, 6).transpose(2, 0, 1)
                                                      [:, None]), groups=3)
    ref = torch.nn.functional.conv2d(mid, torch.tensor(pk.transpose(3, 2, 0, 1)),
                                     torch.tensor(sep.bias.numpy()))
    assert_close(y_sep, ref.numpy().transpose(0, 2, 3, 1), np.float64)


@pytest.mark.parametrize("padding,strides,size", [("valid", 2, (9, 11)), ("same", 2, (8, 10)),
                                                  ("valid", 3, (12, 15))])
def test_conv_transpose_matches_torch_and_keras_sizes(padding, strides, size, device):
    torch = _torch()
    x = np.random.default_rng(2).standard_normal((2, 4, 5, 3))
    with dj.default_dtype(np.float64):
        layer = L.Conv2DTranspose(2, 3, strides=strides, padding=padding).to(device)
        y = fetch(layer(x))
    assert y.shape[1:3] == size
    w = torch.tensor(layer.kernel.numpy().transpose(3, 2, 0, 1))  # (K, out, in) -> (in, out, K)
    full = torch.nn.functional.conv_transpose2d(torch.tensor(x.transpose(0, 3, 1, 2)), w,
                                                torch.tensor(layer.bias.numpy()),
                                                stride=strides)
    full = full.numpy().transpose(0, 2, 3, 1)
    # Keras/TF SAME crops the full output with the extra pixel at the end
    oh, ow = size
    top = max((full.shape[1] - oh) // 2, 0)
    left = max((full.shape[2] - ow) // 2, 0)
    ref = np.zeros((2, oh, ow, 2))
    crop = full[:, top:top + oh, left:left + ow]
    ref[:, :crop.shape[1], :crop.shape[2]] = crop
    if crop.shape[1] < oh:  # output larger than the full transpose: extra rows get the bias
        ref[:, crop.shape[1]:] = layer.bias.numpy()
    if crop.shape[2] < ow:
        ref[:, :, crop.shape[2]:] = layer.bias.numpy()
    assert_close(y, ref, np.float64)


def test_reshaping_layers_match_numpy():
    x = np.arange(2 * 3 * 4 * 2, dtype=np.float32).reshape(2, 3, 4, 2)
    pad = L.ZeroPadding2D(((1, 2), (0, 1)))(x).numpy()
    assert np.array_equal(pad, np.pad(x, ((0, 0), (1, 2), (0, 1), (0, 0))))
    crop = L.Cropping2D(((1, 0), (1, 2)))(x).numpy()
    assert np.array_equal(crop, x[:, 1:, 1:2])
    up = L.UpSampling2D((2, 3))(x).numpy()
    assert np.array_equal(up, x.repeat(2, axis=1).repeat(3, axis=2))
    up_first = L.UpSampling2D(2, data_format="channels_first")(x).numpy()
    assert np.array_equal(up_first, x.repeat(2, axis=2).repeat(2, axis=3))


def test_relu_options_match_keras_formula():
    x = np.array([[-2.0, 0.2, 0.7, 3.0]], np.float32)
    y = L.ReLU(max_value=1.0, negative_slope=0.1, threshold=0.5)(x).numpy()
    expected = np.where(x >= 1.0, 1.0, np.where(x >= 0.5, x, 0.1 * (x - 0.5)))
    np.testing.assert_allclose(y, expected, rtol=1e-6)


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("make,error,message", [
    (lambda: L.Conv2D(0, 3), ValueError,
     r"^Conv2D: Expected filters to be an int >= 1\. Received: filters=0$"),
    (lambda: L.Conv2D(4, (3, 3, 3)), ValueError,
     r"^Conv2D: Expected kernel_size to be an int or a tuple of 2 ints, each >= 1\. "
     r"Received: kernel_size=\(3, 3, 3\)$"),
    (lambda: L.Conv2D(4, 3, padding="full"), ValueError,
     r"^Conv2D: Expected padding to be one of \('valid', 'same'\)\. Received: padding='full'$"),
    (lambda: L.Conv2D(4, 3, groups=3), ValueError,
     r"^Conv2D: Expected filters to be divisible by groups\. Received: filters=4, groups=3$"),
    (lambda: L.Conv2D(4, 3, padding_mode="mirror"), ValueError,
     r"^Conv2D: Expected padding_mode to be one of"),
    (lambda: L.Conv2D(4, 3, data_format="NCWH"), ValueError,
     r"^Conv2D: Expected data_format to be one of"),
    (lambda: L.Dense(2.5), TypeError, r"^Dense: Expected units to be an int >= 1\. "
                                      r"Received: units=2\.5$"),
    (lambda: L.Dense(3, foo=1), TypeError, r"^Dense: unexpected keyword argument\(s\) foo"),
    (lambda: L.Dense(3, activation="nope"), ValueError, r"^Dense: "),
    (lambda: L.Dropout(1.5), ValueError,
     r"^Dropout: Expected rate to be a number in \[0\.0, 1\.0\)\. Received: rate=1\.5$"),
    (lambda: L.MaxPooling2D(0), ValueError, r"^MaxPooling2D: Expected pool_size"),
    (lambda: L.Reshape((2, -1, -1)), ValueError, r"^Reshape: Expected target_shape"),
    (lambda: L.UpSampling2D(interpolation="bilinear"), ValueError,
     r"^UpSampling2D: Expected interpolation to be one of \('nearest',\)"),
    (lambda: L.BatchNormalization(momentum=2.0), ValueError,
     r"^BatchNormalization: Expected momentum to be a number in \[0\.0, 1\.0\]"),
])
def test_bad_arguments_raise_clear_errors(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_wrong_input_shape_names_the_layer():
    L.Conv2D(4, 3)  # conv2d
    conv = L.Conv2D(8, 3)
    conv(np.zeros((1, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"^layer 'conv2d_1' expects input of rank 4, shape "
                                         r"\(None, None, None, 3\), received input of shape "
                                         r"\(2, 8, 8, 5\)$"):
        conv(np.zeros((2, 8, 8, 5), np.float32))
    with pytest.raises(ValueError, match=r"^layer 'conv2d_2' expects input of rank 4, shape "
                                         r"\(None, None, None, None\), received input of "
                                         r"shape \(8, 8, 3\)$"):
        L.Conv2D(8, 3)(np.zeros((8, 8, 3), np.float32))
    dense = L.Dense(2)
    dense(np.zeros((1, 4), np.float32))
    with pytest.raises(ValueError, match=r"^layer 'dense' expects input of rank >= 2, shape "
                                         r"\(None, \.\.\., 4\), received input of shape "
                                         r"\(1, 5\)$"):
        dense(np.zeros((1, 5), np.float32))
    with pytest.raises(ValueError, match=r"^layer 'add' expects inputs of one shape"):
        L.Add()([np.zeros((1, 2)), np.zeros((1, 3))])
    with pytest.raises(ValueError, match=r"^layer 'concatenate' expects a list of at least 2"):
        L.Concatenate()(np.zeros((1, 2)))


def test_input_layer_contract():
    x = dj.Input((4, None, 3))
    assert x.shape == (None, 4, None, 3)
    layer = x.node.layer
    assert isinstance(layer, L.InputLayer) and layer.name == "input_layer"
    assert L.InputLayer.from_config(layer.get_config()).get_config() == layer.get_config()
    assert layer(np.zeros((2, 4, 5, 3))).shape == (2, 4, 5, 3)
    with pytest.raises(ValueError, match=r"^layer 'input_layer' expects input of rank 4, shape "
                                         r"\(None, 4, None, 3\), received input of shape "
                                         r"\(2, 5, 5, 3\)$"):
        layer(np.zeros((2, 5, 5, 3)))
    with pytest.raises(ValueError, match=r"^InputLayer: Expected shape to be a tuple"):
        dj.Input((0, 3))
    with pytest.raises(ValueError, match=r"^Dense: Expected input_shape to be a tuple"):
        L.Dense(2, input_shape=(-1,))
