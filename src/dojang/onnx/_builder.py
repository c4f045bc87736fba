"""The ONNX graph under construction, and where each dojang tensor lives in it.

Channels-last tensors are computed channels-first inside the graph (ONNX's convolution
and pooling are NCHW). Each symbolic tensor of the model maps to an ONNX value and a flag
``cf``: True when that value holds the tensor with its channel axis moved to position 1
(``transpose(x, (0, r-1, 1, ..., r-2))``), False when it holds the tensor as dojang does.
Transposes are inserted only where a layer needs the other arrangement, once per tensor.
"""

from __future__ import annotations

import numpy as np

INT64_MAX = np.iinfo(np.int64).max


def to_first(rank: int) -> list[int]:
    """Permutation moving the last axis to position 1: NHWC -> NCHW."""
    return [0, rank - 1] + list(range(1, rank - 1))


def to_last(rank: int) -> list[int]:
    """Permutation moving axis 1 to the end: NCHW -> NHWC."""
    return [0] + list(range(2, rank)) + [1]


def physical_axis(axis: int, rank: int, cf: bool) -> int:
    """Where dojang's ``axis`` of a rank-``rank`` tensor sits in its ONNX value."""
    axis %= rank
    return to_first(rank).index(axis) if cf else axis


class GraphBuilder:
    """Nodes, initializers and the tensor -> (ONNX value, cf) map of one export.

    Args:
        opset: the ONNX opset being written (some ops depend on it).
        dtype: the model's float dtype, that of every float constant.
    """

    def __init__(self, opset: int, dtype=np.float32):
        from onnx import helper, numpy_helper

        self._helper, self._numpy_helper = helper, numpy_helper
        self.opset = opset
        self.dtype = np.dtype(dtype)
        self.nodes: list = []
        self.initializers: list = []
        self.values: dict[int, tuple[str, bool, int]] = {}
        self._count = 0
        self._moved: dict[tuple[str, str], str] = {}

    def fresh(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, array, hint: str) -> str:
        name = self.fresh(hint)
        array = np.array(array, order="C")  # keeps 0-d arrays 0-d
        self.initializers.append(self._numpy_helper.from_array(array, name))
        return name

    def ints(self, values, hint: str = "shape") -> str:
        return self.const(np.asarray(values, dtype=np.int64), hint)

    def floats(self, values, hint: str) -> str:
        return self.const(np.asarray(values, dtype=self.dtype), hint)

    def op(self, op_type: str, inputs: list[str], hint: str, **attrs) -> str:
        out = self.fresh(hint)
        self.nodes.append(self._helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    # tensors ------------------------------------------------------------------------
    def set(self, tensor, name: str, cf: bool) -> None:
        self.values[id(tensor)] = (name, cf and len(tensor.shape) > 2, len(tensor.shape))

    def get(self, tensor) -> tuple[str, bool]:
        name, cf, _ = self.values[id(tensor)]
        return name, cf

    def _transpose(self, name: str, perm: list[int], key: str) -> str:
        if (name, key) not in self._moved:
            self._moved[(name, key)] = self.op("Transpose", [name], key, perm=perm)
        return self._moved[(name, key)]

    def native(self, tensor) -> str:
        """The ONNX value holding ``tensor`` exactly as dojang lays it out."""
        name, cf, rank = self.values[id(tensor)]
        return self._transpose(name, to_last(rank), "to_last") if cf else name

    def channels_first(self, tensor) -> str:
        """The ONNX value holding a channels-last ``tensor`` with its channels at axis 1."""
        name, cf, rank = self.values[id(tensor)]
        return name if cf else self._transpose(name, to_first(rank), "to_first")

    def spatial_input(self, tensor, channels_last: bool) -> str:
        """The NC... value an ONNX convolution or pooling reads, for either data format."""
        return self.channels_first(tensor) if channels_last else self.native(tensor)

    def same_layout(self, tensors) -> tuple[list[str], bool]:
        """Values of ``tensors`` in one arrangement (channels-first if all are)."""
        cfs = [self.get(t)[1] for t in tensors]
        if all(cfs):
            return [self.get(t)[0] for t in tensors], True
        return [self.native(t) for t in tensors], False
