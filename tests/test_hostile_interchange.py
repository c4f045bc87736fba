"""Hostile ONNX, Keras and PyTorch-weight files: refused clearly, in bounded memory and time.

The rows join the hostile-file machinery of ``tests/hostile.py``: every case is loaded in
one child process that measures peak memory above the baseline and wall time.
"""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

import dojang as dj
from dojang import layers as L
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

onnx = pytest.importorskip("onnx")
h5py = pytest.importorskip("h5py")

from onnx import TensorProto, helper  # noqa: E402

ONNX_LOAD = "dojang.onnx.load(PATH)"
KERAS_LOAD = "dojang.models.load_model(PATH)"
H5_LOAD = ("m = dojang.Sequential([dojang.layers.Dense(4, input_shape=(3,)), "
           "dojang.layers.Dense(2)]); m.load_weights(PATH)")
TORCH_LOAD = ("m = dojang.Sequential([dojang.layers.Dense(2, input_shape=(3,))]); "
              "dojang.interop.load_torch_state_dict(m, PATH)")


# ONNX ----------------------------------------------------------------------------------------
def _graph(nodes, initializers, input_dims=("N", 3)):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(input_dims))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "g", [x], [y], initializer=initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _gemm(**kwargs):
    w = TensorProto(name="w", dims=[3, 2], data_type=TensorProto.FLOAT,
                    raw_data=np.ones((3, 2), "f4").tobytes())
    return _graph([helper.make_node("Gemm", ["x", "w"], ["y"], name="n0")], [w], **kwargs)


def onnx_file(proto, extra: dict | None = None):
    def make(folder: Path) -> Path:
        for name, data in (extra or {}).items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        (folder / "model").mkdir(exist_ok=True)
        path = folder / "model" / "m.onnx"
        path.write_bytes(proto if isinstance(proto, bytes) else proto.SerializeToString())
        return path
    return make


def _absurd_weight():
    w = TensorProto(name="w", dims=[2**40, 2**20], data_type=TensorProto.FLOAT,
                    raw_data=b"\0" * 16)
    return _graph([helper.make_node("Gemm", ["x", "w"], ["y"], name="n0")], [w])


def _constant_bomb():
    shape = helper.make_tensor("s", TensorProto.INT64, [2], [2**30, 2**30])
    nodes = [helper.make_node("ConstantOfShape", ["s"], ["z"], name="fill"),
             helper.make_node("Gemm", ["x", "z"], ["y"], name="n0")]
    return _graph(nodes, [shape])


def _external(location: str, dims=(3, 2)):
    w = TensorProto(name="w", dims=list(dims), data_type=TensorProto.FLOAT)
    w.data_location = TensorProto.EXTERNAL
    entry = w.external_data.add()
    entry.key, entry.value = "location", location
    return _graph([helper.make_node("Gemm", ["x", "w"], ["y"], name="n0")], [w])


def _unknown_op():
    return _graph([helper.make_node("Hardmax", ["x"], ["y"], name="n0")], [])


