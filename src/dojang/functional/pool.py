"""``tf.nn``-style pooling for 1, 2 and 3 spatial dimensions, with argument checking.

``max_pool{1,2,3}d`` and ``avg_pool{1,2,3}d`` slide a window of ``ksize`` with
``strides`` over the spatial axes; ``global_avg_pool{1,2,3}d`` and
``global_max_pool{1,2,3}d`` reduce every spatial axis. All arguments are checked before
any array work; the rank-specific functions are thin wrappers over one implementation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from dojang.autograd import Tensor
from dojang.config import get_default_dtype
from dojang.functional._args import (
    DATA_FORMATS,
    as_tensor,
    check_name,
    check_ndim,
    fail,
    input_rank,
    padding_arg,
    spatial_arg,
    split_axes,
)
from dojang.ops.pool import AvgPool, GlobalAvgPool, GlobalMaxPool, MaxPool
from dojang.shapes import conv_output_length, resolve_padding
from dojang.validation import check_bool, check_choice, check_data_format, standardize_tuple

__all__ = [
    "avg_pool1d", "avg_pool2d", "avg_pool3d", "global_avg_pool1d", "global_avg_pool2d",
    "global_avg_pool3d", "global_max_pool1d", "global_max_pool2d", "global_max_pool3d",
    "avg_pool", "max_pool", "max_pool1d", "max_pool2d", "max_pool3d", "pool",
    "window_pool_arguments",
]

_SPATIAL = {1: "W", 2: "H, W", 3: "D, H, W"}


def _input(input, rank: int, owner: str) -> Tensor:
    """``input`` as a Tensor of rank ``rank + 2`` with an integer or floating dtype."""
    x = as_tensor(input, "input", owner)
    check_ndim(x, rank + 2, "input", owner,
               f"to have rank {rank + 2} (batch, {_SPATIAL[rank]} and channels)")
    return x


def _floating(x: Tensor) -> Tensor:
    """``x`` itself if floating, else a copy in the default float dtype (a mean of ints)."""
    return x if x.dtype.kind == "f" else Tensor(x.data.astype(get_default_dtype()))


def _window_pool(kind: str, input, ksize, strides, padding, data_format, rank: int,
                 owner: str, count_include_pad: bool = False) -> Tensor:
    x, op, hyper = _window_pool_arguments(kind, input, ksize, strides, padding, data_format,
                                          rank, owner, count_include_pad)
    return op.apply(x, **hyper)


def _window_pool_arguments(kind: str, input, ksize, strides, padding, data_format, rank: int,
                           owner: str, count_include_pad: bool = False):
    """Every check of ``_window_pool``: the input Tensor, the op and its keywords."""
    channels_last = check_data_format(data_format, rank, owner=owner)
    full_rank = f"as a list of {rank + 2} ints to be 1 for the batch and channel dimensions"
    k = spatial_arg(ksize, rank, channels_last, "ksize", owner, full_rank)
    s = k if strides is None else spatial_arg(strides, rank, channels_last, "strides", owner,
                                              full_rank)
    spec = padding_arg(padding, rank, channels_last, owner, f"as a list of {rank + 2} pairs to "
                       f"be (0, 0) for the batch and channel dimensions")
    check_bool(count_include_pad, "count_include_pad", owner)
    x = _input(input, rank, owner)
    spatial, _ = split_axes(x.shape, channels_last)
    pads = resolve_padding(spec, spatial, k, s, (1,) * rank, "padding", owner)
    if not isinstance(spec, str) and any(max(p) > kk // 2 for p, kk in zip(pads, k, strict=True)):
        raise ValueError(
            f"{owner}: Expected padding to be at most half the window (ksize // 2 = "
            f"{tuple(kk // 2 for kk in k)}) on each side. Received: padding={padding!r}"
        )
    dims = zip(spatial, k, pads, strict=True)
    if any(n == 0 or conv_output_length(n, kk, 1, *p) == 0 for n, kk, p in dims):
        raise ValueError(
            f"{owner}: Expected the window to fit in the padded input (ksize <= spatial size "
            f"+ padding, spatial size > 0). Received: ksize={k} for spatial shape "
            f"{spatial} with padding={pads}"
        )
    hyper = dict(ksize=k, strides=s, pads=pads, channels_last=channels_last)
    if kind == "max":
        return x, MaxPool, hyper
    return _floating(x), AvgPool, dict(hyper, count_include_pad=count_include_pad)


def window_pool_arguments(kind: str, rank: int, input, ksize, strides=None,
                          padding: Padding = "VALID", data_format: str | None = None,
                          count_include_pad: bool = False):
    """The checks of ``{kind}_pool{rank}d`` without the pooling: ``(input, op, keywords)``.

    ``op.apply(input, **keywords)`` is then what ``{kind}_pool{rank}d`` computes (``input``
    as a Tensor, cast as that function casts it). A layer runs the checks once per input
    signature and keeps the op and its keywords (``layers._args.per_signature``).

    Args:
        kind: ``"max"`` or ``"avg"``.
        rank: 1, 2 or 3 spatial dims.
        input, ksize, strides, padding, data_format, count_include_pad: as
            ``max_pool2d``/``avg_pool2d`` (``count_include_pad`` for ``"avg"``).

    Raises:
        TypeError, ValueError: as ``max_pool2d``/``avg_pool2d``.

    Example:
        >>> import numpy as np
        >>> x, op, keywords = window_pool_arguments("max", 2, np.ones((1, 4, 4, 1)), 2)
        >>> op.__name__, keywords["pads"]
        ('MaxPool', ((0, 0), (0, 0)))
    """
    kind = check_choice(kind, ("max", "avg"), "kind", "window_pool_arguments")
    if rank not in DATA_FORMATS:
        fail("window_pool_arguments", "rank", "to be 1, 2 or 3", f"rank={rank!r}")
    owner = f"{kind}_pool{rank}d"
    data_format = DATA_FORMATS[rank][0] if data_format is None else data_format
    return _window_pool_arguments(kind, input, ksize, strides, padding, data_format, rank, owner,
                                  count_include_pad)


def _global_pool(op, input, data_format, keepdims, rank: int, owner: str) -> Tensor:
    channels_last = check_data_format(data_format, rank, owner=owner)
    check_bool(keepdims, "keepdims", owner)
    x = _input(input, rank, owner)
    spatial, _ = split_axes(x.shape, channels_last)
    if 0 in spatial:
        raise ValueError(f"{owner}: Expected every spatial dimension to be > 0. "
                         f"Received: input.shape={x.shape}")
    if op is GlobalAvgPool:
        x = _floating(x)
    return op.apply(x, channels_last=channels_last, keepdims=keepdims)


_WINDOW_DOC = """{title} pooling over {rank} spatial dimension(s), as ``tf.nn.{tf}``.

