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

import contextlib
import io
import json
import os
import zipfile

import numpy as np

from dojang.fileio import atomic_write
from dojang.models import keras_config as KC

KERAS_VERSION = "3.0.0"
MAX_MEMBER_BYTES = 8 * 2**30
MAX_CONFIG_BYTES = 16 * 2**20
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


def class_keys(class_names) -> list[str]:
    """``["layers/conv2d", "layers/conv2d_1", ...]``: Keras's keys, by position."""
    from dojang.layers.base import to_snake_case

    used: dict[str, int] = {}
    out = []
    for name in class_names:
        base = to_snake_case(name)
        used[base] = used.get(base, -1) + 1
        out.append(f"layers/{base}" if used[base] == 0 else f"layers/{base}_{used[base]}")
    return out


def weight_keys(layers) -> list[tuple[str, object]]:
    """``[("layers/conv2d", layer), ...]`` for the model's layers in Keras's order."""
    return list(zip(class_keys(type(layer).__name__ for layer in layers), layers))


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


@contextlib.contextmanager
def _open_h5(data: bytes, source: str):
    """The HDF5 file in ``data``; its low-level failures become ValueErrors naming it."""
    import h5py

    try:
        f = h5py.File(io.BytesIO(data), "r")
    except OSError as e:
        raise ValueError(f"{source}: not an HDF5 weights file (truncated or corrupted?): "
                         f"{e}") from None
    with f:
        try:
            yield f
        except (KeyError, OSError, RuntimeError) as e:
            raise ValueError(f"{source}: corrupted HDF5 weights file ({e})") from None


def read_weights_h5(model, data: bytes, source: str, layers=None) -> None:
    """Assign Keras-layout HDF5 weights to ``model`` by position, checking every shape first.

    Raises:
        ValueError: naming the file and the key for a missing weight, an extra one, a
            shape or dtype that does not fit, or bytes that are not HDF5.
    """
    if layers is None:
        nodes, _, outputs = _nodes(model)
        layers = _saving_order(model, nodes, outputs)
    with _open_h5(data, source) as f:
        _fill(f, model, layers, source)


def _fill(f, model, layers, source: str) -> None:
    keys = weight_keys(layers)
    expected = {key.split("/", 1)[1] for key, _ in keys}
    present = set(f["layers"].keys()) if "layers" in f else set()
    extra = sorted(k for k in present - expected
                   if "vars" in f[f"layers/{k}"] and len(f[f"layers/{k}/vars"]))
    if extra:
        raise ValueError(f"{source}: weights for layers/{extra[0]} match no layer of model "
                         f"'{model.name}' ({len(extra)} extra)")
    plan = [(layer, _datasets(f, key, layer, source)) for key, layer in keys]
    values = [(layer, [np.asarray(ds[()]) for ds in sets]) for layer, sets in plan]
    for layer, arrays in values:
        if arrays:
            layer.set_weights([a.astype(w.dtype) for a, w in zip(arrays, layer.weights)])


class _H5Source:
    """For ``weights_from``: each weight a layer declares is checked against the dataset
    Keras stores for it (``layers/<key>/vars/<i>``) before it is allocated."""

    def __init__(self, f, keys: dict[str, str], source: str):
        self.f, self.keys, self.source = f, keys, source
        self.taken: dict[str, int] = {}

    def take(self, layer, name: str, shape: tuple, dtype) -> np.ndarray:
        import h5py

        i = self.taken.get(layer.name, 0)
        self.taken[layer.name] = i + 1
        path = f"{self.keys.get(layer.name, 'layers/?')}/vars/{i}"
        ds = self.f.get(path)
        if not isinstance(ds, h5py.Dataset) or ds.shape != tuple(shape):
            got = ds.shape if isinstance(ds, h5py.Dataset) else "nothing"
            raise ValueError(f"{self.source}: layer '{layer.name}' declares weight '{name}' "
                             f"of shape {tuple(shape)}; the file holds {got} at {path}")
        return np.empty(shape, dtype)


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


