"""``dj.onnx.load``: an ONNX CNN graph as a dojang functional model that trains further.

The file is untrusted. It is read whole (at most ``MAX_FILE_BYTES``), parsed without
following external-data paths, and checked before any array is made: every tensor's
declared size must match the bytes it holds, external data must lie inside the model's
folder and inside its file, input sizes are bounded, and an op dojang cannot express is
refused by name. The converted model is run once on zeros against nothing but shapes;
its numbers are the ONNX graph's weights, taken as they are.
"""

from __future__ import annotations

import math
import os

import numpy as np

from dojang.onnx import _import_rules as R
from dojang.onnx._fold import FoldError, fold

MAX_FILE_BYTES = 2**31 - 1  # protobuf's own limit
MAX_NODES = 100_000
MAX_INPUT_ELEMENTS = 2**31
_FOLDABLE = ("ConstantOfShape", "Concat", "Reshape", "Slice", "Transpose", "Cast", "Unsqueeze",
             "Squeeze", "Gather")
_ELEMENT_ARRAYS = ("float_data", "int32_data", "int64_data", "double_data", "uint64_data")


class _Source:
    def __init__(self, path: str):
        self.path = path
        self.folder = os.path.dirname(os.path.abspath(path))

    def error(self, message: str) -> ValueError:
        return ValueError(f"onnx.load: {self.path}: {message}")


def _read(path, source: _Source):
    import onnx
    from google.protobuf.message import DecodeError

    from dojang.fileio import read_capped

    data = read_capped(path, MAX_FILE_BYTES, source=f"onnx.load: {source.path}")
    try:
        proto = onnx.load_model_from_string(data)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise source.error(f"not a valid ONNX file (truncated or corrupted?): {e}") from None
    if not proto.HasField("graph") or not proto.graph.node:
        raise source.error("not a valid ONNX file: it holds no graph (truncated?)")
    if len(proto.graph.node) > MAX_NODES:
        raise source.error(f"graph of {len(proto.graph.node)} nodes (limit {MAX_NODES})")
    return proto


def _external(tensor, source: _Source, nbytes: int) -> bytes:
    entries = {e.key: e.value for e in tensor.external_data}
    location = entries.get("location", "")
    full = os.path.realpath(os.path.join(source.folder, location))
    if not location or os.path.isabs(location) or \
            os.path.commonpath([full, os.path.realpath(source.folder)]) != \
            os.path.realpath(source.folder):
        raise source.error(f"tensor {tensor.name!r}: external data path {location!r} points "
                           f"outside the model's folder; refusing to read it")
    try:
        offset, length = int(entries.get("offset", 0)), entries.get("length")
        size = os.path.getsize(full)
    except (ValueError, OSError) as e:
        raise source.error(f"tensor {tensor.name!r}: bad external data ({e})") from None
    length = size - offset if length is None else int(length)
    if offset < 0 or length < 0 or offset + length > size:
        raise source.error(f"tensor {tensor.name!r}: external data range "
                           f"[{offset}, {offset + length}) lies outside {location!r} "
                           f"({size} bytes)")
    if length != nbytes:
        raise source.error(f"tensor {tensor.name!r} declares dims {list(tensor.dims)} "
                           f"({nbytes} bytes) but its external data holds {length} bytes")
    with open(full, "rb") as f:
        f.seek(offset)
        return f.read(length)


