"""Keras 3 files both ways, with real Keras 3 as the oracle.

Keras runs on its NumPy backend here (inference only, which is all these tests need; it
needs JAX installed): building a model from a file on the JAX backend compiles every op,
about 30 times slower.
"""

from __future__ import annotations

import io
import os
import zipfile

import numpy as np
import pytest

import dojang as dj

os.environ.setdefault("KERAS_BACKEND", "numpy")
keras = pytest.importorskip("keras")
h5py = pytest.importorskip("h5py")

from tests.interchange_helpers import assert_agree, randomize_batch_norm  # noqa: E402


def _dj_block():
    x = dj.Input((8, 8, 16))
    return dj.Model(x, dj.zoo._residual_block(x, 32, 2), name="block")


DJ_MODELS = {"seed": dj.zoo.fashion_cnn, "lenet5": dj.zoo.lenet5, "resnet_block": _dj_block}


def _keras_seed():
    K = keras.layers
    return keras.Sequential([
        keras.Input((28, 28, 1)), K.Conv2D(32, 3, activation="relu", padding="same"),
        K.MaxPooling2D(2), K.Conv2D(64, (3, 3), activation="relu", padding="same"),
        K.MaxPooling2D(2), K.Flatten(), K.Dense(100, activation="relu"), K.Dropout(0.4),
        K.Dense(10, activation="softmax")])


def _keras_lenet():
    K = keras.layers
    return keras.Sequential([
        keras.Input((32, 32, 1)), K.Conv2D(6, 5, activation="tanh"), K.AveragePooling2D(2),
        K.Conv2D(16, 5, activation="tanh"), K.AveragePooling2D(2), K.Flatten(),
        K.Dense(120, activation="tanh"), K.Dense(84, activation="tanh"), K.Dense(10)])


def _keras_block():
    K = keras.layers
    x = keras.Input((8, 8, 16))
    y = K.Conv2D(32, 3, strides=2, padding="same", use_bias=False)(x)
    y = K.ReLU()(K.BatchNormalization()(y))
    y = K.BatchNormalization()(K.Conv2D(32, 3, padding="same", use_bias=False)(y))
    s = K.BatchNormalization()(K.Conv2D(32, 1, strides=2, use_bias=False)(x))
    return keras.Model(x, K.ReLU()(K.Add()([s, y])))


KERAS_MODELS = {"seed": _keras_seed, "lenet5": _keras_lenet, "resnet_block": _keras_block}


def _randomize_keras(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.standard_normal(c) * 0.1,
                               rng.standard_normal(c) * 0.1, rng.uniform(0.5, 1.5, c)])


def _x(model, seed=1):
    shape = model.input_shape
    return np.random.default_rng(seed).standard_normal((2,) + tuple(shape[1:])).astype("f4")


@pytest.mark.parametrize("name", sorted(DJ_MODELS))
def test_dojang_to_keras(name, tmp_path):
    model = DJ_MODELS[name]()
    randomize_batch_norm(model)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = _x(model)
    assert_agree(np.asarray(loaded(x)), model(x).numpy())
    names = [layer.name for layer in loaded.layers
             if not isinstance(layer, keras.layers.InputLayer)]
    assert sorted(names) == sorted(layer.name for layer in model.layers)


@pytest.mark.parametrize("name", sorted(KERAS_MODELS))
def test_keras_to_dojang(name, tmp_path):
    kmodel = KERAS_MODELS[name]()
    _randomize_keras(kmodel)
    path = tmp_path / f"{name}.keras"
    kmodel.save(path)
    model = dj.models.load_model(path)
    x = _x(model)
    assert_agree(model(x).numpy(), np.asarray(kmodel(x)))
    assert model.count_params() == kmodel.count_params()
    # and back: dojang's own file of the loaded model round-trips exactly
    model.save(tmp_path / "again.keras")
    np.testing.assert_array_equal(dj.models.load_model(tmp_path / "again.keras")(x).numpy(),
                                  model(x).numpy())


