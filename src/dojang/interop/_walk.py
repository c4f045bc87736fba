"""Stand-in for ``dojang.models.graph.walk`` until the graph walker lands on main.

Yields the same ``GraphNode`` shape (layer, inputs, outputs, config, weights) for
Sequential and functional models; it is deleted once ``walk`` exists, so that dojang has
one graph walk.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dojang.layers.input import InputLayer


@dataclass(eq=False)
class GraphNode:
    """One layer call: the layer, its symbolic inputs and outputs, config and weights."""

    layer: object
    inputs: list
    outputs: list
    config: dict = field(default_factory=dict)
    weights: list = field(default_factory=list)


def _node(layer, inputs, outputs) -> GraphNode:
    return GraphNode(layer, list(inputs), list(outputs), layer.get_config(),
                     [(w.name, w) for w in layer.weights])


def walk(model) -> list[GraphNode]:
    """The model's layer calls in topological order (input layers included)."""
    from dojang.models.model import Functional
    from dojang.models.sequential import Sequential

    if isinstance(model, Functional):
        return [_node(t.node.layer, t.node.inputs, [t]) for t in model._order]
    if isinstance(model, Sequential):
        if not model.built:
            raise ValueError(f"model '{model.name}' is not built yet; call it on data or give "
                             f"the first layer input_shape=")
        stack = model._stack
        first = stack[0] if isinstance(stack[0], InputLayer) else \
            InputLayer(model.input_shape[1:], name=f"{model.name}_input")
        x = first.output
        nodes = [_node(first, [], [x])]
        for layer in stack[1:] if stack[0] is first else stack:
            y = layer(x)
            nodes.append(_node(layer, [x], [y]))
            x = y
        return nodes
    raise TypeError(f"Expected a Sequential or functional model. Received: model of type "
                    f"{type(model).__name__}")


def endpoints(model, nodes: list[GraphNode]) -> tuple[list, list]:
    """(model inputs, model outputs) as symbolic tensors of ``nodes``."""
    inputs = [n.outputs[0] for n in nodes if isinstance(n.layer, InputLayer)]
    outputs = list(model.outputs) if hasattr(model, "outputs") else nodes[-1].outputs
    if hasattr(model, "inputs"):
        inputs = list(model.inputs)
    return inputs, outputs
