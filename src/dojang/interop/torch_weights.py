"""PyTorch weights into dojang: ``load_torch_state_dict(model, path_or_dict)``.

A state dict's entries are grouped by module (``features.3.weight`` -> module
``features.3``, parameter ``weight``) and each dojang layer with weights takes one module:

    Conv{1,2,3}d          weight (F, C/g, *K)      -> kernel (*K, C/g, F)
    ConvTranspose{1,2,3}d weight (C, F, *K)        -> kernel (*K, F, C)
    depthwise Conv2d      weight (C*M, 1, KH, KW)  -> depthwise_kernel (KH, KW, C, M)
    Linear                weight (out, in)         -> kernel (in, out), rows permuted when
                          the Dense reads a Flatten of a feature map (PyTorch flattens
                          C, H, W; dojang flattens in channels-last order)
    BatchNorm             weight, bias, running_mean, running_var
                          -> gamma, beta, moving_mean, moving_variance

``num_batches_tracked`` entries are ignored. Files are safetensors only (never pickle).
"""

from __future__ import annotations

import os
import re

import numpy as np

from dojang import layers as L

MAX_FILE_BYTES = 8 * 2**30
_SKIPPED = ("num_batches_tracked",)


def _numeric_key(path: str):
    """``features.10`` after ``features.3``: digit runs compare as numbers."""
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[.]", path)]


def _as_array(value, key: str) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor; never imported here
        value = value.detach().cpu().numpy()
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiub":
        raise TypeError(f"load_torch_state_dict: Expected entry {key!r} to be a tensor or "
                        f"array of numbers. Received: {type(value).__name__}")
    return value


def _groups(path_or_dict) -> tuple[list[tuple[str, dict]], str]:
    """Module groups ``[(prefix, {param: array})]`` in matching order, and a source name."""
    if isinstance(path_or_dict, dict):
        items, source = list(path_or_dict.items()), "state dict"
    else:
        from dojang.fileio import read_capped
        from dojang.models import safetensors

        source = os.fspath(path_or_dict)
        data = read_capped(source, MAX_FILE_BYTES)
        if data[:2] == b"\x80\x02" or data[:4] == b"PK\x03\x04":
            raise ValueError(f"{source}: a pickled PyTorch checkpoint; dojang reads state "
                             f"dicts saved as safetensors only (never unpickles)")
        tensors = safetensors.decode(data, source)[0]
        items = sorted(tensors.items(), key=lambda kv: _numeric_key(kv[0].rpartition(".")[0]))
    groups: dict[str, dict] = {}
    for key, value in items:
        if not isinstance(key, str):
            raise TypeError(f"load_torch_state_dict: Expected str keys. Received: {key!r}")
        prefix, _, param = key.rpartition(".")
        if param in _SKIPPED:
            continue
        groups.setdefault(prefix, {})[param] = _as_array(value, key)
    return list(groups.items()), source


def _flatten_order(model, layer) -> np.ndarray | None:
    """Row permutation for a Dense fed by a Flatten of a feature map, else None."""
    from dojang.models.graph import walk

    nodes = {id(n.layer): n for n in walk(model)}
    node = nodes.get(id(layer))
    hops = (L.Dropout, L.Activation, L.ReLU, L.LeakyReLU, L.ELU)
    while node is not None and node.inputs:
        producer = nodes.get(id(node.inputs[0].node.layer))
        if producer is None or not isinstance(producer.layer, (L.Flatten,) + hops):
            return None
        if isinstance(producer.layer, L.Flatten):
            return _flatten_permutation(nodes, producer)
        node = producer
    return None


def _flatten_permutation(nodes, flatten_node) -> np.ndarray | None:
    shape = tuple(flatten_node.inputs[0].shape[1:])
    if len(shape) < 2:
        return None
    # The layout of the flattened feature map: that of the nearest layer that has one.
    producer = nodes.get(id(flatten_node.inputs[0].node.layer))
    while producer is not None and not hasattr(producer.layer, "data_format") and \
            producer.inputs:
        producer = nodes.get(id(producer.inputs[0].node.layer))
    fmt = getattr(producer.layer, "data_format", "channels_last") if producer else \
        "channels_last"
    torch_shape = (shape[-1],) + shape[:-1] if fmt == "channels_last" else shape
    index = np.arange(int(np.prod(shape))).reshape(torch_shape)
    if fmt == "channels_last":
        index = np.moveaxis(index, 0, -1)
    if not flatten_node.layer._channels_last:
        index = np.moveaxis(index, 0, -1)
    return index.reshape(-1)


