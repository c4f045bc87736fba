"""Layer and model configs between dojang and Keras 3's ``config.json``.

Keras entries look like ``{"module": "keras.layers", "class_name": "Conv2D", "config":
{...}, "registered_name": null, "build_config": {"input_shape": [...]}}``; functional
models add ``"name"`` and ``"inbound_nodes"`` (``{"args": [...], "kwargs": {}}`` whose
tensors are ``{"class_name": "__keras_tensor__", "config": {"keras_history":
[layer, node_index, tensor_index]}}``). dojang's layers take Keras's argument names, so a
config maps across by dropping what one side has and the other lacks, when it holds the
default, and refusing it otherwise. Only built-in layers cross: a ``Lambda`` (Python
code) is refused.
"""

from __future__ import annotations

from dojang import layers as L

CLASSES = {cls.__name__: cls for cls in (
    L.InputLayer, L.Conv1D, L.Conv2D, L.Conv3D, L.Conv1DTranspose, L.Conv2DTranspose,
    L.Conv3DTranspose, L.DepthwiseConv2D, L.SeparableConv2D, L.Dense, L.Flatten, L.Reshape,
    L.Activation, L.Dropout, L.SpatialDropout2D, L.BatchNormalization, L.MaxPooling1D,
    L.MaxPooling2D, L.MaxPooling3D, L.AveragePooling1D, L.AveragePooling2D,
    L.AveragePooling3D, L.GlobalMaxPooling1D, L.GlobalMaxPooling2D, L.GlobalMaxPooling3D,
    L.GlobalAveragePooling1D, L.GlobalAveragePooling2D, L.GlobalAveragePooling3D, L.Add,
    L.Concatenate, L.ZeroPadding2D, L.Cropping2D, L.UpSampling2D, L.ReLU, L.LeakyReLU,
    L.ELU, L.Softmax)}

_ANY = object()
# Keras options dojang lacks, dropped when they hold these values (_ANY: always dropped).
KERAS_ONLY = {
    "activity_regularizer": None, "kernel_constraint": None, "bias_constraint": None,
    "beta_constraint": None, "gamma_constraint": None, "depthwise_constraint": None,
    "pointwise_constraint": None, "synchronized": False, "renorm": False,
    "renorm_clipping": None, "renorm_momentum": _ANY, "quantization_config": None,
    "lora_rank": None, "lora_alpha": _ANY, "sparse": False, "ragged": False,
    "optional": False, "seed": _ANY, "dtype": _ANY,
}
# dojang options Keras lacks, written only when they hold these values.
DOJANG_ONLY = {"padding_mode": "zeros", "input_shape": _ANY, "seed": _ANY}


def _policy(dtype) -> str:
    if isinstance(dtype, dict):
        dtype = (dtype.get("config") or {}).get("name")
    if dtype not in (None, "float32", "float64"):
        raise ValueError(f"Expected a float32 or float64 dtype policy. Received: {dtype!r}")
    return dtype or "float32"


def _drop(config: dict, table: dict, what: str, layer: str) -> dict:
    out = {}
    for key, value in config.items():
        if key in table:
            if table[key] is not _ANY and value != table[key]:
                raise ValueError(f"layer '{layer}': {what} option {key}={value!r} has no "
                                 f"counterpart on the other side")
            continue
        out[key] = value
    return out


def _object_from_keras(value):
    """``{"module", "class_name", "config"}`` -> dojang's ``{"class_name", "config"}``."""
    if not isinstance(value, dict):
        return value
    config = {k: v for k, v in (value.get("config") or {}).items() if v is not None}
    return {"class_name": value.get("class_name"), "config": config}


def _object_to_keras(value, module: str):
    if not isinstance(value, dict):
        return value
    return {"module": module, "class_name": value["class_name"],
            "config": value.get("config", {}), "registered_name": None}


