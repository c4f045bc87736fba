"""Reaching inside a model: pick a layer, read its output, and differentiate through it.

Every figure of ``dojang.viz`` starts here. ``find_layer`` resolves a layer given by
name or index (or the last one with a spatial output); ``tap`` records what a layer
returns while the model runs, for any kind of model (Sequential, functional with
branches, subclassed), by wrapping that layer's ``call`` for the duration of one pass.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np


class _Reached(Exception):
    """Raised by a tap to stop the forward pass once the layer's output is recorded."""


def _layers(model) -> list:
    return list(model.layers)


def is_spatial(layer) -> bool:
    """True if ``layer``'s recorded output is a channels-last feature map (N, H, W, C)."""
    shapes = getattr(layer, "_io_shapes", None)
    out = shapes[1] if shapes else None
    return isinstance(out, tuple) and len(out) == 4


def find_layer(model, layer=None, *, spatial: bool = True, kind: str | None = None):
    """The layer of ``model`` named ``layer`` or at index ``layer`` of ``model.layers``.

    Args:
        model: a built model.
        layer: a name, an index into ``model.layers`` (negative counts from the end), or
            None for the last layer with a spatial output (of class ``kind`` if given).
        spatial: require an (N, H, W, C) output.
        kind: with ``layer=None``, the class name to look for (``"Conv2D"``).

    Raises:
        ValueError: an unknown name, an index out of range, a layer without a spatial
            output, or a model without any such layer; the message lists the choices.
        TypeError: ``layer`` neither a name, an index nor None.

    Example:
        >>> import dojang as dj
        >>> m = dj.Sequential([dj.layers.Conv2D(2, 3, input_shape=(6, 6, 1), name="c"),
        ...                    dj.layers.Flatten(name="f")])
        >>> find_layer(m).name, find_layer(m, 0).name, find_layer(m, "f", spatial=False).name
        ('c', 'c', 'f')
    """
    layers = _layers(model)
    choices = [lay.name for lay in layers if is_spatial(lay)] if spatial else \
        [lay.name for lay in layers]
    if layer is None:
        found = [lay for lay in layers if is_spatial(lay)
                 and (kind is None or type(lay).__name__ == kind)]
        if not found:
            what = f"{kind} layer" if kind else "layer with a spatial output (N, H, W, C)"
            raise ValueError(f"model '{model.name}' has no {what}; layers: "
                             f"{[lay.name for lay in layers]}")
        return found[-1]
    if isinstance(layer, (int, np.integer)) and not isinstance(layer, bool):
        if not -len(layers) <= layer < len(layers):
            raise ValueError(f"model '{model.name}' has {len(layers)} layers; layer index "
                             f"{layer} is out of range")
        found = layers[layer]
    elif isinstance(layer, str):
        named = [lay for lay in layers if lay.name == layer]
        if not named:
            raise ValueError(f"model '{model.name}' has no layer named {layer!r}; choose "
                             f"one of: {', '.join(choices)}")
        found = named[0]
    else:
        raise TypeError(f"Expected layer to be a layer name, an index or None. Received: "
                        f"layer={layer!r}")
    if spatial and not is_spatial(found):
        shapes = getattr(found, "_io_shapes", None)
        raise ValueError(f"layer {found.name!r} has no spatial output (its output shape is "
                         f"{shapes[1] if shapes else 'unknown'}); choose one of: "
                         f"{', '.join(choices)}")
    return found


def input_shape(model) -> tuple:
    """The model's single input shape without the batch axis, e.g. ``(28, 28, 1)``.

    Example:
        >>> import dojang as dj
        >>> input_shape(dj.zoo.fashion_cnn())
        (28, 28, 1)

    Raises:
        ValueError: for a model with several inputs or whose input size is unknown.
    """
    from dojang.models import graph

    try:
        inputs = graph.model_inputs(model)
        shape = inputs[0].shape if len(inputs) == 1 else [t.shape for t in inputs]
    except ValueError:  # not built, or a subclassed call that cannot be traced
        shape = None
    if isinstance(shape, list) or shape is None or None in tuple(shape)[1:]:
        raise ValueError(f"model '{model.name}' needs one input of known size (its input "
                         f"shape is {shape}); pass inputs= explicitly")
    return tuple(int(s) for s in tuple(shape)[1:])


@contextmanager
def tap(layer, stop: bool = False, cut: bool = False):
    """Record ``layer``'s output (its first call) in the yielded list while the model runs.

    With ``stop=True`` the pass ends right after the layer (the rest of the model is not
    computed; ``layer_output`` catches that). With ``cut=True`` the model continues from
    a new leaf tensor holding the same values, so that a backward pass from the model's
    output leaves ``d output / d layer output`` in the recorded tensor's ``.grad``.
    """
    from dojang.autograd import Tensor

    seen: list = []
    original = layer.call

    def call(*args, **kwargs):
        out = original(*args, **kwargs)
        if not seen:
            if cut:
                out = Tensor(out.data, requires_grad=True)
            seen.append(out)
            if stop:
                raise _Reached
        return out

    object.__setattr__(layer, "call", call)
    try:
        yield seen
    finally:
        del layer.__dict__["call"]


def layer_output(model, layer, x, training: bool = False):
    """``layer``'s output Tensor when ``model`` runs on ``x`` (the pass stops there).

    Args:
        model: any model that calls ``layer`` (Sequential, functional, subclassed).
        layer: a Layer of the model, or its name or index in ``model.layers``.
        x: the model's input (an array or Tensor); gradients flow back to it.
        training: the mode the model runs in.

    Raises:
        ValueError: an unknown layer, or one that running the model never calls.

    Example:
        >>> import dojang as dj, numpy as np
        >>> m = dj.Sequential([dj.layers.Conv2D(2, 3, input_shape=(6, 6, 1)),
        ...                    dj.layers.Flatten(), dj.layers.Dense(3)])
        >>> layer_output(m, 0, np.ones((1, 6, 6, 1))).shape
        (1, 4, 4, 2)
    """
    if isinstance(layer, (str, int, np.integer)):
        layer = find_layer(model, layer, spatial=False)
    with tap(layer, stop=True) as seen:
        try:
            model(x, training=training)
        except _Reached:
            pass
    if not seen:
        raise ValueError(f"layer {layer.name!r} was not called when model '{model.name}' ran")
    return seen[0]


@contextmanager
def logits(model):
    """Make ``model`` return pre-softmax scores: a final softmax is skipped while inside.

    The final layer is the one producing the output (the last of ``model.layers`` for
    Sequential and subclassed models); a softmax activation on it, or a final
    ``Softmax``/``Activation('softmax')`` layer, becomes the identity.
    """
    from dojang import activations
    from dojang.models import graph

    try:
        last = graph.model_outputs(model)[0].node.layer
    except ValueError:  # a subclassed call that cannot be traced: its last layer
        last = _layers(model)[-1]
    if getattr(last, "activation", None) is activations.softmax:
        last.activation = activations.linear
        try:
            yield
        finally:
            last.activation = activations.softmax
    elif type(last).__name__ == "Softmax":
        object.__setattr__(last, "call", lambda inputs, **kwargs: inputs)
        try:
            yield
        finally:
            del last.__dict__["call"]
    else:
        yield


@contextmanager
def keep_weight_grads(model):
    """Leave the weights' ``.grad`` as they were, whatever backward passes run inside."""
    saved = [(w, w.grad) for w in model.weights]
    try:
        yield
    finally:
        for w, g in saved:
            w.grad = g
