"""ONNX export checked by onnxruntime (an independent runtime) on the zoo and a sweep."""

from __future__ import annotations

import numpy as np
import pytest

import dojang as dj
from dojang import layers as L

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from dojang.onnx.export import build_proto  # noqa: E402
from tests.interchange_helpers import assert_agree, randomize_batch_norm, run_onnx  # noqa: E402

ZOO = {
    "fashion_cnn": {}, "fashion_cnn_bn": {}, "lenet5": {}, "small_vgg": {"width": 8},
    "resnet20": {}, "alexnet": {"input_shape": (67, 67, 3), "num_classes": 10},
}


def check(model, x, opset=17, **kwargs):
    proto = build_proto(model, opset=opset, **kwargs)
    assert [o.version for o in proto.opset_import] == [opset]
    xs = x if isinstance(x, list) else [x]
    ref = model(xs if len(xs) > 1 else xs[0]).numpy()
    if kwargs.get("channels_first_io"):
        xs = [a.transpose(0, a.ndim - 1, *range(1, a.ndim - 1)) for a in xs]
        ref = ref.transpose(0, ref.ndim - 1, *range(1, ref.ndim - 1)) if ref.ndim > 2 else ref
    return assert_agree(run_onnx(proto, *xs)[0], ref)


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_models_agree_with_onnxruntime(name):
    model = dj.zoo.get(name, **ZOO[name])
    randomize_batch_norm(model)
    # Softmax heads saturate on random weights: compare logits (softmax is swept below).
    model.layers[-1].activation = dj.activations.linear
    x = np.random.default_rng(1).standard_normal((2,) + model.input_shape[1:]).astype("f4")
    check(model, x)


def _random_layer(rng, rank, channels_last):
    fmt = "channels_last" if channels_last else "channels_first"
    kind = rng.choice(["conv", "conv", "transpose", "depthwise", "separable", "pool"])
    k = tuple(int(v) for v in rng.integers(1, 4, rank))
    s = tuple(int(v) for v in rng.integers(1, 3, rank))
    if kind == "conv":
        d = tuple(int(v) for v in rng.integers(1, 3, rank)) if max(s) == 1 else 1
        padding = [
            "valid", "same", int(rng.integers(0, 3)),
            tuple((int(rng.integers(0, 3)), int(rng.integers(0, 3))) for _ in range(rank)),
        ][int(rng.integers(0, 4))]
        mode = str(rng.choice(["zeros", "reflect", "replicate", "circular"]))
        groups = int(rng.choice([1, 2]))
        cls = {1: L.Conv1D, 2: L.Conv2D, 3: L.Conv3D}[rank]
        return cls(4, k, strides=s, padding=padding, dilation_rate=d, groups=groups,
                   padding_mode=mode, data_format=fmt,
                   activation=str(rng.choice(["relu", "tanh", "linear", "gelu", "elu"])))
    if kind == "transpose":
        cls = {1: L.Conv1DTranspose, 2: L.Conv2DTranspose, 3: L.Conv3DTranspose}[rank]
        padding = str(rng.choice(["valid", "same"]))
        return cls(3, k, strides=s, padding=padding, data_format=fmt)
    if kind in ("depthwise", "separable") and rank == 2:
        padding = str(rng.choice(["valid", "same"]))
        mode = str(rng.choice(["zeros", "circular", "reflect"]))
        if kind == "depthwise":
            return L.DepthwiseConv2D(k, strides=s, padding=padding, depth_multiplier=2,
                                     data_format=fmt, padding_mode=mode)
        return L.SeparableConv2D(5, k, strides=s, padding=padding, data_format=fmt,
                                 padding_mode=mode)
    pool = {("max", 1): L.MaxPooling1D, ("max", 2): L.MaxPooling2D, ("max", 3): L.MaxPooling3D,
            ("avg", 1): L.AveragePooling1D, ("avg", 2): L.AveragePooling2D,
            ("avg", 3): L.AveragePooling3D}[(str(rng.choice(["max", "avg"])), rank)]
    return pool(k, strides=s, padding=str(rng.choice(["valid", "same"])), data_format=fmt)


