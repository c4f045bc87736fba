"""Saving and loading models: one ``.dojang`` zip, never pickle, never code.

A ``.dojang`` file is a zip archive holding exactly:

- ``config.json``: format name and version, the architecture (class names and
  constructor arguments), the compile settings, and the state needed to resume
  training identically (the fit shuffle seed and each layer's random-generator state);
- ``model.safetensors``: the weights, in ``model.weights`` order (keys ``0000/conv2d/kernel``);
- ``optimizer.safetensors``: the optimizer's slots and iteration count (when compiled).

Every write goes to a temporary file in the same directory that then replaces the
target with ``os.replace`` (atomic on POSIX and Windows), so a crash mid-write leaves the
old file intact. Loading looks layer classes up by name in dojang's own registry (or the
caller's ``custom_objects``); a file can describe a model but never run code.
"""

from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np

from dojang.fileio import atomic_write
from dojang.layers.serialization import deserialize_layer
from dojang.models import graph, safetensors
from dojang.version import __version__

FORMAT = "dojang.model"
FORMAT_VERSION = 1
_MEMBERS = ("config.json", "model.safetensors", "optimizer.safetensors")
_MAX_MEMBER_BYTES = 8 * 2**30


# ---------------------------------------------------------------------- weights
def weights_to_dict(model) -> dict:
    """``{"0000/conv2d/kernel": array, ...}`` in ``model.weights`` order."""
    from dojang import backend

    return {f"{i:04d}/{w.name}": backend.to_numpy(w.data)
            for i, w in enumerate(model.weights)}


def set_weights_from_dict(model, tensors: dict, source: str) -> None:
    """Assign weights saved by ``weights_to_dict`` (matched by position, checked by shape).

    Raises:
        ValueError: naming ``source`` when the count, a key or a shape differs.
    """
    weights = model.weights
    keys = sorted(tensors)
    if len(keys) != len(weights):
        raise ValueError(f"{source}: the file holds {len(keys)} weights, model "
                         f"'{model.name}' has {len(weights)}")
    for i, (key, w) in enumerate(zip(keys, weights)):
        if not key.startswith(f"{i:04d}/"):
            raise ValueError(f"{source}: weight key {key!r} is not numbered {i:04d}")
        value = tensors[key]
        if value.shape != w.shape:
            raise ValueError(f"{source}: weight {key!r} has shape {value.shape}, model weight "
                             f"'{w.name}' expects {w.shape}")
        if value.dtype.kind != "f":
            raise ValueError(f"{source}: weight {key!r} has dtype {value.dtype}, expected "
                             f"a float dtype")
    model.set_weights([tensors[k] for k in keys])


def _is_keras(path, suffix: str) -> bool:
    return os.fspath(path).lower().endswith(suffix)


def save_weights(model, path) -> None:
    """Write the model's weights to a safetensors file (Keras HDF5 for ``.h5``), atomically."""
    if _is_keras(path, ".h5"):
        from dojang.interop.keras_file import save_weights_h5

        return save_weights_h5(model, path)
    atomic_write(path, safetensors.encode(weights_to_dict(model), {"format": FORMAT}))
    return None


def load_weights(model, path) -> None:
    """Read weights written by ``save_weights`` (or a ``.dojang`` file, or a Keras
    ``.weights.h5`` file) into ``model``."""
    if _is_keras(path, ".h5"):
        from dojang.interop.keras_file import load_weights_h5

        return load_weights_h5(model, path)
    source = os.fspath(path)
    with open(source, "rb") as f:
        data = f.read()
    if data[:4] == b"PK\x03\x04":
        members = _read_archive(data, source)
        data = members["model.safetensors"]
        source = f"{source}!model.safetensors"
    set_weights_from_dict(model, safetensors.decode(data, source)[0], source)


# ---------------------------------------------------------------------- model files
def _rng_states(model) -> dict:
    return {layer.name: layer._rng.bit_generator.state for layer in _all_layers(model)}