def test_weights_h5_by_position_ignoring_optimizer(tmp_path):
    kmodel = _keras_block()
    _randomize_keras(kmodel)
    path = tmp_path / "block.weights.h5"
    kmodel.save_weights(path)
    with h5py.File(path, "a") as f:  # what a compiled, trained model's file also holds
        f.create_group("optimizer/vars").create_dataset("0", data=np.zeros(3))
    model = _dj_block()  # other layer names, same classes and order
    model.load_weights(path)
    x = _x(model)
    assert_agree(model(x).numpy(), np.asarray(kmodel(x)))
    model.save_weights(tmp_path / "back.weights.h5")
    kmodel.load_weights(tmp_path / "back.weights.h5")
    assert_agree(np.asarray(kmodel(x)), model(x).numpy())


def _edit_h5(path, edit):
    with h5py.File(path, "a") as f:
        edit(f)


@pytest.mark.parametrize("edit, message", [
    (lambda f: f.__delitem__("layers/dense/vars/1"), r"layers/dense/vars holds 1 weights"),
    (lambda f: f["layers/dense/vars"].create_dataset("2", data=np.zeros(2)),
     r"layers/dense/vars holds 3 weights"),
    (lambda f: f.create_group("layers/dense_9/vars").create_dataset("0", data=np.zeros(2)),
     r"weights for layers/dense_9 match no layer"),
    (lambda f: (f.__delitem__("layers/dense/vars/0"),
                f["layers/dense/vars"].create_dataset("0", shape=(2**20, 2**10), dtype="f4",
                                                      compression="gzip")),
     r"layers/dense/vars/0 is \(\(1048576, 1024\)"),
])
def test_bad_weights_files_refused(tmp_path, edit, message):
    model = dj.Sequential([dj.layers.Dense(4, input_shape=(3,)), dj.layers.Dense(2)])
    path = tmp_path / "m.weights.h5"
    model.save_weights(path)
    _edit_h5(path, edit)
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match=message):
        model.load_weights(path)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_truncated_files_refused(tmp_path):
    model = dj.zoo.lenet5()
    model.save(tmp_path / "m.keras")
    data = (tmp_path / "m.keras").read_bytes()
    (tmp_path / "cut.keras").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut\.keras: not a valid zip archive"):
        dj.models.load_model(tmp_path / "cut.keras")
    model.save_weights(tmp_path / "m.weights.h5")
    blob = (tmp_path / "m.weights.h5").read_bytes()
    (tmp_path / "cut.weights.h5").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match=r"cut\.weights\.h5: (not an HDF5|corrupted)"):
        model.load_weights(tmp_path / "cut.weights.h5")


def test_lambda_and_foreign_members_refused(tmp_path):
    kmodel = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda t: t * 2)])
    kmodel.save(tmp_path / "lam.keras")
    with pytest.raises(ValueError, match="is a Lambda: it holds Python code"):
        dj.models.load_model(tmp_path / "lam.keras")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("config.json", "{}")
        zf.writestr("model.weights.h5", b"")
        zf.writestr("payload.pkl", b"\x80\x04")
    (tmp_path / "evil.keras").write_bytes(buffer.getvalue())
    with pytest.raises(ValueError, match="unexpected member 'payload.pkl'"):
        dj.models.load_model(tmp_path / "evil.keras")


def test_layers_keras_lacks_are_refused_by_name(tmp_path):
    model = dj.Sequential([dj.layers.Conv2D(2, 3, padding_mode="reflect", padding="same",
                                            input_shape=(5, 5, 1), name="mirror")])
    with pytest.raises(ValueError, match="layer 'mirror': dojang option padding_mode"):
        model.save(tmp_path / "m.keras")
    assert not (tmp_path / "m.keras").exists()


def test_subclassed_model_saved_as_a_keras_functional_model(tmp_path):
    from tests.test_onnx_export import _Net

    model = _Net()
    x = np.random.default_rng(0).standard_normal((2, 6, 6, 2)).astype("f4")
    model(x)
    model.save(tmp_path / "net.keras")
    assert_agree(np.asarray(keras.saving.load_model(tmp_path / "net.keras")(x)), model(x).numpy())
    model.save_weights(tmp_path / "net.weights.h5")
    twin = _Net()
    twin(x)
    twin.load_weights(tmp_path / "net.weights.h5")
    np.testing.assert_array_equal(twin(x).numpy(), model(x).numpy())
