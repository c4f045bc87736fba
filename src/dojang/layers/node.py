"""Symbolic tensors for the functional API: ``Input()`` and layer calls on them.

A ``KerasTensor`` carries only a shape (batch axis ``None``) and a dtype, plus the
``Node`` that produced it: the layer and the symbolic inputs it was called on. A
functional ``Model(inputs, outputs)`` walks these nodes back from its outputs to find
the graph; no array work happens until the model is called on data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(eq=False)
class Node:
    """One call of ``layer`` on symbolic ``inputs`` (a KerasTensor or a list of them)."""

    layer: object
    inputs: list = field(default_factory=list)
    multi_input: bool = False


class KerasTensor:
    """A symbolic tensor: a shape with a ``None`` batch axis, a dtype and its producer.

    Example:
        >>> import dojang as dj
        >>> x = dj.Input((28, 28, 1))
        >>> x.shape
        (None, 28, 28, 1)
    """

    def __init__(self, shape: tuple, dtype, node: Node):
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.node = node

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        return (f"<KerasTensor shape={self.shape}, dtype={self.dtype.name}, "
                f"name={self.node.layer.name}>")


def is_symbolic(inputs) -> bool:
    """True for a KerasTensor or a non-empty list/tuple of them."""
    if isinstance(inputs, KerasTensor):
        return True
    return (isinstance(inputs, (list, tuple)) and len(inputs) > 0
            and all(isinstance(t, KerasTensor) for t in inputs))
