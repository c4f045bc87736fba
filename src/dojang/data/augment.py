"""Random image augmentations applied to a whole batch at once.

Every function takes a batch ``x`` of shape (N, H, W, C) (or (N, C, H, W) with
``data_format="channels_first"``, or (N, H, W) for grayscale images as loaded) and an explicit
``np.random.Generator``, draws all of its random numbers for the batch in one call per
quantity (the order is stated in each docstring, so a reference can replay it), and builds
the result with broadcasting and fancy indexing: no Python loop runs over the images. The
dtype and shape of ``x`` are kept. The batch may be a CuPy array; the draws are made with the
NumPy generator and moved to the batch's device.

Example:
    >>> import numpy as np
    >>> from functools import partial
    >>> augment = compose(random_flip_left_right, partial(random_crop, padding=4))
    >>> x = np.zeros((8, 32, 32, 3), np.uint8)
    >>> augment(x, np.random.default_rng(0)).shape
    (8, 32, 32, 3)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dojang.backend import get_array_module
from dojang.validation import check_choice, check_data_format, check_float, standardize_tuple

__all__ = ["compose", "cutout", "random_crop", "random_flip_left_right", "random_shift"]

# dojang's padding-mode names (as in ops.pad) -> numpy.pad modes.
_PAD_MODES = {"constant": "constant", "zeros": "constant", "reflect": "reflect",
              "edge": "edge", "replicate": "edge", "wrap": "wrap", "circular": "wrap"}

Augmentation = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def _check_batch(x, rng, data_format, owner: str):
    """Validate arguments; return ``x`` viewed as NHWC and how to undo that view."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{owner}: Expected rng to be a numpy.random.Generator. "
                        f"Received: rng={rng!r}")
    channels_last = check_data_format(data_format, 2, owner=owner)
    ndim = getattr(x, "ndim", None)
    if ndim == 3:
        return x[..., None], "grayscale"
    if ndim != 4:
        raise ValueError(f"{owner}: Expected x to be a 3-D (N, H, W) or 4-D "
                         f"({'N, H, W, C' if channels_last else 'N, C, H, W'}) image batch. "
                         f"Received: x with shape {getattr(x, 'shape', type(x).__name__)}")
    return (x, "nhwc") if channels_last else (x.transpose(0, 2, 3, 1), "nchw")


def _restore(out, layout: str):
    if layout == "grayscale":
        return out[..., 0]
    return out if layout == "nhwc" else out.transpose(0, 3, 1, 2)


def random_flip_left_right(x, rng: np.random.Generator, p: float = 0.5,
                           data_format: str = "channels_last"):
    """Mirror each image horizontally with probability ``p``.

    Draws: ``rng.random(N)``; image ``n`` is flipped when that number is below ``p``.

    Args:
        x: image batch.
        rng: random generator.
        p: probability of flipping each image.
        data_format: ``"channels_last"`` (NHWC) or ``"channels_first"`` (NCHW).

    Input shape: (N, H, W, C), (N, C, H, W) or (N, H, W). Output shape: the same; same
    dtype.

    Raises:
        TypeError: ``rng`` is not a Generator. ValueError: ``x`` is not 3-D or 4-D, or ``p`` is
            outside [0, 1].

    Example:
        >>> x = np.arange(4).reshape(1, 1, 4, 1)
        >>> random_flip_left_right(x, np.random.default_rng(0), p=1.0)[0, 0, :, 0]
        array([3, 2, 1, 0])
    """
    owner = "random_flip_left_right"
    p = check_float(p, "p", owner, low=0.0, high=1.0)
    nhwc, layout = _check_batch(x, rng, data_format, owner)
    xp = get_array_module(x)
    flip = xp.asarray(rng.random(nhwc.shape[0]) < p)
    return _restore(xp.where(flip[:, None, None, None], nhwc[:, :, ::-1], nhwc), layout)


