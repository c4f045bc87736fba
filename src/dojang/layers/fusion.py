"""Activation fusion: which activation a layer's op applies itself, decided in one place.

A layer class lists in ``fusable_activations`` the activations its main op can apply
in place (a convolution applies ReLU to its GEMM output and masks the gradient inside its
own backward: one pass fewer each way). ``fused_activation(layer)`` reads that metadata
and the layer's ``activation``; the layer then asks its op for the fused activation and
applies the activation itself only when nothing is fused. A layer whose op cannot fuse
(a transposed convolution) lists nothing and always applies the activation afterwards.
"""

from __future__ import annotations

from dojang import activations


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
