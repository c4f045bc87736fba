"""The graph walker and the Keras symbolic idioms (model.input, layer.output, ...)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dojang as dj
from dojang.models import graph

L = dj.layers


def _names(nodes):
    return [n.layer.name for n in nodes]


def _cnn(prefix=""):
    return [L.Conv2D(3, 3, activation="relu", name=prefix + "c1"),
            L.MaxPooling2D(2, name=prefix + "p"), L.Flatten(name=prefix + "f"),
            L.Dense(4, name=prefix + "d")]


class Net(dj.Model):
    def __init__(self):
        super().__init__(name="net")
        self.c1, self.p, self.f, self.d = _cnn("s_")

    def call(self, x, training=False):
        return self.d(self.f(self.p(self.c1(x))))


def test_walk_is_the_same_chain_for_all_three_kinds_of_model():
    seq = dj.Sequential([L.InputLayer((8, 8, 2), name="q_in")] + _cnn("q_"))
    x = dj.Input((8, 8, 2), name="f_in")
    y = x
    for layer in _cnn("f_"):
        y = layer(y)
    func = dj.Model(x, y)
    sub = Net()
    sub(np.zeros((1, 8, 8, 2), np.float32))
    for model, prefix, first in ((seq, "q_", "q_in"), (func, "f_", "f_in"),
                                 (sub, "s_", "net_input")):
        nodes = graph.walk(model)
        assert _names(nodes) == [first] + [prefix + n for n in ("c1", "p", "f", "d")]
        assert nodes[0].inputs == [] and nodes[0].outputs == graph.model_inputs(model)
        assert nodes[-1].outputs == graph.model_outputs(model)
        for before, after in zip(nodes, nodes[1:]):
            assert after.inputs == before.outputs  # a chain: each call eats the last output
        conv = nodes[1]
        assert conv.config == conv.layer.get_config()
        assert [name for name, _ in conv.weights] == ["kernel", "bias"]
        assert [w for _, w in conv.weights] == conv.layer.weights
        assert [t.shape for t in nodes[-1].outputs] == [(None, 4)]


def test_walk_orders_branches_topologically_and_keeps_nested_models_as_nodes():
    inner = dj.Sequential([L.Dense(3, input_shape=(3,), name="inner_d")], name="inner")
    x = dj.Input((3,), name="x")
    a = L.Dense(3, name="a")(x)
    b = inner(x)
    shared = L.Dense(3, name="shared")
    s1, s2 = shared(a), shared(b)
    out = L.Add(name="add")([s1, s2])
    nodes = graph.walk(dj.Model(x, out))
    names = _names(nodes)
    assert names == ["x", "a", "shared", "inner", "shared", "add"]
    position = {id(t): i for i, n in enumerate(nodes) for t in n.outputs}
    for i, n in enumerate(nodes):
        assert all(position[id(t)] < i for t in n.inputs)
    assert nodes[3].layer is inner and _names(graph.walk(inner)) == ["inner_input", "inner_d"]
    assert [t.name for t in nodes[-1].inputs] == ["shared", "shared:1"]
    assert nodes[-1].multi_input


def test_walk_is_iterative_on_deep_graphs():
    x = dj.Input((2,))
    y = x
    for _ in range(1500):  # deeper than Python's default recursion limit
        y = L.Activation("relu")(y)
    assert len(graph.walk(dj.Model(x, y))) == 1501


def test_untraceable_or_unbuilt_subclassed_model_raises_but_still_summarizes():
    class Raw(dj.Model):
        def __init__(self):
            super().__init__()
            self.d = L.Dense(2)

        def call(self, x, training=False):
            return dj.ops.relu(self.d(x))  # a raw op: not traceable into layers

    raw = Raw()
    with pytest.raises(ValueError, match="not built"):
        graph.walk(raw)
    raw(np.ones((1, 3), np.float32))
    with pytest.raises(ValueError, match="cannot trace"):
        graph.walk(raw)
    assert raw.d.__dict__["_inbound_nodes"] == []  # a failed trace leaves no calls behind
    assert "Total params: 8" in raw.summary(return_string=True)


def test_model_and_layer_inputs_and_outputs():
    x = dj.Input((4,), name="in")
    d1 = L.Dense(3, name="d1")
    h = d1(x)
    y1, y2 = L.Dense(2, name="o1")(h), L.Dense(1, name="o2")(h)
    model = dj.Model(x, [y1, y2])
    assert model.input is x and model.inputs == [x]
    assert model.outputs == [y1, y2] and model.output == [y1, y2]
    assert d1.input is x and d1.output is h
    with pytest.raises(ValueError, match="never been called"):
        _ = L.Dense(2).output
    d1(x)
    with pytest.raises(ValueError, match="called 2 times"):
        _ = d1.output
    # a Sequential rebuilt by add/pop keeps one call per layer
    seq = dj.Sequential([L.Dense(3, input_shape=(2,)), L.Dense(2)])
    seq.add(L.Dense(1))
    seq.pop()
    assert seq.layers[1].output is seq.output and seq.output.shape == (None, 2)


def test_multi_output_predict_returns_a_list():
    x = dj.Input((4,))
    h = L.Dense(3)(x)
    model = dj.Model(x, [h, L.Dense(2)(h)])
    data = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    out = model.predict(data, batch_size=2)
    direct = model(data)
    assert isinstance(out, list) and [o.shape for o in out] == [(5, 3), (5, 2)]
    for o, d in zip(out, direct):
        np.testing.assert_allclose(o, d.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("start", ["input_shape", "Input"])
def test_keras_book_feature_maps_idiom_shares_the_weights(start):
    # Keras book: activation_model = keras.Model(model.input, model.layers[0].output)
    first = ([dj.Input((28, 28, 1)), L.Conv2D(8, 3, activation="relu")] if start == "Input"
             else [L.Conv2D(8, 3, activation="relu", input_shape=(28, 28, 1))])
    model = dj.Sequential(first + [L.MaxPooling2D(2), L.Flatten(),
                                   L.Dense(10, activation="softmax")])
    images = np.random.default_rng(1).random((3, 28, 28, 1)).astype(np.float32)
    features = dj.Model(model.input, model.layers[0].output)
    kernel, bias = model.layers[0].get_weights()

    def torch_maps():
        t = torch.nn.functional.conv2d(torch.from_numpy(images).permute(0, 3, 1, 2),
                                       torch.from_numpy(kernel).permute(3, 2, 0, 1),
                                       torch.from_numpy(bias))
        return torch.relu(t).permute(0, 2, 3, 1).numpy()

    np.testing.assert_allclose(features.predict(images), torch_maps(), rtol=1e-5, atol=1e-6)
    model.layers[0].set_weights([kernel * 2, bias + 0.1])  # shared: the extractor sees it
    kernel, bias = kernel * 2, bias + 0.1
    np.testing.assert_allclose(features.predict(images), torch_maps(), rtol=1e-5, atol=1e-5)
    every = dj.Model(model.input, [layer.output for layer in model.layers])
    maps = every.predict(images)
    assert [m.shape for m in maps] == [(3, 26, 26, 8), (3, 13, 13, 8), (3, 1352), (3, 10)]
    np.testing.assert_allclose(maps[-1], model.predict(images), rtol=1e-5, atol=1e-7)


def test_subclassed_model_of_two_inputs_is_traced_after_build():
    class Two(dj.Model):
        def __init__(self):
            super().__init__(name="two")
            self.a, self.b, self.add = L.Dense(3, name="ta"), L.Dense(3, name="tb"), L.Add()
            self.bn = L.BatchNormalization(name="tbn")

        def call(self, xs, training=False):
            return self.bn(self.add([self.a(xs[0]), self.b(xs[1])]), training=training)

    model = Two()
    model.build([(None, 4), (None, 5)])  # no data: the trace builds the layers
    nodes = graph.walk(model)
    assert _names(nodes)[:2] == ["two_input_0", "two_input_1"]
    assert _names(nodes)[2:] == ["ta", "tb", "add", "tbn"]
    assert graph.walk(model)[3].outputs == nodes[3].outputs  # traced once, reused
    assert model.count_params() == 15 + 18 + 12
    data = [np.ones((2, 4), np.float32), np.ones((2, 5), np.float32)]
    extractor = dj.Model(model.inputs, model.add.output)
    np.testing.assert_allclose(extractor(data).numpy(),
                               model.a(data[0]).numpy() + model.b(data[1]).numpy(), rtol=1e-6)
