"""Keras 3 files: ``.keras`` archives and ``.weights.h5`` weight files, both ways.

A ``.keras`` file is a zip of ``metadata.json`` (``keras_version``), ``config.json`` (the
model's Keras config) and ``model.weights.h5``. In the HDF5 file each layer's weights are
the datasets ``layers/<key>/vars/0``, ``1``, ... in the layer's weight order, where
``<key>`` is the snake-cased class name numbered by position among the model's layers
(``conv2d``, ``conv2d_1``, ...), not the layer's name. Keras's own weight orders match
dojang's (kernel, bias; gamma, beta, moving mean, moving variance; depthwise, pointwise,
bias), and so does its batch-norm epsilon default (1e-3). Optimizer variables in a file
are ignored. Files are read with bounds: members and datasets are checked against the
model before any array is read.
"""

from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np

from dojang.fileio import atomic_write
from dojang.interop import keras_config as KC

KERAS_VERSION = "3.0.0"
MAX_MEMBER_BYTES = 8 * 2**30
MAX_CONFIG_BYTES = 64 * 2**20
_MEMBERS = ("metadata.json", "config.json", "model.weights.h5")


def _nodes(model):
    from dojang.models import graph

    return graph.walk(model), graph.model_inputs(model), graph.model_outputs(model)


def _saving_order(model, nodes, outputs) -> list:
    """The model's layers in the order Keras numbers their weights: a functional model's
    by Keras's graph order, a Sequential's and a subclassed model's as ``model.layers``."""
    from dojang.models import graph

    if graph.kind(model) == "functional":
        return KC.keras_order(nodes, outputs)
    return list(model.layers)


def weight_keys(layers) -> list[tuple[str, object]]:
    """``[("layers/conv2d", layer), ...]``: Keras's class-based keys, by position."""
    from dojang.layers.base import to_snake_case

    used: dict[str, int] = {}
    out = []
    for layer in layers:
        base = to_snake_case(type(layer).__name__)
        used[base] = used.get(base, -1) + 1
        out.append((f"layers/{base}" if used[base] == 0 else f"layers/{base}_{used[base]}",
                    layer))
    return out


# ----------------------------------------------------------------------- weights (HDF5)
def write_weights_h5(model, layers=None) -> bytes:
    """The HDF5 bytes of ``model``'s weights in Keras 3's layout."""
    import h5py

    from dojang import backend

    if layers is None:
        nodes, _, outputs = _nodes(model)
        layers = _saving_order(model, nodes, outputs)
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        f.create_group("vars").attrs["name"] = model.name
        f.create_group("layers")
        for key, layer in weight_keys(layers):
            group = f.create_group(key).create_group("vars")
            group.attrs["name"] = layer.name
            for i, w in enumerate(layer.weights):
                group.create_dataset(str(i), data=backend.to_numpy(w.data))
    return buffer.getvalue()


def read_weights_h5(model, data: bytes, source: str, layers=None) -> None:
    """Assign Keras-layout HDF5 weights to ``model`` by position, checking every shape first.

    Raises:
        ValueError: naming the file and the key for a missing weight, an extra one, a
            shape or dtype that does not fit, or bytes that are not HDF5.
    """
    import h5py

    if layers is None:
        nodes, _, outputs = _nodes(model)
        layers = _saving_order(model, nodes, outputs)
    try:
        f = h5py.File(io.BytesIO(data), "r")
    except OSError as e:
        raise ValueError(f"{source}: not an HDF5 weights file (truncated or corrupted?): "
                         f"{e}") from None
    with f:
        keys = weight_keys(layers)
        expected = {key for key, _ in keys}
        try:
            present = set(f["layers"].keys()) if "layers" in f else set()
            extra = sorted(k for k in present - {k.split("/", 1)[1] for k in expected}
                           if "vars" in f[f"layers/{k}"] and len(f[f"layers/{k}/vars"]))
            if extra:
                raise ValueError(f"{source}: weights for layers/{extra[0]} match no layer "
                                 f"of model '{model.name}' ({len(extra)} extra)")
            plan = [(layer, _datasets(f, key, layer, source)) for key, layer in keys]
            values = [(layer, [np.asarray(ds[()]) for ds in sets]) for layer, sets in plan]
        except (KeyError, OSError, RuntimeError) as e:
            raise ValueError(f"{source}: corrupted HDF5 weights file ({e})") from None
    for layer, arrays in values:
        if arrays:
            layer.set_weights([a.astype(w.dtype) for a, w in zip(arrays, layer.weights)])


