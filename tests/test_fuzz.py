"""Fuzzing the three parsers of untrusted bytes with hypothesis.

The ``.dojang`` zip (its container, its ``config.json`` and its safetensors members),
IDX files (raw and gzip) and CIFAR-10 binary batches get mutated good inputs and
arbitrary bytes; the only exceptions allowed are the documented ones (ValueError, with
DatasetCorruptError for datasets). ``make test`` runs a bounded number of examples per
parser; ``DOJANG_FUZZ_EXAMPLES=20000 pytest tests/test_fuzz.py`` runs longer.
"""

import gzip
import io
import json
import os
import tempfile
import zipfile
from unittest import mock

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dojang as dj
from dojang.datasets import DatasetCorruptError, cifar10, idx
from dojang.models import safetensors

# The bounded run in ``make test`` is the same every time; a longer one explores anew.
EXAMPLES = int(os.environ.get("DOJANG_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                derandomize="DOJANG_FUZZ_EXAMPLES" not in os.environ,
                suppress_health_check=list(HealthCheck))


def _good_model_members() -> dict[str, bytes]:
    dj.layers.clear_session()
    x = dj.Input((4, 4, 1))
    h = dj.layers.Conv2D(2, 3, padding="same")(x)
    h = dj.layers.BatchNormalization()(h)
    model = dj.Model(x, dj.layers.Dense(3)(dj.layers.Flatten()(h)))
    model.compile("adam", "mse")
    model.fit(np.ones((2, 4, 4, 1), np.float32), np.ones((2, 3), np.float32), verbose=0)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "m.dojang")
        model.save(path)
        with zipfile.ZipFile(path) as zf:
            return {n: zf.read(n) for n in zf.namelist()}


GOOD = _good_model_members()


def _mutate(data: bytes, edits) -> bytes:
    """Apply (position, new bytes, cut) edits: overwrite, insert or delete at positions."""
    out = bytearray(data)
    for position, new, cut in edits:
        if not out:
            out += new
            continue
        at = position % (len(out) + 1)
        out[at:at + cut] = new
    return bytes(out)


EDITS = st.lists(st.tuples(st.integers(0, 2**16), st.binary(max_size=8), st.integers(0, 8)),
                 min_size=1, max_size=6)


def _load(tmp_path, blob: bytes) -> None:
    path = tmp_path / "f.dojang"
    path.write_bytes(blob)
    try:
        dj.models.load_model(path)
    except ValueError as e:
        assert str(path) in str(e), e  # every refusal names the file


def _zip(members: dict[str, bytes], method=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=method) as zf:
        for name, blob in members.items():
            zf.writestr(name, blob)
    return buffer.getvalue()


@FUZZ
@given(edits=EDITS, method=st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
def test_fuzz_dojang_container(tmp_path_factory, edits, method):
    _load(tmp_path_factory.mktemp("z"), _mutate(_zip(GOOD, method), edits))


@FUZZ
@given(member=st.sampled_from(sorted(GOOD)), edits=EDITS)
def test_fuzz_dojang_members(tmp_path_factory, member, edits):
    _load(tmp_path_factory.mktemp("m"), _zip({**GOOD, member: _mutate(GOOD[member], edits)}))


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
                    lambda inner: st.one_of(st.lists(inner, max_size=4),
                                            st.dictionaries(st.text(max_size=6), inner,
                                                            max_size=4)), max_leaves=20)


@FUZZ
@given(path=st.lists(st.sampled_from(["model", "config", "layers", 0, 1, "class_name",
                                      "units", "kernel_size", "compile", "optimizer",
                                      "training_state", "rng_states", "build_input_shape",
                                      "nodes", "args", "inputs"]), min_size=1, max_size=5),
       value=JSON)
def test_fuzz_dojang_config_values(tmp_path_factory, path, value):
    """Structured edits: one value somewhere in config.json replaced by arbitrary JSON."""
    config = json.loads(GOOD["config.json"])
    node = config
    for key in path[:-1]:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            break
    try:
        node[path[-1]] = value
    except (IndexError, TypeError):
        pass
    _load(tmp_path_factory.mktemp("c"), _zip({**GOOD, "config.json": json.dumps(config)}))


@FUZZ
@given(edits=EDITS)
def test_fuzz_safetensors(edits):
    blob = _mutate(GOOD["model.safetensors"], edits)
    try:
        safetensors.decode(blob, "src")
    except ValueError as e:
        assert str(e).startswith("src: invalid safetensors data"), e


IDX_GOOD = bytes([0, 0, 0x0B, 2, 0, 0, 0, 3, 0, 0, 0, 2]) + bytes(range(12))


@FUZZ
@given(data=st.one_of(st.binary(max_size=64), EDITS.map(lambda e: _mutate(IDX_GOOD, e))),
       compress=st.booleans())
def test_fuzz_idx(tmp_path_factory, data, compress):
    path = tmp_path_factory.mktemp("i") / "x.idx"
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)
    try:
        idx.read_idx(path)
    except DatasetCorruptError as e:
        assert str(path) in str(e), e


@FUZZ
@given(data=st.one_of(st.binary(max_size=64), EDITS.map(lambda e: _mutate(gzip.compress(
    IDX_GOOD, mtime=0), e))))
def test_fuzz_idx_gzip_stream(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("g") / "x.gz"
    path.write_bytes(b"\x1f\x8b" + data[2:] if len(data) > 2 else data)
    try:
        idx.read_idx(path)
    except DatasetCorruptError as e:
        assert str(path) in str(e), e


def _records(blob: bytes, labels: bool) -> bytes:
    """Two records' bytes, with the labels made valid (0-9) when ``labels``."""
    out = bytearray(blob)
    for at in range(0, len(out), 3073) if labels else ():
        out[at] %= 10
    return bytes(out)


BATCH = st.one_of(st.binary(max_size=2 * 3073 + 2),
                  st.builds(_records, st.binary(min_size=2 * 3073, max_size=2 * 3073),
                            st.booleans()))


@FUZZ
@given(batches=st.lists(BATCH, min_size=6, max_size=6))
def test_fuzz_cifar_batches(tmp_path_factory, batches):
    folder = tmp_path_factory.mktemp("c")
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    for name, blob in zip(names, batches):
        (folder / name).write_bytes(blob)
    with mock.patch.object(cifar10, "RECORDS_PER_FILE", 2):
        try:
            (x, y), _ = cifar10.load_data(path=folder)
            assert x.shape == (10, 32, 32, 3) and int(y.max()) <= 9
        except DatasetCorruptError as e:
            assert "cifar10.load_data" in str(e), e