def _gather_crops(nhwc, top, left, pads, fill_mode: str, fill_value, owner: str):
    """Crop an (H, W) window at (top[n], left[n]) from each image padded by ``pads``."""
    xp = get_array_module(nhwc)
    n, h, w, _ = nhwc.shape
    (ph, pw), mode = pads, _PAD_MODES[fill_mode]
    if mode == "reflect" and (ph >= h or pw >= w):
        raise ValueError(f"{owner}: 'reflect' padding needs a pad smaller than the image. "
                         f"Received: padding={pads} for images of size {(h, w)}")
    width = ((0, 0), (ph, ph), (pw, pw), (0, 0))
    kwargs = {"constant_values": fill_value} if mode == "constant" else {}
    padded = xp.pad(nhwc, width, mode=mode, **kwargs)
    rows = xp.asarray(top)[:, None, None] + xp.arange(h)[None, :, None]
    cols = xp.asarray(left)[:, None, None] + xp.arange(w)[None, None, :]
    return padded[xp.arange(n)[:, None, None], rows, cols]


def _random_crops(x, rng, amount, name: str, fill_mode: str, fill_value, data_format: str,
                  owner: str, origins: Callable):
    """Check the arguments of random_crop/random_shift, then crop every padded image.

    ``amount`` (argument ``name``) is the pad ``(PH, PW)`` on each side; ``origins(pads, n)``
    draws the ``n`` window origins ``(top, left)`` in padded coordinates, each in
    ``[0, 2*P]``.
    """
    pads = standardize_tuple(amount, 2, name, owner, min_value=0)
    fill_mode = check_choice(fill_mode, tuple(_PAD_MODES), "fill_mode", owner)
    nhwc, layout = _check_batch(x, rng, data_format, owner)
    top, left = origins(pads, nhwc.shape[0])
    return _restore(_gather_crops(nhwc, top, left, pads, fill_mode, fill_value, owner), layout)


def random_crop(x, rng: np.random.Generator, padding=4, fill_mode: str = "constant",
                fill_value=0, data_format: str = "channels_last"):
    """Pad each image by ``padding`` on every side and crop it back to (H, W) at a random place.

    The standard CIFAR augmentation (pad 4, crop 32x32). Equivalent to shifting each image by
    ``padding - top`` rows and ``padding - left`` columns.

    Draws: ``top = rng.integers(0, 2*PH + 1, N)``, then ``left = rng.integers(0, 2*PW + 1, N)``;
    ``out[n] = pad(x[n])[top[n]:top[n] + H, left[n]:left[n] + W]``.

    Args:
        x: image batch.
        rng: random generator.
        padding: int or (PH, PW), pixels added on each side, >= 0.
        fill_mode: how the border is filled: ``"constant"``/``"zeros"`` (``fill_value``),
            ``"reflect"``, ``"edge"``/``"replicate"``, ``"wrap"``/``"circular"``.
        fill_value: value of the border for ``"constant"``.
        data_format: ``"channels_last"`` (NHWC) or ``"channels_first"`` (NCHW).

    Input shape: (N, H, W, C), (N, C, H, W) or (N, H, W). Output shape: the same; same
    dtype.

    Raises:
        TypeError: ``rng`` is not a Generator. ValueError: ``x`` is not 3-D or 4-D, a bad
            ``padding`` or ``fill_mode``, or a ``"reflect"`` pad not smaller than the image.

    Example:
        >>> x = np.ones((2, 28, 28, 1), np.float32)
        >>> random_crop(x, np.random.default_rng(0), padding=2).shape
        (2, 28, 28, 1)
    """

    def origins(pads, n):
        top = rng.integers(0, 2 * pads[0] + 1, n)
        left = rng.integers(0, 2 * pads[1] + 1, n)
        return top, left

    return _random_crops(x, rng, padding, "padding", fill_mode, fill_value, data_format,
                         "random_crop", origins)


