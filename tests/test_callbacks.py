"""Callbacks driven by a minimal fake model (no dependency on dojang.models)."""

import io
import math
import os
import re
import sys

import numpy as np
import pytest

from dojang import callbacks as C
from dojang import optimizers as O


class FakeModel:
    def __init__(self, lr=0.1):
        self.stop_training = False
        self.optimizer = O.SGD(lr)
        self.weights = [np.zeros(2)]
        self.saved = []

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        self.weights = [w.copy() for w in weights]

    def save(self, path):
        self.saved.append(("model", path))
        open(path, "w").close()

    def save_weights(self, path):
        self.saved.append(("weights", path))
        open(path, "w").close()


def fit(callbacks, values, monitor="val_loss", steps=3, extra=None):
    """Drive the hooks like Model.fit: epoch e has logs {monitor: values[e]}; weights = e."""
    model = FakeModel()
    cbs = C.CallbackList(callbacks, add_history=True, model=model, epochs=len(values),
                         steps=steps, verbose=0)
    cbs.on_train_begin()
    for epoch, value in enumerate(values):
        cbs.on_epoch_begin(epoch)
        for b in range(steps):
            cbs.on_train_batch_begin(b)
            cbs.on_train_batch_end(b, {"loss": 1.0 / (b + 1)})
        model.weights = [np.full(2, float(epoch))]
        logs = {"loss": 1.0, monitor: value, **(extra or {})}
        cbs.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    cbs.on_train_end()
    return model, cbs.history


def test_history_and_callback_list():
    model, history = fit([], [3.0, 2.0])
    assert history.history == {"loss": [1.0, 1.0], "val_loss": [3.0, 2.0]}
    assert history.epoch == [0, 1] and model.history is history
    calls = []
    lam = C.LambdaCallback(on_epoch_end=lambda e, logs: calls.append(e),
                           on_batch_end=lambda b, logs: calls.append(("b", b)))
    fit([lam], [1.0])
    assert calls == [("b", 0), ("b", 1), ("b", 2), 0]
    with pytest.raises(ValueError, match="LambdaCallback: Expected hooks among"):
        C.LambdaCallback(on_epoch_ends=print)


@pytest.mark.parametrize("values, patience, min_delta, stopped", [
    ([5, 4, 4, 4, 4, 4], 2, 0.0, 3),      # no improvement at epochs 2, 3 -> stop at 3
    ([5, 4, 3.95, 3.9, 3.85, 3.8], 2, 0.1, 3),  # improvements smaller than min_delta
    ([5, 4, 3, 2, 1, 0], 1, 0.0, None),   # always improving
    ([5, 6, 4, 7, 8, 9], 0, 0.0, 1),      # patience 0 stops at the first bad epoch (> 0)
])
def test_early_stopping_min(values, patience, min_delta, stopped):
    es = C.EarlyStopping(patience=patience, min_delta=min_delta)
    model, history = fit([es], values)
    assert model.stop_training == (stopped is not None)
    assert len(history.epoch) == (len(values) if stopped is None else stopped + 1)
    assert es.stopped_epoch == (stopped or 0)


def test_early_stopping_max_auto_restore_baseline_start():
    es = C.EarlyStopping(monitor="val_accuracy", patience=1, restore_best_weights=True)
    model, _ = fit([es], [0.5, 0.7, 0.6, 0.65], monitor="val_accuracy")
    assert es._monitor.maximize and es.best == 0.7 and es.best_epoch == 1
    assert es.stopped_epoch == 2
    np.testing.assert_array_equal(model.weights[0], [1.0, 1.0])  # weights of epoch 1
    es = C.EarlyStopping(monitor="val_loss", mode="max", patience=1)
    fit([es], [1.0, 0.5, 0.4])
    assert es.stopped_epoch == 1
    # baseline: a first value not beating 0.5 does not reset the counter (stop one epoch early)
    for baseline, stopped in ((0.5, 1), (None, 2)):
        es = C.EarlyStopping(patience=2, baseline=baseline)
        fit([es], [0.9, 0.95, 0.92, 0.93])
        assert es.stopped_epoch == stopped
    es = C.EarlyStopping(patience=0, start_from_epoch=3)
    fit([es], [1.0, 2.0, 3.0, 4.0, 5.0])
    assert es.stopped_epoch == 4
    with pytest.warns(UserWarning, match="conditioned on metric `val_acc` which is not "
                                         "available. Available metrics are: loss, val_loss"):
        fit([C.EarlyStopping(monitor="val_acc")], [1.0])
    with pytest.raises(ValueError, match="EarlyStopping: Expected mode to be one of"):
        C.EarlyStopping(mode="up")