def _all_layers(model) -> list:
    return graph.all_layers(model)[1:]


def _compile_config(model):
    if not getattr(model, "compiled", False):
        return None
    from dojang import losses, metrics, optimizers

    return {"optimizer": optimizers.serialize(model.optimizer),
            "loss": None if model.loss is None else losses.serialize(model.loss),
            "metrics": [metrics.serialize(m) for m in model.compiled_metrics]}


def save_model(model, path) -> None:
    """Write ``model`` (architecture, weights, compile settings, optimizer state) to ``path``.

    A path ending in ``.keras`` writes a Keras 3 file instead (architecture and weights).

    Raises:
        ValueError: if the model is not built yet (its weights do not exist).
    """
    if _is_keras(path, ".keras"):
        from dojang.interop.keras_file import save_keras

        return save_keras(model, path)
    if not model.built or (not model.weights and model._build_shape is None and
                           not model.layers):
        raise ValueError(f"save: model '{model.name}' is not built yet; call it on data or "
                         f"give the first layer input_shape=")
    config = {"format": FORMAT, "format_version": FORMAT_VERSION, "dojang_version": __version__,
              "model": {"class_name": type(model).__name__, "config": model.get_config()},
              "build_input_shape": _jsonable_shape(model._build_shape),
              "compile": _compile_config(model),
              "training_state": {"fit_seed": getattr(model, "_fit_seed", None),
                                 "rng_states": _rng_states(model)}}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("config.json", json.dumps(config, indent=1))
        zf.writestr("model.safetensors", safetensors.encode(weights_to_dict(model)))
        if model.optimizer is not None and getattr(model, "compiled", False):
            state = {k: np.asarray(v) for k, v in model.optimizer.get_state().items()}
            zf.writestr("optimizer.safetensors", safetensors.encode(state))
    atomic_write(path, buffer.getvalue())
    return None


def _jsonable_shape(shape):
    if shape is None:
        return None
    if isinstance(shape, list):
        return [_jsonable_shape(s) for s in shape]
    return [None if s is None else int(s) for s in shape]


