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
from dojang.models import archive, graph, safetensors
from dojang.models.archive import FORMAT, FORMAT_VERSION
from dojang.version import __version__


# ---------------------------------------------------------------------- weights
def weights_to_dict(model) -> dict:
    """``{"0000/conv2d/kernel": array, ...}`` in ``model.weights`` order."""
    from dojang import backend

    return {f"{i:04d}/{w.name}": backend.to_numpy(w.data)
            for i, w in enumerate(model.weights)}


def _is_keras(path, suffix: str) -> bool:
    return os.fspath(path).lower().endswith(suffix)


def save_weights(model, path) -> None:
    """Write the model's weights to a safetensors file (Keras HDF5 for ``.h5``), atomically."""
    if _is_keras(path, ".h5"):
        from dojang.models.keras_file import save_weights_h5

        return save_weights_h5(model, path)
    atomic_write(path, safetensors.encode(weights_to_dict(model), {"format": FORMAT}))
    return None


def load_weights(model, path) -> None:
    """Read weights written by ``save_weights`` (or a ``.dojang`` file, or a Keras
    ``.weights.h5`` file, by position) into ``model``.

    The file's header is checked against the model's weights before any data is read;
    the data then goes straight into the weights.
    """
    if _is_keras(path, ".h5"):
        from dojang.models.keras_file import load_weights_h5

        return load_weights_h5(model, path)
    with archive.weights_file(path) as (stream, entries, source):
        archive.fill_weights(model, stream, entries, source)
    return None


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
        from dojang.models.keras_file import save_keras

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
    archive.check_build_shape(shape, source)
    multi = isinstance(shape, list) and shape and isinstance(shape[0], list)
    try:
        zeros = [np.zeros([1 if s is None else s for s in one], dtype=model.dtype)
                 for one in (shape if multi else [shape])]
        with no_grad():
            model(zeros if multi else zeros[0], training=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{source}: cannot build the model for input shape {shape} ({e})") \
            from None


def _restore_training_state(model, state, source: str) -> None:
    if not isinstance(state, dict):
        return
    seed = state.get("fit_seed")
    if seed is not None:
        model._fit_seed = _check_seed(seed, source)
    rngs = state.get("rng_states") or {}
    for layer in _all_layers(model):
        if layer.name in rngs:
            try:
                layer._rng.bit_generator.state = rngs[layer.name]
            except (TypeError, ValueError, KeyError, OverflowError) as e:
                raise ValueError(f"{source}: bad random state for layer '{layer.name}' "
                                 f"({e})") from None


def _check_seed(seed, source: str) -> int:
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**64:
        raise ValueError(f"{source}: Expected training_state.fit_seed to be an int in "
                         f"[0, 2**64). Received: fit_seed={seed!r}"[:300])
    return seed


def _restore_compile(model, settings, opened: archive.ModelArchive, source: str) -> None:
    from dojang import losses, metrics, optimizers

    try:
        model.compile(optimizer=optimizers.deserialize(settings["optimizer"]),
                      loss=None if settings.get("loss") is None
                      else losses.deserialize(settings["loss"]),
                      metrics=[metrics.deserialize(m) for m in settings.get("metrics", [])])
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise ValueError(f"{source}: invalid compile settings ({e})") from None
    if opened.has("optimizer.safetensors"):
        params = model.parameters()
        state = archive.read_optimizer_state(opened, model.optimizer, params)
        try:
            model.optimizer.set_state(state, params)
        except (TypeError, ValueError, KeyError) as e:
            raise ValueError(f"{source}: optimizer state does not fit ({e})") from None


def load_model(path, custom_objects: dict | None = None, compile: bool = True):
    """Rebuild a model saved by ``model.save(path)``, or a Keras 3 ``.keras`` file.

    Args:
        path: the ``.dojang`` file, or a ``.keras`` file (read by
            ``dojang.models.keras_file``; ``custom_objects`` and ``compile`` do not apply).
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
    from dojang.layers.weight_source import weights_from

    if _is_keras(path, ".keras"):
        from dojang.models.keras_file import load_keras

        return load_keras(path)
    source = os.fspath(path)
    with archive.ModelArchive(path) as opened:
        config = opened.config()
        with opened.tensors("model.safetensors") as (stream, entries, where):
            # Every declared weight is checked against the header before it exists.
            with weights_from(archive.WeightSource(entries, where)):
                try:
                    model = deserialize_layer(config["model"], custom_objects)
                except (ValueError, RecursionError) as e:
                    raise ValueError(f"{source}: {e}") from None
                if not graph.is_model(model):
                    raise ValueError(f"{source}: config describes a {type(model).__name__}, "
                                     f"not a model")
                _build_subclassed(model, config.get("build_input_shape"), source)
            archive.fill_weights(model, stream, entries, where)
        if compile and config.get("compile"):
            _restore_compile(model, config["compile"], opened, source)
    _restore_training_state(model, config.get("training_state"), source)
    return model