def _directory(zf, source: str) -> dict:
    names = [info.filename for info in zf.infolist()]
    for name in names:
        if name not in _MEMBERS:
            raise ValueError(f"{source}: unexpected member {name!r}; a Keras file dojang "
                             f"reads holds {list(_MEMBERS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"{source}: duplicate members in the archive")
    infos = {info.filename: info for info in zf.infolist()}
    missing = [m for m in _MEMBERS[1:] if m not in infos]
    if missing:
        raise ValueError(f"{source}: missing {missing[0]!r} (truncated or not a Keras file)")
    if infos["model.weights.h5"].compress_type != zipfile.ZIP_STORED:
        # HDF5 needs random access, so the member is read whole: stored, as Keras writes
        # it, its size is that of the bytes in the file (no inflating to a lying size).
        raise ValueError(f"{source}!model.weights.h5: Expected a stored (uncompressed) "
                         f"member, as Keras writes it")
    return infos


def _config_keys(config: dict) -> dict[str, str]:
    """Layer name -> Keras weight key, from the config's layer list (before building)."""
    body = config.get("config") if isinstance(config, dict) else None
    entries = body.get("layers") if isinstance(body, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ValueError("config.json lists no layers")
    if config.get("class_name") == "Sequential":
        entries = [e for e in entries if e.get("class_name") != "InputLayer"]
    names = [(e.get("config") or {}).get("name") for e in entries]
    return dict(zip(names, class_keys(str(e.get("class_name")) for e in entries)))


def load_keras(path):
    """Rebuild a Keras 3 ``.keras`` file as a dojang model, weights included.

    The archive's members are checked before they are read; every weight the config
    declares is checked against the HDF5 file before it is allocated.

    Raises:
        ValueError: naming the file: a truncated or foreign archive, a Lambda or unknown
            layer, an option dojang cannot honour, or weights that do not fit.
    """
    from dojang import fileio
    from dojang.layers.weight_source import weights_from

    source = os.fspath(path)
    with fileio.open_zip(source, source, max_members=len(_MEMBERS)) as zf:
        infos = _directory(zf, source)
        config = fileio.loads_json(
            fileio.read_member(zf, infos["config.json"], source, MAX_CONFIG_BYTES),
            f"{source}!config.json", max_bytes=MAX_CONFIG_BYTES)
        data = fileio.read_member(zf, infos["model.weights.h5"], source, MAX_MEMBER_BYTES)
    where = f"{source}!model.weights.h5"
    with _open_h5(data, where) as f:
        try:
            with weights_from(_H5Source(f, _config_keys(config), where)):
                model, layers = _build(config)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as e:
            message = str(e)
            raise ValueError(message if message.startswith(source) else
                             f"{source}: {message}") from None
        _fill(f, model, layers, where)
    return model


def _build(config: dict):
    from dojang.layers.base import REGISTRY  # the model classes, without an import circle
    from dojang.layers.input import InputLayer

    Sequential, Functional = REGISTRY["Sequential"], REGISTRY["Functional"]

    if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        raise ValueError("config.json holds no model config")
    kind, body = config.get("class_name"), config["config"]
    entries = body.get("layers")
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"config.json: model {kind!r} lists no layers")
    if kind == "Sequential":
        layers = [KC.layer_from_keras(e) for e in entries]
        model = Sequential(layers, name=body.get("name"))
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
    model = Functional(ins if len(ins) > 1 else ins[0], outs if len(outs) > 1 else outs[0],
                       name=body.get("name"))
    return model, layers


def load_weights_h5(model, path) -> None:
    """``model.load_weights("x.weights.h5")``: Keras-format weights, by position."""
    from dojang.fileio import read_capped

    source = os.fspath(path)
    read_weights_h5(model, read_capped(source, MAX_MEMBER_BYTES), source)


def save_weights_h5(model, path) -> None:
    """``model.save_weights("x.weights.h5")``: Keras-format weights, atomically."""
    atomic_write(os.fspath(path), write_weights_h5(model))
