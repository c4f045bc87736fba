"""``Model``: a layer that can be trained, summarized and saved.

Three ways to make one, as in Keras:

- subclassing: ``class Net(dj.Model)`` with layers assigned as attributes in
  ``__init__`` (tracked in assignment order) and a ``call(x, training)``;
- functional: ``dj.Model(inputs, outputs)`` where ``outputs`` come from calling layers
  on ``dj.Input(...)``; branches, merges and skip connections are just more calls;
- ``dj.Sequential([...])`` (in ``sequential.py``).
"""

from __future__ import annotations

from dojang.distribute.base import current as current_strategy
from dojang.layers import fusion
from dojang.layers.base import Layer
from dojang.layers.input import InputLayer
from dojang.layers.node import KerasTensor
from dojang.layers.serialization import deserialize_layer
from dojang.models import graph
from dojang.models.training import Trainer


class Model(Trainer, Layer):
    """Base class of trainable models; ``Model(inputs, outputs)`` makes a functional one.

    Args:
        inputs, outputs: symbolic tensors (or lists of them) of a functional model.
        name, trainable, dtype: as for any layer.

    Example:
        >>> import dojang as dj
        >>> class TwoLayerNet(dj.Model):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.hidden = dj.layers.Dense(8, activation="relu")
        ...         self.out = dj.layers.Dense(2)
        ...     def call(self, x, training=False):
        ...         return self.out(self.hidden(x))
        >>> TwoLayerNet()(dj.Tensor([[1.0, 2.0, 3.0]])).shape
        (1, 2)
    """

    _graph_kind = "subclassed"

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

    def to(self, device: str) -> Model:
        """Move the weights, and the optimizer's state once compiled, to ``device``.

        Args:
            device: a device name, as for ``Tensor.to`` (which also says what it raises).
        """
        super().to(device)
        if self.optimizer is not None:
            self.optimizer.to(device)
        return self

    def summary(self, line_length: int | None = None, print_fn=None,
                return_string: bool = False):
        """Print (or return) a Keras-style table with MACs and receptive fields.

        See ``dojang.models.summary.summary``.
        """
        from dojang.models.summary import summary

        return summary(self, line_length=line_length, print_fn=print_fn,
                       return_string=return_string)

    def save(self, path) -> None:
        """Write the model to one file, atomically: a ``.dojang`` file (see
        ``dojang.models.saving``), or a Keras 3 ``.keras`` file when ``path`` ends so.

        Under a strategy of several processes only the chief writes; the others return at
        once (call ``strategy.barrier()`` before another process reads the file).
        """
        from dojang.models.saving import save_model

        if current_strategy().is_chief:
            save_model(self, path)

    def save_weights(self, path) -> None:
        """Write only the weights, atomically (only on the chief): safetensors, or Keras's
        HDF5 layout for a path ending in ``.h5`` (``model.weights.h5``)."""
        from dojang.models.saving import save_weights

        if current_strategy().is_chief:
            save_weights(self, path)

    def load_weights(self, path) -> None:
        """Read weights in place from ``save_weights``'s file, a ``.dojang`` file, or a
        Keras ``.weights.h5`` file (matched by position, as Keras does)."""
        from dojang.models.saving import load_weights

        load_weights(self, path)

    def _graph_io(self) -> tuple[list, list]:
        """(symbolic inputs, symbolic outputs) of the model's graph (see ``models.graph``)."""
        return graph.trace(self)

    @property
    def inputs(self) -> list[KerasTensor]:
        """The model's symbolic inputs, a list (Keras's ``model.inputs``).

        Raises:
            ValueError: if the model is not built (or a subclassed one cannot be traced).
        """
        return graph.model_inputs(self)

    @property
    def outputs(self) -> list[KerasTensor]:
        """The model's symbolic outputs, a list (Keras's ``model.outputs``).

        Raises:
            ValueError: if the model is not built (or a subclassed one cannot be traced).
        """
        return graph.model_outputs(self)

    @property
    def input(self):
        """The symbolic input (a list for a model of several inputs), as Keras's.

        Example:
            >>> import dojang as dj
            >>> model = dj.Sequential([dj.layers.Conv2D(2, 3, input_shape=(6, 6, 1)),
            ...                        dj.layers.Flatten()])
            >>> maps = dj.Model(model.input, model.layers[0].output)   # a feature extractor
            >>> maps.output_shape, maps.layers[-1] is model.layers[0]
            ((None, 4, 4, 2), True)
        """
        inputs = self.inputs
        return inputs[0] if len(inputs) == 1 else inputs

    @property
    def output(self):
        """The symbolic output (a list for a model of several outputs), as Keras's."""
        outputs = self.outputs
        return outputs[0] if len(outputs) == 1 else outputs

    @property
    def output_shape(self):
        try:
            shapes = [t.shape for t in graph.model_outputs(self)]
            return shapes[0] if len(shapes) == 1 else shapes
        except ValueError:  # unbuilt, or a call that cannot be traced: the last layer's
            pass
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
        self._inputs = list(inputs) if self._multi_in else [inputs]
        self._outputs = list(outputs) if self._multi_out else [outputs]
        for t in self._inputs + self._outputs:
            if not isinstance(t, KerasTensor):
                raise TypeError(f"Model: Expected inputs and outputs to be symbolic tensors "
                                f"from dj.Input() and layer calls. Received: {t!r}")
        for t in self._inputs:
            if not isinstance(t.node.layer, InputLayer):
                raise ValueError("Model: Expected each input to come from dj.Input(). "
                                 f"Received: {t!r}")
        self._order = graph.topological(self._outputs)
        # batch norm [+ residual sum] + ReLU chains, each run as one op (layers.fusion)
        self._chains = fusion.residual_chains(self._order, self._outputs)
        missing = [t for t in self._order if isinstance(t.node.layer, InputLayer)
                   and not any(t is i for i in self._inputs)]
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
        self._build_shape = [t.shape for t in self._inputs] if self._multi_in \
            else self._inputs[0].shape

    _graph_kind = "functional"

    def _graph_io(self) -> tuple[list, list]:
        return self._inputs, self._outputs

    def call(self, inputs, training: bool = False):
        given = list(inputs) if self._multi_in else [inputs]
        if len(given) != len(self._inputs):
            raise ValueError(f"model '{self.name}' expects {len(self._inputs)} inputs, "
                             f"received {len(given)}")
        values = {id(t): x for t, x in zip(self._inputs, given)}
        chains = {i: c for i, c in self._chains.items() if c.intact()}
        fused_away = {i for chain in chains.values() for i in chain.skipped}
        for t in self._order:
            node = t.node
            if isinstance(node.layer, InputLayer):
                values[id(t)] = node.layer(values[id(t)])
                continue
            if id(t) in fused_away:  # computed inside the chain that consumes it
                continue
            chain = chains.get(id(t))
            if chain is not None:
                norm = chain.norm.node
                residual = None if chain.shortcut is None else values[id(chain.shortcut)]
                values[id(t)] = norm.layer(values[id(norm.inputs[0])], training=training,
                                           residual=residual, activation="relu")
                continue
            args = [values[id(i)] for i in node.inputs]
            values[id(t)] = node.layer(args if node.multi_input else args[0], training=training)
        outs = [values[id(t)] for t in self._outputs]
        return outs if self._multi_out else outs[0]

    def _check_input_shape(self, shapes) -> None:
        given = shapes if isinstance(shapes, list) else [shapes]
        for t, shape in zip(self._inputs, given):
            t.node.layer._check_input_shape(tuple(shape))

    def compute_output_shape(self, input_shape):
        batch = (input_shape[0] if self._multi_in else input_shape)[0]
        outs = [(batch,) + tuple(t.shape[1:]) for t in self._outputs]
        return outs if self._multi_out else outs[0]

    @property
    def output_shape(self):
        outs = [t.shape for t in self._outputs]
        return outs if self._multi_out else outs[0]

    @property
    def input_shape(self):
        shapes = [t.shape for t in self._inputs]
        return shapes if self._multi_in else shapes[0]

    def get_config(self) -> dict:
        counts: dict[str, int] = {}
        ids: dict[int, list] = {}
        nodes = []
        for node in graph.walk(self):
            name = node.layer.name
            for t in node.outputs:
                ids[id(t)] = [name, counts.get(name, 0)]
            counts[name] = counts.get(name, 0) + 1
            if not isinstance(node.layer, InputLayer):
                nodes.append({"layer": name, "args": [ids[id(i)] for i in node.inputs],
                              "multi": node.multi_input})
        return {"name": self.name, "trainable": self.trainable,
                "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()}
                           for layer in self._sublayers()],
                "nodes": nodes,
                "inputs": [ids[id(t)] for t in self._inputs], "multi_input": self._multi_in,
                "outputs": [ids[id(t)] for t in self._outputs], "multi_output": self._multi_out}

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


__all__ = ["Functional", "Model", "deserialize_layer"]