def random_case(seed: int):
    """(one-layer model, input batch, rng) of a random configuration, both data formats."""
    rng = np.random.default_rng(seed)
    rank = int(rng.choice([1, 2, 2, 3]))
    channels_last = bool(seed % 2)
    layer = _random_layer(rng, rank, channels_last)
    spatial = tuple(int(v) for v in rng.integers(5, 9, rank))
    shape = spatial + (4,) if channels_last else (4,) + spatial
    model = dj.Sequential([L.InputLayer(shape), layer])
    return model, rng.standard_normal((2,) + shape).astype("f4"), rng


@pytest.mark.parametrize("seed", range(24))
def test_random_layer_sweep(seed):
    model, x, rng = random_case(seed)
    opset = int(rng.choice([13, 17, onnx.defs.onnx_opset_version()]))
    check(model, x, opset=opset)


@pytest.mark.parametrize("opset", [17, 19])
@pytest.mark.parametrize("channels_last", [True, False])
def test_circular_padding_both_ways(opset, channels_last):
    fmt = "channels_last" if channels_last else "channels_first"
    shape = (6, 7, 3) if channels_last else (3, 6, 7)
    model = dj.Sequential([L.InputLayer(shape), L.Conv2D(2, (3, 4), padding="same",
                                                         padding_mode="circular",
                                                         data_format=fmt)])
    proto = build_proto(model, opset=opset)
    ops = {n.op_type for n in proto.graph.node}
    assert ("Pad" in ops) == (opset >= 19) and ("Concat" in ops) == (opset < 19)
    check(model, np.random.default_rng(0).standard_normal((1,) + shape).astype("f4"), opset)


def _branchy(thresholded_relu: bool = True):
    x = L.Input((8, 8, 3))
    a = L.Conv2D(4, 3, padding="same")(x)
    b = L.BatchNormalization()(L.Conv2D(4, 1)(x))
    y = L.Concatenate()([L.ReLU(max_value=2.0)(a), L.LeakyReLU(0.1)(b)])
    y = L.Add()([L.ZeroPadding2D(((1, 0), (2, 1)))(y), L.UpSampling2D(1)(
        L.ZeroPadding2D(((1, 0), (2, 1)))(y))])
    y = L.Cropping2D(((1, 2), (0, 1)))(L.UpSampling2D((2, 1))(y))
    y = L.ELU(0.7)(y)
    if thresholded_relu:  # written as Where/Sub/Mul, which the loader does not read back
        y = L.ReLU(negative_slope=0.2, threshold=0.5)(y)
    y = L.GlobalMaxPooling2D(keepdims=True)(y)
    y = L.Reshape((8, -1))(L.Flatten()(y))
    y = L.Softmax()(L.Dense(5)(y))
    return dj.Model(x, y)


@pytest.mark.parametrize("channels_first_io", [False, True])
def test_functional_graph_with_every_merge_and_reshape(channels_first_io):
    model = _branchy()
    randomize_batch_norm(model)
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 3)).astype("f4")
    check(model, x, channels_first_io=channels_first_io)