{what}

Args:
    input: array or Tensor of rank {rank2}, ``{last}`` or ``{first}``.
    ksize: window size: an int, a tuple of {rank} ints, or TensorFlow's list of {rank2}
        ints with 1 at the batch and channel positions.
    strides: window step, in the same forms; None (default) means ``ksize``.
    padding: ``"VALID"``, ``"SAME"`` (output ``ceil(L / S)``, the odd pixel at the end),
        an int, a tuple of {rank} ints or {rank} ``(before, after)`` pairs, or TensorFlow's
        list of {rank2} pairs. Explicit padding is at most ``ksize // 2`` per side.
    data_format: ``"{last}"`` (default) or ``"{first}"``.{extra_arg}
    name: accepted for TensorFlow compatibility (None or a string); not used.

Input shape:
    ``(N, {sp}, C)`` channels-last or ``(N, C, {sp})`` channels-first.

Output shape:
    The same layout with each spatial ``L`` replaced by
    ``O = floor((L + P_before + P_after - K) / S) + 1``.

Raises:
    TypeError: non-numeric input, or ksize/strides/padding of the wrong type.
    ValueError: wrong input rank, unknown data_format or padding, ksize/strides < 1 or of
        the wrong length, padding over half the window, window larger than the padded input.

Example:
    >>> import numpy as np
    >>> from dojang.functional import {name}
    >>> {name}(np.arange({size}.0).reshape({shape}), 2).shape
    {out}
