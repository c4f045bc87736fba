"""Hostile files and run directories, as tables: each row an input, the error expected.

File attacks are loaded in a child process that asserts the safety limits too (peak
memory above the baseline from /proc/self/status VmHWM, and wall time). A later loader
adds its rows to ``FILE_CASES`` (or its own table run by ``hostile.run_cases``).
"""

import errno
import io
import json
import os
import re
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

import dojang as dj
from dojang import cli, fileio, recipes
from dojang import layers as L
from dojang.datasets import DatasetCorruptError
from tests.hostile import (
    FileCase,
    Member,
    check_outcome,
    member,
    raw_zip,
    run_cases,
    safetensors_header,
    zero_deflate,
)

BOMB_MB = 500


def _good_members() -> dict[str, bytes]:
    """The members of a small trained, compiled model's file."""
    dj.layers.clear_session()
    model = dj.Sequential([L.Dense(2, input_shape=(3,))])
    model.compile("adam", "mse")
    model.fit(np.ones((4, 3), np.float32), np.ones((4, 2), np.float32), verbose=0)
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"hostile-{os.getpid()}.dojang"
    model.save(path)
    buffer = path.read_bytes()
    path.unlink()
    with zipfile.ZipFile(io.BytesIO(buffer)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


GOOD = _good_members()
CONFIG = json.loads(GOOD["config.json"])


def _config(**model_changes) -> bytes:
    """The good config with the first Dense layer's config changed."""
    config = json.loads(GOOD["config.json"])
    config["model"]["config"]["layers"][0]["config"].update(model_changes)
    return json.dumps(config).encode()


def _model_file(folder: Path, members: list[Member]) -> Path:
    path = folder / "m.dojang"
    path.write_bytes(raw_zip(members))
    return path


def _honest(**replace) -> list[Member]:
    blobs = {**GOOD, **replace}
    return [member(name, blob.encode() if isinstance(blob, str) else blob)
            for name, blob in blobs.items()]


def dojang_file(**replace):
    return lambda folder: _model_file(folder, _honest(**replace))


def dojang_raw(*members):
    return lambda folder: _model_file(folder, list(members))


def _then_zeros(prefix: bytes, megabytes: int) -> bytes:
    """Raw deflate of ``prefix`` followed by ``megabytes`` MiB of zeros (a full flush lets
    the second stream continue the first)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(prefix) + c.flush(zlib.Z_FULL_FLUSH) + zero_deflate(megabytes)


def _weights_bomb() -> Member:
    """A model.safetensors member whose header describes 8 bytes, followed by 500 MB."""
    header = safetensors_header({"0000/dense/kernel": {"dtype": "F32", "shape": [2],
                                                       "data_offsets": [0, 8]}})
    return Member("model.safetensors", _then_zeros(header, BOMB_MB),
                  len(header) + BOMB_MB * 2**20)


def _bomb_member(name: str) -> Member:
    return Member(name, zero_deflate(BOMB_MB), BOMB_MB * 2**20)


def _idx_gz(header: bytes, megabytes: int) -> bytes:
    """gzip: a 10-byte header, deflate of ``header`` + zeros, and a (wrong) trailer."""
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + _then_zeros(header, megabytes) + \
        b"\0" * 8


def write(name: str, data: bytes):
    def make(folder: Path) -> Path:
        (folder / name).write_bytes(data)
        return folder / name
    return make


def sparse(name: str, size: int, folder_files: dict[str, int] | None = None):
    """A file of ``size`` bytes that uses no disk (and, read whole, ``size`` of memory)."""
    def make(folder: Path) -> Path:
        for other, n in (folder_files or {}).items():
            with open(folder / other, "wb") as f:
                f.truncate(n)
        with open(folder / name, "wb") as f:
            f.truncate(size)
        return folder / name
    return make


LOAD = "dojang.models.load_model(PATH)"
OPT_STATE = dj.models.safetensors.decode(GOOD["optimizer.safetensors"])[0]
CIFAR_SIZE = 10000 * 3073
FASHION_SPEC = ("_sources.DatasetSpec('fashion-mnist', 'Fashion-MNIST', 'fashion_mnist', "
                "fashion_mnist.FILES, ())")


def _deep_json() -> bytes:
    return b'{"format": "dojang.model", "format_version": 1, "model": ' + b"[" * 200_000


FILE_CASES = [
    # ---- .dojang: the zip container
    FileCase("zip bomb in the weights", dojang_raw(member("config.json", GOOD["config.json"]),
                                                   _weights_bomb()),
             LOAD, ValueError, r"m\.dojang!model\.safetensors: invalid safetensors data: "
                               r"\d+ bytes after the last tensor"),
    FileCase("zip bomb as config", dojang_raw(_bomb_member("config.json"),
                                              member("model.safetensors",
                                                     GOOD["model.safetensors"])),
             LOAD, ValueError, r"m\.dojang!config\.json: Expected at most 1048576 bytes"),
    FileCase("member lies about its size", dojang_raw(
        member("config.json", GOOD["config.json"]),
        Member("model.safetensors", zero_deflate(BOMB_MB), len(GOOD["model.safetensors"]))),
        LOAD, ValueError, r"m\.dojang!model\.safetensors: "),
    FileCase("size beyond deflate's ratio", dojang_raw(
        member("config.json", GOOD["config.json"]),
        member("model.safetensors", GOOD["model.safetensors"], size=2**32 - 1)),
        LOAD, ValueError, r"declares 4294967295 bytes, more than its \d+ compressed bytes"),
    FileCase("encrypted member", dojang_raw(member("config.json", GOOD["config.json"], flags=1),
                                            member("model.safetensors",
                                                   GOOD["model.safetensors"])),
             LOAD, ValueError, r"m\.dojang!config\.json: the member is encrypted"),
    FileCase("unknown compression", dojang_raw(member("config.json", GOOD["config.json"],
                                                      method=99),
                                               member("model.safetensors",
                                                      GOOD["model.safetensors"])),
             LOAD, ValueError, r"Expected compression stored \(0\) or deflate \(8\)\. "
                               r"Received: compress_type=99"),
    FileCase("bzip2 member", dojang_raw(member("config.json", GOOD["config.json"], method=12),
                                        member("model.safetensors",
                                               GOOD["model.safetensors"])),
             LOAD, ValueError, r"Received: compress_type=12"),
    FileCase("corrupt deflate", dojang_raw(
        member("config.json", GOOD["config.json"],
               payload=b"\xff" * 40 + member("c", GOOD["config.json"]).payload),
        member("model.safetensors", GOOD["model.safetensors"])),
        LOAD, ValueError, r"m\.dojang!config\.json: corrupt or unsupported data \(error"),
    FileCase("bad crc", dojang_raw(member("config.json", GOOD["config.json"], crc=1),
                                   member("model.safetensors", GOOD["model.safetensors"])),
             LOAD, ValueError, r"m\.dojang!config\.json: corrupt or unsupported data "
                               r"\(BadZipFile: Bad CRC-32"),
    FileCase("not a zip", write("m.dojang", b"PK\x03\x04" + b"\0" * 100), LOAD, ValueError,
             r"m\.dojang: not a valid zip archive"),
    # ---- .dojang: config.json
    FileCase("deeply nested config", dojang_file(**{"config.json": _deep_json()}), LOAD,
             ValueError, r"config\.json is not valid JSON .*nested deeper than 100 levels"),
    FileCase("Dense(10**12)", dojang_file(**{"config.json": _config(units=10**12)}), LOAD,
             ValueError, r"m\.dojang!model\.safetensors: weight '0000/dense/kernel' has shape "
                         r"\(3, 2\), model weight 'dense/kernel' expects \(3, 1000000000000\)"),
    FileCase("weight the file lacks", dojang_file(**{"config.json": _config(name="big",
                                                                              units=7)}),
             LOAD, ValueError, r"layer 'big' declares weight 'big/kernel' of shape \(3, 7\), "
                               r"which the file does not hold"),
    FileCase("weights the model lacks", dojang_file(**{"config.json": _config(
        use_bias=False)}), LOAD, ValueError, r"the file holds 2 weights, model 'sequential' "
                                             r"has 1"),
    FileCase("Dense(5e6)", dojang_file(**{"config.json": _config(units=5 * 10**6)}), LOAD,
             ValueError, r"model weight 'dense/kernel' expects \(3, 5000000\)"),
    FileCase("Lambda layer", dojang_file(**{"config.json": json.dumps(
        {**CONFIG, "model": {"class_name": "Lambda",
                             "config": {"function": "os.system('echo pwned')"}}})}),
        LOAD, ValueError, r"unknown layer class 'Lambda'"),
    FileCase("fit_seed -1", dojang_file(**{"config.json": json.dumps(
        {**CONFIG, "training_state": {"fit_seed": -1}})}), LOAD, ValueError,
        r"Expected training_state\.fit_seed to be an int in \[0, 2\*\*64\)\. "
        r"Received: fit_seed=-1"),
    # ---- .dojang: the safetensors members
    FileCase("too many dims", dojang_file(**{"model.safetensors": safetensors_header(
        {"0000/dense/kernel": {"dtype": "F32", "shape": [1] * 40, "data_offsets": [0, 4]}})
        + b"\0" * 4}), LOAD, ValueError, r"invalid shape \[1, 1, .*at most 32"),
    FileCase("huge header length", dojang_file(**{"model.safetensors": (2**40).to_bytes(
        8, "little") + b"{}"}), LOAD, ValueError, r"header length 1099511627776 outside"),
    FileCase("optimizer slot of the wrong shape", dojang_file(**{
        "optimizer.safetensors": dj.models.safetensors.encode(
            {**OPT_STATE, "0/momentum": np.zeros((3, 1000), np.float32)})}),
        LOAD, ValueError, r"optimizer state '0/momentum' has shape \(3, 1000\); Expected shape "
                          r"\(3, 2\)"),
    FileCase("optimizer learning rate NaN", dojang_file(**{
        "optimizer.safetensors": dj.models.safetensors.encode(
            {**OPT_STATE, "learning_rate": np.array(np.nan)})}),
        LOAD, ValueError, r"Adam\.set_state: Expected learning_rate to be a number in "
                          r"\[0\.0, inf\)\. Received: learning_rate=nan"),
    FileCase("optimizer iterations negative", dojang_file(**{
        "optimizer.safetensors": dj.models.safetensors.encode(
            {**OPT_STATE, "iterations": np.array(-1, np.int64)})}),
        LOAD, ValueError, r"Expected iterations to be an int >= 0\. Received: iterations=-1"),
    FileCase("weights file bomb header", write("w.safetensors", safetensors_header(
        {"w": {"dtype": "F32", "shape": [10**12], "data_offsets": [0, 4 * 10**12]}})),
        "safetensors.load_file(PATH)", ValueError, r"run past the data buffer"),
    # ---- IDX (MNIST, Fashion-MNIST)
    FileCase("idx gzip bomb, header lies", write("x.gz", _idx_gz(
        bytes([0, 0, 8, 3]) + struct.pack(">3I", 10**6, 28, 28), BOMB_MB)),
        "idx.read_idx(PATH)", DatasetCorruptError,
        r"x\.gz: IDX file truncated: header says shape \(1000000, 28, 28\)"),
    FileCase("fashion-mnist gzip bomb", write("train-labels-idx1-ubyte.gz", _idx_gz(
        bytes([0, 0, 8, 1]) + struct.pack(">I", 60000), BOMB_MB)),
        f"_mnist_format._verified_idx(PATH, fashion_mnist.FILES[1], {FASHION_SPEC})",
        DatasetCorruptError, r"train-labels-idx1-ubyte\.gz is not the published "
                             r"Fashion-MNIST file .*has trailing bytes"),
    FileCase("fashion-mnist images claim more", write("train-images-idx3-ubyte.gz", _idx_gz(
        bytes([0, 0, 8, 3]) + struct.pack(">3I", 10**5, 28, 28), BOMB_MB)),
        f"_mnist_format._verified_idx(PATH, fashion_mnist.FILES[0], {FASHION_SPEC})",
        DatasetCorruptError, r"\(78400016 bytes in all\); Expected 47040016 bytes"),
    FileCase("idx dims overflow", write("x.idx", bytes([0, 0, 0x0E, 4]) +
                                        struct.pack(">4I", *[2**32 - 1] * 4)),
             "idx.read_idx(PATH)", DatasetCorruptError,
             r"IDX file truncated: header says shape \(4294967295, 4294967295"),
    FileCase("idx 255 dims", write("x.idx", bytes([0, 0, 8, 255]) + b"\0\0\0\1" * 255),
             "idx.read_idx(PATH)", DatasetCorruptError,
             r"IDX header declares 255 dimensions; Expected at most 32"),
    # ---- CIFAR-10 binary batches
    FileCase("cifar oversized batch", sparse("data_batch_1.bin", 2**31, {
        name: CIFAR_SIZE for name in ("data_batch_2.bin", "data_batch_3.bin",
                                      "data_batch_4.bin", "data_batch_5.bin",
                                      "test_batch.bin")}),
        "cifar10.load_data(path=os.path.dirname(PATH))", DatasetCorruptError,
        r"data_batch_1\.bin has 2147483648 bytes, expected 10000 records"),
    # ---- run directories
    FileCase("huge run.json", sparse("run.json", 2**31), "recipes.read_run("
             "os.path.dirname(PATH))", ValueError, r"Expected a file of at most 4194304 bytes"),
]


def _warm_up(folder: Path) -> str:
    """Load one good file of each kind, so that imports and caches are not counted."""
    good = folder / "good.dojang"
    good.write_bytes(raw_zip(_honest()))
    raw = bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9])
    (folder / "good.idx").write_bytes(raw)
    return (f"dojang.models.load_model({str(good)!r}); idx.read_idx({str(folder / 'good.idx')!r})"
            f"; import os, gzip, zipfile, tarfile; from dojang import recipes")


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    return run_cases(FILE_CASES, folder, _warm_up(folder))


@pytest.mark.parametrize("case", FILE_CASES, ids=[c.name for c in FILE_CASES])
def test_hostile_file_is_refused_in_bounded_memory_and_time(outcomes, case):
    check_outcome(case, outcomes[case.name])


def test_the_memory_meter_sees_an_allocation(tmp_path):
    # The limits above mean something only if the child's meter sees real allocations.
    meter = FileCase("allocates 100 MB", write("x", b""),
                     "import numpy; a = numpy.ones(100 * 2**20 // 8)", ValueError, "")
    got = run_cases([meter], tmp_path)["allocates 100 MB"]
    assert got.error == [] and 95 < got.peak_mb < 110, got


# ---------------------------------------------------------------------- resume confinement
OUTSIDE = "outside.dojang"


def _run_dir(tmp_path: Path, checkpoint) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (tmp_path / OUTSIDE).write_bytes(b"precious")
    state = recipes.new_state(recipes.Recipe(), "seed")
    state["checkpoint"] = checkpoint(tmp_path) if callable(checkpoint) else checkpoint
    (run / "run.json").write_text(json.dumps(state))
    return run


def _link(tmp_path: Path) -> str:
    (tmp_path / "run").mkdir(exist_ok=True)
    (tmp_path / "run" / "ckpt-001.dojang").symlink_to(tmp_path / OUTSIDE)
    return "ckpt-001.dojang"


@pytest.mark.parametrize("checkpoint, message", [
    (lambda t: str(t / OUTSIDE), r"Expected checkpoint to be a file name inside the folder\. "
                                 r"Received: checkpoint='/.*outside\.dojang'"),
    ("../" + OUTSIDE, r"Received: checkpoint='\.\./outside\.dojang'"),
    ("sub/../../" + OUTSIDE, r"Received: checkpoint='sub/\.\./\.\./outside\.dojang'"),
    ("..", r"Received: checkpoint='\.\.'"),
    ("", r"Received: checkpoint=''"),
    (["ckpt"], r"Received: checkpoint=\['ckpt'\]"),
    (_link, r"Expected checkpoint to be a regular file\. Received: "
            r"checkpoint='ckpt-001\.dojang', a symbolic link"),
], ids=["absolute", "dotdot", "nested dotdot", "parent", "empty", "not a string", "symlink"])
def test_resume_never_leaves_the_run_directory(tmp_path, monkeypatch, capsys, checkpoint,
                                               message):
    run = _run_dir(tmp_path, checkpoint)
    loaded = []
    monkeypatch.setattr(recipes, "load_dataset", lambda *a: loaded.append(a))
    for attempt in (lambda: recipes.read_run(str(run)),
                    lambda: recipes.train(None, str(run), resume=True)):
        with pytest.raises(ValueError, match=message):
            attempt()
    (tmp_path / "x.png").write_bytes(b"not read: the run is refused first")
    for extra in ([], [str(tmp_path / "x.png")]):
        assert cli.main(["predict" if extra else "evaluate", str(run), *extra]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(re.search(message, line) for line in err), err
    assert loaded == [] and (tmp_path / OUTSIDE).read_bytes() == b"precious"


def _raise(message):
    raise ValueError(message)


def test_run_json_symlink_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (tmp_path / "elsewhere.json").write_text("{}")
    (run / "run.json").symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(ValueError, match=r"Expected run file to be a regular file"):
        recipes.read_run(str(run))


def test_checkpoint_rotation_deletes_only_inside_the_run(tmp_path):
    run = _run_dir(tmp_path, None)
    state = recipes.read_run(str(run))
    state["checkpoint"] = "../" + OUTSIDE  # as if run.json were edited during training
    saver = recipes.RunCheckpoint(str(run), state, None)
    saver.model = dj.Sequential([L.Dense(2, input_shape=(3,))])
    with pytest.raises(ValueError, match=r"Expected checkpoint to be a file name inside"):
        saver.on_epoch_end(0, {"loss": 1.0})
    assert (tmp_path / OUTSIDE).read_bytes() == b"precious"


def test_orphaned_temporary_files_are_removed_before_the_work(tmp_path, monkeypatch):
    run = _run_dir(tmp_path, None)
    orphans = [".ckpt-003.dojang.k2j4_x9a.tmp", ".run.json.abcdefgh.tmp"]
    kept = ["ckpt-003.dojang", ".hidden", "notes.tmp", ".x.short.tmp"]
    for name in orphans + kept:
        (run / name).write_bytes(b"x" * 100)
    (run / ".link.abcdefgh.tmp").symlink_to(tmp_path / OUTSIDE)
    monkeypatch.setattr(recipes, "load_dataset", lambda *a: _raise("data loaded"))
    with pytest.raises(ValueError, match="data loaded"):
        recipes.train(None, str(run), resume=True)
    left = sorted(os.listdir(run))
    assert not set(orphans) & set(left) and set(kept) <= set(left), left
    assert ".link.abcdefgh.tmp" in left and (tmp_path / OUTSIDE).exists()


def test_killed_write_leaves_an_orphan_that_remove_orphans_finds(tmp_path):
    fd, name = fileio.tempfile.mkstemp(dir=tmp_path, prefix=".m.dojang.", suffix=".tmp")
    os.close(fd)
    assert fileio.remove_orphans(tmp_path) == [os.path.basename(name)]


# ---------------------------------------------------------------------- the CLI
def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def _eacces(*args, **kwargs):
    raise PermissionError(errno.EACCES, "Permission denied", "run.json")


@pytest.mark.parametrize("argv, patch, message", [
    (lambda t: ["train", "--out", str(t / "file" / "run")], None,
     r"dojang train: error: \[Errno 20\] Not a directory"),
    (lambda t: ["train", "--out", str(t / "run")], ("tempfile.mkstemp", _enospc),
     r"dojang train: error: \[Errno 28\] No space left on device"),
    (lambda t: ["evaluate", str(t)], ("dojang.recipes.read_capped", _eacces),
     r"dojang evaluate: error: \[Errno 13\] Permission denied: 'run\.json'"),
    (lambda t: ["predict", str(t), str(t / "missing.png")], None,
     r"dojang predict: error: no such image file: '.*missing\.png'"),
], ids=["out under a file", "disk full", "permission", "missing image"])
def test_cli_os_errors_are_one_line_and_status_2_before_any_work(
        tmp_path, monkeypatch, capsys, argv, patch, message):
    (tmp_path / "file").write_text("not a folder")
    (tmp_path / "run.json").write_text("{}")
    monkeypatch.setattr(recipes, "load_dataset", lambda *a: _raise("data loaded"))
    monkeypatch.setattr(dj.models, "load_model", lambda *a, **k: _raise("model loaded"))
    if patch:
        monkeypatch.setattr(*patch)
    assert cli.main(argv(tmp_path)) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and re.match(message, err), err


def test_full_disk_during_training_is_one_line(tmp_path, monkeypatch, capsys):
    data = (np.zeros((8, 28, 28, 1), np.float32), np.zeros(8, np.int64))
    monkeypatch.setattr(recipes, "load_dataset",
                        lambda *a: (data, data, [str(i) for i in range(10)]))
    monkeypatch.setattr(recipes, "atomic_write_json", _enospc)
    argv = ["train", "--out", str(tmp_path / "run"), "--epochs", "1", "--verbose", "0"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.strip() == "dojang train: error: [Errno 28] No space left on device"


class _Net(dj.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.head = L.Dense(2)

    def call(self, x, training=False):
        return self.head(x)


@pytest.mark.parametrize("shape, message", [
    ([1, 10**6, 10**6], r"Expected build_input_shape of at most 16777216 elements\. "
                        r"Received: 1000000000000"),
    ([1, -3], r"Expected build_input_shape to hold positive ints or null"),
    ("abc", r"Expected build_input_shape to hold positive ints or null"),
], ids=["huge", "negative", "text"])
def test_subclassed_model_is_built_on_a_bounded_input(tmp_path, shape, message):
    net = _Net()
    net(np.ones((1, 3), np.float32))
    path = tmp_path / "net.dojang"
    net.save(path)
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    config = json.loads(members["config.json"])
    config["build_input_shape"] = shape
    members["config.json"] = json.dumps(config).encode()
    path.write_bytes(raw_zip([member(name, blob) for name, blob in members.items()]))
    with pytest.raises(ValueError, match=message):
        dj.models.load_model(path, custom_objects={"_Net": _Net})