def _array(tensor, source: _Source) -> np.ndarray:
    """A tensor proto as an array, after checking its declared size against its data."""
    from onnx import TensorProto, helper, numpy_helper

    dims = list(tensor.dims)
    if any(d < 0 for d in dims):
        raise source.error(f"tensor {tensor.name!r} has negative dimensions {dims}")
    count = math.prod(dims)
    try:
        dtype = helper.tensor_dtype_to_np_dtype(tensor.data_type)
    except (KeyError, ValueError):
        raise source.error(f"tensor {tensor.name!r} has unknown data type "
                           f"{tensor.data_type}") from None
    if tensor.data_type == TensorProto.STRING:
        raise source.error(f"tensor {tensor.name!r} holds strings")
    if tensor.data_location == TensorProto.EXTERNAL:
        raw = _external(tensor, source, count * dtype.itemsize)
        return np.frombuffer(raw, dtype=dtype.newbyteorder("<")).reshape(dims).astype(dtype)
    if tensor.HasField("raw_data"):
        held = len(tensor.raw_data) / dtype.itemsize
    else:
        held = max(len(getattr(tensor, f)) for f in _ELEMENT_ARRAYS)
    if held != count:
        raise source.error(f"tensor {tensor.name!r} declares dims {dims} ({count} values) "
                           f"but holds {held:g}; truncated or absurd dimensions")
    return numpy_helper.to_array(tensor)


def _inputs(graph, initializers: set, source: _Source):
    from dojang.layers.input import Input

    out = []
    for value in graph.input:
        if value.name in initializers:
            continue
        kind = value.type.WhichOneof("value")
        if kind != "tensor_type":
            raise source.error(f"input {value.name!r} is not a tensor")
        dims = []
        for d in value.type.tensor_type.shape.dim:
            v = d.dim_value if d.HasField("dim_value") else None
            if v is not None and not 0 < v <= MAX_INPUT_ELEMENTS:
                raise source.error(f"input {value.name!r} has an absurd dimension {v}")
            dims.append(v)
        if len(dims) < 2:
            raise source.error(f"input {value.name!r} needs a batch axis and data axes; "
                               f"received rank {len(dims)}")
        known = math.prod(v for v in dims[1:] if v is not None)
        if known > MAX_INPUT_ELEMENTS:
            raise source.error(f"input {value.name!r} has {known} values per example "
                               f"(limit {MAX_INPUT_ELEMENTS})")
        from onnx import helper

        dtype = helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)
        if dtype.kind != "f":
            raise source.error(f"input {value.name!r} has dtype {dtype}; dojang models take "
                               f"float inputs")
        tensor = Input(tuple(dims[1:]), dtype=dtype)
        out.append((value.name, R.Sym(tensor, tuple(range(len(dims))))))
    return out


def _attrs(node, source: _Source) -> dict:
    from onnx import helper

    out = {}
    for a in node.attribute:
        if a.type == a.STRING:
            out[a.name] = a.s.decode("utf-8", "replace")
        elif a.type == a.TENSOR:
            out[a.name] = _array(a.t, source)
        elif a.type in (a.INT, a.INTS, a.FLOAT, a.FLOATS):
            out[a.name] = helper.get_attribute_value(a)
        else:
            raise R.Unsupported(f"attribute {a.name!r} of an unsupported kind")
    return out


