"""Shape ops: reshape, transpose, slicing, concatenate, stack, pad."""

from __future__ import annotations

from dojang.autograd import Function, Tensor
from dojang.backend import get_array_module
from dojang.ops.elementwise import _operand
from dojang.validation import check_choice, is_int


class Reshape(Function):
    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, gy):
        return gy.reshape(self.in_shape)


class Transpose(Function):
    def __init__(self, axes):
        self.axes = axes

    def forward(self, x):
        return x.transpose(self.axes)

    def backward(self, gy):
        if self.axes is None:
            return gy.transpose()
        inverse = [0] * len(self.axes)
        for i, a in enumerate(self.axes):
            inverse[a] = i
        return gy.transpose(inverse)


class GetItem(Function):
    def __init__(self, index):
        self.index = index

    def forward(self, x):
        self.in_shape, self.dtype = x.shape, x.dtype
        return x[self.index]

    def backward(self, gy):
        xp = get_array_module(gy)
        gx = xp.zeros(self.in_shape, dtype=gy.dtype)
        xp.add.at(gx, self.index, gy)  # handles repeated integer indices correctly
        return gx


class Concatenate(Function):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, *xs):
        self.sizes = [x.shape[self.axis] for x in xs]
        return get_array_module(*xs).concatenate(xs, axis=self.axis)

    def backward(self, gy):
        xp = get_array_module(gy)
        bounds = list(_cumsum(self.sizes))[:-1]
        return tuple(xp.split(gy, bounds, axis=self.axis))


class Stack(Function):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, *xs):
        return get_array_module(*xs).stack(xs, axis=self.axis)

    def backward(self, gy):
        xp = get_array_module(gy)
        return tuple(xp.moveaxis(gy, self.axis, 0))


def _cumsum(values):
    total = 0
    for v in values:
        total += v
        yield total


PAD_MODES = ("constant", "zeros", "reflect", "replicate", "edge", "circular", "wrap")
_NUMPY_MODE = {"constant": "constant", "zeros": "constant", "reflect": "reflect",
               "replicate": "edge", "edge": "edge", "circular": "wrap", "wrap": "wrap"}


def _source_index(i: int, n: int, mode: str) -> int:
    """Index in the unpadded axis (length n) that padded position i (relative) copies."""
    if mode == "edge":
        return min(max(i, 0), n - 1)
    if mode == "wrap":
        return i % n
    period = 2 * (n - 1)  # reflect without repeating the edge pixel
    j = i % period if period else 0
    return period - j if j >= n else j


class Pad(Function):
    """Pad every axis by ``(before, after)``; backward is the exact adjoint of the mode.

    For ``constant`` the adjoint is a slice. For ``reflect``, ``edge`` and ``wrap`` each
    padded position copies one source position, so the adjoint adds the gradient of
    every padded position back onto its source, looping over pad positions only.
    """

    def __init__(self, pads, mode, value=0.0):
        self.pads, self.mode, self.value = pads, mode, value

    def forward(self, x):
        xp = get_array_module(x)
        self.in_shape = x.shape
        if self.mode == "constant":
            return xp.pad(x, self.pads, mode="constant", constant_values=self.value)
        return xp.pad(x, self.pads, mode=self.mode)

    def backward(self, gy):
        g = gy
        for axis, (before, after) in enumerate(self.pads):
            if before == 0 and after == 0:
                continue
            n = self.in_shape[axis]
            core = _take(g, axis, slice(before, before + n))
            if self.mode != "constant":
                core = core.copy()
                for p in list(range(before)) + list(range(before + n, before + n + after)):
                    src = _source_index(p - before, n, self.mode)
                    _take(core, axis, slice(src, src + 1))[...] += _take(g, axis, slice(p, p + 1))
            g = core
        return g


def _take(a, axis, sl):
    return a[(slice(None),) * axis + (sl,)]


def reshape(x, shape) -> Tensor:
    """Return the same values with a new shape (one dimension may be -1)."""
    x = _operand(x)
    if is_int(shape):
        shape = (int(shape),)
    shape = tuple(shape)
    if not all(is_int(s) for s in shape):
        raise TypeError(f"reshape: Expected shape to be a tuple of ints. Received: "
                        f"shape={shape!r}")
    known = 1
    for s in shape:
        if s != -1:
            known *= s
    if shape.count(-1) > 1 or any(s < -1 for s in shape) or (
        x.size != known if -1 not in shape else (known == 0 or x.size % known)
    ):
        raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} ({x.size} "
                         f"elements). Received: shape={shape}")
    return Reshape.apply(x, shape=shape)