"""

_GLOBAL_DOC = """Global {title} pooling over {rank} spatial dimension(s): one value per channel.

{what}

Args:
    input: array or Tensor of rank {rank2}, ``{last}`` or ``{first}``.
    data_format: ``"{last}"`` (default) or ``"{first}"``.
    keepdims: keep the spatial axes with size 1.

Input shape:
    ``(N, {sp}, C)`` channels-last or ``(N, C, {sp})`` channels-first.

Output shape:
    ``(N, C)``; with ``keepdims`` ``(N, {ones}, C)`` or ``(N, C, {ones})``.

Raises:
    TypeError: non-numeric input or non-bool keepdims.
    ValueError: wrong input rank, unknown data_format, empty spatial dimension.

Example:
    >>> import numpy as np
    >>> from dojang.functional import {name}
    >>> {name}(np.ones({shape}), keepdims=True).shape
    {keep}
"""

_WHAT = {
    "max": "Each window gives its maximum; padding counts as -inf. The gradient of a window "
           "goes to\nits first maximum in row-major order (as PyTorch).",
    "avg": "Each window gives its mean. Padding is left out of the count (TensorFlow) unless\n"
           "``count_include_pad=True`` (PyTorch's default), which divides by ``prod(ksize)``.",
    "global_max": "The gradient goes to the first maximum in row-major spatial order, as\n"
                  "``torch.nn.functional.adaptive_max_pool2d(x, 1)`` (ties are not shared).",
    "global_avg": "The mean over all spatial positions.",
}


def _doc(template: str, kind: str, rank: int) -> Callable:
    """Fill a shared docstring template for one kind of pool and one rank."""
    last, first = DATA_FORMATS[rank]
    shape = (1, *(4,) * rank, 1)

    def decorate(fn):
        fn.__doc__ = template.format(
            title="Max" if "max" in kind else "Average", rank=rank, rank2=rank + 2,
            tf=f"{kind.split('_')[-1]}_pool{rank}d", what=_WHAT[kind], last=last, first=first,
            sp=_SPATIAL[rank], name=fn.__name__, size=4**rank, shape=shape,
            out=(1, *(2,) * rank, 1), ones=", ".join("1" * rank), keep=(1, *(1,) * rank, 1),
            extra_arg="\n    count_include_pad: divide by the full window size, padding included."
            if kind == "avg" else "",
        )
        return fn

    return decorate


Padding = str | int | Sequence


@_doc(_WINDOW_DOC, "max", 1)
def max_pool1d(input, ksize: int | Sequence[int], strides: int | Sequence[int] | None = None,
               padding: Padding = "VALID", data_format: str = "NWC",
               name: str | None = None) -> Tensor:
    check_name(name, "max_pool1d")
    return _window_pool("max", input, ksize, strides, padding, data_format, 1, "max_pool1d")


@_doc(_WINDOW_DOC, "max", 2)
def max_pool2d(input, ksize: int | Sequence[int], strides: int | Sequence[int] | None = None,
               padding: Padding = "VALID", data_format: str = "NHWC",
               name: str | None = None) -> Tensor:
    check_name(name, "max_pool2d")
    return _window_pool("max", input, ksize, strides, padding, data_format, 2, "max_pool2d")


@_doc(_WINDOW_DOC, "max", 3)
def max_pool3d(input, ksize: int | Sequence[int], strides: int | Sequence[int] | None = None,
               padding: Padding = "VALID", data_format: str = "NDHWC",
               name: str | None = None) -> Tensor:
    check_name(name, "max_pool3d")
    return _window_pool("max", input, ksize, strides, padding, data_format, 3, "max_pool3d")


@_doc(_WINDOW_DOC, "avg", 1)
def avg_pool1d(input, ksize: int | Sequence[int], strides: int | Sequence[int] | None = None,
               padding: Padding = "VALID", data_format: str = "NWC",
               count_include_pad: bool = False,
               name: str | None = None) -> Tensor:
    check_name(name, "avg_pool1d")
    return _window_pool("avg", input, ksize, strides, padding, data_format, 1, "avg_pool1d",
                        count_include_pad)


@_doc(_WINDOW_DOC, "avg", 2)
def avg_pool2d(input, ksize: int | Sequence[int], strides: int | Sequence[int] | None = None,
               padding: Padding = "VALID", data_format: str = "NHWC",
               count_include_pad: bool = False,
               name: str | None = None) -> Tensor:
    check_name(name, "avg_pool2d")
    return _window_pool("avg", input, ksize, strides, padding, data_format, 2, "avg_pool2d",
                        count_include_pad)


@_doc(_WINDOW_DOC, "avg", 3)
def avg_pool3d(input, ksize: int | Sequence[int], strides: int | Sequence[int] | None = None,
               padding: Padding = "VALID", data_format: str = "NDHWC",
               count_include_pad: bool = False,
               name: str | None = None) -> Tensor:
    check_name(name, "avg_pool3d")
    return _window_pool("avg", input, ksize, strides, padding, data_format, 3, "avg_pool3d",
                        count_include_pad)


@_doc(_GLOBAL_DOC, "global_avg", 1)
def global_avg_pool1d(input, data_format: str = "NWC", keepdims: bool = False) -> Tensor:
    return _global_pool(GlobalAvgPool, input, data_format, keepdims, 1, "global_avg_pool1d")


@_doc(_GLOBAL_DOC, "global_avg", 2)
def global_avg_pool2d(input, data_format: str = "NHWC", keepdims: bool = False) -> Tensor:
    return _global_pool(GlobalAvgPool, input, data_format, keepdims, 2, "global_avg_pool2d")


@_doc(_GLOBAL_DOC, "global_avg", 3)
def global_avg_pool3d(input, data_format: str = "NDHWC", keepdims: bool = False) -> Tensor:
    return _global_pool(GlobalAvgPool, input, data_format, keepdims, 3, "global_avg_pool3d")


@_doc(_GLOBAL_DOC, "global_max", 1)
def global_max_pool1d(input, data_format: str = "NWC", keepdims: bool = False) -> Tensor:
    return _global_pool(GlobalMaxPool, input, data_format, keepdims, 1, "global_max_pool1d")


@_doc(_GLOBAL_DOC, "global_max", 2)
def global_max_pool2d(input, data_format: str = "NHWC", keepdims: bool = False) -> Tensor:
    return _global_pool(GlobalMaxPool, input, data_format, keepdims, 2, "global_max_pool2d")


@_doc(_GLOBAL_DOC, "global_max", 3)
def global_max_pool3d(input, data_format: str = "NDHWC", keepdims: bool = False) -> Tensor:
    return _global_pool(GlobalMaxPool, input, data_format, keepdims, 3, "global_max_pool3d")


def _any_rank(kind: str, input, ksize, strides, padding, data_format, owner: str) -> Tensor:
    """Window pooling whose rank (1, 2 or 3 spatial dims) comes from ``input``, as tf.nn."""
    rank = input_rank(input, owner)
    data_format = DATA_FORMATS[rank][0] if data_format is None else data_format
    return _window_pool(kind, input, ksize, strides, padding, data_format, rank, owner)


def max_pool(input, ksize, strides, padding, data_format: str | None = None,
             name: str | None = None) -> Tensor:
    """Max pooling over 1, 2 or 3 spatial dims (the input's rank minus 2), as ``tf.nn.max_pool``.

    Args:
        input: array or Tensor of rank 3, 4 or 5, channels-last by default.
        ksize, strides: an int, one int per spatial dim, or a full-rank list with 1 at the
            batch and channel positions (``[1, 2, 2, 1]``).
        padding: ``"VALID"``, ``"SAME"``, or the explicit forms of ``max_pool2d``.
        data_format: None (channels-last for the rank: ``"NWC"``, ``"NHWC"``, ``"NDHWC"``)
            or a data format of that rank.
        name: accepted for TensorFlow compatibility (None or a string); not used.

    Output shape: as ``max_pool2d``, ``O = floor((L + P_before + P_after - K) / S) + 1``
    (``ceil(L / S)`` for SAME).

    Raises:
        ValueError: an input of rank other than 3 to 5, and everything ``max_pool2d`` raises.
        TypeError: a name that is not a string.

    Example:
        >>> import numpy as np
        >>> x = np.arange(16.0).reshape(1, 4, 4, 1)
        >>> max_pool(x, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="SAME").shape
        (1, 2, 2, 1)
    """
    check_name(name, "max_pool")
    return _any_rank("max", input, ksize, strides, padding, data_format, "max_pool")


def avg_pool(input, ksize, strides, padding, data_format: str | None = None,
             name: str | None = None) -> Tensor:
    """Average pooling over 1, 2 or 3 spatial dims, as ``tf.nn.avg_pool``.

    Padding is left out of each window's count (TensorFlow's SAME average). Arguments,
    shapes and errors as ``max_pool``.

    Example:
        >>> import numpy as np
        >>> avg_pool(np.ones((1, 5, 2)), ksize=2, strides=2, padding="SAME").numpy()[0, :, 0]
        array([1., 1., 1.])
    """
    check_name(name, "avg_pool")
    return _any_rank("avg", input, ksize, strides, padding, data_format, "avg_pool")


def pool(input, window_shape, pooling_type: str, strides=None, padding="VALID",
         data_format: str | None = None, dilations=None, name: str | None = None) -> Tensor:
    """N-d max or average pooling chosen by ``pooling_type``, as ``tf.nn.pool``.

    Args:
        input: array or Tensor of rank 3, 4 or 5 (N = rank - 2 spatial dims).
        window_shape: N ints (or one int for every dim).
        pooling_type: ``"MAX"`` or ``"AVG"`` (any case).
        strides: N ints; None means 1 in every dim (as tf.nn.pool, unlike ``max_pool``).
        padding: ``"VALID"`` or ``"SAME"``, or the explicit forms of ``max_pool2d``.
        data_format: None (channels-last) or a data format of rank N.
        dilations: None or 1 in every dim (dilated pooling is not supported).
        name: accepted for TensorFlow compatibility (None or a string); not used.

    Raises:
        ValueError: unknown pooling_type, dilations other than 1, and the errors of
            ``max_pool``.

    Example:
        >>> import numpy as np
        >>> pool(np.ones((1, 6, 6, 1)), [3, 3], "AVG", strides=[3, 3]).shape
        (1, 2, 2, 1)
    """
    owner = "pool"
    check_name(name, owner)
    kind = {"MAX": "max", "AVG": "avg"}.get(pooling_type.upper()
                                             if isinstance(pooling_type, str) else None)
    if kind is None:
        fail(owner, "pooling_type", "to be 'MAX' or 'AVG'", f"pooling_type={pooling_type!r}")
    rank = input_rank(input, owner)
    if dilations is not None and any(d != 1 for d in standardize_tuple(
            dilations, rank, "dilations", owner)):
        fail(owner, "dilations", "to be 1 in every spatial dim (dilated pooling is not "
             "supported)", f"dilations={dilations!r}")
    return _any_rank(kind, input, window_shape, 1 if strides is None else strides, padding,
                     data_format, owner)
