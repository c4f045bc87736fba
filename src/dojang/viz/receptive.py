"""Receptive fields: the theoretical window of one output unit and the effective one.

Theoretical: after a layer with kernel K, stride S, dilation D and padding P_before, the
window grows as ``size' = size + D*(K-1)*jump`` and ``jump' = jump*S``; branches take the
larger window (``dojang.shapes.receptive_field_step``, the numbers ``summary()`` prints).

Effective (Luo et al., "Understanding the Effective Receptive Field in Deep
Convolutional Neural Networks", NeurIPS 2016): how much each input pixel actually moves
the centre output unit, measured by the gradient and averaged over images::

    E[h, w] = mean_n sum_c |d(sum_k y[n, H_out // 2, W_out // 2, k]) / dx[n, h, w, c]|
    ERF = E / sum(E),        rms_radius = sqrt(sum ERF * d**2)

with ``d`` the distance of (h, w) from the ERF's centroid. On a stack of n 3x3
convolutions the theoretical size is 2n + 1 but the ERF is Gaussian-like with a radius
growing as sqrt(n) (``uniform_stack`` builds the paper's experiment).
"""

from __future__ import annotations

import numpy as np

from dojang.viz.probe import find_layer, input_shape, keep_weight_grads, layer_output


def receptive_field(model, layer=None):
    """The theoretical receptive field of ``layer``'s output units.

    Args:
        model: a built model (Sequential, functional, or subclassed and traceable).
        layer: a layer name or index; None means the last layer with a spatial output.

    Returns:
        A ``dojang.shapes.ReceptiveField``: ``size`` (input pixels one unit sees, per
        dimension), ``jump`` (input pixels between neighbouring units) and ``start``
        (input coordinate of the first unit's centre).

    Raises:
        ValueError: an unknown or non-spatial layer, or a layer whose field is unknown
            (a transposed convolution on the way).

    Example:
        >>> import dojang as dj
        >>> m = dj.Sequential([dj.layers.Conv2D(2, 3, input_shape=(9, 9, 1)),
        ...                    dj.layers.MaxPooling2D(2), dj.layers.Conv2D(2, 3)])
        >>> receptive_field(m).size
        (8, 8)
    """
    from dojang.models.summary import receptive_fields
    from dojang.shapes import ReceptiveField

    target = find_layer(model, layer)
    rf = next((rf for node, rf in receptive_fields(model) if node.layer is target), "?")
    if not isinstance(rf, ReceptiveField):
        raise ValueError(f"the receptive field of layer {target.name!r} is not known "
                         f"({rf})")
    return rf