def _datasets(f, key: str, layer, source: str) -> list:
    import h5py

    group = f.get(f"{key}/vars")
    names = sorted(group.keys(), key=lambda s: (len(s), s)) if group is not None else []
    if len(names) != len(layer.weights) or names != [str(i) for i in range(len(names))]:
        raise ValueError(f"{source}: {key}/vars holds {len(names)} weights {names}; layer "
                         f"'{layer.name}' ({type(layer).__name__}) has "
                         f"{len(layer.weights)}")
    out = []
    for name, w in zip(names, layer.weights):
        ds = group[name]
        if not isinstance(ds, h5py.Dataset) or ds.shape != tuple(w.shape) or \
                ds.dtype.kind != "f":
            got = (ds.shape, ds.dtype) if isinstance(ds, h5py.Dataset) else "a group"
            raise ValueError(f"{source}: {key}/vars/{name} is {got}; layer "
                             f"'{layer.name}' weight '{w.name}' expects {tuple(w.shape)} float")
        out.append(ds)
    return out


# ----------------------------------------------------------------------- .keras archives
def _input_shapes(node):
    shapes = [list(t.shape) for t in node.inputs]
    return shapes if len(shapes) > 1 else (shapes[0] if shapes else None)


def model_config(model) -> tuple[dict, list]:
    """(Keras's config.json object for ``model``, its layers in Keras's order)."""
    from dojang.layers.input import InputLayer
    from dojang.models import graph

    nodes, inputs, outputs = _nodes(model)
    by_layer = {}
    for node in nodes:
        by_layer.setdefault(id(node.layer), []).append(node)
    if graph.kind(model) == "sequential":
        entries = [KC.layer_to_keras(n.layer, _input_shapes(n)) for n in nodes]
        config = {"name": model.name, "trainable": model.trainable, "layers": entries}
        return ({"module": "keras", "class_name": "Sequential", "config": config,
                 "registered_name": None,
                 "build_config": {"input_shape": list(inputs[0].shape)}},
                [n.layer for n in nodes if not isinstance(n.layer, InputLayer)])
    layers = KC.keras_order(nodes, outputs)
    history, entries = {}, []
    for layer in layers:
        for i, node in enumerate(by_layer[id(layer)]):
            for t in node.outputs:
                history[id(t)] = [layer.name, i, 0]
    for layer in layers:
        calls = by_layer[id(layer)]
        entry = KC.layer_to_keras(layer, _input_shapes(calls[0]))
        entry["name"] = layer.name
        entry["inbound_nodes"] = [] if isinstance(layer, InputLayer) else [
            {"args": [_tensor_refs(node, history)], "kwargs": {}} for node in calls]
        entries.append(entry)
    ends = [[history[id(t)] for t in ts] for ts in (inputs, outputs)]
    config = {"name": model.name, "trainable": model.trainable, "layers": entries,
              "input_layers": ends[0] if len(ends[0]) > 1 else ends[0][0],
              "output_layers": ends[1] if len(ends[1]) > 1 else ends[1][0]}
    return ({"module": "keras.src.models.functional", "class_name": "Functional",
             "config": config, "registered_name": "Functional",
             "build_config": {"input_shape": None}}, layers)


def _tensor_refs(node, history):
    refs = [{"class_name": "__keras_tensor__",
             "config": {"shape": list(t.shape), "dtype": t.dtype.name,
                        "keras_history": history[id(t)]}} for t in node.inputs]
    return refs if len(refs) > 1 else refs[0]


def save_keras(model, path) -> None:
    """Write ``model`` as a Keras 3 ``.keras`` file, atomically.

    Raises:
        ValueError: the model is not built, or has a layer Keras cannot express.
    """
    config, layers = model_config(model)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": KERAS_VERSION,
                                                 "date_saved": "", "producer": "dojang"}))
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("model.weights.h5", write_weights_h5(model, layers))
    atomic_write(os.fspath(path), buffer.getvalue())


