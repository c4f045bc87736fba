"""Convolution and transposed convolution as differentiable Functions.

Arguments here are already checked and resolved (``dojang.functional`` does that):
strides, dilations and pads are per-spatial-dim tuples, pads are (before, after) pairs.
The array math lives in ``dojang.kernels.conv`` (channels-last), reached through
``dojang.kernels.dispatch``; ``dojang.kernels.plan`` decides how each convolution runs.
Channels-first data is moved to channels-last at the boundary, as a view, and the result
moved back.
"""

from __future__ import annotations

from dojang.autograd import Function, Tensor
from dojang.backend import get_array_module
from dojang.config import is_grad_enabled
from dojang.kernels import dispatch
from dojang.ops.shape import Pad

__all__ = ["conv", "conv_transpose"]

# what ``conv(..., activation=)`` can apply inside the op
FUSED_ACTIVATIONS = (None, "relu", "tanh")


def _to_last(a, channels_last: bool):
    return a if channels_last else get_array_module(a).moveaxis(a, 1, -1)


def _to_first(a, channels_last: bool):
    return a if channels_last else get_array_module(a).moveaxis(a, -1, 1)


def _contiguous(a):
    return get_array_module(a).ascontiguousarray(a)


class Conv(Function):
    """``y = act(conv(x, w) + b)`` with implicit zero padding ``pads`` (see ``kernels.conv``).

    ``activation`` ("relu" or "tanh") is fused: it is applied in place on the GEMM output
    together with the bias (no second output-sized array, one pass), and backward takes
    its gradient from ``y`` (relu: ``gy`` where ``y > 0``, 0 at 0 as ``ops.relu``; tanh:
    ``gy * (1 - y**2)``) before the convolution's own.
    """

    def __init__(self, strides, dilations, groups, pads, channels_last, activation=None):
        self.strides, self.dilations, self.groups = strides, dilations, groups
        self.pads, self.channels_last, self.activation = pads, channels_last, activation

    def forward(self, x, w, b=None):
        x = _to_last(x, self.channels_last)
        # a gradient may follow: the plan may keep the im2col columns for it
        y, cols = dispatch("conv.forward", x, w, self.strides, self.dilations, self.groups,
                           self.pads, is_grad_enabled(),
                           None if self.activation == "tanh" else b, self.activation == "relu")
        if self.activation == "tanh":  # bias + tanh in one pass
            dispatch("tanh", y, b, y)
        if self.activation:
            self.y = y
        self.x, self.w, self.cols, self.has_bias = x, w, cols, b is not None
        return _to_first(y, self.channels_last)

    def release(self) -> None:
        """Free the saved arrays; the kept im2col columns go back to the kernel for reuse."""
        cols = getattr(self, "cols", None)
        super().release()
        if cols is not None:
            dispatch("conv.recycle_cols", cols)

    def backward(self, gy):
        needs = self.needs_input_grad
        gy = _to_last(gy, self.channels_last)
        gx = gw = gb = None
        bias = self.has_bias and needs[2]
        if self.activation == "relu":  # the mask and the bias gradient in one pass
            gy, gb = dispatch("conv.relu_grad_bias", gy, self.y, bias)
        elif self.activation == "tanh":
            gy = dispatch("tanh_grad", gy, self.y)
        else:
            gy = _contiguous(gy)
        args = (self.strides, self.dilations, self.groups, self.pads)
        if needs[0]:
            gx = dispatch("conv.backward_input", gy, self.w, self.x.shape, *args)
            gx = _to_first(gx, self.channels_last)
        if needs[1]:  # the bias gradient too, unless the ReLU's mask pass summed it
            gw, db = dispatch("conv.backward_filter", self.x, gy, self.w.shape, *args,
                              cols=self.cols, bias=bias and gb is None)
            gb = db if gb is None else gb
        if bias and gb is None:
            gb = dispatch("conv.bias_grad", gy)
        return (gx, gw, gb if needs[2] else None) if self.has_bias else (gx, gw)


