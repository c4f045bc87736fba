"""One topological walk over any model: ``walk(model) -> list[GraphNode]``.

The summary (shapes, MACs, receptive fields), a functional model's saved config, the
receptive-field tools and the ONNX exporter read a model through this walk, whichever way
the model was made:

- functional (``dj.Model(inputs, outputs)``): the graph of layer calls from the inputs
  to the outputs;
- ``Sequential``: the chain its symbolic build pass made (an ``InputLayer`` first);
- subclassed: traced by calling the model's ``call`` once on symbolic inputs of its build
  shape, so that every built-in layer it calls becomes a node. The model must have been
  built (called on data, or ``build(shape)``) and its ``call`` may use only layer calls on
  the symbolic tensors (no raw ops); otherwise ``walk`` raises ``ValueError``. The trace
  is made once per build shape and reused.

The contract (stable; other modules build on it):

``GraphNode`` fields
    ``layer``: the Layer called; ``inputs``: list of ``KerasTensor`` it was called on
    (empty for an ``InputLayer``); ``outputs``: list of the ``KerasTensor`` it produced;
    ``config``: ``layer.get_config()`` (None when the layer has no config);
    ``weights``: list of ``(name, Tensor)`` pairs in the layer's ``weights`` order, the
    name relative to the layer (``"kernel"``, ``"bias"``; a nested model's are
    ``"conv2d/kernel"``). ``multi_input`` says whether the layer took a list.

Order
    The nodes of the model inputs' ``InputLayer`` (no inputs, one output) come first, in
    ``model_inputs`` order (an unused input too); then every node after the nodes producing
    its inputs, depth first from the outputs in order, each call's inputs in order.

Nesting
    A model used as a layer inside another model is KEPT as one node (its ``layer`` is the
    inner model); walk it again with ``walk(node.layer)`` to look inside.

Sharing
    A layer called twice gives two nodes with the same ``layer`` (and the same weights).

Tensor names
    ``KerasTensor.name`` is stable: the producing layer's name (``conv2d:1`` for a
    layer's second call), usable as a value name by exporters.

Example:
    >>> import dojang as dj
    >>> from dojang.models import graph
    >>> x = dj.Input((8, 8, 3), name="image")
    >>> y = dj.layers.Conv2D(4, 3, name="conv")(x)
    >>> [(n.layer.name, [t.name for t in n.inputs]) for n in graph.walk(dj.Model(x, y))]
    [('image', []), ('conv', ['image'])]
    >>> [name for name, _ in graph.walk(dj.Model(x, y))[1].weights]
    ['kernel', 'bias']
"""

from __future__ import annotations

from dataclasses import dataclass

from dojang.config import no_grad
from dojang.layers.base import _takes_training
from dojang.layers.input import InputLayer
from dojang.layers.node import KerasTensor


@dataclass(frozen=True, eq=False)
class GraphNode:
    """One call of a layer in a model's graph (see the module docstring for the contract)."""

    layer: object
    inputs: list
    outputs: list
    config: dict | None
    weights: list
    multi_input: bool = False

    @property
    def name(self) -> str:
        """The layer's name."""
        return self.layer.name


def is_model(obj) -> bool:
    """True for a ``Model`` of any kind (Sequential, functional, subclassed)."""
    return hasattr(obj, "_graph_io")


def kind(model) -> str:
    """``"sequential"``, ``"functional"`` or ``"subclassed"``."""
    return model._graph_kind


def model_inputs(model) -> list[KerasTensor]:
    """The model's symbolic inputs (one ``KerasTensor`` per input).

    Raises:
        ValueError: if the model is not built, or a subclassed model cannot be traced.
    """
    return list(model._graph_io()[0])


def model_outputs(model) -> list[KerasTensor]:
    """The model's symbolic outputs (one ``KerasTensor`` per output).

    Raises:
        ValueError: if the model is not built, or a subclassed model cannot be traced.
    """
    return list(model._graph_io()[1])


def topological(outputs: list[KerasTensor]) -> list[KerasTensor]:
    """Symbolic tensors in an order where each comes after all of its inputs.

    Iterative depth-first search, so graphs thousands of layers deep are fine.
    """
    order, done, stack = [], set(), [(t, False) for t in reversed(outputs)]
    while stack:
        t, expanded = stack.pop()
        if id(t) in done:
            continue
        if expanded:
            done.add(id(t))
            order.append(t)
            continue
        stack.append((t, True))
        for i in reversed(t.node.inputs):
            if id(i) not in done:
                stack.append((i, False))
    return order