def layer_from_keras(entry: dict):
    """A dojang layer (unbuilt) from one Keras layer entry.

    Raises:
        ValueError: a Lambda or an unknown class, or an option dojang cannot honour.
    """
    if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
        raise ValueError(f"Expected a Keras layer entry with a config. Received: "
                         f"{str(entry)[:200]}")
    name = entry.get("class_name")
    layer_name = entry["config"].get("name", "?")
    if name == "Lambda":
        raise ValueError(f"layer '{layer_name}' is a Lambda: it holds Python code, which "
                         f"dojang never runs from a file")
    if name not in CLASSES:
        raise ValueError(f"layer '{layer_name}' has class {name!r}, which dojang cannot load "
                         f"from Keras (supported: {sorted(CLASSES)})")
    dtype = _policy(entry["config"].get("dtype"))
    config = _drop(entry["config"], KERAS_ONLY, "Keras", layer_name)
    if name == "InputLayer":
        shape = config.pop("batch_shape", None) or [None] + list(config.pop("shape", []))
        config = {"name": layer_name, "shape": list(shape[1:]), "batch_size": shape[0]}
    config = {k: _object_from_keras(v) for k, v in config.items()}
    return CLASSES[name].from_config({**config, "dtype": dtype})


def layer_to_keras(layer, input_shape) -> dict:
    """One Keras layer entry for a built dojang ``layer`` that received ``input_shape``.

    Raises:
        ValueError: a layer Keras cannot express (a user class, explicit convolution
            padding, a padding_mode other than zeros), naming it.
    """
    name = type(layer).__name__
    if CLASSES.get(name) is not type(layer):
        raise ValueError(f"layer '{layer.name}' ({name}) cannot be saved in a Keras file: "
                         f"it is not a built-in layer Keras has")
    config = _drop(layer.get_config(), DOJANG_ONLY, "dojang", layer.name)
    if isinstance(config.get("padding"), list) and isinstance(layer, L.BaseConv):
        raise ValueError(f"layer '{layer.name}' ({name}): Keras convolutions take padding "
                         f"'valid' or 'same' only. Received: padding={config['padding']}")
    policy = {"module": "keras", "class_name": "DTypePolicy",
              "config": {"name": config.pop("dtype", "float32")}, "registered_name": None}
    if name == "InputLayer":
        config = {"batch_shape": [config["batch_size"]] + list(config["shape"]),
                  "dtype": policy["config"]["name"], "sparse": False, "ragged": False,
                  "name": config["name"]}
    else:
        config["dtype"] = policy
        for key, value in list(config.items()):
            if key.endswith("_initializer"):
                config[key] = _object_to_keras(value, "keras.initializers")
            elif key.endswith("_regularizer"):
                config[key] = _object_to_keras(value, "keras.regularizers")
    entry = {"module": "keras.layers", "class_name": name, "config": config,
             "registered_name": None}
    if name != "InputLayer":
        entry["build_config"] = {"input_shape": input_shape}
    return entry


def keras_order(nodes, outputs) -> list:
    """Layers in the order Keras 3 lists a functional model's layers (and numbers their
    weights): by decreasing depth from the outputs, ties by first visit of a depth-first
    walk from the outputs (``keras.src.ops.function.map_graph``)."""
    producer = {id(t): n for n in nodes for t in n.outputs}
    post, index, done = [], {}, set()
    for out in outputs:
        stack = [(producer[id(out)], False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                done.add(id(node))
                post.append(node)
                continue
            if id(node) in done:
                continue
            index.setdefault(id(node.layer), len(index))
            stack.append((node, True))
            stack.extend((producer[id(t)], False) for t in reversed(node.inputs))
    depth_of_node, depth_of_layer = {}, {}
    for node in reversed(post):
        depth = max(depth_of_node.setdefault(id(node), 0), depth_of_layer.get(id(node.layer), 0))
        depth_of_layer[id(node.layer)] = depth
        depth_of_node[id(node)] = depth
        for t in node.inputs:
            parent = producer[id(t)]
            depth_of_node[id(parent)] = max(depth + 1, depth_of_node.get(id(parent), 0))
    layers = {id(n.layer): n.layer for n in post}
    ranked = sorted(layers, key=lambda k: (-depth_of_layer[k], index[k]))
    return [layers[k] for k in ranked]