class ConvTranspose(Function):
    """The adjoint of ``Conv`` w.r.t. its input: ``y = conv^T(x, w) + b``.

    ``w`` is (*K, C_out, C_in) as in ``tf.nn.conv2d_transpose``: the filters of the
    convolution that maps the output (C_out channels) back to the input (C_in).
    """

    def __init__(self, strides, dilations, pads, out_spatial, channels_last):
        self.strides, self.dilations, self.pads = strides, dilations, pads
        self.out_spatial, self.channels_last = out_spatial, channels_last

    def forward(self, x, w, b=None):
        x = _to_last(x, self.channels_last)
        out_shape = (x.shape[0],) + tuple(self.out_spatial) + (w.shape[-2],)
        y = dispatch("conv.backward_input", x, w, out_shape, self.strides, self.dilations, 1,
                     self.pads)
        if b is not None:
            y += b
        self.x, self.w, self.has_bias = x, w, b is not None
        return _to_first(y, self.channels_last)

    def backward(self, gy):
        needs = self.needs_input_grad
        gy = _contiguous(_to_last(gy, self.channels_last))
        args = (self.strides, self.dilations, 1, self.pads)
        gx = gw = gb = None
        if needs[0]:
            gx, _ = dispatch("conv.forward", gy, self.w, *args)
            # output_padding >= S (allowed when D > S) adds outputs no input reaches
            gx = gx[(slice(None),) + tuple(slice(0, n) for n in self.x.shape[1:-1])]
            gx = _to_first(gx, self.channels_last)
        if needs[1]:
            gw, _ = dispatch("conv.backward_filter", gy, self.x, self.w.shape, *args)
        if self.has_bias and needs[2]:
            gb = dispatch("conv.bias_grad", gy)
        return (gx, gw, gb) if self.has_bias else (gx, gw)


def _pad_explicit(x: Tensor, pads, padding_mode: str, channels_last: bool) -> Tensor:
    """Apply a non-zero padding mode as its own (differentiable) op on the input."""
    spatial = list(pads)
    full = [(0, 0)] + spatial + [(0, 0)] if channels_last else [(0, 0), (0, 0)] + spatial
    mode = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}[padding_mode]
    return Pad.apply(x, pads=tuple(full), mode=mode)


def conv(x, w, bias=None, *, strides, dilations, groups: int, pads, padding_mode: str = "zeros",
         channels_last: bool = True, activation: str | None = None) -> Tensor:
    """N-d convolution (cross-correlation) of checked, resolved arguments.

    Zero padding is folded into the im2col buffer; reflect, replicate and circular
    padding pad the input first (their adjoint folds the gradient back).
    ``activation="relu"`` or ``"tanh"`` fuses it into the op (same result as
    ``relu(conv(...))`` or ``tanh(conv(...))``).
    """
    if padding_mode != "zeros" and any(p != (0, 0) for p in pads):
        x = _pad_explicit(x, pads, padding_mode, channels_last)
        pads = ((0, 0),) * len(pads)
    hyper = dict(strides=tuple(strides), dilations=tuple(dilations), groups=groups,
                 pads=tuple(pads), channels_last=channels_last, activation=activation)
    if bias is None:
        return Conv.apply(x, w, **hyper)
    return Conv.apply(x, w, bias, **hyper)


def conv_transpose(x, w, bias=None, *, strides, dilations, pads, out_spatial,
                   channels_last: bool = True) -> Tensor:
    """N-d transposed convolution of checked, resolved arguments (output size ``out_spatial``)."""
    hyper = dict(strides=tuple(strides), dilations=tuple(dilations), pads=tuple(pads),
                 out_spatial=tuple(out_spatial), channels_last=channels_last)
    if bias is None:
        return ConvTranspose.apply(x, w, **hyper)
    return ConvTranspose.apply(x, w, bias, **hyper)
