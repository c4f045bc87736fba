"""Activation fusion: which activation a layer's op applies itself, decided in one place.

A layer class lists in ``fusable_activations`` the activations its main op can apply
in place (a convolution applies ReLU to its GEMM output and masks the gradient inside its
own backward: one pass fewer each way). ``fused_activation(layer)`` reads that metadata
and the layer's ``activation``; the layer then asks its op for the fused activation and
applies the activation itself only when nothing is fused. A layer whose op cannot fuse
(a transposed convolution) lists nothing and always applies the activation afterwards.

Across layers: ``residual_chains`` finds where a functional model can run batch
normalization, a residual sum and a ReLU as one op (the post-activated residual block).
"""

from __future__ import annotations

from dataclasses import dataclass

from dojang import activations
from dojang.layers.activation import ReLU
from dojang.layers.merge import Add
from dojang.layers.normalization import BatchNormalization


def fused_activation(layer) -> str | None:
    """The name of the activation ``layer``'s op should apply itself, or None.

    Args:
        layer: any layer; only ``fusable_activations`` and ``activation`` are read.

    Example:
        >>> import dojang as dj
        >>> fused_activation(dj.layers.Conv2D(4, 3, activation="relu"))
        'relu'
        >>> print(fused_activation(dj.layers.Conv2DTranspose(4, 3, activation="relu")))
        None
    """
    activation = getattr(layer, "activation", None)
    for name in getattr(layer, "fusable_activations", ()):
        if activation is activations.get(name):
            return name
    return None


@dataclass(frozen=True)
class Chain:
    """``relu(bn(x) [+ shortcut])`` of a functional graph, run as one batch-norm op.

    Attributes:
        norm: the tensor a ``BatchNormalization`` layer made (its layer and input).
        shortcut: the ``Add``'s other input, or None when the ReLU follows the norm.
        skipped: the ids of the tensors the chain makes unnecessary (the norm's, the sum's).
        layers: the chain's layers (the norm's, the sum's if any, the ReLU's).
    """

    norm: object
    shortcut: object
    skipped: tuple
    layers: tuple

    def intact(self) -> bool:
        """No layer of the chain has its ``call`` replaced on the instance (``viz.probe``
        taps a layer that way to see its own output, which the fused op never makes)."""
        return not any("call" in layer.__dict__ for layer in self.layers)


def residual_chains(order: list, outputs: list) -> dict[int, Chain]:
    """The ``BatchNormalization [-> Add] -> ReLU`` chains of a functional graph.

    A plain ``ReLU`` whose input a ``BatchNormalization`` made, or an ``Add`` of two
    tensors one of which a ``BatchNormalization`` made, becomes one batch-norm op
    (``functional.batch_normalization(..., residual=, activation="relu")``): one pass
    over memory instead of three each way. Each tensor in between must feed only the
    next layer and not be a model output, and every layer must share one dtype.

    Args:
        order: the graph's symbolic tensors in topological order.
        outputs: the model's output tensors.

    Returns:
        ``{id(ReLU's output tensor): Chain}``.
    """
    uses: dict[int, int] = {id(t): 1 for t in outputs}
    for t in order:
        for i in t.node.inputs:
            uses[id(i)] = uses.get(id(i), 0) + 1
    chains = {}
    for t in order:
        relu, source = t.node.layer, t.node.inputs[0] if t.node.inputs else None
        if not _plain_relu(relu) or source is None or uses.get(id(source)) != 1:
            continue
        if _plain_norm(source.node.layer, relu.dtype):
            chains[id(t)] = Chain(source, None, (id(source),), (source.node.layer, relu))
        elif type(source.node.layer) is Add and len(source.node.inputs) == 2 and \
                source.node.layer.dtype == relu.dtype:
            a, b = source.node.inputs
            for norm, shortcut in ((b, a), (a, b)):
                if norm is not shortcut and uses.get(id(norm)) == 1 and \
                        _plain_norm(norm.node.layer, relu.dtype):
                    chains[id(t)] = Chain(norm, shortcut, (id(norm), id(source)),
                                          (norm.node.layer, source.node.layer, relu))
                    break
    return chains


def _plain_relu(layer) -> bool:
    return type(layer) is ReLU and layer.max_value is None and \
        layer.negative_slope == 0 and layer.threshold == 0


def _plain_norm(layer, dtype) -> bool:
    """A ``BatchNormalization`` (or a subclass keeping its ``call``) of ``dtype``."""
    return isinstance(layer, BatchNormalization) and \
        type(layer).call is BatchNormalization.call and layer.dtype == dtype
