"""The ``Layer`` base class: naming, weight creation, input checks and the call protocol.

A layer is built on its first call: ``build(input_shape)`` creates its weights through
``add_weight``; ``call(inputs, training)`` does the math on Tensors. Calling a layer on
a symbolic ``KerasTensor`` (from ``Input()``) builds it and returns a new symbolic tensor
of shape ``compute_output_shape(input_shape)``, which is how functional models are made.
Shapes given to ``build`` and ``compute_output_shape`` include the batch axis (``None``
when unknown).
"""

from __future__ import annotations

import functools
import inspect
import re
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from dojang import backend, backends, ops
from dojang.autograd import Tensor
from dojang.config import get_default_dtype, no_grad
from dojang.layers import weight_source
from dojang.layers.node import KerasTensor, Node, is_symbolic, node_attribute
from dojang.validation import check_float_dtype, is_int

_NAME_UIDS: defaultdict[str, int] = defaultdict(int)
REGISTRY: dict[str, type] = {}


def clear_session() -> None:
    """Reset the automatic layer names, so the next Conv2D is 'conv2d' again (as Keras)."""
    _NAME_UIDS.clear()


def to_snake_case(name: str) -> str:
    """``MaxPooling2D`` -> ``max_pooling2d``, ``BatchNormalization`` -> ``batch_normalization``."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(base: str) -> str:
    """``base`` the first time, then ``base_1``, ``base_2``, ... (one counter per base)."""
    n = _NAME_UIDS[base]
    _NAME_UIDS[base] += 1
    return base if n == 0 else f"{base}_{n}"


def format_shape(shape) -> str:
    """``(None, 28, 28, 1)`` as Keras prints it."""
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


@dataclass
class InputSpec:
    """What a layer accepts: an exact rank or a minimum rank, and fixed sizes of some axes."""

    ndim: int | None = None
    min_ndim: int | None = None
    axes: dict = field(default_factory=dict)
    _accepted: tuple | None = field(default=None, init=False, repr=False, compare=False)

    def describe(self) -> str:
        if self.ndim is not None:
            dims = ["None"] * self.ndim
            for axis, size in self.axes.items():
                dims[axis] = str(size)
            return f"rank {self.ndim}, shape ({', '.join(dims)})"
        if self.min_ndim is not None:
            tail = [str(self.axes.get(-1, "None"))] if self.axes else ["None"]
            return f"rank >= {self.min_ndim}, shape (None, ..., {', '.join(tail)})"
        return "any shape"

    def accepts(self, shape: tuple) -> bool:
        if shape == self._accepted:  # the last shape accepted: a layer's calls repeat one
            return True
        n = len(shape)
        ok = (self.ndim in (None, n) and (self.min_ndim is None or n >= self.min_ndim)
              and all(shape[a] is None or shape[a] == size for a, size in self.axes.items()))
        if ok:
            self._accepted = shape
        return ok


def _marks_built(build):
    """Wrap a subclass's ``build`` so that any call, the user's too, marks the layer built
    (a layer built by hand must not create its weights again on its first call)."""
    if getattr(build, "_marks_built", False):
        return build

    @functools.wraps(build)
    def wrapper(self, input_shape):
        self._build_shape = input_shape
        build(self, input_shape)
        self.built = True

    wrapper._marks_built = True
    return wrapper


class Layer:
    """Base class of every layer and model.

    Args:
        trainable: whether the layer's weights are updated by training.
        name: unique name; default is the snake-cased class name with a counter
            (``conv2d``, ``conv2d_1``, ...), as Keras does.
        dtype: dtype of the weights and of the computation (default float32); float
            inputs of another dtype (and integer inputs such as uint8 images) are cast.
        input_shape: shape of one example (no batch axis); lets a ``Sequential`` model
            build itself before seeing data.
        seed: seed of this layer's random generator (initializers, dropout masks); by
            default a generator spawned from ``dj.random.set_seed``'s sequence.

    Example:
        >>> import dojang as dj
        >>> dj.layers.clear_session()
        >>> layer = dj.layers.Dense(3)
        >>> layer.name
        'dense'
        >>> layer(dj.Tensor([[1.0, 2.0]])).shape
        (1, 3)
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__module__.startswith("dojang."):  # the whitelist that load_model trusts
            REGISTRY[cls.__name__] = cls
        if "build" in cls.__dict__:
            cls.build = _marks_built(cls.__dict__["build"])

    def __init__(self, *, trainable: bool = True, name: str | None = None, dtype=None,
                 input_shape=None, seed: int | None = None, **kwargs):
        from dojang import random as dj_random

        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected keyword argument(s) "
                            f"{', '.join(sorted(kwargs))}. Received: {kwargs!r}")
        self.__dict__["_tracked"] = []
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"{type(self).__name__}: Expected name to be a non-empty string. "
                             f"Received: name={name!r}")
        self.name = name or unique_name(to_snake_case(type(self).__name__))
        self.dtype = check_float_dtype(dtype, "dtype", f"{type(self).__name__} '{self.name}'") \
            if dtype is not None else get_default_dtype()
        self._trainable = bool(trainable)
        self.built = False
        self.seed = seed
        self._rng = dj_random.make_rng(seed)
        self.input_spec = InputSpec()
        self._weights: list[Tensor] = []
        self._weight_trainable: list[bool] = []
        self._regularizers: list = []
        self._build_shape = None
        self._io_shapes = None
        self._device = backends.default_device()
        self._batch_input_shape = None
        self._inbound_nodes: list[Node] = []
        if input_shape is not None:
            if not isinstance(input_shape, (tuple, list)) or not all(
                    s is None or (is_int(s) and s >= 1)
                    for s in input_shape):
                raise ValueError(f"{type(self).__name__}: Expected input_shape to be a tuple of "
                                 f"positive ints or None (one example, no batch axis). "
                                 f"Received: input_shape={input_shape!r}")
            self._batch_input_shape = (None,) + tuple(
                None if s is None else int(s) for s in input_shape)

    # ---------------------------------------------------------------- tracking
    def __setattr__(self, key, value):
        items = value if isinstance(value, (list, tuple)) else [value]
        if not key.startswith("_") and items and all(isinstance(v, Layer) for v in items):
            tracked = self.__dict__.get("_tracked")
            if tracked is None:
                raise RuntimeError(f"{type(self).__name__}: call super().__init__() before "
                                   f"assigning layers as attributes")
            for v in items:
                if not any(v is t for t in tracked):
                    tracked.append(v)
                    if v._device != self._device:
                        v.to(self._device)
        object.__setattr__(self, key, value)

    def _sublayers(self) -> list[Layer]:
        return list(self.__dict__.get("_tracked", []))

    # ---------------------------------------------------------------- weights
    def add_weight(self, name: str, shape, initializer="glorot_uniform", regularizer=None,
                   trainable: bool = True, dtype=None) -> Tensor:
        """Create, initialize and track one weight; returns it as a Tensor parameter.

        Args:
            name: short name (``kernel``, ``bias``); the full name is ``<layer>/<name>``.
            shape: tuple of ints.
            initializer: name, object or callable ``init(shape, dtype, rng)``.
            regularizer: name, object or callable ``reg(weight) -> scalar Tensor``.
            trainable: False for statistics updated outside the gradient (BN moving mean).
        """
        from dojang import initializers, regularizers

        dtype = np.dtype(dtype) if dtype is not None else self.dtype
        shape = tuple(int(s) for s in shape)
        source = weight_source.current()
        if source is not None:
            value = source.take(self, name, shape, dtype)
        else:
            init = initializers.get(initializer)
            value = np.asarray(init(shape, dtype, self._rng), dtype=dtype)
        if value.shape != shape:
            raise ValueError(f"{self.name}: initializer for '{name}' returned shape "
                             f"{value.shape}, expected {shape}")
        value = np.ascontiguousarray(value)
        if self._device != "cpu":
            value = backend.to_device(value, self._device)
        w = Tensor(value, requires_grad=trainable and self._trainable, name=f"{self.name}/{name}")
        self._weights.append(w)
        self._weight_trainable.append(bool(trainable))
        if regularizer is not None:
            self._regularizers.append((w, regularizers.get(regularizer)))
        return w

    @property
    def weights(self) -> list[Tensor]:
        """Own weights in creation order (kernel before bias), then the sublayers'."""
        out, seen = [], set()
        for w in self._weights + [w for sub in self._sublayers() for w in sub.weights]:
            if id(w) not in seen:
                seen.add(id(w))
                out.append(w)
        return out

    @property
    def trainable_weights(self) -> list[Tensor]:
        if not self._trainable:
            return []
        own = [w for w, t in zip(self._weights, self._weight_trainable) if t]
        ids = {id(w) for w in own}
        for sub in self._sublayers():
            for w in sub.trainable_weights:
                if id(w) not in ids:
                    ids.add(id(w))
                    own.append(w)
        return own

    @property
    def non_trainable_weights(self) -> list[Tensor]:
        train = {id(w) for w in self.trainable_weights}
        return [w for w in self.weights if id(w) not in train]

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)
        for w, t in zip(self._weights, self._weight_trainable):
            w.requires_grad = bool(value) and t
            if not w.requires_grad:
                w.grad = None
        for sub in self._sublayers():
            sub.trainable = value

    @property
    def losses(self) -> list[Tensor]:
        """Regularization terms of this layer and its sublayers, computed from the weights now."""
        terms = [reg(w) for w, reg in self._regularizers]
        for sub in self._sublayers():
            terms.extend(sub.losses)
        return terms

    def count_params(self) -> int:
        """Number of scalars in all weights (trainable or not)."""
        return int(sum(w.size for w in self.weights))

    def get_weights(self) -> list[np.ndarray]:
        """Copies of the weights as NumPy arrays, in ``weights`` order."""
        return [backend.to_numpy(w.data).copy() for w in self.weights]

    def set_weights(self, weights) -> None:
        """Overwrite the weights in place from a list of arrays in ``weights`` order.

        Raises:
            ValueError: if the number of arrays or any shape differs.
        """
        own = self.weights
        weights = list(weights)
        if len(weights) != len(own):
            raise ValueError(f"layer '{self.name}' expects a list of {len(own)} weight arrays, "
                             f"received {len(weights)}")
        for w, v in zip(own, weights):
            v = np.asarray(v)
            if v.shape != w.shape:
                raise ValueError(f"layer '{self.name}': weight '{w.name}' has shape {w.shape}, "
                                 f"received an array of shape {v.shape}")
        for w, v in zip(own, weights):
            w.data[...] = backend.to_device(np.asarray(v, dtype=w.dtype), w.device)

    # ---------------------------------------------------------------- protocol
    def build(self, input_shape) -> None:
        """Create the weights for inputs of ``input_shape`` (batch axis included)."""
        self._build_shape = input_shape
        self.built = True

    def call(self, inputs, training: bool = False):
        """The layer's computation on Tensors."""
        raise NotImplementedError(f"{type(self).__name__} must implement call()")

    def compute_output_shape(self, input_shape):
        """Output shape for ``input_shape`` (both with the batch axis).

        The base version runs ``call`` on zeros with a batch of one; layers override it
        with the formula.
        """
        shapes = input_shape if _is_shape_list(input_shape) else [input_shape]
        # host arrays: __call__ moves them to the layer's device
        zeros = [np.zeros((1,) + tuple(s[1:]), dtype=self.dtype) for s in shapes]
        with no_grad():
            out = self(zeros if _is_shape_list(input_shape) else zeros[0])
        return (input_shape[0][0] if _is_shape_list(input_shape) else input_shape[0],) + \
            tuple(out.shape[1:])

    def get_config(self) -> dict:
        """Constructor arguments that rebuild this layer (JSON-serializable)."""
        config = {"name": self.name, "trainable": self._trainable, "dtype": self.dtype.name}
        if self._batch_input_shape is not None:
            config["input_shape"] = list(self._batch_input_shape[1:])
        if self.seed is not None:
            config["seed"] = self.seed
        return config

    @classmethod
    def from_config(cls, config: dict) -> Layer:
        """Rebuild a layer from ``get_config()``'s output."""
        return cls(**config)

    # ---------------------------------------------------------------- calling
    def __call__(self, inputs, training: bool | None = None, **kwargs):
        if is_symbolic(inputs):
            return self._symbolic_call(inputs)
        multi = isinstance(inputs, (list, tuple))
        xs = [self._to_tensor(x) for x in inputs] if multi else self._to_tensor(inputs)
        shapes = [x.shape for x in xs] if multi else xs.shape
        self._check_input_shape(shapes)
        if not self.built:
            self.build(shapes)
        if _takes_training(type(self)):
            kwargs["training"] = bool(training)
        out = self.call(xs, **kwargs)
        if self._io_shapes is None and isinstance(out, Tensor):
            self._io_shapes = (_unbatched(shapes), (None,) + tuple(out.shape[1:]))
        return out

    def _symbolic_call(self, inputs):
        multi = isinstance(inputs, (list, tuple))
        shapes = [t.shape for t in inputs] if multi else inputs.shape
        self._check_input_shape(shapes)
        if not self.built:
            self.build(shapes)
        out_shape = tuple(self.compute_output_shape(shapes))
        node = Node(self, list(inputs) if multi else [inputs], multi,
                    index=len(self._inbound_nodes))
        self._inbound_nodes.append(node)
        if self._io_shapes is None:
            self._io_shapes = (shapes, out_shape)
        return KerasTensor(out_shape, self.dtype, node)

    @property
    def input(self):
        """The symbolic input of the layer's one symbolic call (a list for several).

        Raises:
            ValueError: if the layer was never called symbolically, or several times.
        """
        return node_attribute(self, "input")

    @property
    def output(self):
        """The symbolic output of the layer's one symbolic call (Keras's ``layer.output``).

        Raises:
            ValueError: if the layer was never called symbolically, or several times.
        """
        return node_attribute(self, "output")

    def _to_tensor(self, x) -> Tensor:
        if isinstance(x, Tensor):
            if x.dtype != self.dtype and x.dtype.kind in "biuf":
                return ops.cast(x, self.dtype)
            return x
        if isinstance(x, KerasTensor):
            raise TypeError(f"layer '{self.name}': cannot mix symbolic and concrete inputs")
        xp = backend.get_array_module(x)
        arr = x if xp is not np else np.asarray(x)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"layer '{self.name}' expects numeric input, received an array "
                            f"of dtype {arr.dtype}")
        if self._device != "cpu":
            arr = backend.to_device(arr, self._device)
        return Tensor(arr.astype(self.dtype, copy=False))

    def _check_input_shape(self, shapes) -> None:
        if _is_shape_list(shapes):
            return
        if not self.input_spec.accepts(shapes if type(shapes) is tuple else tuple(shapes)):
            raise ValueError(f"layer '{self.name}' expects input of {self.input_spec.describe()}"
                             f", received input of shape {format_shape(shapes)}")

    # ---------------------------------------------------------------- summary hooks
    def compute_macs(self, input_shape, output_shape) -> int:
        """Multiply-accumulates per example (0 for layers without products)."""
        return 0

    def receptive_field_spec(self, input_shape):
        """How this layer changes the receptive field.

        ``None``: each output position sees the same input position (activations,
        batch norm, dense on feature maps); a dict with ``kernel``, ``stride``,
        ``pad_before``, ``dilation`` tuples: a sliding window; ``"global"``: the output
        no longer has spatial positions (flatten, global pooling).
        """
        return None

    # ---------------------------------------------------------------- misc
    def to(self, device: str) -> Layer:
        """Move every weight to ``device`` (a name as for ``Tensor.to``) in place; returns self.

        Weights created later (by ``build``) are created there, and array inputs given to
        the layer are moved there; Tensor inputs must already be there.
        """
        device = backend.check_device(device)
        for w in self.weights:
            w.data = backend.to_device(w.data, device)
            w.grad = None
        stack = [self]
        while stack:
            layer = stack.pop()
            layer._device = device
            stack.extend(layer._sublayers())
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(_non_default_args(self))})"


