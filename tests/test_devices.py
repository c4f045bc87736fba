"""Backends and devices: device names, moves, the strict stand-in's CuPy rules, the error
when two devices meet, weights and optimizer state on the layer's device, and a whole
``fit`` of the seed CNN on the strict device against the same run on the CPU."""

import subprocess
import sys

import numpy as np
import pytest

import dojang as dj
from dojang import backends
from dojang.backends import strict
from tests.helpers import fetch

strict.enable()


def _strict(a):
    return backends.to_device(np.asarray(a), "strict")


# ---------------------------------------------------------------- device names
@pytest.mark.parametrize("name,expected", [("cpu", "cpu"), ("CPU", "cpu"), ("strict", "strict")])
def test_check_device_normalizes(name, expected):
    assert backends.check_device(name) == expected
    assert dj.backend.check_device(name) == expected


@pytest.mark.parametrize("name", ["gpu", "cuda", "gpu:1", "CUDA:0"])
def test_gpu_names_are_accepted_but_need_a_gpu(name):
    if dj.backend.gpu_available():
        pytest.skip("this machine has a GPU; the message is for machines without one")
    with pytest.raises(ValueError, match=rf"Expected a CUDA device for device='{name}', but "
                                         r"CuPy is not installed or sees no GPU"):
        backends.check_device(name)


@pytest.mark.parametrize("name", ["tpu", "gpu:x", "cpu:0", "strict:1", ""])
def test_unknown_device_names(name):
    with pytest.raises(ValueError, match=rf"Expected device to be one of \(.*'cpu', 'gpu'.*"
                                         rf"'gpu:N'\)\. Received: device='{name}'"):
        backends.check_device(name)
    with pytest.raises(TypeError, match="Received: device=3"):
        backends.check_device(3)