def walk(model) -> list[GraphNode]:
    """The model's layer calls in topological order.

    Args:
        model: a ``Sequential``, functional or subclassed model.

    Returns:
        list of ``GraphNode`` (see the module docstring).

    Raises:
        ValueError: if the model is not built yet, or a subclassed model's ``call`` cannot
            be traced on symbolic inputs.

    Example:
        >>> import dojang as dj
        >>> from dojang.models.graph import walk
        >>> m = dj.Sequential([dj.layers.Dense(2, input_shape=(3,), name="fc")])
        >>> [(n.layer.name, n.outputs[0].shape) for n in walk(m)][1:]
        [('fc', (None, 2))]
    """
    inputs, outputs = model._graph_io()
    first = {id(t) for t in inputs}
    ordered = list(inputs) + [t for t in topological(list(outputs)) if id(t) not in first]
    nodes, seen = [], set()
    for t in ordered:
        node = t.node
        if id(node) in seen:
            continue
        seen.add(id(node))
        nodes.append(GraphNode(node.layer, list(node.inputs), list(node.outputs),
                               _config(node.layer), _weights(node.layer), node.multi_input))
    return nodes


def _config(layer):
    try:
        return layer.get_config()
    except NotImplementedError:
        return None


def _weights(layer) -> list:
    prefix = f"{layer.name}/"
    return [(w.name[len(prefix):] if w.name and w.name.startswith(prefix) else w.name, w)
            for w in layer.weights]


# ------------------------------------------------------------------ subclassed models
def all_layers(model) -> list:
    """``model`` and every layer below it (sublayers, nested models' layers), depth first."""
    out, stack = [], [model]
    while stack:
        layer = stack.pop()
        out.append(layer)
        stack.extend(reversed(layer._sublayers()))
    return out


def forget_nodes(nodes) -> None:
    """Remove ``nodes`` from their layers' calls (a rebuilt graph replaces its old calls)."""
    for node in nodes:
        own = node.layer.__dict__.get("_inbound_nodes", [])
        own[:] = [n for n in own if n is not node]
        for i, n in enumerate(own):
            n.index = i


def trace(model) -> tuple[list[KerasTensor], list[KerasTensor]]:
    """Trace a subclassed model's ``call`` on symbolic inputs: (inputs, outputs).

    The trace is cached on the model for its build shape; a new build shape replaces it
    (and its calls are removed from the layers).

    Raises:
        ValueError: if the model is not built, or its ``call`` does anything but call
            layers on the symbolic tensors.
    """
    shape = model._build_shape
    cached = model.__dict__.get("_trace")
    if cached is not None and cached[0] == shape:
        return cached[1], cached[2]
    if shape is None or not model.built:
        raise ValueError(f"model '{model.name}' is not built yet, so its graph is unknown; "
                         f"call it on data or build(input_shape) first")
    if cached is not None:
        forget_nodes(cached[3])
        model.__dict__.pop("_trace")
    multi = isinstance(shape, list)
    shapes = shape if multi else [shape]
    inputs = [InputLayer(tuple(s[1:]), name=f"{model.name}_input" + (f"_{i}" if multi else ""),
                         dtype=model.dtype).output for i, s in enumerate(shapes)]
    before = {id(layer): len(layer.__dict__.get("_inbound_nodes", []))
              for layer in all_layers(model)}
    kwargs = {"training": False} if _takes_training(type(model)) else {}
    try:
        with no_grad():
            out = model.call(inputs if multi else inputs[0], **kwargs)
        outputs = list(out) if isinstance(out, (list, tuple)) else [out]
        bad = [o for o in outputs if not isinstance(o, KerasTensor)]
        if bad:
            raise TypeError(f"call returned {type(bad[0]).__name__}, not a layer's output")
    except Exception as e:  # any failure of the user's call on symbolic tensors means the same
        forget_nodes(_new_nodes(model, before))
        raise ValueError(f"cannot trace model '{model.name}' into layers: its call must only "
                         f"call layers on symbolic tensors ({type(e).__name__}: {e})") from None
    model.__dict__["_trace"] = (shape, inputs, outputs, _new_nodes(model, before))
    return inputs, outputs


def _new_nodes(model, before: dict) -> list:
    return [n for layer in all_layers(model)
            for n in layer.__dict__.get("_inbound_nodes", [])[before.get(id(layer), 0):]]
