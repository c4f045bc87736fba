"""``Model``: a layer that can be trained, summarized and saved.

Three ways to make one, as in Keras:

- subclassing: ``class Net(dj.Model)`` with layers assigned as attributes in
  ``__init__`` (tracked in assignment order) and a ``call(x, training)``;
- functional: ``dj.Model(inputs, outputs)`` where ``outputs`` come from calling layers
  on ``dj.Input(...)``; branches, merges and skip connections are just more calls;
- ``dj.Sequential([...])`` (in ``sequential.py``).
"""

from __future__ import annotations

import inspect

from dojang.layers.base import REGISTRY, Layer
from dojang.layers.input import InputLayer
from dojang.layers.node import KerasTensor
from dojang.models.training import Trainer


class Model(Trainer, Layer):
    """Base class of trainable models; ``Model(inputs, outputs)`` makes a functional one.

    Args:
        inputs, outputs: symbolic tensors (or lists of them) of a functional model.
        name, trainable, dtype: as for any layer.

    Example:
        >>> import dojang as dj
        >>> class Net(dj.Model):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.hidden = dj.layers.Dense(8, activation="relu")
        ...         self.out = dj.layers.Dense(2)
        ...     def call(self, x, training=False):
        ...         return self.out(self.hidden(x))
        >>> Net()(dj.Tensor([[1.0, 2.0, 3.0]])).shape
        (1, 2)
    """

    def __new__(cls, *args, **kwargs):
        if cls is Model and (args or "inputs" in kwargs):
            return object.__new__(Functional)
        return object.__new__(cls)

    def __init__(self, *, name: str | None = None, trainable: bool = True, dtype=None,
                 **kwargs):
        super().__init__(name=name, trainable=trainable, dtype=dtype, **kwargs)
        self.stop_training = False
        self.optimizer = None
        self.compiled = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}, {len(self.layers)} layers>"

    @property
    def layers(self) -> list[Layer]:
        """The model's layers in the order they were added (inputs layers excluded)."""
        return [layer for layer in self._sublayers() if not isinstance(layer, InputLayer)]

    def get_layer(self, name: str) -> Layer:
        """The layer called ``name``.

        Raises:
            ValueError: if no layer has that name.
        """
        for layer in self._sublayers():
            if layer.name == name:
                return layer
        raise ValueError(f"model '{self.name}' has no layer named {name!r}. Layers: "
                         f"{[layer.name for layer in self._sublayers()]}")

    def parameters(self) -> list:
        """Trainable weights in a stable insertion order (what the optimizer updates)."""
        return self.trainable_weights

    def build(self, input_shape) -> None:
        """Subclassed models build their layers lazily, on the first call."""
        self.built = True

    def summary(self, line_length: int | None = None, print_fn=None,
                return_string: bool = False):
        """Print (or return) a Keras-style table with MACs and receptive fields.

        Args:
            line_length: minimum total width of the table.
            print_fn: function called with the text (default ``print``).
            return_string: return the text instead of printing it.
        """
        from dojang.models.summary import summary_text

        text = summary_text(self, line_length=line_length)
        if return_string:
            return text
        (print_fn or print)(text)
        return None

    def save(self, path) -> None:
        """Write the model to one file, atomically: a ``.dojang`` file (see
        ``dojang.models.saving``), or a Keras 3 ``.keras`` file when ``path`` ends so."""
        from dojang.models.saving import save_model

        save_model(self, path)

    def save_weights(self, path) -> None:
        """Write only the weights, atomically: safetensors, or Keras's HDF5 layout for a
        path ending in ``.h5`` (``model.weights.h5``)."""
        from dojang.models.saving import save_weights

        save_weights(self, path)

    def load_weights(self, path) -> None:
        """Read weights in place from ``save_weights``'s file, a ``.dojang`` file, or a
        Keras ``.weights.h5`` file (matched by position, as Keras does)."""
        from dojang.models.saving import load_weights

        load_weights(self, path)

    def _graph(self):
        """(layer, inbound layers or None) in execution order, for ``summary``."""
        return [(layer, None) for layer in self.layers]

    @property
    def output_shape(self):
        rows = self.layers
        if not rows or rows[-1]._io_shapes is None:
            raise ValueError(f"model '{self.name}' has not been built yet; call it on data "
                             f"or give the first layer input_shape=")
        return rows[-1]._io_shapes[1]


