"""compile / fit / evaluate / predict on real data (scikit-learn's bundled 8x8 digits)."""

import time

import numpy as np
import pytest

import dojang as dj
from dojang import layers as L


@pytest.fixture(autouse=True)
def _fresh_names():
    dj.layers.clear_session()
    dj.random.set_seed(0)


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """Small GEMMs: a second OpenBLAS thread only spins on a busy CI core (10x slower once
    torch's OpenMP runtime is loaded by another test in the same process)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(1, user_api="blas"):
        yield


@pytest.fixture(scope="module")
def digits():
    datasets = pytest.importorskip("sklearn.datasets")
    d = datasets.load_digits()
    x = (d.images / 16.0).astype(np.float32)[..., None]
    perm = np.random.default_rng(0).permutation(len(x))
    x, y = x[perm], d.target[perm]
    return x[:1400], y[:1400], x[1400:], y[1400:]


def small_cnn():
    return dj.Sequential([
        L.Conv2D(16, 3, padding="same", activation="relu", input_shape=(8, 8, 1)),
        L.MaxPooling2D(2),
        L.Conv2D(32, 3, padding="same", activation="relu"),
        L.MaxPooling2D(2),
        L.Flatten(),
        L.Dense(64, activation="relu"),
        L.Dense(10, activation="softmax"),
    ])


def test_small_cnn_reaches_97_percent_on_digits(digits):
    x_train, y_train, x_test, y_test = digits
    model = small_cnn()
    model.compile(dj.optimizers.Adam(0.003), "sparse_categorical_crossentropy", ["accuracy"])
    start = time.perf_counter()
    history = model.fit(x_train, y_train, batch_size=32, epochs=10, verbose=0,
                        validation_data=(x_test, y_test))
    assert time.perf_counter() - start < 60
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(history.history["loss"]) == 10 and history.epoch == list(range(10))
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    assert accuracy >= 0.97
    assert np.isclose(accuracy, history.history["val_accuracy"][-1])
    predicted = model.predict(x_test, batch_size=64).argmax(axis=1)
    assert np.isclose((predicted == y_test).mean(), accuracy)


@pytest.mark.parametrize("make", [
    lambda: dj.optimizers.SGD(0.1),
    lambda: dj.optimizers.SGD(0.05, momentum=0.9),
    lambda: dj.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    lambda: dj.optimizers.Adam(0.003),
    lambda: dj.optimizers.AdamW(0.003),
    lambda: dj.optimizers.RMSprop(0.003),
    lambda: dj.optimizers.Adagrad(0.05),
], ids=["sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad"])
def test_every_optimizer_decreases_the_loss(digits, make):
    x_train, y_train, _, _ = digits
    x, y = x_train[:640], y_train[:640]
    model = dj.Sequential([L.Conv2D(8, 3, activation="relu", input_shape=(8, 8, 1)),
                           L.Flatten(), L.Dense(10)])
    model.compile(make(), dj.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, batch_size=32, epochs=3, verbose=0)  # 60 steps
    assert model.evaluate(x, y, verbose=0) < 0.6 * before


class Recorder(dj.Sequential):
    """Overrides the per-batch steps (``fit`` must not care) to record what it was fed."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.train_seen, self.val_seen = [], []

    def train_step(self, x, y):
        self.train_seen.append(x[:, 0].astype(int).tolist())
        return {"loss": 0.0}

    def test_step(self, x, y):
        self.val_seen.append(x[:, 0].astype(int).tolist())
        return {"loss": 0.0}


def test_validation_split_takes_the_last_fraction_before_shuffling():
    x = np.arange(20, dtype=np.float32)[:, None]
    model = Recorder([L.Dense(1, input_shape=(1,))])
    model.compile("sgd", "mse")
    model.fit(x, x, batch_size=4, epochs=2, validation_split=0.25, verbose=0)
    assert model.val_seen == [[15, 16, 17, 18], [19]] * 2
    epoch1 = sum(model.train_seen[:4], [])
    epoch2 = sum(model.train_seen[4:], [])
    assert sorted(epoch1) == sorted(epoch2) == list(range(15))
    assert epoch1 != list(range(15)) and epoch1 != epoch2  # shuffled, differently each epoch

    again = Recorder([L.Dense(1, input_shape=(1,))])
    again.compile("sgd", "mse")
    again._fit_seed = model._fit_seed
    again.fit(x, x, batch_size=4, epochs=2, validation_split=0.25, verbose=0)
    assert again.train_seen == model.train_seen  # the shuffle depends only on (seed, epoch)

    ordered = Recorder([L.Dense(1, input_shape=(1,))])
    ordered.compile("sgd", "mse")
    ordered.fit(x, x, batch_size=8, epochs=1, shuffle=False, verbose=0)
    assert ordered.train_seen == [list(range(8)), list(range(8, 16)), list(range(16, 20))]


def test_predict_runs_without_graph_in_inference_mode():
    calls = []

    class Probe(L.Layer):
        def call(self, x, training=False):
            calls.append((training, dj.is_grad_enabled()))
            return x

        def compute_output_shape(self, input_shape):
            return input_shape

    model = dj.Sequential([L.Dense(3, input_shape=(2,)), L.Dropout(0.5), Probe()])
    x = np.ones((5, 2), np.float32)
    out = model.predict(x, batch_size=2)
    assert out.shape == (5, 3) and isinstance(out, np.ndarray)
    assert calls == [(False, False)] * 3
    assert np.array_equal(out, model.predict(x))  # dropout inactive


