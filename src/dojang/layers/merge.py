"""Merge layers: Add (residual connections) and Concatenate (branches side by side)."""

from __future__ import annotations

from dojang import ops
from dojang.layers.base import Layer, format_shape
from dojang.validation import is_int


class _Merge(Layer):
    def _check_input_shape(self, shapes) -> None:
        if not isinstance(shapes, list) or len(shapes) < 2:
            got = format_shape(shapes) if isinstance(shapes, tuple) else repr(shapes)
            raise ValueError(f"layer '{self.name}' expects a list of at least 2 inputs, "
                             f"received {got}")
        self._check_shapes([tuple(s) for s in shapes])


class Add(_Merge):
    """Elementwise sum of a list of inputs of the same shape.

    Input shape: a list of ``(N, ...)`` of one shape. Output shape: the same.

    Raises:
        ValueError: fewer than two inputs, or shapes that differ.

    Example:
        >>> import numpy as np, dojang as dj
        >>> dj.layers.Add()([np.ones((1, 2)), np.ones((1, 2))]).numpy()
        array([[2., 2.]], dtype=float32)
    """

    def _check_shapes(self, shapes) -> None:
        first = shapes[0]
        for s in shapes[1:]:
            if len(s) != len(first) or any(a is not None and b is not None and a != b
                                           for a, b in zip(s[1:], first[1:])):
                raise ValueError(f"layer '{self.name}' expects inputs of one shape, received "
                                 f"shapes {[format_shape(t) for t in shapes]}")

    def call(self, inputs, training: bool = False):
        out = inputs[0]
        for x in inputs[1:]:
            out = out + x
        return out

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])


class Concatenate(_Merge):
    """Join a list of inputs along ``axis`` (default -1, the channels).

    Input shape: a list of ``(N, ...)`` equal except on ``axis``. Output shape: the
    same with ``axis`` the sum of the inputs' sizes.

    Raises:
        ValueError: fewer than two inputs or shapes that differ off ``axis``.

    Example:
        >>> import numpy as np, dojang as dj
        >>> dj.layers.Concatenate()([np.ones((1, 4, 4, 2)), np.ones((1, 4, 4, 3))]).shape
        (1, 4, 4, 5)
    """

    def __init__(self, axis: int = -1, **kwargs):
        super().__init__(**kwargs)
        if not is_int(axis):
            raise TypeError(f"Concatenate: Expected axis to be an int. Received: axis={axis!r}")
        self.axis = int(axis)

    def _check_shapes(self, shapes) -> None:
        rank = len(shapes[0])
        ok = -rank <= self.axis < rank and self.axis % rank != 0
        axis = self.axis % rank if ok else None
        for s in shapes:
            if not ok or len(s) != rank or any(
                    a is not None and b is not None and a != b
                    for i, (a, b) in enumerate(zip(s, shapes[0])) if i not in (0, axis)):
                raise ValueError(f"layer '{self.name}' expects inputs that match except on "
                                 f"axis {self.axis}, received shapes "
                                 f"{[format_shape(t) for t in shapes]}")

    def call(self, inputs, training: bool = False):
        return ops.concatenate(list(inputs), axis=self.axis)

    def compute_output_shape(self, input_shape):
        axis = self.axis % len(input_shape[0])
        out = list(input_shape[0])
        sizes = [s[axis] for s in input_shape]
        out[axis] = None if None in sizes else sum(sizes)
        return tuple(out)

    def get_config(self) -> dict:
        return {**super().get_config(), "axis": self.axis}