GOOD_ONNX = _gemm().SerializeToString()
ONNX_CASES = [
    FileCase("onnx truncated", onnx_file(GOOD_ONNX[: len(GOOD_ONNX) // 2]), ONNX_LOAD,
             ValueError, r"m\.onnx: .*(truncated|holds)"),
    FileCase("onnx absurd weight dims", onnx_file(_absurd_weight()), ONNX_LOAD, ValueError,
             r"declares dims \[1099511627776, 1048576\]"),
    FileCase("onnx absurd input dims", onnx_file(_gemm(input_dims=("N", 2**16, 2**16, 4))),
             ONNX_LOAD, ValueError, "values per example"),
    FileCase("onnx ConstantOfShape bomb", onnx_file(_constant_bomb()), ONNX_LOAD, ValueError,
             r"node 'fill' .*at most 1048576 values"),
    FileCase("onnx unknown op", onnx_file(_unknown_op()), ONNX_LOAD, ValueError,
             r"node 'n0' \(Hardmax\): op 'Hardmax' has no dojang layer"),
    FileCase("onnx external data outside", onnx_file(
        _external("../secret.bin"), {"secret.bin": np.ones(6, "f4").tobytes()}), ONNX_LOAD,
        ValueError, "points outside the model's folder"),
    FileCase("onnx external data absolute", onnx_file(_external("/etc/hostname")), ONNX_LOAD,
             ValueError, "points outside the model's folder"),
    FileCase("onnx external data too short", onnx_file(
        _external("w.bin", dims=(2**20, 2**10)), {"model/w.bin": b"\0" * 24}), ONNX_LOAD,
        ValueError, r"declares dims \[1048576, 1024\] \(4294967296 bytes\) but its external "
        r"data holds 24 bytes"),
]


# Keras -----------------------------------------------------------------------------------------
def _good_keras() -> dict[str, bytes]:
    dj.layers.clear_session()
    model = dj.Sequential([L.Dense(4, input_shape=(3,)), L.Dense(2)])
    path = Path(tempfile.mkdtemp()) / "good.keras"
    model.save(path)
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    path.unlink()
    path.parent.rmdir()
    return members


GOOD_KERAS = _good_keras()


def _keras_config(**changes) -> bytes:
    config = json.loads(GOOD_KERAS["config.json"])
    config["config"]["layers"][1]["config"].update(changes)
    return json.dumps(config).encode()


def keras_file(members: list[Member]):
    def make(folder: Path) -> Path:
        (folder / "m.keras").write_bytes(raw_zip(members))
        return folder / "m.keras"
    return make


def keras_honest(**replace):
    blobs = {**GOOD_KERAS, **replace}
    return keras_file([member(n, b, method=0) for n, b in blobs.items()])


def _h5(edit) -> bytes:
    with h5py.File(io.BytesIO(GOOD_KERAS["model.weights.h5"]), "r") as f:
        buffer = io.BytesIO()
        with h5py.File(buffer, "w") as out:
            for key in f:
                f.copy(key, out)
            for k, v in f.attrs.items():
                out.attrs[k] = v
            edit(out)
    return buffer.getvalue()


def _lambda_config() -> bytes:
    config = json.loads(GOOD_KERAS["config.json"])
    config["config"]["layers"][1] = {"module": "keras.layers", "class_name": "Lambda",
                                     "config": {"name": "lam", "function": "evil"}}
    return json.dumps(config).encode()


def _deep_json() -> bytes:
    return b"[" * 100_000 + b"]" * 100_000


def _cut(folder: Path) -> Path:
    data = raw_zip([member(n, b, method=0) for n, b in GOOD_KERAS.items()])
    (folder / "m.keras").write_bytes(data[: len(data) * 2 // 3])
    return folder / "m.keras"


def _h5_file(edit):
    def make(folder: Path) -> Path:
        (folder / "m.weights.h5").write_bytes(_h5(edit))
        return folder / "m.weights.h5"
    return make


KERAS_CASES = [
    FileCase("keras cut short", lambda folder: _cut(folder), KERAS_LOAD, ValueError,
             "not a valid zip archive"),
    FileCase("keras without weights", keras_file([member(n, b, method=0) for n, b in list(
        GOOD_KERAS.items())[:2]]), KERAS_LOAD, ValueError, "missing 'model.weights.h5'"),
    FileCase("keras Dense(10**12)", keras_honest(**{"config.json": _keras_config(
        units=10**12)}), KERAS_LOAD, ValueError, r"declares weight 'kernel' of shape "
        r"\(3, 1000000000000\); the file holds \(3, 4\)"),
    FileCase("keras weights bomb", keras_file([
        member("metadata.json", GOOD_KERAS["metadata.json"]),
        member("config.json", GOOD_KERAS["config.json"]),
        Member("model.weights.h5", zero_deflate(500), 500 * 2**20)]), KERAS_LOAD, ValueError,
        r"model\.weights\.h5: Expected a stored"),
    FileCase("keras Lambda", keras_honest(**{"config.json": _lambda_config()}), KERAS_LOAD,
             ValueError, "is a Lambda: it holds Python code"),
    FileCase("keras deep config", keras_honest(**{"config.json": _deep_json()}), KERAS_LOAD,
             ValueError, "nested deeper than"),
    FileCase("keras weights missing", keras_honest(**{"model.weights.h5": _h5(
        lambda f: f.__delitem__("layers/dense_1"))}), KERAS_LOAD, ValueError,
        r"declares weight 'kernel' of shape \(4, 2\); the file holds nothing"),
    FileCase("h5 extra weights", _h5_file(lambda f: f.create_group(
        "layers/conv2d/vars").create_dataset("0", data=np.zeros(3))), H5_LOAD, ValueError,
        "weights for layers/conv2d match no layer"),
    FileCase("h5 huge dataset", _h5_file(lambda f: (f.__delitem__("layers/dense/vars/0"),
             f["layers/dense/vars"].create_dataset("0", shape=(2**20, 2**12), dtype="f4",
                                                   compression="gzip"))), H5_LOAD, ValueError,
             r"layers/dense/vars/0 is \(\(1048576, 4096\)"),
]


# PyTorch weights ----------------------------------------------------------------------------
def _write(name: str, data: bytes):
    def make(folder: Path) -> Path:
        (folder / name).write_bytes(data)
        return folder / name
    return make


TORCH_CASES = [
    FileCase("torch pickle", _write("net.pt", b"\x80\x02" + b"\0" * 64), TORCH_LOAD,
             ValueError, "never unpickles"),
    FileCase("torch safetensors lies", _write("net.safetensors", safetensors_header(
        {"0.weight": {"dtype": "F32", "shape": [2**20, 2**20], "data_offsets": [0, 2**42]}})),
        TORCH_LOAD, ValueError, "invalid safetensors data"),
]

CASES = ONNX_CASES + KERAS_CASES + TORCH_CASES


def _warm_up(folder: Path) -> str:
    good = folder / "good"
    good.mkdir()
    (good / "m.onnx").write_bytes(GOOD_ONNX)
    (good / "m.keras").write_bytes(raw_zip([member(n, b, method=0)
                                            for n, b in GOOD_KERAS.items()]))
    return (f"import dojang.onnx, dojang.interop, h5py, onnx; "
            f"dojang.onnx.load({str(good / 'm.onnx')!r}); "
            f"dojang.models.load_model({str(good / 'm.keras')!r})")


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile_interchange")
    return run_cases(CASES, folder, _warm_up(folder))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_interchange_file_is_refused(outcomes, case):
    check_outcome(case, outcomes[case.name])