def _convert(model, layer, params: dict) -> list[np.ndarray] | None:
    """The layer's weights (in ``layer.weights`` order) from one module, or None."""
    w = params.get("weight")
    bias = [params["bias"]] if getattr(layer, "use_bias", False) and "bias" in params else []
    extra = set(params) - {"weight", "bias", "running_mean", "running_var"}
    if w is None or extra:
        return None
    if isinstance(layer, L.BatchNormalization):
        if "running_mean" not in params or "running_var" not in params or "bias" not in params:
            return None
        out = ([w] if layer.scale else []) + ([params["bias"]] if layer.center else [])
        return out + [params["running_mean"], params["running_var"]]
    if isinstance(layer, L.Dense):
        if w.ndim != 2:
            return None
        kernel = w.T
        order = _flatten_order(model, layer)
        if order is not None and len(order) == kernel.shape[0]:
            kernel = kernel[order]
        return [kernel] + bias
    if isinstance(layer, L.SeparableConv2D):
        return None
    rank = w.ndim - 2
    if rank < 1:
        return None
    to_dojang = tuple(range(2, rank + 2)) + (1, 0)
    if isinstance(layer, L.DepthwiseConv2D):
        c, m = layer.depthwise_kernel.shape[-2:]
        if w.shape[1] != 1:
            return None
        return [w.transpose(to_dojang).reshape(w.shape[2:] + (c, m))] + bias
    return [w.transpose(to_dojang)] + bias


def _fits(model, layer, params) -> list[np.ndarray] | None:
    arrays = _convert(model, layer, params)
    if arrays is None or len(arrays) != len(layer.weights):
        return None
    if any(a.shape != tuple(w.shape) for a, w in zip(arrays, layer.weights)):
        return None
    use_bias = getattr(layer, "use_bias", True)
    if not isinstance(layer, L.BatchNormalization) and ("bias" in params) != bool(use_bias):
        return None
    return arrays


def _describe(params: dict) -> str:
    return ", ".join(f"{k} {tuple(v.shape)}" for k, v in params.items())


def load_torch_state_dict(model, path_or_dict, mapping: dict | None = None) -> None:
    """Copy a PyTorch state dict's weights into the equivalent dojang ``model``, in place.

    Modules are matched to the layers that have weights, in order: a dict's entries in
    their own order, a file's by a numeric-aware sort of the module paths (``0, 3, 7, 10``).
    When that order does not fit (named modules such as ``bn1``, ``conv1``, ``fc`` sort
    alphabetically), each layer takes the first unused module whose shapes fit; or name
    the pairs with ``mapping``.

    Args:
        model: a built dojang model.
        path_or_dict: a ``.safetensors`` file (pickled checkpoints are refused), or a dict
            of tensors or arrays such as ``net.state_dict()``.
        mapping: optional ``{layer_name: module_prefix}`` for some or all layers.

    Raises:
        ValueError: naming the layer and the module for a module that does not fit, a
            layer without a module, or modules left over; a pickled file.
        TypeError: a value that is not a tensor or array.

    Example:
        >>> import numpy as np, dojang as dj
        >>> model = dj.Sequential([dj.layers.Dense(2, input_shape=(3,))])
        >>> sd = {"0.weight": np.ones((2, 3), "f4"), "0.bias": np.zeros(2, "f4")}
        >>> dj.interop.load_torch_state_dict(model, sd)
        >>> model.layers[0].kernel.shape
        (3, 2)
    """
    groups, source = _groups(path_or_dict)
    layers = [layer for layer in model.layers if layer.weights]
    names = {layer.name for layer in layers}
    prefixes = dict(groups)
    for name, prefix in (mapping or {}).items():
        if name not in names:
            raise ValueError(f"load_torch_state_dict: mapping names layer {name!r}, which "
                             f"has no weights in model '{model.name}'. Layers: {sorted(names)}")
        if prefix not in prefixes:
            raise ValueError(f"load_torch_state_dict: mapping names module {prefix!r}, "
                             f"not in {source}. Modules: {list(prefixes)}")
    assigned = _match(model, layers, groups, dict(mapping or {}), source)
    for layer, arrays in assigned:
        layer.set_weights([a.astype(w.dtype) for a, w in zip(arrays, layer.weights)])


def _match(model, layers, groups, mapping, source):
    fixed = {name: prefix for name, prefix in mapping.items()}
    free = [(p, params) for p, params in groups if p not in fixed.values()]
    order = [layer for layer in layers if layer.name not in fixed]
    positional = len(free) == len(order) and all(
        _fits(model, layer, params) is not None for layer, (_, params) in zip(order, free))
    out, used = [], set()
    for layer in layers:
        if layer.name in fixed:
            prefix = fixed[layer.name]
            arrays = _fits(model, layer, dict(groups)[prefix])
        elif positional:
            prefix, params = free[order.index(layer)]
            arrays = _fits(model, layer, params)
        else:
            prefix, arrays = next(((p, a) for p, params in free if p not in used and
                                   (a := _fits(model, layer, params)) is not None), (None, None))
        if arrays is None:
            shapes = ", ".join(f"{w.name.rpartition('/')[2]} {tuple(w.shape)}"
                               for w in layer.weights)
            where = f"does not fit module {prefix!r} ({_describe(dict(groups)[prefix])})" \
                if prefix else "has no unused module of matching shapes"
            raise ValueError(f"load_torch_state_dict: layer '{layer.name}' "
                             f"({type(layer).__name__}: {shapes}) {where} in {source}; pass "
                             f"mapping={{layer_name: module_prefix}}")
        used.add(prefix)
        out.append((layer, arrays))
    left = [p for p, _ in groups if p not in used]
    if left:
        raise ValueError(f"load_torch_state_dict: modules {left} in {source} match no layer "
                         f"of model '{model.name}'")
    return out
