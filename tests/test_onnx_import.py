"""ONNX import: round trips through dojang's writer and PyTorch's exporter, and files that
must be refused."""

from __future__ import annotations

import os

import numpy as np
import pytest

import dojang as dj
from dojang import layers as L

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper  # noqa: E402

from tests.interchange_helpers import assert_agree, randomize_batch_norm, run_onnx  # noqa: E402
from tests.test_onnx_export import _branchy, random_case  # noqa: E402


def _round_trip(model, path, x, **kwargs):
    dj.onnx.export(model, path, **kwargs)
    back = dj.onnx.load(path)
    np.testing.assert_array_equal(back(x).numpy(), model(x).numpy())
    return back


@pytest.mark.parametrize("name", ["fashion_cnn", "fashion_cnn_bn", "lenet5", "resnet20"])
def test_zoo_round_trip_is_exact_and_keeps_channels_last(name, tmp_path):
    model = dj.zoo.get(name)
    randomize_batch_norm(model)
    x = np.random.default_rng(0).standard_normal((2,) + model.input_shape[1:]).astype("f4")
    back = _round_trip(model, tmp_path / "m.onnx", x)
    convs = [layer for layer in back.layers if isinstance(layer, L.Conv2D)]
    assert convs and all(c.data_format == "channels_last" for c in convs)
    assert back.count_params() == model.count_params()


def test_functional_graph_round_trip(tmp_path):
    model = _branchy(thresholded_relu=False)
    randomize_batch_norm(model)
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 3)).astype("f4")
    _round_trip(model, tmp_path / "m.onnx", x)


@pytest.mark.parametrize("seed", range(12))
def test_random_layer_round_trip(seed, tmp_path):
    model, x, _ = random_case(100 + seed)
    _round_trip(model, tmp_path / "m.onnx", x, opset=19)


def test_imported_model_trains_further(tmp_path):
    model = dj.Sequential([L.InputLayer((8, 8, 1)), L.Conv2D(4, 3), L.BatchNormalization(),
                           L.ReLU(), L.Flatten(), L.Dense(3, activation="softmax")])
    dj.onnx.export(model, tmp_path / "m.onnx")
    back = dj.onnx.load(tmp_path / "m.onnx")
    back.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x, y = rng.random((16, 8, 8, 1)).astype("f4"), rng.integers(0, 3, 16)
    before = [w.copy() for w in back.get_weights()]
    history = back.fit(x, y, epochs=3, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert any(not np.array_equal(a, b) for a, b in zip(before, back.get_weights()))


# PyTorch's own exporter: a real client, not our writer -------------------------------------
def _torch_net():
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 3, padding=1, padding_mode="reflect")
            self.bn1 = nn.BatchNorm2d(8)
            self.conv2 = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=2, bias=False)
            self.down = nn.Conv2d(8, 12, 3, stride=2, padding=1)
            self.up = nn.ConvTranspose2d(12, 6, 3, stride=2, padding=1, output_padding=1)
            self.reduce = nn.Conv2d(12, 3, 1)
            self.pool = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=True)
            self.mpool = nn.MaxPool2d(2, stride=1)
            self.head = nn.Linear(9 * 2 * 2, 5)

        def forward(self, x):
            h = torch.relu(self.bn1(self.conv1(x)))
            h = h + self.conv2(h)
            d = torch.nn.functional.elu(self.down(h))
            wide = nn.functional.interpolate(self.reduce(d), scale_factor=2, mode="nearest")
            u = torch.cat([self.up(d)[:, :, 1:7, 1:7], wide[:, :, 1:7, 0:6]], dim=1)
            p = self.mpool(self.pool(torch.sigmoid(u)))
            return torch.log_softmax(self.head(torch.flatten(p, 1)), dim=-1)

    torch.manual_seed(0)
    net = Net()
    net.bn1.running_mean.uniform_(-0.5, 0.5)
    net.bn1.running_var.uniform_(0.5, 1.5)
    return net.eval()


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_pytorch_export_loads_as_channels_first_model(tmp_path, dynamo):
    torch = pytest.importorskip("torch")
    if dynamo:
        pytest.importorskip("onnxscript")
    net = _torch_net()
    x = torch.randn(2, 3, 8, 8)
    path = tmp_path / "torch.onnx"
    if dynamo:  # torch 2.13's default exporter (torch.export + onnxscript)
        torch.onnx.export(net, (x,), str(path), dynamo=True, opset_version=18,
                          input_names=["x"], dynamic_shapes={"x": {0: torch.export.Dim("N")}},
                          verbose=False)
    else:
        torch.onnx.export(net, (x,), str(path), dynamo=False, opset_version=17,
                          input_names=["x"], dynamic_axes={"x": {0: "batch"}})
    model = dj.onnx.load(path)
    assert all(layer.data_format == "channels_first" for layer in model.layers
               if isinstance(layer, L.Conv2D))
    with torch.no_grad():
        ref = net(x).numpy()
    xs = np.random.default_rng(0).standard_normal((3, 3, 8, 8)).astype("f4")
    assert_agree(model(x.numpy()).numpy(), ref)
    with torch.no_grad():
        assert_agree(model(xs).numpy(), net(torch.from_numpy(xs)).numpy())
    assert_agree(run_onnx(path, xs)[0], model(xs).numpy())


