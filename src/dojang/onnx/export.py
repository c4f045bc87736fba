"""``dj.onnx.export``: write a dojang model as an ONNX file that onnxruntime runs.

The graph is built with ``onnx.helper`` from the model's layer walk. Channels-last models
are computed channels-first inside (ONNX's convolutions are NCHW) with channels-last
inputs and outputs by default; the batch dimension is symbolic (``"N"``) and each model
input is one graph input.
"""

from __future__ import annotations

import os

import numpy as np

from dojang.fileio import atomic_write
from dojang.layers.input import InputLayer
from dojang.models import graph
from dojang.onnx._builder import GraphBuilder, to_first, to_last
from dojang.onnx._rules import rule_for

MIN_OPSET = 13


def _check_opset(opset) -> int:
    import onnx

    top = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or \
            not MIN_OPSET <= opset <= top:
        raise ValueError(f"onnx.export: Expected opset to be an int from {MIN_OPSET} to {top} "
                         f"(the installed onnx's newest). Received: opset={opset!r}")
    return int(opset)


def _value_info(helper, name: str, shape, dtype) -> object:
    from onnx import TensorProto

    elem = {np.dtype("float32"): TensorProto.FLOAT, np.dtype("float64"): TensorProto.DOUBLE,
            np.dtype("float16"): TensorProto.FLOAT16}[np.dtype(dtype)]
    dims = ["N" if i == 0 else d for i, d in enumerate(shape)]
    return helper.make_tensor_value_info(name, elem, dims)


def _channels_last_io(tensor, channels_first_io: bool) -> bool:
    """Whether a model input/output is laid out channels-first in the file."""
    return channels_first_io and len(tensor.shape) > 2


def _io_shape(tensor, cf: bool):
    return [tensor.shape[i] for i in to_first(len(tensor.shape))] if cf else list(tensor.shape)


def _emit(b: GraphBuilder, nodes) -> None:
    """Write every layer call of ``nodes``; a nested model's calls are written in place."""
    for node in nodes:
        layer = node.layer
        if isinstance(layer, InputLayer):
            continue
        if graph.is_model(layer):
            inner = graph.walk(layer)
            inner_inputs, inner_outputs = graph.model_inputs(layer), graph.model_outputs(layer)
            for outer, t in zip(node.inputs, inner_inputs):
                b.values[id(t)] = b.values[id(outer)]
            _emit(b, inner)
            for outer, t in zip(node.outputs, inner_outputs):
                b.values[id(outer)] = b.values[id(t)]
            continue
        rule = rule_for(layer)
        if rule is None:
            raise ValueError(f"onnx.export: layer '{layer.name}' ({type(layer).__name__}) "
                             f"cannot be exported to ONNX: it is not a built-in layer with a "
                             f"known ONNX form")
        args = node.inputs if node.multi_input else node.inputs[0]
        rule(b, layer, args, node.outputs[0])


def build_proto(model, opset: int = 17, channels_first_io: bool = False):
    """The ``onnx.ModelProto`` of ``model`` (see ``export``); checked by the ONNX checker."""
    import onnx
    from onnx import helper

    opset = _check_opset(opset)
    nodes = graph.walk(model)
    inputs, outputs = graph.model_inputs(model), graph.model_outputs(model)
    b = GraphBuilder(opset, inputs[0].dtype)
    graph_inputs, graph_outputs = [], []
    for t in inputs:
        name = t.node.layer.name if len(inputs) > 1 else "input"
        cf = _channels_last_io(t, channels_first_io)
        graph_inputs.append(_value_info(helper, name, _io_shape(t, cf), t.dtype))
        b.set(t, name, cf)
    _emit(b, nodes)
    for i, t in enumerate(outputs):
        name = "output" if len(outputs) == 1 else f"output_{i}"
        want_cf = _channels_last_io(t, channels_first_io)
        value, cf = b.get(t)
        if cf != want_cf:
            perm = to_first(len(t.shape)) if want_cf else to_last(len(t.shape))
            value = b.op("Transpose", [value], "io", perm=perm)
        b.nodes.append(helper.make_node("Identity", [value], [name], name=name))
        graph_outputs.append(_value_info(helper, name, _io_shape(t, want_cf), t.dtype))
    body = helper.make_graph(b.nodes, model.name, graph_inputs, graph_outputs,
                             initializer=b.initializers)
    ops = [helper.make_opsetid("", opset)]
    proto = helper.make_model(body, opset_imports=ops, producer_name="dojang",
                              ir_version=helper.find_min_ir_version_for(ops))
    onnx.checker.check_model(proto)
    return proto


def export(model, path, opset: int = 17, channels_first_io: bool = False) -> None:
    """Write ``model`` to ``path`` as an ONNX file, atomically.

    Args:
        model: a built Sequential or functional model (or one the graph walker traces).
        path: the ``.onnx`` file to write.
        opset: the ONNX opset, from 13 to the installed ``onnx``'s newest (default 17).
            Circular padding below opset 19 is written as Slice + Concat.
        channels_first_io: give a channels-last model NCHW inputs and outputs
            (models with ``data_format="channels_first"`` always have them).

    Raises:
        ValueError: an unsupported opset, or a layer with no ONNX form (a user-defined
            layer with its own ``call``), naming the layer and its class.

    Example:
        >>> import dojang as dj, tempfile, os
        >>> model = dj.Sequential([dj.layers.Dense(2, input_shape=(3,))])
        >>> path = os.path.join(tempfile.mkdtemp(), "m.onnx")
        >>> dj.onnx.export(model, path)
        >>> os.path.getsize(path) > 0
        True
    """
    proto = build_proto(model, opset, channels_first_io)
    atomic_write(os.fspath(path), proto.SerializeToString())