def test_reduce_lr_on_plateau():
    cb = C.ReduceLROnPlateau(factor=0.5, patience=2, cooldown=2, min_lr=0.02)
    model, history = fit([cb], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    # logs hold the rate used in the epoch. Epochs 1, 2 bad -> 0.05 after epoch 2; as in Keras
    # the cooldown counter is decremented before it is tested, so cooldown=2 skips epoch 3 only;
    # bad 4, 5 -> 0.025 after 5; skip 6; bad 7, 8 -> max(0.0125, 0.02) after 8
    assert history.history["learning_rate"] == pytest.approx(
        [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025])
    assert model.optimizer.learning_rate == pytest.approx(0.02)
    cb = C.ReduceLROnPlateau(factor=0.1, patience=1, min_delta=0.5)
    model, _ = fit([cb], [3.0, 2.8, 1.0])
    assert model.optimizer.learning_rate == pytest.approx(0.01)
    with pytest.raises(ValueError, match=r"ReduceLROnPlateau: Expected factor to be a number in "
                                         r"\(0.0, 1.0\)\. Received: factor=1.0"):
        C.ReduceLROnPlateau(factor=1.0)


def test_learning_rate_scheduler():
    seen = []
    cb = C.LearningRateScheduler(lambda epoch, lr: seen.append(lr) or lr * 0.5)
    model, history = fit([cb], [1.0, 1.0, 1.0])
    assert seen == pytest.approx([0.1, 0.05, 0.025])
    assert history.history["learning_rate"] == pytest.approx([0.05, 0.025, 0.0125])
    model, _ = fit([C.LearningRateScheduler(lambda epoch: 0.01 * (epoch + 1))], [1.0, 1.0])
    assert model.optimizer.learning_rate == pytest.approx(0.02)
    with pytest.raises(ValueError, match="Expected the schedule to return a float"):
        fit([C.LearningRateScheduler(lambda epoch, lr: "fast")], [1.0])


def test_terminate_on_nan(capsys):
    model = FakeModel()
    cb = C.TerminateOnNaN()
    cb.set_model(model)
    cb.on_train_batch_end(0, {"loss": 0.5})
    assert not model.stop_training
    cb.on_train_batch_end(4, {"loss": math.inf})
    assert model.stop_training
    assert capsys.readouterr().out == "Batch 4: Invalid loss, terminating training\n"


def test_csv_logger(tmp_path):
    path = tmp_path / "log.csv"
    fit([C.CSVLogger(path)], [0.5, 0.25], extra={"accuracy": np.float32(0.75)})
    assert path.read_text().splitlines() == [
        "epoch,accuracy,loss,val_loss", "0,0.75,1.0,0.5", "1,0.75,1.0,0.25"]
    fit([C.CSVLogger(path, separator=";", append=True)], [0.125], extra={"accuracy": 1.0})
    assert path.read_text().splitlines()[-1] == "0;1.0;1.0;0.125"
    assert path.read_text().count("epoch") == 1


def test_model_checkpoint(tmp_path):
    pattern = str(tmp_path / "sub" / "ckpt-{epoch:02d}-{val_loss:.2f}.dojang")
    model, _ = fit([C.ModelCheckpoint(pattern)], [0.5, 0.25])
    assert [p for _, p in model.saved] == [str(tmp_path / "sub" / "ckpt-01-0.50.dojang"),
                                           str(tmp_path / "sub" / "ckpt-02-0.25.dojang")]
    assert os.path.exists(model.saved[-1][1])
    best = C.ModelCheckpoint(str(tmp_path / "best-{epoch}.w"), save_best_only=True,
                             save_weights_only=True)
    model, _ = fit([best], [0.5, 0.6, 0.4, 0.45])
    assert model.saved == [("weights", str(tmp_path / "best-1.w")),
                           ("weights", str(tmp_path / "best-3.w"))]
    acc = C.ModelCheckpoint(str(tmp_path / "a.dojang"), monitor="val_accuracy",
                            save_best_only=True)
    model, _ = fit([acc], [0.5, 0.4, 0.9], monitor="val_accuracy")
    assert len(model.saved) == 2 and acc.best == 0.9
    freq = C.ModelCheckpoint(str(tmp_path / "b-{epoch}.dojang"), save_freq=2)
    model, _ = fit([freq], [1.0, 1.0], steps=3)
    assert [os.path.basename(p) for _, p in model.saved] == ["b-1.dojang", "b-2.dojang",
                                                              "b-2.dojang"]
    with pytest.raises(ValueError, match="ModelCheckpoint: failed to format filepath"):
        fit([C.ModelCheckpoint(str(tmp_path / "{val_acc}.dojang"))], [1.0])


class TTY(io.StringIO):
    def isatty(self):
        return True


PLAIN_FINAL = re.compile(
    r"3/3 ━{20} \d+s \d+ms/step - loss: 1\.0000 - val_loss: 0\.5000 *\n")


def test_progbar_plain_text_verbose_1():
    out = TTY()
    fit([C.ProgbarLogger(verbose=1, use_tqdm=False, stream=out, interval=0.0)], [0.5, 0.5])
    text = out.getvalue()
    assert text.startswith("Epoch 1/2\n\r1/3 ━━━━━━─")
    assert "\r2/3 ━━━━━━━━━━━━━─────── " in text and "- loss: 0.5000" in text
    assert len(PLAIN_FINAL.findall(text)) == 2 and "Epoch 2/2\n" in text
    # not a terminal: only the epoch lines, no carriage returns
    out = io.StringIO()
    fit([C.ProgbarLogger(verbose=1, use_tqdm=False, stream=out)], [0.5])
    assert "\r" not in out.getvalue()
    assert re.fullmatch(r"Epoch 1/1\n" + PLAIN_FINAL.pattern, out.getvalue())


def test_progbar_verbose_2_and_0():
    out = io.StringIO()
    fit([C.ProgbarLogger(stream=out, verbose=2)], [0.5])
    assert re.fullmatch(r"Epoch 1/1\n3/3 - \d+s - \d+ms/step - loss: 1\.0000 - val_loss: "
                        r"0\.5000\n", out.getvalue())
    out = io.StringIO()
    fit([C.ProgbarLogger(stream=out, verbose=0)], [0.5])
    assert out.getvalue() == ""


def test_progbar_falls_back_without_tqdm(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    out = io.StringIO()
    fit([C.ProgbarLogger(stream=out, verbose=1)], [0.5])
    assert PLAIN_FINAL.search(out.getvalue())


def test_progbar_tqdm():
    pytest.importorskip("tqdm")
    out = io.StringIO()
    fit([C.ProgbarLogger(stream=out, verbose=1)], [0.5, 0.25])
    text = out.getvalue()
    assert "Epoch 1/2" in text and "Epoch 2/2" in text and "3/3" in text
    assert "ms/step - loss: 1.0000 - val_loss: 0.2500" in text


def test_progbar_verbose_from_params_and_format():
    out = io.StringIO()
    cb = C.ProgbarLogger(stream=out)
    fit([cb], [1e-5])  # fit() passes verbose=0 in params
    assert out.getvalue() == ""
    assert C.progbar.format_logs({"loss": 1e-5, "acc": 0.5, "batch": 3}) == (
        " - loss: 1.0000e-05 - acc: 0.5000")
    assert C.progbar.format_duration(3725) == "1:02:05"
