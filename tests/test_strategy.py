"""The training-strategy seam (issue 11 item 8): batching through dojang.data, the hooks
fit calls, and which process writes files. Multi-process runs are in test_mpi.py."""

import numpy as np
import pytest

import dojang as dj
from dojang import callbacks as C
from dojang.data import BatchLoader, random_flip_left_right
from dojang.distribute import SingleProcess, current, shard_bounds


def _model(seed=0):
    dj.random.set_seed(seed)
    model = dj.Sequential([dj.layers.Dense(4, activation="relu", input_shape=(3,)),
                           dj.layers.Dense(2)])
    model.compile(dj.optimizers.SGD(0.1), "sparse_categorical_crossentropy", ["accuracy"])
    return model


def _data(n=21):
    rng = np.random.default_rng(1)
    return rng.normal(size=(n, 3)).astype(np.float32), rng.integers(0, 2, n)


class Recorder(SingleProcess):
    """One process that records the hooks fit calls; rank/size chosen by the test."""

    def __init__(self, rank=0, size=1):
        self.rank, self.size, self.calls = rank, size, []

    def reduce_gradients(self, params, local_count, total_count=None):
        self.calls.append(("grad", local_count, len(params)))

    def reduce_logs(self, sums, count):
        self.calls.append(("logs", sorted(sums)))
        return super().reduce_logs(sums, count)


@pytest.mark.parametrize("shuffle", [True, False])
def test_fit_batches_in_the_order_of_the_seeded_permutation(shuffle):
    """Epoch e visits np.random.default_rng([fit_seed, e]).permutation(n) in slices."""
    x, y = _data()
    seen = []

    class Spy(dj.Sequential):
        def train_step(self, xb, yb):
            seen.append(xb.copy())
            return super().train_step(xb, yb)

    dj.random.set_seed(3)
    model = Spy([dj.layers.Dense(2, input_shape=(3,))])
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, shuffle=shuffle)
    for epoch in range(2):
        order = (np.random.default_rng([model._fit_seed, epoch]).permutation(len(x))
                 if shuffle else np.arange(len(x)))
        want = [x[order[i:i + 4]] for i in range(0, len(x), 4)]
        got = seen[epoch * 6:(epoch + 1) * 6]
        assert len(got) == 6 and all(np.array_equal(a, b) for a, b in zip(got, want))


def test_fit_calls_the_strategy_between_backward_and_the_step():
    x, y = _data()
    model, strategy = _model(), Recorder()
    applied = []
    apply = model.optimizer.apply

    def spy_apply(params):
        applied.append(all(p.grad is not None for p in params))
        strategy.calls.append(("apply",))
        apply(params)

    model.optimizer.apply = spy_apply
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, strategy=strategy)
    assert [c for c in strategy.calls if c[0] != "logs"] == [
        ("grad", 8, 4), ("apply",), ("grad", 8, 4), ("apply",), ("grad", 5, 4), ("apply",)]
    assert all(applied)
    # One process: the loop never asks for a reduction of the logs.
    assert not [c for c in strategy.calls if c[0] == "logs"]
    assert current() is not strategy  # the scope ended with fit


def test_strategy_argument_is_checked():
    x, y = _data()
    with pytest.raises(TypeError, match=r"fit: Expected strategy to be None or a "
                                        r"dojang.distribute.Strategy. Received: strategy=2"):
        _model().fit(x, y, strategy=2)
    with pytest.raises(TypeError, match="predict: Expected strategy"):
        _model().predict(x, strategy="mpi")


def test_shard_bounds_split_evenly_and_cover_everything():
    for total in range(0, 30):
        for size in range(1, 6):
            parts = [shard_bounds(total, size, r) for r in range(size)]
            assert parts[0][0] == 0 and parts[-1][1] == total
            assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
            lengths = [b - a for a, b in parts]
            assert max(lengths) - min(lengths) <= 1 and sorted(lengths, reverse=True) == lengths


@pytest.mark.parametrize("shuffle, augment", [(False, None), (True, None),
                                               (True, random_flip_left_right)])
def test_sharded_loader_parts_make_the_one_process_batches(shuffle, augment):
    x = np.random.default_rng(0).normal(size=(23, 4, 4, 1))
    y = np.arange(23)
    for size in (2, 3):
        small = BatchLoader(x, y, batch_size=3, shuffle=shuffle, seed=5, augment=augment)
        parts = [list(small.sharded(size, Recorder(r, size).shard).epoch(2)) for r in range(size)]
        reference = list(BatchLoader(x, y, batch_size=3 * size, shuffle=shuffle, seed=5,
                                     augment=augment).epoch(2))
        assert len(parts[0]) == len(reference) == len(small.sharded(size, Recorder(0, size).shard))
        for step, (xb, yb) in enumerate(reference):
            np.testing.assert_array_equal(np.concatenate([p[step][0] for p in parts]), xb)
            np.testing.assert_array_equal(np.concatenate([p[step][1] for p in parts]), yb)


def test_only_the_chief_writes(tmp_path):
    x, y = _data()
    model = _model()
    worker = Recorder(rank=1)
    ckpt = C.ModelCheckpoint(str(tmp_path / "ckpt-{epoch}.dojang"), monitor="loss")
    log = C.CSVLogger(str(tmp_path / "log.csv"))
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=1, callbacks=[ckpt, log],
                        strategy=worker)
    assert len(history.history["loss"]) == 2
    with worker.scope():
        model.save(str(tmp_path / "model.dojang"))
        model.save_weights(str(tmp_path / "w.safetensors"))
    assert list(tmp_path.iterdir()) == []
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[ckpt, log])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-1.dojang", "log.csv"]


def test_progress_bar_only_on_the_chief(capsys):
    x, y = _data()
    _model().fit(x, y, batch_size=8, epochs=1, verbose=2, strategy=Recorder(rank=1))
    _model().evaluate(x, y, verbose=1, strategy=Recorder(rank=1))
    assert capsys.readouterr().out == ""
    _model().fit(x, y, batch_size=8, epochs=1, verbose=2, strategy=Recorder(rank=0))
    assert "loss" in capsys.readouterr().out


@pytest.mark.parametrize("axis", [-1, 1])
def test_sync_batch_norm_in_one_process_is_batch_norm(axis):
    """Forward, input and parameter gradients, moving statistics: the same as
    BatchNormalization when there is one process (float64)."""
    x = np.random.default_rng(2).normal(size=(5, 3, 4, 6)) * 3 + 1
    gy = np.random.default_rng(3).normal(size=x.shape)
    outs = []
    for cls in (dj.layers.BatchNormalization, dj.distribute.SyncBatchNormalization):
        with dj.default_dtype("float64"):
            layer = cls(axis=axis, momentum=0.5)
            xt = dj.Tensor(x, requires_grad=True)
            y = layer(xt, training=True)
            (y * dj.Tensor(gy)).sum().backward()
            outs.append([y.numpy(), xt.grad.numpy(), layer.gamma.grad.numpy(),
                         layer.beta.grad.numpy(), layer.moving_mean.numpy(),
                         layer.moving_variance.numpy(), layer(x, training=False).numpy()])
    for a, b in zip(*outs):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)


def test_sync_batch_norm_round_trips_through_a_file(tmp_path):
    dj.random.set_seed(0)
    model = dj.Sequential([dj.layers.Dense(3, input_shape=(2,)),
                           dj.distribute.SyncBatchNormalization()])
    model.save(str(tmp_path / "m.dojang"))
    again = dj.models.load_model(str(tmp_path / "m.dojang"))
    assert type(again.layers[1]).__name__ == "SyncBatchNormalization"