def test_evaluate_forms_and_regularization_in_the_loss():
    x = np.random.default_rng(0).standard_normal((16, 3)).astype(np.float32)
    y = (x.sum(axis=1) > 0).astype(np.int64)
    model = dj.Sequential([L.Dense(2, input_shape=(3,),
                                   kernel_regularizer=dj.regularizers.L2(0.1))])
    model.compile("adam", dj.losses.SparseCategoricalCrossentropy(from_logits=True),
                  ["accuracy"])
    loss, acc = model.evaluate(x, y, batch_size=16, verbose=0)
    logs = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    assert logs == {"loss": loss, "accuracy": acc}
    logits = x.astype(np.float64) @ model.layers[0].kernel.numpy()
    shifted = logits - logits.max(axis=1, keepdims=True)
    ce = -(shifted[np.arange(16), y] - np.log(np.exp(shifted).sum(axis=1))).mean()
    penalty = 0.1 * (model.layers[0].kernel.numpy().astype(np.float64) ** 2).sum()
    assert np.isclose(loss, ce + penalty, rtol=1e-5)


def test_subclassed_model_trains_and_tracks_layers_in_order():
    class Net(dj.Model):
        def __init__(self):
            super().__init__()
            self.conv = L.Conv2D(4, 3, activation="relu")
            self.pool = L.GlobalAveragePooling2D()
            self.head = L.Dense(3)

        def call(self, x, training=False):
            return self.head(self.pool(self.conv(x)))

    net = Net()
    assert net.layers == [net.conv, net.pool, net.head]
    x = np.random.default_rng(1).standard_normal((12, 6, 6, 2)).astype(np.float32)
    y = np.arange(12) % 3
    net.compile("adam", dj.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = net.fit(x, y, batch_size=4, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    assert [p.name for p in net.parameters()] == [
        "conv2d/kernel", "conv2d/bias", "dense/kernel", "dense/bias"]
    assert net.to("cpu") is net


def test_sequential_add_pop_and_uint8_inputs():
    model = dj.Sequential()
    model.add(dj.Input((4, 4, 1)))
    model.add(L.Flatten())
    model.add(L.Dense(3))
    assert model.count_params() == 16 * 3 + 3
    model.add(L.Dense(2))
    popped = model.pop()
    assert isinstance(popped, L.Dense) and popped.units == 2 and len(model.layers) == 2
    images = np.random.default_rng(0).integers(0, 255, (6, 4, 4, 1), dtype=np.uint8)
    model.compile("sgd", "mse")
    model.fit(images, np.zeros((6, 3), np.float32), epochs=1, verbose=0)
    assert model.predict(images).dtype == np.float32


def test_early_stopping_sets_stop_training():
    x = np.random.default_rng(0).standard_normal((8, 2)).astype(np.float32)
    model = dj.Sequential([L.Dense(1, input_shape=(2,))])
    model.compile(dj.optimizers.SGD(0.0), "mse")
    stop = dj.callbacks.EarlyStopping(monitor="loss", patience=1)
    history = model.fit(x, x[:, :1], epochs=10, verbose=0, callbacks=[stop])
    assert len(history.history["loss"]) < 10 and model.stop_training


def test_fit_errors():
    model = dj.Sequential([L.Dense(1, input_shape=(2,))])
    with pytest.raises(RuntimeError, match=r"^fit: model 'sequential' must be compiled"):
        model.fit(np.zeros((2, 2)), np.zeros((2, 1)))
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match=r"^fit: x and y must have the same number"):
        model.fit(np.zeros((2, 2)), np.zeros((3, 1)))
    with pytest.raises(ValueError, match=r"^fit: Expected validation_split to be a number in"):
        model.fit(np.zeros((2, 2)), np.zeros((2, 1)), validation_split=1.0)
    with pytest.raises(ValueError, match=r"^Expected verbose to be 'auto', 0, 1 or 2"):
        model.fit(np.zeros((2, 2)), np.zeros((2, 1)), verbose=3)


def test_functional_graph_checks():
    a, b = dj.Input((3,)), dj.Input((3,))
    with pytest.raises(ValueError, match=r"^Model: graph disconnected: output depends on input "
                                         r"'input_layer_1', which is not in inputs"):
        dj.Model(a, L.Add()([a, b]))
    with pytest.raises(TypeError, match=r"^Model: Expected inputs and outputs to be symbolic"):
        dj.Model(a, np.zeros(3))
    two = dj.Model([a, b], L.Concatenate()([a, L.Dense(3)(b)]))
    assert two.output_shape == (None, 6)
    assert two([np.ones((2, 3)), np.ones((2, 3))]).shape == (2, 6)


def test_sequential_rejects_a_layer_that_does_not_fit():
    model = dj.Sequential([L.Dense(4, input_shape=(3,))])
    with pytest.raises(ValueError, match=r"^layer 'conv2d' expects input of rank 4"):
        model.add(L.Conv2D(2, 3))
    assert len(model.layers) == 1
    with pytest.raises(TypeError, match=r"^Sequential\.add: Expected a layer"):
        model.add("dense")