def test_strict_exists_only_when_tests_enable_it_and_import_needs_no_cupy():
    code = ("import sys, dojang as dj\n"
            "print('cupy' in sys.modules, dj.backends.backend_of([1.0]).name)\n"
            "dj.backend.check_device('strict')\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.stdout.split() == ["False", "numpy"]
    assert run.stderr.strip().endswith("ValueError: Expected device to be one of ('cpu', "
                                       "'gpu', 'gpu:N'). Received: device='strict'")


# ---------------------------------------------------------------- the strict array
@pytest.mark.parametrize("convert", [np.asarray, np.array, np.ascontiguousarray,
                                     lambda a: np.asarray(a, dtype=np.float32)])
def test_strict_arrays_refuse_implicit_conversion(convert):
    with pytest.raises(TypeError, match=r"Implicit conversion to a NumPy array is not allowed"):
        convert(_strict([1.0, 2.0]))


def test_strict_arrays_refuse_numpy_operands_and_fetch_explicitly():
    a = _strict([1.0, 2.0])
    host = np.ones(2)
    for mix in (lambda: a + host, lambda: host * a, lambda: np.maximum(a, host),
                lambda: strict.xp.add(host, a), lambda: strict.xp.concatenate([a, host])):
        with pytest.raises(TypeError, match="a NumPy array cannot meet a 'strict' device array"):
            mix()
    b = np.sqrt(a * 2 + 1.0)  # NumPy's functions dispatch, scalars mix, the result stays there
    assert backends.device_of(b) == "strict" and backends.device_of(np.sum(b)) == "strict"
    assert type(b.get()) is np.ndarray
    np.testing.assert_allclose(b.get(), np.sqrt(np.array([3.0, 5.0])))
    assert backends.device_of(strict.xp.asarray(np.ones(2))) == "strict"  # the explicit move


def test_backend_objects():
    a = np.zeros((2, 3), np.float32)
    cpu, dev = backends.backend_of(a), backends.get("strict")
    assert (cpu.name, cpu.device, cpu.xp) == ("numpy", "cpu", np)
    assert (dev.name, dev.device, dev.xp) == ("strict", "strict", strict.xp)
    assert dev.owns(dev.zeros((2,), np.float32)) and not cpu.owns(dev.empty((2,), np.float32))
    assert backends.backend_of(3.0) is cpu and dj.backend.get_array_module(_strict(a)) is strict.xp
    assert type(cpu.empty((2,), np.float32)) is np.ndarray and cpu.num_threads() >= 1
    np.testing.assert_array_equal(dev.to_numpy(dev.from_numpy(a)), a)


# ---------------------------------------------------------------- tensors
def test_tensor_device_and_to():
    t = dj.Tensor(np.arange(3.0), requires_grad=True, name="w")
    s = t.to("strict")
    assert (t.device, s.device, s.requires_grad, s.name) == ("cpu", "strict", True, "w")
    back = s.to("cpu")
    assert back.device == "cpu" and type(back.data) is np.ndarray
    np.testing.assert_array_equal(back.data, t.data)
    with pytest.raises(TypeError, match=r"A tensor on device 'strict' is not converted to a "
                                        r"NumPy array implicitly\. Use \.numpy\(\)"):
        np.asarray(s)
    np.testing.assert_array_equal(fetch(s), np.asarray(t))  # explicit, and a CPU tensor converts


def test_figures_fetch_device_tensors_explicitly():
    from dojang.viz import figures

    kernel = dj.Tensor(np.arange(24.0).reshape(2, 2, 2, 3)).to("strict")
    np.testing.assert_array_equal(figures.filter_grid(kernel),
                                  figures.filter_grid(kernel.numpy()))


@pytest.mark.parametrize("mix", [
    lambda s, c: s + c,
    lambda s, c: c * s,
    lambda s, c: dj.ops.matmul(s, c),
    lambda s, c: dj.functional.conv1d(s.reshape(1, 3, 1), c.reshape(1, 1, 3)),
    lambda s, c: s == c,
    lambda s, c: s + c.data,
])
def test_two_devices_in_one_op_name_both(mix):
    s, c = dj.Tensor(np.ones(3)).to("strict"), dj.Tensor(np.ones(3))
    with pytest.raises(ValueError, match=r"Expected all arrays on one device\. Received: arrays "
                                         r"on device '(strict|cpu)' and on device '(cpu|strict)'"):
        mix(s, c)


def test_gradient_on_another_device_than_its_parameter():
    p = dj.Tensor(np.ones(3), requires_grad=True).to("strict")
    p.grad = dj.Tensor(np.ones(3))
    with pytest.raises(ValueError, match=r"SGD\.apply: Expected all arrays on one device\. "
                                         r"Received: arrays on device 'strict' and on device "
                                         r"'cpu'"):
        dj.optimizers.SGD(0.1).apply([p])


def test_batch_norm_statistics_on_another_device():
    x = dj.Tensor(np.ones((4, 2))).to("strict")
    with pytest.raises(ValueError, match=r"batch_norm: Expected all arrays on one device\. "
                                         r"Received: arrays on device 'strict' and on device "
                                         r"'cpu'"):
        dj.functional.batch_normalization(x, None, None, np.zeros(2), np.ones(2), training=True)


# ---------------------------------------------------------------- layers, models, optimizers
def test_weights_are_created_on_the_layers_device():
    layer = dj.layers.Dense(3).to("strict")
    y = layer(np.ones((2, 4), np.float32))  # an array input follows the layer
    assert y.device == "strict" and all(w.device == "strict" for w in layer.weights)
    assert all(type(w) is np.ndarray for w in layer.get_weights())
    layer.set_weights([np.ones((4, 3)), np.zeros(3)])
    np.testing.assert_array_equal(fetch(layer(np.ones((1, 4), np.float32))), [[4.0, 4.0, 4.0]])
    with pytest.raises(ValueError, match="on device 'cpu' and on device 'strict'"):
        layer(dj.Tensor(np.ones((2, 4), np.float32)))  # a Tensor is never moved silently


def test_sequential_add_follows_the_model_and_to_moves_optimizer_slots():
    model = dj.Sequential([dj.layers.Dense(4, input_shape=(3,))]).to("strict")
    model.add(dj.layers.Dense(2))
    assert all(w.device == "strict" for w in model.weights)
    model.compile("adam", "mse")
    x, y = np.ones((4, 3), np.float32), np.zeros((4, 2), np.float32)
    model.train_step(x, y)
    slots = [a for s in model.optimizer._slots for a in s.values()]
    assert slots and all(backends.device_of(a) == "strict" for a in slots)
    model.to("cpu")
    assert all(type(a) is np.ndarray for s in model.optimizer._slots for a in s.values())
    assert all(w.device == "cpu" for w in model.weights)
    model.train_step(x, y)
    state = model.optimizer.get_state()  # host copies, restored onto the device at build
    again = dj.optimizers.Adam()
    again.set_state(state)
    model.to("strict")
    params = model.parameters()
    for p in params:
        p.grad = dj.Tensor(np.ones(p.shape, np.float32)).to("strict")
    again.apply(params)
    assert all(backends.device_of(a) == "strict" for s in again._slots for a in s.values())
    assert again.iterations == state["iterations"] + 1


def test_fit_of_the_seed_cnn_on_the_strict_device_equals_the_cpu():
    rng = np.random.default_rng(0)
    x = rng.random((16, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, 16)
    runs = {}
    for device in ("cpu", "strict"):
        dj.layers.clear_session()
        dj.random.set_seed(3)
        model = dj.zoo.fashion_cnn().to(device)
        model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
        with dj.config.jit(False):  # both on the reference kernels: the same arithmetic
            history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
            scores = model.evaluate(x[:8], y[:8], verbose=0)
        assert all(w.device == device for w in model.weights)
        runs[device] = history.history, model.get_weights(), model.predict(x[:4]), scores
    (h_cpu, w_cpu, p_cpu, s_cpu), (h_dev, w_dev, p_dev, s_dev) = runs["cpu"], runs["strict"]
    np.testing.assert_allclose(s_dev, s_cpu, rtol=1e-5)
    assert h_cpu.keys() == h_dev.keys()
    for key in h_cpu:
        np.testing.assert_allclose(h_dev[key], h_cpu[key], rtol=1e-5)
    for a, b in zip(w_dev, w_cpu, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(p_dev, p_cpu, rtol=1e-5, atol=1e-6)


class _Doubling(dj.layers.Layer):
    """A layer without compute_output_shape: the base runs ``call`` on zeros."""

    def build(self, input_shape):
        self.scale = self.add_weight("scale", (input_shape[-1],), "ones")
        super().build(input_shape)

    def call(self, x):
        return x * self.scale * 2.0


def test_symbolic_shapes_and_saving_of_a_model_on_the_strict_device(tmp_path):
    layer = _Doubling().to("strict")
    inputs = dj.Input((3,))
    model = dj.Model(inputs, dj.layers.Dense(2)(layer(inputs))).to("strict")
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    expected = model.predict(x)
    model.save_weights(tmp_path / "w.safetensors")
    for w in model.weights:
        w.data[...] = 0.0
    model.load_weights(tmp_path / "w.safetensors")
    assert all(w.device == "strict" for w in model.weights)
    np.testing.assert_array_equal(model.predict(x), expected)


def test_a_device_scope_places_new_layers_and_models_there():
    strict.enable()
    with dj.device("strict"):
        model = dj.Sequential([dj.layers.Dense(3, input_shape=(4,)), dj.layers.Dense(2)])
        assert dj.backends.default_device() == "strict"
    assert dj.backends.default_device() == "cpu"
    assert {w.device for w in model.weights} == {"strict"}
    y = model(np.ones((5, 4), np.float32))
    assert y.device == "strict" and y.shape == (5, 2)
    with pytest.raises(ValueError, match="Expected device to be one of"):
        with dj.device("tpu"):
            pass


def test_staging_moves_host_batches_to_the_device_and_leaves_cpu_batches_alone():
    strict.enable()
    batches = [(np.ones((2, 3), np.float32), np.arange(2)), (np.zeros((1, 3)), None)]
    staged = list(dj.backends.get("strict").stage(iter(batches), "strict"))
    assert [tuple(None if a is None else dj.backends.device_of(a) for a in b)
            for b in staged] == [("strict", "strict"), ("strict", None)]
    np.testing.assert_array_equal(dj.backends.to_numpy(staged[0][1]), np.arange(2))
    cpu = list(dj.backends.get("cpu").stage(iter(batches), "cpu"))
    assert cpu[0][0] is batches[0][0]