def test_channels_first_model_flatten_and_batch_norm():
    model = dj.Sequential([
        L.InputLayer((3, 9, 9)), L.Conv2D(4, 3, data_format="channels_first"),
        L.BatchNormalization(axis=1), L.MaxPooling2D(2, data_format="channels_first"),
        L.Flatten(data_format="channels_first"), L.Dense(6), L.BatchNormalization(),
        L.Activation("softmax")])
    randomize_batch_norm(model)
    proto = build_proto(model)
    dims = [d.dim_value or d.dim_param for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", 3, 9, 9]
    check(model, np.random.default_rng(0).standard_normal((2, 3, 9, 9)).astype("f4"))


def test_batch_dimension_symbolic_and_checker_passes(tmp_path):
    model = dj.zoo.lenet5()
    path = tmp_path / "lenet.onnx"
    dj.onnx.export(model, path, opset=15)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version == 15
    dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert dim.dim_param == "N"
    x = np.random.default_rng(0).standard_normal((5, 32, 32, 1)).astype("f4")
    assert_agree(run_onnx(path, x)[0], model(x).numpy())


def test_user_layer_refused_by_name():
    class Twice(L.Layer):
        def call(self, inputs, training=False):
            return inputs * 2

    model = dj.Sequential([L.InputLayer((4,)), Twice(name="twice")])
    with pytest.raises(ValueError, match=r"layer 'twice' \(Twice\) cannot be exported"):
        build_proto(model)


@pytest.mark.parametrize("opset", [12, 99, "17"])
def test_bad_opset(opset):
    with pytest.raises(ValueError, match="Expected opset to be an int from 13"):
        build_proto(dj.zoo.lenet5(), opset=opset)


def test_batch_norm_on_an_inner_axis_and_float64_models():
    model = dj.Sequential([L.InputLayer((6,)), L.Reshape((2, 3)),
                           L.BatchNormalization(axis=1), L.Dense(4, activation="gelu")])
    randomize_batch_norm(model)
    check(model, np.random.default_rng(0).standard_normal((3, 6)).astype("f4"))
    # onnxruntime has no float64 Conv on the CPU: a float64 dense stack checks the constants.
    x = L.Input((5,), dtype="float64")
    y = L.Dense(3, dtype="float64")(x)
    y = L.ReLU(max_value=0.5, dtype="float64")(L.BatchNormalization(dtype="float64")(y))
    check(dj.Model(x, y), np.random.default_rng(0).standard_normal((2, 5)))


def test_transposed_convolutions_with_explicit_padding():
    for padding, extra in (((1, 2), None), (((1, 0), (0, 1)), (1, 1)), ("valid", (1, 1))):
        model = dj.Sequential([L.InputLayer((5, 6, 3)), L.Conv2DTranspose(
            4, (3, 2), strides=2, padding=padding, output_padding=extra, dilation_rate=1)])
        check(model, np.random.default_rng(0).standard_normal((2, 5, 6, 3)).astype("f4"))


def test_nested_model_is_written_in_place():
    inner = dj.Sequential([L.Conv2D(4, 3, padding="same", activation="relu",
                                    input_shape=(6, 6, 2)), L.MaxPooling2D(2)], name="inner")
    x = L.Input((6, 6, 2))
    y = L.Flatten()(L.Add()([inner(x), L.AveragePooling2D(2)(L.Conv2D(4, 1)(x))]))
    check(dj.Model(x, y), np.random.default_rng(0).standard_normal((2, 6, 6, 2)).astype("f4"))


class _Net(dj.Model):
    def __init__(self):
        super().__init__(name="net")
        self.conv = L.Conv2D(4, 3, padding="same", activation="relu")
        self.pool = L.GlobalAveragePooling2D()
        self.head = L.Dense(3)

    def call(self, x, training=False):
        return self.head(self.pool(self.conv(x)))


def test_subclassed_model_traced_into_built_in_layers():
    model = _Net()
    x = np.random.default_rng(0).standard_normal((2, 6, 6, 2)).astype("f4")
    model(x)
    check(model, x)


def test_one_graph_input_per_model_input(tmp_path):
    a, b = L.Input((6, 6, 2), name="left"), L.Input((6, 6, 3), name="right")
    y = L.Conv2D(4, 3)(L.Concatenate()([a, L.Conv2D(2, 1)(b)]))
    model = dj.Model([a, b], [L.Flatten()(y), L.GlobalMaxPooling2D()(y)])
    proto = build_proto(model)
    assert [i.name for i in proto.graph.input] == ["left", "right"]
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((2, 6, 6, c)).astype("f4") for c in (2, 3)]
    got = run_onnx(proto, *xs)
    for g, r in zip(got, model(xs)):
        assert_agree(g, r.numpy())
    path = tmp_path / "two.onnx"
    dj.onnx.export(model, path)
    back = dj.onnx.load(path)
    for g, r in zip(back(xs), model(xs)):
        np.testing.assert_array_equal(g.numpy(), r.numpy())