def _non_default_args(layer: Layer) -> list[str]:
    """``key=value`` for config entries that differ from the constructor's defaults."""
    try:
        config = layer.get_config()
    except NotImplementedError:
        return [f"name={layer.name!r}"]
    params = inspect.signature(type(layer).__init__).parameters
    base = {"trainable": True, "dtype": "float32", "seed": None}
    keys = [k for k in params if k in config] + [k for k in config if k not in params]
    out = []
    for key in keys:
        value = config[key]
        if key in params and params[key].default is not inspect.Parameter.empty:
            if _same(value, params[key].default):
                continue
        elif key in base and value == base[key]:
            continue
        shown = tuple(value) if isinstance(value, list) else value
        out.append(f"{key}={shown!r}")
    return out


def _same(value, default) -> bool:
    if default is None and value in ("channels_last", "linear"):  # what None stands for
        return True
    if isinstance(value, (list, tuple)) and not isinstance(default, (list, tuple)):
        return all(v == default for v in value)
    if isinstance(value, (list, tuple)) and isinstance(default, (list, tuple)):
        return list(value) == list(default)
    if isinstance(value, dict) and isinstance(default, str):
        return value.get("class_name", "").lower().replace("_", "") == \
            default.lower().replace("_", "")
    return value == default


def _is_shape_list(shapes) -> bool:
    return isinstance(shapes, list) and all(isinstance(s, tuple) for s in shapes)


def _unbatched(shapes):
    if _is_shape_list(shapes):
        return [(None,) + tuple(s[1:]) for s in shapes]
    return (None,) + tuple(shapes[1:])


_TAKES_TRAINING: dict[type, bool] = {}


def _takes_training(cls: type) -> bool:
    if cls not in _TAKES_TRAINING:
        params = inspect.signature(cls.call).parameters
        _TAKES_TRAINING[cls] = "training" in params or any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    return _TAKES_TRAINING[cls]