def _members(path: str) -> dict[str, bytes]:
    with open(path, "rb") as f:
        data = f.read()
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ValueError(f"{path}: not a Keras file (not a valid zip archive; truncated or "
                         f"corrupted?)") from None
    with zf:
        out = {}
        for info in zf.infolist():
            if info.filename.endswith("/") or info.filename.startswith("assets/"):
                continue
            if info.filename not in _MEMBERS:
                raise ValueError(f"{path}: unexpected member {info.filename!r}; a Keras "
                                 f"file dojang reads holds {list(_MEMBERS)}")
            limit = MAX_MEMBER_BYTES if info.filename.endswith(".h5") else MAX_CONFIG_BYTES
            if info.file_size > limit:
                raise ValueError(f"{path}: member {info.filename!r} is too large")
            try:
                out[info.filename] = zf.read(info)
            except (zipfile.BadZipFile, OSError, EOFError) as e:
                raise ValueError(f"{path}: corrupted member {info.filename!r} ({e})") from None
    missing = [m for m in _MEMBERS[1:] if m not in out]
    if missing:
        raise ValueError(f"{path}: missing {missing[0]!r} (truncated or not a Keras file)")
    return out


def load_keras(path):
    """Rebuild a Keras 3 ``.keras`` file as a dojang model, weights included.

    Raises:
        ValueError: naming the file: a truncated or foreign archive, a Lambda or unknown
            layer, an option dojang cannot honour, or weights that do not fit.
    """
    source = os.fspath(path)
    members = _members(source)
    try:
        config = json.loads(members["config.json"].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ValueError(f"{source}: config.json is not valid JSON ({e})") from None
    try:
        model, layers = _build(config)
    except (ValueError, TypeError, KeyError, IndexError) as e:
        raise ValueError(f"{source}: {e}") from None
    read_weights_h5(model, members["model.weights.h5"], f"{source}!model.weights.h5", layers)
    return model


def _build(config: dict):
    import dojang as dj
    from dojang.layers.input import InputLayer

    if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        raise ValueError("config.json holds no model config")
    kind, body = config.get("class_name"), config["config"]
    entries = body.get("layers")
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"config.json: model {kind!r} lists no layers")
    if kind == "Sequential":
        layers = [KC.layer_from_keras(e) for e in entries]
        model = dj.Sequential(layers, name=body.get("name"))
        if not model.built:
            shape = (config.get("build_config") or {}).get("input_shape")
            if shape is None:
                raise ValueError("config.json: Sequential model without an input shape")
            model.build(tuple(shape))
        return model, [layer for layer in layers if not isinstance(layer, InputLayer)]
    if kind != "Functional":
        raise ValueError(f"config.json: model class {kind!r} is not Sequential or Functional "
                         f"(nested and subclassed Keras models are not read)")
    layers, tensors = [], {}
    for entry in entries:
        layer = KC.layer_from_keras(entry)
        layers.append(layer)
        if isinstance(layer, InputLayer):
            tensors[(layer.name, 0, 0)] = layer.output
            continue
        for i, call in enumerate(entry.get("inbound_nodes") or []):
            kwargs = {k: v for k, v in (call.get("kwargs") or {}).items() if v is not None}
            if kwargs:
                raise ValueError(f"layer '{layer.name}' is called with keyword arguments "
                                 f"{sorted(kwargs)}")
            args = call["args"][0]
            inputs = [tensors[tuple(a["config"]["keras_history"])] for a in args] \
                if isinstance(args, list) else tensors[tuple(args["config"]["keras_history"])]
            tensors[(layer.name, i, 0)] = layer(inputs)

    def ends(spec):
        spec = spec if spec and isinstance(spec[0], list) else [spec]
        return [tensors[tuple(s)] for s in spec]

    ins, outs = ends(body["input_layers"]), ends(body["output_layers"])
    model = dj.Model(ins if len(ins) > 1 else ins[0], outs if len(outs) > 1 else outs[0],
                     name=body.get("name"))
    return model, layers


def load_weights_h5(model, path) -> None:
    """``model.load_weights("x.weights.h5")``: Keras-format weights, by position."""
    source = os.fspath(path)
    if os.path.getsize(source) > MAX_MEMBER_BYTES:
        raise ValueError(f"{source}: larger than {MAX_MEMBER_BYTES} bytes")
    with open(source, "rb") as f:
        read_weights_h5(model, f.read(), source)


def save_weights_h5(model, path) -> None:
    """``model.save_weights("x.weights.h5")``: Keras-format weights, atomically."""
    atomic_write(os.fspath(path), write_weights_h5(model))
