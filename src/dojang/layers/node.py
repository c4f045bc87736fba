"""Symbolic tensors for the functional API: ``Input()`` and layer calls on them.

A ``KerasTensor`` carries only a shape (batch axis ``None``) and a dtype, plus the
``Node`` that produced it: the layer and the symbolic inputs it was called on. A
functional ``Model(inputs, outputs)`` walks these nodes back from its outputs to find
the graph; no array work happens until the model is called on data.

Each layer keeps its nodes (``layer._inbound_nodes``, one per symbolic call) so that
``layer.input`` and ``layer.output`` can name the tensors of its one call, as Keras does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(eq=False)
class Node:
    """One call of ``layer`` on symbolic ``inputs`` (a KerasTensor or a list of them).

    ``outputs`` holds the KerasTensors the call produced; ``index`` is the call's
    position among the layer's calls (0 for the first).
    """

    layer: object
    inputs: list = field(default_factory=list)
    multi_input: bool = False
    outputs: list = field(default_factory=list)
    index: int = 0


class KerasTensor:
    """A symbolic tensor: a shape with a ``None`` batch axis, a dtype and its producer.

    Its ``name`` is stable: the producing layer's name for that layer's first call
    (``conv2d``), ``conv2d:1`` for its second call, with ``/k`` added for the k-th
    output (k >= 1) of a call with several outputs.

    Example:
        >>> import dojang as dj
        >>> x = dj.Input((28, 28, 1), name="image")
        >>> x.shape, x.name
        ((None, 28, 28, 1), 'image')
    """

    def __init__(self, shape: tuple, dtype, node: Node):
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.node = node
        node.outputs.append(self)
        self._output_index = len(node.outputs) - 1

    @property
    def name(self) -> str:
        name = self.node.layer.name
        if self.node.index:
            name = f"{name}:{self.node.index}"
        return f"{name}/{self._output_index}" if self._output_index else name

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        return (f"<KerasTensor shape={self.shape}, dtype={self.dtype.name}, "
                f"name={self.name}>")


def is_symbolic(inputs) -> bool:
    """True for a KerasTensor or a non-empty list/tuple of them."""
    if isinstance(inputs, KerasTensor):
        return True
    return (isinstance(inputs, (list, tuple)) and len(inputs) > 0
            and all(isinstance(t, KerasTensor) for t in inputs))


def node_attribute(layer, attribute: str):
    """``layer.input``/``layer.output``: the tensors of the layer's one symbolic call.

    One tensor, or a list when the call took (or gave) a list.

    Raises:
        ValueError: when the layer has never been called on symbolic tensors, or has
            been called several times (then the tensors are ambiguous).
    """
    nodes = layer.__dict__.get("_inbound_nodes", [])
    if not nodes:
        raise ValueError(f"layer '{layer.name}' has no {attribute}: it has never been called "
                         f"on a symbolic input. Build the model on dj.Input(...) or give the "
                         f"first layer input_shape=")
    if len(nodes) > 1:
        raise ValueError(f"layer '{layer.name}' has been called {len(nodes)} times, so its "
                         f"{attribute} is ambiguous; use the tensors returned by each call")
    node = nodes[0]
    tensors = node.inputs if attribute == "input" and node.inputs else node.outputs
    if attribute == "input" and not node.multi_input and len(tensors) == 1:
        return tensors[0]
    if attribute == "output" and len(tensors) == 1:
        return tensors[0]
    return list(tensors)