def receptive_field_box(model, layer=None, unit=None) -> tuple[int, int, int, int]:
    """The input window ``(top, left, bottom, right)`` (exclusive ends) one unit sees.

    Args:
        model, layer: as ``receptive_field``.
        unit: ``(row, col)`` of the output unit; None means the centre unit
            ``(H_out // 2, W_out // 2)``.

    Returns:
        The box clipped to the input image.

    Example:
        >>> import dojang as dj
        >>> m = dj.Sequential([dj.layers.Conv2D(1, 3, input_shape=(5, 5, 1))])
        >>> receptive_field_box(m)        # the centre unit of the 3x3 output
        (1, 1, 4, 4)
    """
    rf = receptive_field(model, layer)
    out = find_layer(model, layer)._io_shapes[1][1:3]
    unit = tuple(o // 2 for o in out) if unit is None else tuple(unit)
    h, w = input_shape(model)[:2]
    box = []
    for i, limit in enumerate((h, w)):
        centre = rf.start[i] + unit[i] * rf.jump[i]
        lo = int(round(centre - rf.size[i] / 2))
        box.append((max(lo, 0), min(lo + rf.size[i], limit)))
    return box[0][0], box[1][0], box[0][1], box[1][1]


def effective_receptive_field(model, layer=None, inputs=None) -> np.ndarray:
    """The effective receptive field of the centre unit of ``layer``, over the input.

    Args:
        model: a built model with one (N, H, W, C) input; it runs in inference mode.
        layer: a layer name or index; None means the last layer with a spatial output.
        inputs: (N, H, W, C) images; None means 16 standard-normal images (seed 0).

    Returns:
        (H, W) float64 array, non-negative, summing to 1 (see the module docstring).

    Raises:
        ValueError: an unknown or non-spatial layer, inputs of the wrong rank, or an
            input with no influence on the unit (an all-zero gradient).

    Example:
        >>> import dojang as dj
        >>> m = dj.Sequential([dj.layers.Conv2D(1, 3, input_shape=(7, 7, 1))])
        >>> erf = effective_receptive_field(m)
        >>> erf.shape, round(float(erf.sum()), 6), bool(erf[0, 0] == 0)
        ((7, 7), 1.0, True)
    """
    from dojang.autograd import Tensor

    target = find_layer(model, layer)
    if inputs is None:
        inputs = np.random.default_rng(0).standard_normal((16,) + input_shape(model))
    x = np.asarray(inputs)
    if x.ndim != 4:
        raise ValueError(f"effective_receptive_field: Expected inputs of shape (N, H, W, C). "
                         f"Received: inputs.shape={x.shape}")
    xt = Tensor(x.astype(model.dtype), requires_grad=True)
    with keep_weight_grads(model):
        y = layer_output(model, target, xt)
        ho, wo = y.shape[1] // 2, y.shape[2] // 2
        y[:, ho, wo, :].sum().backward()
    e = np.abs(np.asarray(xt.grad.numpy(), dtype=np.float64)).sum(-1).mean(0)
    total = e.sum()
    if not total > 0:
        raise ValueError(f"the centre unit of layer {target.name!r} does not depend on the "
                         f"inputs (all gradients are zero)")
    return e / total


def rms_radius(erf) -> float:
    """The size of an ERF: ``sqrt(sum E * d**2)``, ``d`` the distance from E's centroid.

    ``E`` is normalised to sum 1 first (a no-op for ``effective_receptive_field``'s output).

    Example:
        >>> import numpy as np
        >>> e = np.zeros((3, 3)); e[1, 0] = e[1, 2] = 0.5
        >>> rms_radius(e)
        1.0
    """
    e = np.asarray(erf, dtype=np.float64)
    if e.ndim != 2 or not e.sum() > 0 or (e < 0).any():
        raise ValueError(f"rms_radius: Expected a non-negative (H, W) array with a positive "
                         f"sum. Received: shape={e.shape}")
    p = e / e.sum()
    rows, cols = np.indices(p.shape)
    cy, cx = (p * rows).sum(), (p * cols).sum()
    return float(np.sqrt((p * ((rows - cy) ** 2 + (cols - cx) ** 2)).sum()))


def uniform_stack(n: int, size: int | None = None):
    """Luo et al.'s experiment: n 3x3 convolutions (one channel, no bias, SAME padding)
    whose weights are all 1/9, on a ``size`` x ``size`` one-channel input (default 4n + 9).

    The network is linear, so its ERF is the n-fold convolution of the 3x3 box: a
    variance of 2/3 per step and axis, an RMS radius of ``sqrt(4n / 3)``.

    Example:
        >>> round(rms_radius(effective_receptive_field(uniform_stack(3))), 3)   # sqrt(4)
        2.0
    """
    from dojang import layers as L
    from dojang.models import Sequential

    size = size or 4 * n + 9
    stack = [L.Conv2D(1, 3, padding="same", use_bias=False, kernel_initializer="ones",
                      input_shape=(size, size, 1)) if i == 0 else
             L.Conv2D(1, 3, padding="same", use_bias=False, kernel_initializer="ones")
             for i in range(n)]
    model = Sequential(stack)
    for conv in stack:
        conv.kernel.data[...] = 1.0 / 9.0
    return model