class _Converter:
    def __init__(self, source: _Source, opset: int):
        self.source, self.opset = source, opset
        self.values: dict = {}

    def const(self, name: str, optional: bool = False):
        if not name:
            if optional:
                return None
            raise R.Unsupported("a required input is missing")
        value = self.values.get(name)
        if not isinstance(value, np.ndarray):
            if optional and value is None:
                return None
            raise R.Unsupported(f"input {name!r} must be a constant (a weight)")
        return value

    def sym(self, name: str) -> R.Sym:
        value = self.values.get(name)
        if isinstance(value, R.Pending):
            value = self.settle(value)
        if not isinstance(value, R.Sym):
            raise R.Unsupported(f"input {name!r} must be a tensor computed from the inputs")
        return value

    def settle(self, pending: R.Pending) -> R.Sym:
        if pending.kind == "matmul":
            return R.dense(pending.source, pending.data, None)
        raise R.Unsupported("a reflect/edge/wrap Pad that does not feed a Conv")

    def run(self, node) -> None:
        op, ins, attrs = node.op_type, list(node.input), _attrs(node, self.source)
        if op == "Constant":
            if not isinstance(attrs.get("value"), np.ndarray):
                raise R.Unsupported("Constant other than a tensor value")
            self.values[node.output[0]] = attrs["value"]
            return
        if op in ("Identity", "Dropout"):
            self.values[node.output[0]] = self.values[ins[0]]
            return
        given = [self.values.get(n) for n in ins if n]
        if op in _FOLDABLE and given and all(isinstance(v, np.ndarray) for v in given):
            try:
                self.values[node.output[0]] = fold(op, given, attrs)
            except (FoldError, IndexError, TypeError, ValueError) as e:
                raise R.Unsupported(f"constant arithmetic failed: {e}") from None
            return
        self.values[node.output[0]] = self.convert(op, ins, attrs)

    def convert(self, op: str, ins: list, attrs: dict):
        c = self.const
        if op == "Transpose":
            value = self.values.get(ins[0])
            perm = attrs.get("perm")
            if isinstance(value, np.ndarray):
                return value.transpose(perm)
            x = self.sym(ins[0])
            perm = perm or list(reversed(range(x.rank)))
            return R.Sym(x.tensor, tuple(x.perm[p] for p in perm))
        if op == "Conv":
            pending = self.values.get(ins[0])
            pad = pending if isinstance(pending, R.Pending) and pending.kind == "pad" else None
            x = pad.source if pad is not None else self.sym(ins[0])
            return R.conv(x, c(ins[1]), c(ins[2]) if len(ins) > 2 and ins[2] else None,
                          attrs, pad)
        if op == "ConvTranspose":
            return R.conv_transpose(self.sym(ins[0]), c(ins[1]),
                                    c(ins[2]) if len(ins) > 2 and ins[2] else None, attrs)
        if op in ("MaxPool", "AveragePool"):
            return R.pool(self.sym(ins[0]), op, attrs)
        if op in ("GlobalAveragePool", "GlobalMaxPool"):
            return R.global_pool(self.sym(ins[0]), op)
        if op == "BatchNormalization":
            return R.batch_norm(self.sym(ins[0]), [c(n) for n in ins[1:5]], attrs)
        if op == "Gemm":
            return R.gemm(self.sym(ins[0]), c(ins[1]),
                          c(ins[2]) if len(ins) > 2 and ins[2] else None, attrs)
        if op == "MatMul":
            weight = c(ins[1])
            if weight.ndim != 2:
                raise R.Unsupported("MatMul by something other than a weight matrix")
            return R.Pending("matmul", self.sym(ins[0]), weight)
        if op == "Add":
            return self.add(ins)
        if op == "Concat":
            return R.merge([self.sym(n) for n in ins], op, int(attrs["axis"]))
        if op == "Flatten":
            return R.flatten(self.sym(ins[0]), int(attrs.get("axis", 1)))
        if op == "Reshape":
            return R.reshape(self.sym(ins[0]), c(ins[1]))
        if op in ("Relu", "Sigmoid", "Tanh", "Elu", "LeakyRelu", "Gelu", "Softmax",
                  "LogSoftmax"):
            return R.elementwise(self.sym(ins[0]), op, attrs, self.opset)
        if op == "Clip":
            low = c(ins[1], True) if len(ins) > 1 else attrs.get("min")
            high = c(ins[2], True) if len(ins) > 2 else attrs.get("max")
            return R.clip(self.sym(ins[0]), low, high)
        if op == "Pad":
            value = c(ins[2], True) if len(ins) > 2 else None
            if len(ins) > 3 and ins[3]:
                raise R.Unsupported("Pad with axes")
            return R.pad(self.sym(ins[0]), c(ins[1]), attrs.get("mode", "constant"), value)
        if op == "Slice":
            opt = [c(n, True) if n else None for n in ins[3:5]] + [None] * 2
            return R.crop(self.sym(ins[0]), c(ins[1]), c(ins[2]), opt[0], opt[1])
        if op == "Resize":
            scales = c(ins[2], True) if len(ins) > 2 and ins[2] else None
            sizes = c(ins[3], True) if len(ins) > 3 and ins[3] else None
            return R.resize(self.sym(ins[0]), scales, sizes, attrs)
        raise R.Unsupported(f"op {op!r} has no dojang layer")

    def add(self, ins: list):
        values = [self.values.get(n) for n in ins]
        consts = [v for v in values if isinstance(v, np.ndarray)]
        if not consts:
            return R.merge([self.sym(n) for n in ins], "Add")
        other = next((v for v in values if not isinstance(v, np.ndarray)), None)
        if len(consts) == 1 and isinstance(other, R.Pending) and other.kind == "matmul" and \
                consts[0].size == other.data.shape[1]:
            return R.dense(other.source, other.data, consts[0].reshape(-1))
        raise R.Unsupported("Add of a constant other than a MatMul's bias")


