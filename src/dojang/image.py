"""Images for learners: reading a file at a model's size, and the classic image kernels.

``load`` turns any PNG or JPEG (colour, grey, with or without alpha) into the float
array a model takes: ``(H, W, C)`` in [0, 1] at the model's input size and channels.

``FILTERS`` holds the hand-made kernels that seeds 001 and 002 show before any learning
(box and Gaussian blur, sharpen, Sobel, Laplacian, emboss, outline); ``filter`` applies
one through ``dojang.functional.conv2d``, that is as a convolution layer would: a
cross-correlation (the kernel is not flipped) with zero SAME padding, channel by channel.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["FILTERS", "filter", "load"]


def _kernel(rows, scale: float = 1.0) -> np.ndarray:
    k = np.asarray(rows, dtype=np.float64) * scale
    k.setflags(write=False)
    return k


_SOBEL_X = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
_SOBEL_Y = [[-1, -2, -1], [0, 0, 0], [1, 2, 1]]

#: name -> kernel (KH, KW), or a stack (n, KH, KW) whose n responses combine as the
#: gradient magnitude ``sqrt(sum of squares)`` (``"sobel"``: both Sobel directions).
FILTERS: dict[str, np.ndarray] = {
    "box_blur": _kernel(np.ones((3, 3)), 1 / 9),
    "gaussian_blur": _kernel([[1, 2, 1], [2, 4, 2], [1, 2, 1]], 1 / 16),
    "sharpen": _kernel([[0, -1, 0], [-1, 5, -1], [0, -1, 0]]),
    "sobel": _kernel([_SOBEL_X, _SOBEL_Y]),
    "sobel_x": _kernel(_SOBEL_X),
    "sobel_y": _kernel(_SOBEL_Y),
    "laplacian": _kernel([[0, 1, 0], [1, -4, 1], [0, 1, 0]]),
    "emboss": _kernel([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]),
    "outline": _kernel([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]]),
}


def filter(image, name: str) -> np.ndarray:
    """Apply the image kernel ``FILTERS[name]`` to every channel of ``image``.

    Each channel is convolved (cross-correlated, zero SAME padding) with the kernel by
    ``dojang.functional.conv2d``; a stack of kernels (``"sobel"``) gives the magnitude
    ``sqrt(gx**2 + gy**2)`` of its responses.

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` array of numbers (uint8 or float).
        name: a key of ``FILTERS``.

    Input shape: ``(H, W)`` or ``(H, W, C)``. Output shape: the same, float64.

    Raises:
        ValueError: an unknown filter name, or an image that is not 2-d or 3-d or is empty.
        TypeError: an image that is not numeric.

    Example:
        >>> import numpy as np
        >>> step = np.repeat([[0.0, 0.0, 1.0, 1.0]], 3, axis=0)   # dark | light
        >>> filter(step, "sobel_x")[1, 1:3]                       # the edge, inside
        array([4., 4.])
    """
    from dojang.functional import conv2d

    if not isinstance(name, str) or name not in FILTERS:
        raise ValueError(f"dojang.image.filter: Expected name to be one of {sorted(FILTERS)}. "
                         f"Received: name={name!r}")
    img = np.asarray(image)
    if img.dtype.kind not in "biuf":
        raise TypeError(f"dojang.image.filter: Expected a numeric image. Received: image of "
                        f"dtype {img.dtype}")
    if img.ndim not in (2, 3) or img.size == 0:
        raise ValueError(f"dojang.image.filter: Expected a non-empty image of shape (H, W) or "
                         f"(H, W, C). Received: image.shape={img.shape}")
    planes = np.moveaxis(np.atleast_3d(img).astype(np.float64), 2, 0)[..., None]  # (C, H, W, 1)
    kernels = FILTERS[name]
    stack = kernels[None] if kernels.ndim == 2 else kernels
    filters = np.moveaxis(stack, 0, -1)[:, :, None, :]  # (KH, KW, 1, n)
    responses = conv2d(planes, filters, padding="SAME").numpy()  # (C, H, W, n)
    out = responses[..., 0] if kernels.ndim == 2 else np.sqrt((responses**2).sum(-1))
    out = np.moveaxis(out, 0, 2)
    return out[..., 0] if img.ndim == 2 else out


def load(path, size: tuple[int, int] | None = None, channels: int | None = None) -> np.ndarray:
    """Read a PNG or JPEG file as a float32 ``(H, W, C)`` array in [0, 1].

    Colour images become grey (ITU-R 601 luma) for ``channels=1``, grey ones are
    repeated for ``channels=3``, and transparency is dropped; the image is resized
    bilinearly to ``size``. This is the conversion ``dojang show`` and ``dojang predict``
    use to feed a file to a model.

    Args:
        path: the image file.
        size: ``(H, W)`` to resize to, or None to keep the file's size.
        channels: 1 or 3, or None to keep grey images grey and make others RGB.

    Raises:
        ValueError: a missing file, a file that is not an image, a size that is not two
            positive ints, or channels other than 1 and 3 (with the number asked for).

    Example:
        >>> import os, tempfile
        >>> from PIL import Image
        >>> p = os.path.join(tempfile.mkdtemp(), "dot.png")
        >>> Image.new("RGB", (8, 4), (255, 0, 0)).save(p)
        >>> load(p, size=(2, 2), channels=1).shape
        (2, 2, 1)
    """
    try:
        from PIL import Image
    except ImportError:
        raise ValueError("reading images needs Pillow: pip install 'dojang[images]'") from None
    if channels not in (None, 1, 3):
        raise ValueError(f"cannot convert an image to {channels} channels: images have 1 "
                         f"(grey) or 3 (RGB) channels. Received: channels={channels!r}")
    if size is not None and not (len(size) == 2 and all(
            isinstance(s, (int, np.integer)) and s > 0 for s in size)):
        raise ValueError(f"cannot resize an image to {size!r}: expected (H, W) with "
                         f"positive sizes")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"no such image file: {path!r}")
    try:
        with Image.open(path) as img:
            grey = img.mode in ("1", "L", "LA", "I", "I;16", "F")
            mode = "L" if channels == 1 or (channels is None and grey) else "RGB"
            img = img.convert(mode)
            if size is not None:
                img = img.resize((int(size[1]), int(size[0])), Image.BILINEAR)
            arr = np.asarray(img, dtype=np.float32) / 255.0
    except OSError as e:  # PIL.UnidentifiedImageError is an OSError
        raise ValueError(f"cannot read {path!r} as an image: {e}") from None
    return arr[..., None] if arr.ndim == 2 else arr
