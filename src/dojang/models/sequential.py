"""``Sequential``: a plain stack of layers, each feeding the next."""

from __future__ import annotations

from dojang.layers.base import Layer
from dojang.layers.input import InputLayer
from dojang.layers.node import KerasTensor
from dojang.models.graph import forget_nodes
from dojang.models.model import Model, deserialize_layer


class Sequential(Model):
    """A model that applies its layers one after another.

    The model builds (creates every weight) as soon as the input shape is known: from
    ``input_shape=`` on the first layer, an ``Input``/``InputLayer`` added first, or the
    first batch of data.

    Args:
        layers: list of layers (more can be added with ``add``).
        name: model name (default 'sequential', 'sequential_1', ...).

    Raises:
        TypeError: if something other than a layer is added.

    Example:
        >>> import dojang as dj
        >>> model = dj.Sequential([dj.layers.Dense(4, input_shape=(3,)), dj.layers.Dense(1)])
        >>> model.count_params()
        21
    """

    _graph_kind = "sequential"

    def __init__(self, layers=None, *, name: str | None = None, trainable: bool = True,
                 **kwargs):
        super().__init__(name=name, trainable=trainable, **kwargs)
        self._stack: list[Layer] = []
        self._own_nodes: list = []  # the layer calls of the symbolic pass
        self._ends = None  # (input, output) KerasTensors of the symbolic pass
        for layer in layers or []:
            self.add(layer)

    def add(self, layer) -> None:
        """Append a layer (or an ``Input()`` tensor, which fixes the input shape)."""
        if isinstance(layer, KerasTensor) and isinstance(layer.node.layer, InputLayer):
            layer = layer.node.layer
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add: Expected a layer. Received: {layer!r} "
                            f"of type {type(layer).__name__}")
        if isinstance(layer, InputLayer) and self._stack:
            raise ValueError("Sequential.add: an InputLayer can only be the first layer")
        if layer._device != self._device:
            layer.to(self._device)
        self._stack.append(layer)
        self.__dict__["_tracked"] = list(self._stack)
        try:
            if self.built:  # one more symbolic call on the chain's end
                out = layer(self._ends[1])
                self._own_nodes.append(out.node)
                self._ends = (self._ends[0], out)
            elif isinstance(layer, InputLayer) or (
                    len(self._stack) == 1 and layer._batch_input_shape is not None):
                self.build(layer._batch_input_shape if not isinstance(layer, InputLayer)
                            else (layer.batch_size,) + layer.shape)
        except (ValueError, TypeError):
            self._stack.pop()  # a layer that does not fit is not kept
            self.__dict__["_tracked"] = list(self._stack)
            raise

    def pop(self) -> Layer:
        """Remove and return the last layer.

        Raises:
            ValueError: if the model has no layers.
        """
        if not self.layers:
            raise ValueError(f"Sequential.pop: model '{self.name}' has no layers to remove")
        layer = self._stack.pop()
        self.__dict__["_tracked"] = list(self._stack)
        if self.built and self._own_nodes and self._own_nodes[-1].layer is layer:
            forget_nodes([self._own_nodes.pop()])
            end = self._own_nodes[-1].outputs[0] if self._own_nodes else self._ends[0]
            self._ends = (self._ends[0], end)
        return layer

    def build(self, input_shape) -> None:
        self._input_shape = (None,) + tuple(input_shape[1:])
        self._symbolic_pass()
        self.built = True

    def _symbolic_pass(self) -> None:
        """Build every layer by running the stack on a symbolic input (no array work).

        The calls replace those of the previous pass, so each layer keeps one call
        (``layer.output``) and the model's graph is the chain from its input.
        """
        forget_nodes(self._own_nodes)
        self._own_nodes = []
        first = self._stack[0] if self._stack else None
        if isinstance(first, InputLayer):
            x, rest = first.output, self._stack[1:]
        else:
            if getattr(self, "_auto_input", None) is None or \
                    self._auto_input.shape != self._input_shape[1:]:
                self._auto_input = InputLayer(self._input_shape[1:], name=f"{self.name}_input")
            x, rest = self._auto_input.output, self._stack
        start = x
        for layer in rest:
            x = layer(x)
            self._own_nodes.append(x.node)
        self._ends = (start, x)

    def _graph_io(self) -> tuple[list, list]:
        if not self.built or self._ends is None:
            raise ValueError(f"model '{self.name}' is not built yet, so it has no graph; call "
                             f"it on data or give the first layer input_shape=")
        return [self._ends[0]], [self._ends[1]]

    def _check_input_shape(self, shapes) -> None:
        if self._stack:
            self._stack[0]._check_input_shape(shapes)

    def call(self, inputs, training: bool = False):
        x = inputs
        for layer in self._stack:
            x = layer(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.layers:
            shape = tuple(layer.compute_output_shape(shape))
        return shape

    @property
    def input_shape(self):
        return getattr(self, "_input_shape", None)

    def get_config(self) -> dict:
        config = {"name": self.name, "trainable": self.trainable,
                  "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()}
                             for layer in self._stack]}
        if self.built and not isinstance(self._stack[0], InputLayer):
            config["build_input_shape"] = list(self._input_shape)
        return config

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None) -> Sequential:
        layers = [deserialize_layer(entry, custom_objects) for entry in config["layers"]]
        model = cls(layers, name=config["name"], trainable=config.get("trainable", True))
        shape = config.get("build_input_shape")
        if shape is not None and not model.built:
            model.build(tuple(shape))
        return model
