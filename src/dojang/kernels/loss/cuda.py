"""The fused softmax cross-entropy as CUDA kernels (CuPy arrays)."""

from __future__ import annotations

from dojang.kernels.cuda import ops
from dojang.kernels.cuda.variants import floats
from dojang.kernels.registry import register


@register("loss.sparse_softmax_xent", backend="cupy", variant="cuda", priority=1,
          usable=lambda x2, labels: floats(x2))
def sparse_softmax_xent(x2, labels):
    """One thread per row: the row's maximum, softmax and loss in one kernel."""
    return ops.sparse_softmax_xent(x2, labels)


@register("loss.sparse_softmax_xent_grad", backend="cupy", variant="cuda", priority=1,
          usable=lambda p, labels, scale: floats(p))
def sparse_softmax_xent_grad(p, labels, scale):
    """``(p - onehot) * scale`` in one elementwise kernel."""
    return ops.sparse_softmax_xent_grad(p, labels, scale)
