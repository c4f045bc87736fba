"""``Input()``: the symbolic entry point of a functional model, and its ``InputLayer``."""

from __future__ import annotations

import numpy as np

from dojang.layers.base import InputSpec, Layer
from dojang.layers.node import KerasTensor, Node
from dojang.validation import is_int


def _check_shape(shape, owner: str) -> tuple:
    if not isinstance(shape, (tuple, list)) or not all(
            s is None or (is_int(s) and s >= 1) for s in shape):
        raise ValueError(f"{owner}: Expected shape to be a tuple of positive ints or None "
                         f"(one example, no batch axis). Received: shape={shape!r}")
    return tuple(None if s is None else int(s) for s in shape)


class InputLayer(Layer):
    """The layer behind ``Input()``: passes its input through unchanged.

    Args:
        shape: shape of one example (no batch axis).
        batch_size: optional fixed batch size.

    Example:
        >>> import dojang as dj
        >>> dj.layers.InputLayer((4,)).output.shape
        (None, 4)
    """

    def __init__(self, shape=None, batch_size: int | None = None, **kwargs):
        if shape is None and kwargs.get("input_shape") is not None:
            shape = kwargs.pop("input_shape")
        super().__init__(**kwargs)
        self.shape = _check_shape(shape, "InputLayer")
        if batch_size is not None and (not is_int(batch_size) or batch_size < 1):
            raise ValueError(f"InputLayer: Expected batch_size to be a positive int or None. "
                             f"Received: batch_size={batch_size!r}")
        self.batch_size = batch_size
        self.built = True
        self.input_spec = InputSpec(ndim=len(self.shape) + 1, axes={
            i + 1: s for i, s in enumerate(self.shape) if s is not None})
        out_shape = (batch_size,) + self.shape
        self._io_shapes = (out_shape, out_shape)
        node = Node(self, [])
        self._inbound_nodes = [node]
        KerasTensor(out_shape, self.dtype, node)

    def call(self, inputs, training: bool = False):
        return inputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("input_shape", None)
        return {**config, "shape": list(self.shape), "batch_size": self.batch_size}


def Input(shape, batch_size: int | None = None, name: str | None = None,  # noqa: N802
          dtype=None) -> KerasTensor:
    """A symbolic input of ``shape`` (one example); call layers on it to build a graph.

    Args:
        shape: shape of one example, e.g. ``(28, 28, 1)``; ``None`` for a free size.
        batch_size: optional fixed batch size.
        name: name of the input layer.
        dtype: dtype the model computes in (default float32).

    Output shape: ``(batch_size, *shape)``.

    Example:
        >>> import dojang as dj
        >>> x = dj.Input((8,))
        >>> y = dj.layers.Dense(2)(x)
        >>> dj.Model(x, y).output_shape
        (None, 2)
    """
    return InputLayer(shape, batch_size=batch_size, name=name,
                      dtype=None if dtype is None else np.dtype(dtype)).output