# Hostile files ------------------------------------------------------------------------------
def _save(proto, path):
    path.write_bytes(proto.SerializeToString())
    return path


def _tiny_graph(weight, op="Gemm", inputs_dims=("N", 3), extra_nodes=()):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(inputs_dims))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = list(extra_nodes) or [helper.make_node(op, ["x", "w"], ["y"], name="n0")]
    graph = helper.make_graph(nodes, "g", [x], [y], initializer=[weight])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _weight(dims=(3, 2), raw=None, name="w"):
    data = np.ones(dims, "f4").tobytes() if raw is None else raw
    return TensorProto(name=name, dims=list(dims), data_type=TensorProto.FLOAT, raw_data=data)


def test_small_valid_file_loads(tmp_path):
    model = dj.onnx.load(_save(_tiny_graph(_weight()), tmp_path / "ok.onnx"))
    np.testing.assert_array_equal(model(np.ones((1, 3), "f4")).numpy(), [[3.0, 3.0]])


def test_truncated_file_refused(tmp_path):
    path = tmp_path / "cut.onnx"
    dj.onnx.export(dj.zoo.lenet5(), path)
    data = path.read_bytes()
    for cut in (len(data) // 2, 7, len(data) - 3):
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=r"cut\.onnx: .*(truncated|holds)"):
            dj.onnx.load(path)


def test_absurd_dimensions_refused(tmp_path):
    huge = _weight(dims=(2**40, 2**20), raw=b"\0" * 16)
    with pytest.raises(ValueError, match="declares dims .* truncated or absurd"):
        dj.onnx.load(_save(_tiny_graph(huge), tmp_path / "a.onnx"))
    wide = _tiny_graph(_weight(), inputs_dims=("N", 2**40))
    with pytest.raises(ValueError, match="absurd dimension 1099511627776"):
        dj.onnx.load(_save(wide, tmp_path / "b.onnx"))
    big = _tiny_graph(_weight(), inputs_dims=("N", 2**16, 2**16, 4))
    with pytest.raises(ValueError, match="values per example"):
        dj.onnx.load(_save(big, tmp_path / "c.onnx"))
    fill = helper.make_node("ConstantOfShape", ["s"], ["z"], name="fill")
    shape = helper.make_tensor("s", TensorProto.INT64, [2], [2**30, 2**30])
    graph = _tiny_graph(_weight(), extra_nodes=[fill, helper.make_node(
        "Gemm", ["x", "w"], ["y"], name="n0")])
    graph.graph.initializer.append(shape)
    with pytest.raises(ValueError, match=r"node 'fill' .*at most"):
        dj.onnx.load(_save(graph, tmp_path / "d.onnx"))


def test_unknown_op_refused_by_name(tmp_path):
    graph = _tiny_graph(_weight(), op="Hardmax")
    graph.graph.node[0].ClearField("input")
    graph.graph.node[0].input.append("x")
    with pytest.raises(ValueError, match=r"node 'n0' \(Hardmax\): op 'Hardmax' has no dojang"):
        dj.onnx.load(_save(graph, tmp_path / "u.onnx"))
    custom = _tiny_graph(_weight())
    custom.graph.node[0].domain = "com.evil"
    with pytest.raises(ValueError, match="not in the standard ONNX domain"):
        dj.onnx.load(_save(custom, tmp_path / "c.onnx"))


def _external_weight(location, dims=(3, 2)):
    w = TensorProto(name="w", dims=list(dims), data_type=TensorProto.FLOAT)
    w.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0")):
        entry = w.external_data.add()
        entry.key, entry.value = key, value
    return w


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/hostname", "sub/../../x.bin"])
def test_external_data_outside_folder_refused(tmp_path, location):
    folder = tmp_path / "model"
    folder.mkdir()
    (tmp_path / "secret.bin").write_bytes(np.ones(6, "f4").tobytes())
    path = _save(_tiny_graph(_external_weight(location)), folder / "m.onnx")
    with pytest.raises(ValueError, match="points outside the model's folder"):
        dj.onnx.load(path)


def test_external_data_inside_folder_is_read_and_checked(tmp_path):
    (tmp_path / "w.bin").write_bytes(np.full(6, 2.0, "f4").tobytes())
    model = dj.onnx.load(_save(_tiny_graph(_external_weight("w.bin")), tmp_path / "m.onnx"))
    np.testing.assert_array_equal(model(np.ones((1, 3), "f4")).numpy(), [[6.0, 6.0]])
    os.truncate(tmp_path / "w.bin", 8)
    with pytest.raises(ValueError, match="external data holds 8 bytes"):
        dj.onnx.load(tmp_path / "m.onnx")