def transpose(x, axes=None) -> Tensor:
    """Permute the axes (reverse them when ``axes`` is None)."""
    x = _operand(x)
    if axes is not None:
        axes = tuple(axes)
        if sorted(a % max(x.ndim, 1) for a in axes) != list(range(x.ndim)):
            raise ValueError(f"transpose: Expected a permutation of {x.ndim} axes. "
                             f"Received: axes={axes}")
        axes = tuple(a % x.ndim for a in axes)
    return Transpose.apply(x, axes=axes)


def getitem(x, index) -> Tensor:
    """NumPy indexing (basic slices, integer and boolean arrays); differentiable."""
    if isinstance(index, Tensor):
        index = index.data
    elif isinstance(index, tuple):
        index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return GetItem.apply(_operand(x), index=index)


def concatenate(tensors, axis: int = 0) -> Tensor:
    """Join tensors along an existing axis."""
    xs = [_operand(t) for t in tensors]
    if not xs:
        raise ValueError("concatenate: Expected at least one tensor. Received: []")
    nd = xs[0].ndim
    if not is_int(axis) or not -nd <= axis < max(nd, 1):
        raise ValueError(f"concatenate: Expected axis in [{-nd}, {nd}). Received: axis={axis!r}")
    axis %= nd
    rest = xs[0].shape[:axis] + xs[0].shape[axis + 1:]
    for t in xs:
        if t.ndim != nd or t.shape[:axis] + t.shape[axis + 1:] != rest:
            raise ValueError(f"concatenate: all shapes must match except along axis {axis}. "
                             f"Received: shapes {[t.shape for t in xs]}")
    return Concatenate.apply(*xs, axis=axis)


def stack(tensors, axis: int = 0) -> Tensor:
    """Join same-shaped tensors along a new axis."""
    xs = [_operand(t) for t in tensors]
    if not xs:
        raise ValueError("stack: Expected at least one tensor. Received: []")
    if any(t.shape != xs[0].shape for t in xs):
        raise ValueError(f"stack: Expected tensors of one shape. Received: shapes "
                         f"{[t.shape for t in xs]}")
    nd = xs[0].ndim + 1
    if not is_int(axis) or not -nd <= axis < nd:
        raise ValueError(f"stack: Expected axis in [{-nd}, {nd}). Received: axis={axis!r}")
    return Stack.apply(*xs, axis=axis % nd)


def pad(x, pad_width, mode: str = "constant", constant_values: float = 0.0) -> Tensor:
    """Pad a tensor.

    Args:
        x: tensor of any rank.
        pad_width: one ``(before, after)`` pair per axis.
        mode: ``constant``/``zeros``, ``reflect`` (mirror without repeating the edge),
            ``replicate``/``edge`` or ``circular``/``wrap``.
        constant_values: the fill value of ``constant`` mode.

    Raises:
        ValueError: unknown mode, wrong number of pairs, negative amounts, or a reflect
            pad not smaller than the axis (circular: not larger than the axis).
    """
    x = _operand(x)
    mode = _NUMPY_MODE[check_choice(mode, PAD_MODES, "mode", "pad")]
    try:
        pads = tuple((int(b), int(a)) for b, a in pad_width)
    except (TypeError, ValueError):
        raise ValueError(f"pad: Expected pad_width to be {x.ndim} (before, after) pairs of "
                         f"ints. Received: pad_width={pad_width!r}") from None
    if len(pads) != x.ndim or any(v < 0 for p in pads for v in p):
        raise ValueError(f"pad: Expected pad_width to be {x.ndim} (before, after) pairs of "
                         f"ints >= 0. Received: pad_width={pad_width!r}")
    for axis, (b, a) in enumerate(pads):
        n = x.shape[axis]
        if (b or a) and mode != "constant" and (
            n == 0 or (mode == "reflect" and max(b, a) >= n)
            or (mode == "wrap" and max(b, a) > n)
        ):
            limit = "smaller than" if mode == "reflect" else "at most"
            raise ValueError(f"pad: {mode} padding must be {limit} the axis it pads; axis "
                             f"{axis} has length {n}. Received: pad_width[{axis}]=({b}, {a})")
    return Pad.apply(x, pads=pads, mode=mode, value=constant_values)
