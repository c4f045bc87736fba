"""Saving: .dojang files, safetensors reader/writer, atomic writes, hostile files."""

import io
import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

import dojang as dj
from dojang import layers as L
from dojang.models import safetensors
from dojang.models.saving import atomic_write

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _fresh_names():
    dj.layers.clear_session()
    dj.random.set_seed(0)


def residual_model():
    x = dj.Input((6, 6, 2))
    h = L.Conv2D(4, 3, padding="same", activation="relu")(x)
    h = L.BatchNormalization()(h)
    b = L.Conv2D(4, 3, padding="same")(h)
    h = L.Add()([h, b])
    h = L.Concatenate()([h, L.Conv2D(2, 1)(x)])
    h = L.Dropout(0.3)(L.GlobalAveragePooling2D()(h))
    return dj.Model(x, L.Dense(3, activation="softmax")(h))


def data(n=32):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 6, 6, 2)).astype(np.float32), rng.integers(0, 3, n)


def test_save_load_predict_is_bit_identical(tmp_path):
    x, y = data()
    model = residual_model()
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    path = tmp_path / "model.dojang"
    model.save(path)
    loaded = dj.models.load_model(path)
    assert type(loaded).__name__ == "Functional"
    assert [w.name for w in loaded.weights] == [w.name for w in model.weights]
    assert np.array_equal(loaded.predict(x), model.predict(x))
    assert loaded.evaluate(x, y, verbose=0) == model.evaluate(x, y, verbose=0)
    assert loaded.optimizer.iterations == model.optimizer.iterations == 4
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["config.json", "model.safetensors",
                                         "optimizer.safetensors"]


def test_sequential_round_trip_without_compile(tmp_path):
    model = dj.Sequential([L.Conv2D(3, 3, input_shape=(5, 5, 1)), L.Flatten(), L.Dense(2)])
    path = tmp_path / "seq.dojang"
    model.save(path)
    loaded = dj.models.load_model(path)
    x = np.random.default_rng(1).standard_normal((2, 5, 5, 1)).astype(np.float32)
    assert np.array_equal(loaded.predict(x), model.predict(x))
    assert loaded.summary(return_string=True) == model.summary(return_string=True)
    lazy = dj.Sequential([L.Dense(2)])
    lazy(np.zeros((1, 3), np.float32))
    lazy.save(path)
    assert dj.models.load_model(path).count_params() == 8


def make_resumable():
    dj.layers.clear_session()
    dj.random.set_seed(3)
    model = dj.Sequential([
        L.Conv2D(4, 3, activation="relu", input_shape=(6, 6, 2)), L.BatchNormalization(),
        L.MaxPooling2D(2), L.Flatten(), L.Dropout(0.3), L.Dense(3, activation="softmax")])
    model.compile(dj.optimizers.Adam(0.01), "sparse_categorical_crossentropy", ["accuracy"])
    return model


def test_two_plus_two_epochs_equal_four_straight(tmp_path):
    x, y = data(40)
    straight = make_resumable()
    full = straight.fit(x, y, batch_size=8, epochs=4, verbose=0)
    first = make_resumable()
    first.fit(x, y, batch_size=8, epochs=2, verbose=0)
    path = tmp_path / "resume.dojang"
    first.save(path)
    dj.random.set_seed(99)  # resuming must not depend on the global seed any more
    resumed = dj.models.load_model(path)
    rest = resumed.fit(x, y, batch_size=8, epochs=4, initial_epoch=2, verbose=0)
    assert rest.history["loss"] == full.history["loss"][2:]
    for a, b in zip(resumed.get_weights(), straight.get_weights()):
        assert np.array_equal(a, b)


def test_save_and_load_weights(tmp_path):
    model = residual_model()
    other = residual_model()
    path = tmp_path / "w.safetensors"
    model.save_weights(path)
    other.load_weights(path)
    x, _ = data(4)
    assert np.array_equal(other.predict(x), model.predict(x))
    model.save(tmp_path / "m.dojang")
    third = residual_model()
    third.load_weights(tmp_path / "m.dojang")
    assert np.array_equal(third.predict(x), model.predict(x))
    small = dj.Sequential([L.Dense(2, input_shape=(3,))])
    with pytest.raises(ValueError, match=r"w\.safetensors: the file holds 12 weights, model "
                                         r"'sequential' has 2"):
        small.load_weights(path)