def _build_subclassed(model, shape, source: str) -> None:
    """Subclassed models create weights on their first call: run one on zeros."""
    from dojang.config import no_grad

    if model.weights or shape is None:
        return
    multi = isinstance(shape, list) and shape and isinstance(shape[0], list)
    try:
        zeros = [np.zeros([1 if s is None else s for s in one], dtype=model.dtype)
                 for one in (shape if multi else [shape])]
        with no_grad():
            model(zeros if multi else zeros[0], training=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{source}: cannot build the model for input shape {shape} ({e})") \
            from None


def _read_archive(data: bytes, source: str) -> dict[str, bytes]:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ValueError(f"{source}: not a dojang model file (not a valid zip archive; "
                         f"truncated or corrupted?)") from None
    with zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        for name in names:
            if name.endswith((".pkl", ".pickle")) or "pickle" in name.lower():
                raise ValueError(f"{source}: contains a pickle ({name!r}); dojang never "
                                 f"unpickles, refusing to load")
            if name not in _MEMBERS:
                raise ValueError(f"{source}: unexpected member {name!r} in the archive; a "
                                 f"dojang model file holds only {list(_MEMBERS)}")
        if len(set(names)) != len(names):
            raise ValueError(f"{source}: duplicate members in the archive")
        for required in _MEMBERS[:2]:
            if required not in names:
                raise ValueError(f"{source}: missing {required!r} in the archive")
        members = {}
        for info in infos:
            if info.file_size > _MAX_MEMBER_BYTES:
                raise ValueError(f"{source}: member {info.filename!r} is too large")
            try:
                members[info.filename] = zf.read(info)
            except (zipfile.BadZipFile, OSError, EOFError) as e:
                raise ValueError(f"{source}: corrupted member {info.filename!r} ({e})") from None
    return members


def _read_config(blob: bytes, source: str) -> dict:
    try:
        config = json.loads(blob.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"{source}: config.json is not valid JSON ({e})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ValueError(f"{source}: config.json is not a dojang model config (expected "
                         f"format {FORMAT!r})")
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(f"{source}: unsupported format_version {version!r}; this dojang "
                         f"reads version {FORMAT_VERSION}")
    if not isinstance(config.get("model"), dict):
        raise ValueError(f"{source}: config.json has no 'model' entry")
    return config


def _restore_training_state(model, state, source: str) -> None:
    if not isinstance(state, dict):
        return
    seed = state.get("fit_seed")
    if seed is not None:
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"{source}: training_state.fit_seed must be an int")
        model._fit_seed = seed
    rngs = state.get("rng_states") or {}
    for layer in _all_layers(model):
        if layer.name in rngs:
            try:
                layer._rng.bit_generator.state = rngs[layer.name]
            except (TypeError, ValueError, KeyError) as e:
                raise ValueError(f"{source}: bad random state for layer '{layer.name}' "
                                 f"({e})") from None


def _restore_compile(model, settings, members, source: str) -> None:
    from dojang import losses, metrics, optimizers

    try:
        model.compile(optimizer=optimizers.deserialize(settings["optimizer"]),
                      loss=None if settings.get("loss") is None
                      else losses.deserialize(settings["loss"]),
                      metrics=[metrics.deserialize(m) for m in settings.get("metrics", [])])
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(f"{source}: invalid compile settings ({e})") from None
    if "optimizer.safetensors" in members:
        state = safetensors.decode(members["optimizer.safetensors"],
                                   f"{source}!optimizer.safetensors")[0]
        try:
            model.optimizer.set_state(state)
        except (TypeError, ValueError, KeyError) as e:
            raise ValueError(f"{source}: optimizer state does not fit ({e})") from None


def load_model(path, custom_objects: dict | None = None, compile: bool = True):
    """Rebuild a model saved by ``model.save(path)``, or a Keras 3 ``.keras`` file.

    Args:
        path: the ``.dojang`` file, or a ``.keras`` file (read by
            ``dojang.interop.keras_file``; ``custom_objects`` and ``compile`` do not apply).
        custom_objects: ``{class_name: class}`` for your own layer or model classes.
        compile: restore the optimizer (with its state), loss and metrics.

    Raises:
        ValueError: naming the file and the problem for a truncated or corrupted zip,
            a missing or wrong config, an unsupported format version, a weight of the
            wrong shape, or an archive holding anything else (such as a pickle).

    Example:
        >>> import dojang as dj, tempfile, os
        >>> m = dj.Sequential([dj.layers.Dense(2, input_shape=(3,))])
        >>> p = os.path.join(tempfile.mkdtemp(), "m.dojang")
        >>> m.save(p)
        >>> dj.models.load_model(p).count_params()
        8
    """
    if _is_keras(path, ".keras"):
        from dojang.interop.keras_file import load_keras

        return load_keras(path)
    source = os.fspath(path)
    with open(source, "rb") as f:
        data = f.read()
    members = _read_archive(data, source)
    config = _read_config(members["config.json"], source)
    try:
        model = deserialize_layer(config["model"], custom_objects)
    except ValueError as e:
        raise ValueError(f"{source}: {e}") from None
    if not graph.is_model(model):
        raise ValueError(f"{source}: config describes a {type(model).__name__}, not a model")
    _build_subclassed(model, config.get("build_input_shape"), source)
    tensors = safetensors.decode(members["model.safetensors"], f"{source}!model.safetensors")[0]
    set_weights_from_dict(model, tensors, f"{source}!model.safetensors")
    if compile and config.get("compile"):
        _restore_compile(model, config["compile"], members, source)
    _restore_training_state(model, config.get("training_state"), source)
    return model