def random_shift(x, rng: np.random.Generator, max_shift=2, fill_mode: str = "constant",
                 fill_value=0, data_format: str = "channels_last"):
    """Translate each image by a random whole number of pixels, filling the uncovered border.

    Draws: ``dy = rng.integers(-SY, SY + 1, N)``, then ``dx = rng.integers(-SX, SX + 1, N)``;
    ``out[n, i, j] = x[n, i - dy[n], j - dx[n]]`` (positive shifts move the content down and
    right), with pixels from outside the image given by ``fill_mode``.

    Args:
        x: image batch.
        rng: random generator.
        max_shift: int or (SY, SX), the largest shift in pixels, >= 0.
        fill_mode: ``"constant"``/``"zeros"``, ``"reflect"``, ``"edge"``/``"replicate"``,
            ``"wrap"``/``"circular"``.
        fill_value: value of the border for ``"constant"``.
        data_format: ``"channels_last"`` (NHWC) or ``"channels_first"`` (NCHW).

    Input shape: (N, H, W, C), (N, C, H, W) or (N, H, W). Output shape: the same; same
    dtype.

    Raises:
        TypeError: ``rng`` is not a Generator. ValueError: ``x`` is not 3-D or 4-D, a bad
            ``max_shift`` or ``fill_mode``.

    Example:
        >>> x = np.arange(4).reshape(1, 1, 4, 1)
        >>> random_shift(x, np.random.default_rng(3), max_shift=(0, 1))[0, 0, :, 0]
        array([0, 0, 1, 2])
    """

    def origins(pads, n):
        dy = rng.integers(-pads[0], pads[0] + 1, n)
        dx = rng.integers(-pads[1], pads[1] + 1, n)
        # Window origin in padded coordinates: out[i] = padded[i - dy + SY].
        return pads[0] - dy, pads[1] - dx

    return _random_crops(x, rng, max_shift, "max_shift", fill_mode, fill_value, data_format,
                         "random_shift", origins)


def cutout(x, rng: np.random.Generator, size=8, p: float = 1.0, fill_value=0,
           data_format: str = "channels_last"):
    """Fill a square patch of each image with ``fill_value`` (DeVries and Taylor, 2017).

    The patch is centred on a uniformly random pixel and clipped at the image border, so it
    may lie partly outside, as in the paper.

    Draws: ``cy = rng.integers(0, H, N)``, ``cx = rng.integers(0, W, N)``, then
    ``apply = rng.random(N) < p``; image ``n`` gets rows ``[cy - SH // 2, cy - SH // 2 + SH)``
    and columns ``[cx - SW // 2, cx - SW // 2 + SW)`` (all channels) set to ``fill_value``
    when ``apply[n]``.

    Args:
        x: image batch.
        rng: random generator.
        size: int or (SH, SW), side of the patch in pixels, >= 1.
        p: probability of applying the patch to each image.
        fill_value: value written into the patch.
        data_format: ``"channels_last"`` (NHWC) or ``"channels_first"`` (NCHW).

    Input shape: (N, H, W, C), (N, C, H, W) or (N, H, W). Output shape: the same; same
    dtype.

    Raises:
        TypeError: ``rng`` is not a Generator. ValueError: ``x`` is not 3-D or 4-D, a bad ``size``,
            or ``p`` outside [0, 1].

    Example:
        >>> x = np.ones((1, 4, 4, 1), np.uint8)
        >>> int(cutout(x, np.random.default_rng(0), size=2).sum())
        12
    """
    owner = "cutout"
    sh, sw = standardize_tuple(size, 2, "size", owner)
    p = check_float(p, "p", owner, low=0.0, high=1.0)
    nhwc, layout = _check_batch(x, rng, data_format, owner)
    xp = get_array_module(x)
    n, h, w, _ = nhwc.shape
    top = rng.integers(0, h, n) - sh // 2
    left = rng.integers(0, w, n) - sw // 2
    apply = rng.random(n) < p
    rows = np.arange(h)[None, :]
    cols = np.arange(w)[None, :]
    in_rows = (rows >= top[:, None]) & (rows < top[:, None] + sh)
    in_cols = (cols >= left[:, None]) & (cols < left[:, None] + sw)
    mask = in_rows[:, :, None] & in_cols[:, None, :] & apply[:, None, None]
    fill = xp.asarray(fill_value, dtype=nhwc.dtype)
    return _restore(xp.where(xp.asarray(mask)[..., None], fill, nhwc), layout)


def compose(*augmentations: Augmentation) -> Augmentation:
    """Chain augmentations ``f(x, rng)`` into one, applied left to right with the same rng.

    Example:
        >>> from functools import partial
        >>> aug = compose(random_flip_left_right, partial(cutout, size=4))
        >>> aug(np.zeros((2, 8, 8, 1)), np.random.default_rng(0)).shape
        (2, 8, 8, 1)
    """
    for f in augmentations:
        if not callable(f):
            raise TypeError(f"compose: Expected each augmentation to be a callable f(x, rng). "
                            f"Received: {f!r}")

    def augment(x, rng: np.random.Generator):
        for f in augmentations:
            x = f(x, rng)
        return x

    return augment