# ------------------------------------------------------------------------------ atomicity
def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "f.bin"
    atomic_write(path, b"old")

    def boom(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write(path, b"new")
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f.bin"]


WRITER = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    import dojang as dj
    path = sys.argv[1]
    real_fsync = os.fsync

    def fsync_then_hang(fd):
        # Once a checkpoint exists, the next one stops after writing its temporary file,
        # before the rename: the parent kills the process right there.
        if os.path.exists(path):
            print("mid-write", flush=True)
            time.sleep(60)
        real_fsync(fd)

    os.fsync = fsync_then_hang
    model = dj.Sequential([dj.layers.Dense(64, input_shape=(32,)), dj.layers.Dense(2)])
    model.compile(dj.optimizers.SGD(0.01), "mse")
    check = dj.callbacks.ModelCheckpoint(path, monitor="loss")
    x = np.ones((4, 32), np.float32)
    model.fit(x, np.zeros((4, 2), np.float32), epochs=5, verbose=0, callbacks=[check])
""")


def test_checkpoint_survives_a_writer_killed_mid_write(tmp_path):
    path = tmp_path / "ckpt.dojang"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], env=env,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "mid-write"
        first = path.read_bytes()
        partial = [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
        assert len(partial) == 1  # the second checkpoint is half-way: written, not renamed
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert path.read_bytes() == first
    model = dj.models.load_model(path)
    assert model.count_params() == 33 * 64 + 65 * 2
    assert model.predict(np.ones((1, 32), np.float32)).shape == (1, 2)


# ------------------------------------------------------------------------------ bad files
def _zip(members: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, blob in members.items():
            zf.writestr(name, blob)
    return buffer.getvalue()


@pytest.fixture
def good_file(tmp_path):
    model = dj.Sequential([L.Dense(2, input_shape=(3,))])
    path = tmp_path / "good.dojang"
    model.save(path)
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _config(members):
    return json.loads(members["config.json"])


def _with_config(members, **changes):
    config = {**_config(members), **changes}
    return {**members, "config.json": json.dumps(config)}


def _bad_cases(m):
    weights = safetensors.decode(m["model.safetensors"])[0]
    wrong = dict(weights)
    wrong[sorted(wrong)[0]] = np.zeros((4, 2), np.float32)
    hostile = _config(m)
    hostile["model"]["class_name"] = "Popen"
    return {
        "missing config": (_zip({"model.safetensors": m["model.safetensors"]}),
                           r"missing 'config\.json'"),
        "bad json": (_zip({**m, "config.json": b"{not json"}),
                     r"config\.json is not valid JSON"),
        "wrong format": (_zip(_with_config(m, format="keras")),
                         r"not a dojang model config"),
        "wrong version": (_zip(_with_config(m, format_version=99)),
                          r"unsupported format_version 99; this dojang reads version 1"),
        "no model entry": (_zip(_with_config(m, model=None)), r"has no 'model' entry"),
        "unknown class": (_zip({**m, "config.json": json.dumps(hostile)}),
                          r"unknown layer class 'Popen'"),
        "wrong shape": (_zip({**m, "model.safetensors": safetensors.encode(wrong)}),
                        r"weight '0000/dense/kernel' has shape \(4, 2\), model weight "
                        r"'dense/kernel' expects \(3, 2\)"),
        "pickle inside": (_zip({**m, "data.pkl": b"\x80\x04K\x01."}),
                          r"contains a pickle \('data\.pkl'\)"),
        "torch file": (_zip({"archive/data.pkl": b"\x80\x02}q\x00.",
                             "archive/version": b"3"}), r"contains a pickle"),
        "extra member": (_zip({**m, "run.py": b"import os"}), r"unexpected member 'run\.py'"),
        "raw pickle": (b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00K\x01.",
                       r"not a valid zip archive"),
        "corrupted weights": (_zip({**m, "model.safetensors": b"\x10\x00\x00\x00\x00\x00\x00"
                                                               b"\x00{}"}),
                              r"invalid safetensors data"),
    }


@pytest.mark.parametrize("case", ["missing config", "bad json", "wrong format", "wrong version",
                                  "no model entry", "unknown class", "wrong shape",
                                  "pickle inside", "torch file", "extra member", "raw pickle",
                                  "corrupted weights"])
def test_bad_files_raise_clear_errors(tmp_path, good_file, case):
    blob, message = _bad_cases(good_file)[case]
    path = tmp_path / "bad.dojang"
    path.write_bytes(blob)
    with pytest.raises(ValueError, match=str(path).replace(".", r"\.") + ".*" + message):
        dj.models.load_model(path)


def test_truncated_file_raises(tmp_path):
    model = residual_model()
    path = tmp_path / "t.dojang"
    model.save(path)
    blob = path.read_bytes()
    for cut in (len(blob) // 2, len(blob) - 30, 10):
        path.write_bytes(blob[:cut])
        with pytest.raises(ValueError, match=r"t\.dojang: .*(not a valid zip|corrupted|"
                                             r"truncated)"):
            dj.models.load_model(path)


def test_no_code_path_uses_pickle():
    for file in (ROOT / "src" / "dojang").rglob("*.py"):
        text = file.read_text()
        assert "import pickle" not in text and "allow_pickle=True" not in text, file


# ------------------------------------------------------------------------------ safetensors
def test_safetensors_round_trip_and_interop_with_the_reference(tmp_path):
    reference = pytest.importorskip("safetensors.numpy")
    tensors = {"a": np.arange(6, dtype=np.float32).reshape(2, 3),
               "b": np.array([1, -2], dtype=np.int64), "c": np.zeros((0, 3), np.float64),
               "d": np.array(True), "e": np.arange(4, dtype=">f4")}
    blob = safetensors.encode(tensors, {"k": "v"})
    back, meta = safetensors.decode(blob)
    assert meta == {"k": "v"}
    for k, v in tensors.items():
        assert back[k].dtype == v.dtype.newbyteorder("=") and np.array_equal(back[k], v)
        assert back[k].flags.writeable
    theirs = reference.load(blob)
    assert all(np.array_equal(theirs[k], tensors[k]) for k in tensors)
    ours = safetensors.decode(reference.save({"w": np.ones((2, 2), np.float16)}))[0]
    assert np.array_equal(ours["w"], np.ones((2, 2), np.float16))


def _raw(header: dict, data: bytes = b"") -> bytes:
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + data


@pytest.mark.parametrize("blob,message", [
    (b"\x01\x00", r"too short for the 8-byte header length"),
    ((2**40).to_bytes(8, "little") + b"{}", r"header length \d+ outside"),
    ((100).to_bytes(8, "little") + b"{}", r"runs past the end of the data"),
    ((2).to_bytes(8, "little") + b"[]", r"header is not a JSON object"),
    ((5).to_bytes(8, "little") + b"{abc}", r"header is not valid JSON"),
    (_raw({"a": {"dtype": "BF16", "shape": [1], "data_offsets": [0, 2]}}, b"\0\0"),
     r"unsupported dtype 'BF16'"),
    (_raw({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4),
     r"invalid shape"),
    (_raw({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4),
     r"needs 8 bytes, but data_offsets span 4"),
    (_raw({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 8]}}, b"\0" * 4),
     r"run past the data buffer"),
    (_raw({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
           "b": {"dtype": "F32", "shape": [1], "data_offsets": [2, 6]}}, b"\0" * 6),
     r"overlapping or gapped"),
    (_raw({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8),
     r"starts at byte 4, expected 0"),
    (_raw({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 6),
     r"2 bytes after the last tensor"),
    (_raw({"a": {"dtype": "F32", "shape": [1]}}), r"must have exactly dtype, shape"),
    (_raw({"__metadata__": {"k": 1}}), r"__metadata__ must map strings to strings"),
    ((23).to_bytes(8, "little") + b'{"a": {}, "a": {}}     ', r"duplicate key 'a'"),
])
def test_safetensors_reader_is_strict(blob, message):
    with pytest.raises(ValueError, match=r"^src: invalid safetensors data: .*" + message):
        safetensors.decode(blob, "src")


class Net(dj.Model):
    def __init__(self, units: int = 3, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.hidden = L.Dense(8, activation="relu")
        self.head = L.Dense(units)

    def call(self, x, training=False):
        return self.head(self.hidden(x))

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def test_subclassed_model_loads_only_with_custom_objects(tmp_path):
    net = Net(units=4)
    x = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    net(x)
    path = tmp_path / "net.dojang"
    net.save(path)
    with pytest.raises(ValueError, match=r"unknown layer class 'Net'; pass it in "
                                         r"custom_objects="):
        dj.models.load_model(path)
    loaded = dj.models.load_model(path, custom_objects={"Net": Net})
    assert loaded.units == 4 and np.array_equal(loaded.predict(x), net.predict(x))


def test_nested_functional_model_round_trip(tmp_path):
    inner_in = dj.Input((4,))
    inner = dj.Model(inner_in, L.Dense(3, activation="relu")(inner_in), name="block")
    x = dj.Input((4,))
    model = dj.Model(x, L.Dense(2)(inner(x)))
    assert model.count_params() == 15 + 8
    path = tmp_path / "nested.dojang"
    model.save(path)
    data_x = np.ones((2, 4), np.float32)
    assert np.array_equal(dj.models.load_model(path).predict(data_x), model.predict(data_x))