class Functional(Model):
    """A model defined by a graph of layer calls from ``Input()`` tensors to outputs.

    Example:
        >>> import dojang as dj
        >>> x = dj.Input((8, 8, 3))
        >>> h = dj.layers.Conv2D(3, 3, padding="same")(x)
        >>> y = dj.layers.Add()([x, h])                      # a skip connection
        >>> dj.Model(x, y).output_shape
        (None, 8, 8, 3)
    """

    def __init__(self, inputs, outputs, *, name: str | None = None, trainable: bool = True,
                 **kwargs):
        super().__init__(name=name, trainable=trainable, **kwargs)
        self._multi_in = isinstance(inputs, (list, tuple))
        self._multi_out = isinstance(outputs, (list, tuple))
        self.inputs = list(inputs) if self._multi_in else [inputs]
        self.outputs = list(outputs) if self._multi_out else [outputs]
        for t in self.inputs + self.outputs:
            if not isinstance(t, KerasTensor):
                raise TypeError(f"Model: Expected inputs and outputs to be symbolic tensors "
                                f"from dj.Input() and layer calls. Received: {t!r}")
        for t in self.inputs:
            if not isinstance(t.node.layer, InputLayer):
                raise ValueError("Model: Expected each input to come from dj.Input(). "
                                 f"Received: {t!r}")
        self._order = _topological(self.outputs)
        missing = [t for t in self._order if isinstance(t.node.layer, InputLayer)
                   and not any(t is i for i in self.inputs)]
        if missing:
            raise ValueError(f"Model: graph disconnected: output depends on input "
                             f"'{missing[0].node.layer.name}', which is not in inputs")
        layers, names = [], set()
        for t in self._order:
            layer = t.node.layer
            if not any(layer is seen for seen in layers):
                if layer.name in names:
                    raise ValueError(f"Model: layer names must be unique; '{layer.name}' "
                                     f"appears twice")
                names.add(layer.name)
                layers.append(layer)
        self.__dict__["_tracked"] = layers
        self.built = True
        self._build_shape = [t.shape for t in self.inputs] if self._multi_in \
            else self.inputs[0].shape

    def call(self, inputs, training: bool = False):
        given = list(inputs) if self._multi_in else [inputs]
        if len(given) != len(self.inputs):
            raise ValueError(f"model '{self.name}' expects {len(self.inputs)} inputs, "
                             f"received {len(given)}")
        values = {id(t): x for t, x in zip(self.inputs, given)}
        for t in self._order:
            node = t.node
            if isinstance(node.layer, InputLayer):
                values[id(t)] = node.layer(values[id(t)])
                continue
            args = [values[id(i)] for i in node.inputs]
            values[id(t)] = node.layer(args if node.multi_input else args[0], training=training)
        outs = [values[id(t)] for t in self.outputs]
        return outs if self._multi_out else outs[0]

    def _check_input_shape(self, shapes) -> None:
        given = shapes if isinstance(shapes, list) else [shapes]
        for t, shape in zip(self.inputs, given):
            t.node.layer._check_input_shape(tuple(shape))

    def compute_output_shape(self, input_shape):
        batch = (input_shape[0] if self._multi_in else input_shape)[0]
        outs = [(batch,) + tuple(t.shape[1:]) for t in self.outputs]
        return outs if self._multi_out else outs[0]

    @property
    def output_shape(self):
        outs = [t.shape for t in self.outputs]
        return outs if self._multi_out else outs[0]

    @property
    def input_shape(self):
        shapes = [t.shape for t in self.inputs]
        return shapes if self._multi_in else shapes[0]

    def _graph(self):
        return [(t.node.layer, [i.node.layer for i in t.node.inputs]) for t in self._order]

    def get_config(self) -> dict:
        counts: dict[str, int] = {}
        ids: dict[int, list] = {}
        nodes = []
        for t in self._order:
            name = t.node.layer.name
            ids[id(t)] = [name, counts.get(name, 0)]
            counts[name] = counts.get(name, 0) + 1
            if not isinstance(t.node.layer, InputLayer):
                nodes.append({"layer": name, "args": [ids[id(i)] for i in t.node.inputs],
                              "multi": t.node.multi_input})
        return {"name": self.name, "trainable": self.trainable,
                "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()}
                           for layer in self._sublayers()],
                "nodes": nodes,
                "inputs": [ids[id(t)] for t in self.inputs], "multi_input": self._multi_in,
                "outputs": [ids[id(t)] for t in self.outputs], "multi_output": self._multi_out}

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None) -> Functional:
        layers = {}
        for entry in config["layers"]:
            layer = deserialize_layer(entry, custom_objects)
            layers[layer.name] = layer
        tensors = {}
        for name, layer in layers.items():
            if isinstance(layer, InputLayer):
                tensors[(name, 0)] = layer.output
        counts: dict[str, int] = {}
        for node in config["nodes"]:
            name = node["layer"]
            if name not in layers:
                raise ValueError(f"model config: node refers to unknown layer {name!r}")
            args = [tensors[tuple(a)] for a in node["args"]]
            out = layers[name](args if node["multi"] else args[0])
            tensors[(name, counts.get(name, 0))] = out
            counts[name] = counts.get(name, 0) + 1
        inputs = [tensors[tuple(a)] for a in config["inputs"]]
        outputs = [tensors[tuple(a)] for a in config["outputs"]]
        return cls(inputs if config["multi_input"] else inputs[0],
                   outputs if config["multi_output"] else outputs[0],
                   name=config["name"], trainable=config.get("trainable", True))


def _topological(outputs: list[KerasTensor]) -> list[KerasTensor]:
    """Symbolic tensors in an order where each comes after all of its inputs (iterative DFS)."""
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


def deserialize_layer(entry: dict, custom_objects: dict | None = None) -> Layer:
    """Make a layer from ``{"class_name", "config"}``, looking the class up by name only.

    Only dojang's own classes (and those passed in ``custom_objects``) can be made, so
    a model file can never name arbitrary code.

    Raises:
        ValueError: for an unknown class name or a config the class rejects.
    """
    if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str) \
            or not isinstance(entry.get("config"), dict):
        raise ValueError(f"layer entry must be {{'class_name': str, 'config': dict}}. "
                         f"Received: {str(entry)[:200]}")
    name = entry["class_name"]
    cls = (custom_objects or {}).get(name) or REGISTRY.get(name)
    if cls is None:
        raise ValueError(f"unknown layer class {name!r}; pass it in custom_objects= if it is "
                         f"your own")
    try:
        if "custom_objects" in inspect.signature(cls.from_config).parameters:
            return cls.from_config(entry["config"], custom_objects)
        return cls.from_config(entry["config"])
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(f"cannot rebuild layer {name!r} from its config: {e}") from None


__all__ = ["Functional", "Model", "deserialize_layer"]
