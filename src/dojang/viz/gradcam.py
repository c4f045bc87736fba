"""Where a classifier looks: Grad-CAM and gradient saliency, as maps over the input image.

Grad-CAM (Selvaraju et al., ICCV 2017): with ``A`` the feature maps of a conv layer
(after its activation) and ``score`` the class's pre-softmax logit::

    alpha_k = mean_{i,j} d score / d A[i, j, k]
    CAM     = ReLU(sum_k alpha_k * A[:, :, k])

upsampled bilinearly to the input size with half-pixel centres (as torch's
``interpolate(..., align_corners=False)``) and divided by its maximum.

Gradient saliency (Simonyan et al., 2014): ``max_c |d score / d x[h, w, c]|``, divided
by its maximum.
"""

from __future__ import annotations

import numpy as np

from dojang.viz.probe import find_layer, keep_weight_grads, logits, tap


def _image_batch(image, owner: str) -> np.ndarray:
    x = np.asarray(image)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"{owner}: Expected image of shape (H, W, C) or (1, H, W, C). "
                         f"Received: image.shape={np.shape(image)}")
    return x


def _class(scores, class_index, owner: str) -> int:
    n = scores.shape[-1]
    if class_index is None:
        return int(np.argmax(scores.numpy()[0]))
    if not isinstance(class_index, (int, np.integer)) or not 0 <= class_index < n:
        raise ValueError(f"{owner}: Expected class_index in [0, {n}). Received: "
                         f"class_index={class_index!r}")
    return int(class_index)


def resize_bilinear(a: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a 2-d array bilinearly with half-pixel centres (torch ``align_corners=False``).

    Output pixel ``i`` samples input coordinate ``(i + 0.5) * in / out - 0.5``, clamped
    at 0, between its two neighbours.

    Example:
        >>> resize_bilinear(np.array([[0.0, 1.0]]), 1, 4)
        array([[0.  , 0.25, 0.75, 1.  ]])
    """
    def axis(n_in, n_out):
        src = np.maximum((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0.0)
        lo = np.minimum(np.floor(src).astype(int), n_in - 1)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, src - lo

    a = np.asarray(a, dtype=np.float64)
    r0, r1, fr = axis(a.shape[0], height)
    c0, c1, fc = axis(a.shape[1], width)
    rows = a[r0] * (1 - fr)[:, None] + a[r1] * fr[:, None]
    return rows[:, c0] * (1 - fc) + rows[:, c1] * fc


def _normalised(m: np.ndarray) -> np.ndarray:
    top = m.max()
    return m / top if top > 0 else m


def grad_cam(model, image, layer=None, class_index=None) -> np.ndarray:
    """Grad-CAM heatmap of ``class_index`` (default: the predicted class) over the input.

    Args:
        model: a built classifier (logits, or a softmax last layer).
        image: (H, W, C) or (1, H, W, C).
        layer: a conv layer name or index; None means the last ``Conv2D``.
        class_index: the class to explain; None means the predicted one.

    Returns:
        (H, W) float64 array in [0, 1] with a maximum of 1 (all zeros if the map is zero).

    Raises:
        ValueError: a bad image shape, an unknown or non-spatial layer, a class index out
            of range.

    Example:
        >>> import dojang as dj
        >>> m = dj.Sequential([dj.layers.Conv2D(4, 3, activation="relu", input_shape=(8, 8, 1)),
        ...                    dj.layers.Flatten(), dj.layers.Dense(3, activation="softmax")])
        >>> cam = grad_cam(m, np.ones((8, 8, 1)))
        >>> cam.shape, float(cam.max()) in (0.0, 1.0)
        ((8, 8), True)
    """
    from dojang.autograd import Tensor

    x = _image_batch(image, "grad_cam")
    target = find_layer(model, layer, kind="Conv2D")
    with keep_weight_grads(model), logits(model), tap(target, cut=True) as seen:
        scores = model(Tensor(x.astype(model.dtype)), training=False)
        k = _class(scores, class_index, "grad_cam")
        scores[0, k].backward()
    a = seen[0]
    if a.grad is None:  # the score does not depend on this layer
        return np.zeros(x.shape[1:3])
    alpha = a.grad.numpy()[0].astype(np.float64).mean(axis=(0, 1))  # (K,)
    cam = np.maximum((a.numpy()[0].astype(np.float64) * alpha).sum(-1), 0.0)
    return _normalised(resize_bilinear(cam, x.shape[1], x.shape[2]))


def saliency(model, image, class_index=None) -> np.ndarray:
    """Gradient saliency ``max_c |d score / d x|`` of ``class_index`` over the input.

    Args:
        model: a built classifier (logits, or a softmax last layer).
        image: (H, W, C) or (1, H, W, C).
        class_index: the class to explain; None means the predicted one.

    Returns:
        (H, W) float64 array with a maximum of 1 (all zeros if the gradient is zero).

    Example:
        >>> import dojang as dj
        >>> m = dj.Sequential([dj.layers.Flatten(input_shape=(2, 2, 1)), dj.layers.Dense(2)])
        >>> saliency(m, np.ones((2, 2, 1))).shape
        (2, 2)
    """
    from dojang.autograd import Tensor

    x = _image_batch(image, "saliency")
    xt = Tensor(x.astype(model.dtype), requires_grad=True)
    with keep_weight_grads(model), logits(model):
        scores = model(xt, training=False)
        k = _class(scores, class_index, "saliency")
        scores[0, k].backward()
    g = np.abs(xt.grad.numpy()[0].astype(np.float64)).max(-1)
    return _normalised(g)