def load(path):
    """Read an ONNX file as a dojang functional model (its layers train like any others).

    Supported ops: Conv, ConvTranspose, MaxPool, AveragePool, the global pools,
    BatchNormalization, Gemm, MatMul (+ Add of a bias), Flatten, Reshape, Transpose,
    Add, Concat, Pad, Slice (crops), Resize (integer nearest upsampling), Relu, Clip,
    Sigmoid, Tanh, Elu, LeakyRelu, Gelu, Softmax, LogSoftmax, Identity, Dropout,
    Constant. The model keeps the graph's layout: a PyTorch export becomes a
    ``channels_first`` model, and dojang's own export of a channels-last model comes back
    channels-last.

    Args:
        path: the ``.onnx`` file; external data must lie in its folder.

    Raises:
        ValueError: naming the file and the problem: not ONNX (truncated or corrupted),
            tensors whose declared sizes do not match their data, absurd input sizes,
            external data outside the folder, or a node dojang cannot express (naming
            the node and its op).

    Example:
        >>> import dojang as dj, tempfile, os
        >>> m = dj.Sequential([dj.layers.Dense(2, input_shape=(3,))])
        >>> p = os.path.join(tempfile.mkdtemp(), "m.onnx")
        >>> dj.onnx.export(m, p)
        >>> dj.onnx.load(p).count_params()
        8
    """
    from dojang.models import Model

    source = _Source(os.fspath(path))
    proto = _read(source.path, source)
    graph = proto.graph
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None:
        raise source.error("no default-domain opset import")
    conv = _Converter(source, opset)
    for tensor in graph.initializer:
        conv.values[tensor.name] = _array(tensor, source)
    inputs = _inputs(graph, set(conv.values), source)
    if not inputs:
        raise source.error("the graph has no data input")
    conv.values.update(inputs)
    for node in graph.node:
        if node.domain not in ("", "ai.onnx"):
            raise source.error(f"node {node.name!r}: op {node.domain}.{node.op_type} is "
                               f"not in the standard ONNX domain")
        try:
            missing = [n for n in node.input if n and n not in conv.values]
            if missing:
                raise R.Unsupported(f"input {missing[0]!r} is not computed before it")
            conv.run(node)
        except R.Unsupported as e:
            raise source.error(f"node {node.name!r} ({node.op_type}): {e}") from None
        except (TypeError, ValueError) as e:
            raise source.error(f"node {node.name!r} ({node.op_type}) does not fit dojang's "
                               f"layer: {e}") from None
    outputs = []
    for value in graph.output:
        try:
            sym = conv.sym(value.name)
        except R.Unsupported as e:
            raise source.error(f"output {value.name!r}: {e}") from None
        if sym.perm != tuple(range(sym.rank)) and not R._plain_order(sym):
            raise source.error(f"output {value.name!r} is a permuted view of a dojang tensor "
                               f"(axes {sym.perm}); dojang has no transpose layer")
        outputs.append(sym.tensor)
    xs = [s.tensor for _, s in inputs]
    return Model(xs if len(xs) > 1 else xs[0], outputs if len(outputs) > 1 else outputs[0],
                 name=_model_name(graph.name))


def _model_name(name: str) -> str:
    clean = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name)[:64]
    return clean or "onnx_model"
