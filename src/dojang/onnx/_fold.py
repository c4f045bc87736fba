"""Constant folding for ``dj.onnx.load``: small index arithmetic exporters leave behind.

PyTorch's exporter computes a Pad's widths with ConstantOfShape, Concat, Reshape, Slice,
Transpose and Cast nodes on constants. When every input of such a node is a constant,
the loader evaluates it here, in NumPy, with each result bounded in size (the file is
untrusted: a ConstantOfShape may ask for any shape).
"""

from __future__ import annotations

import math

import numpy as np

MAX_FOLDED = 1 << 20


class FoldError(ValueError):
    """A constant node that cannot be evaluated (the loader adds the node's name)."""


def _bounded(shape) -> tuple:
    shape = tuple(int(s) for s in np.reshape(shape, -1))
    if any(s < 0 for s in shape) or math.prod(shape) > MAX_FOLDED:
        raise FoldError(f"constant of shape {shape} (at most {MAX_FOLDED} values are folded)")
    return shape


def _slice(data, starts, ends, axes=None, steps=None):
    axes = range(len(starts)) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    index = [slice(None)] * data.ndim
    for a, s, e, st in zip(axes, starts, ends, steps):
        index[int(a)] = slice(int(s), int(e), int(st))
    return data[tuple(index)]


def _reshape(data, shape):
    shape = [int(s) for s in shape]
    shape = [data.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return data.reshape(shape)


def fold(op: str, inputs: list, attrs: dict) -> np.ndarray:
    """Evaluate ``op`` on constant ``inputs``; FoldError if it is not a foldable op."""
    from onnx import helper

    if op == "ConstantOfShape":
        value = attrs.get("value")
        fill = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)
        return np.full(_bounded(inputs[0]), fill[0], dtype=fill.dtype)
    if op == "Concat":
        return np.concatenate(inputs, axis=int(attrs["axis"]))
    if op == "Reshape":
        _bounded(inputs[1].shape)
        return _reshape(inputs[0], inputs[1])
    if op == "Slice":
        return _slice(*inputs)
    if op == "Transpose":
        return np.transpose(inputs[0], attrs.get("perm"))
    if op == "Cast":
        return inputs[0].astype(helper.tensor_dtype_to_np_dtype(int(attrs["to"])))
    if op == "Unsqueeze":
        axes = attrs.get("axes", inputs[1] if len(inputs) > 1 else None)
        return np.expand_dims(inputs[0], tuple(int(a) for a in axes))
    if op == "Squeeze":
        axes = attrs.get("axes", inputs[1] if len(inputs) > 1 else None)
        return np.squeeze(inputs[0], None if axes is None else tuple(int(a) for a in axes))
    if op == "Gather":
        return np.take(inputs[0], inputs[1], axis=int(attrs.get("axis", 0)))
    raise FoldError(f"op {op!r} on constants is not folded")
