"""The Function base class and the reverse-mode engine.

A Function is one differentiable operation. Subclasses implement ``forward`` and
``backward`` on raw arrays (NumPy or CuPy) and save on ``self`` only what backward needs.
``Function.apply`` checks that its arrays share one device (a ``ValueError`` naming both
devices otherwise), wraps arrays into Tensors and records the graph: each output Tensor
holds its creator Function strongly, each Function holds its input Tensors strongly and
nothing else, so a graph never forms a reference cycle and is freed as soon as the last
output Tensor goes away.
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING

from dojang.backends import check_same_device
from dojang.config import is_grad_enabled

if TYPE_CHECKING:
    from dojang.autograd.tensor import Tensor


class Function:
    """One differentiable operation with a single output.

    Subclasses define ``forward(*arrays) -> array`` and ``backward(grad) -> grads``,
    where ``grads`` is one array per input (or a single array for a one-input op);
    ``None`` marks an input that gets no gradient. ``self.needs_input_grad`` tells
    backward which gradients are wanted, so it can skip the others. Hyper-parameters are
    keyword arguments of ``__init__``.

    Example:
        >>> import numpy as np
        >>> import dojang as dj
        >>> class Square(Function):
        ...     def forward(self, x):
        ...         self.x = x
        ...         return x * x
        ...     def backward(self, gy):
        ...         return 2 * self.x * gy
        >>> t = dj.Tensor([3.0], requires_grad=True)
        >>> Square.apply(t).backward()
        >>> t.grad.numpy()
        array([6.], dtype=float32)
    """

    inputs: tuple | None
    needs_input_grad: tuple[bool, ...]
    generation: int

    def forward(self, *arrays):
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **hyper) -> Tensor:
        """Run the op on Tensors (or arrays and scalars) and record it for backward."""
        tensor = _TENSOR[0]
        fn = cls(**hyper)
        arrays = [t.data if isinstance(t, tensor) else t for t in inputs]
        if len(arrays) > 1:
            check_same_device(arrays, cls.__name__)
        out = fn.forward(*arrays)
        if is_grad_enabled():
            needs = tuple([isinstance(t, tensor) and t.requires_grad for t in inputs])
            if True in needs:
                fn.inputs = tuple([t if isinstance(t, tensor) else None for t in inputs])
                fn.needs_input_grad = needs
                generation = 0
                for t in fn.inputs:
                    creator = None if t is None else t.creator
                    if creator is not None and creator.generation > generation:
                        generation = creator.generation
                fn.generation = generation + 1
                return tensor._from_op(out, fn)
        return tensor._from_op(out, None)

    def release(self) -> None:
        """Drop the inputs and every saved array once backward has used them."""
        generation = self.generation
        self.__dict__.clear()
        self.inputs = None
        self.generation = generation

    def __repr__(self) -> str:
        return f"<{type(self).__name__} backward>"


# The Tensor class, bound by ``autograd/tensor.py`` as it is defined: ``tensor`` imports this
# module, never the other way round.
_TENSOR: list = []


def bind_tensor_class(cls: type) -> None:
    """Tell ``Function`` which class wraps its outputs (called once, by ``tensor.py``)."""
    _TENSOR[:] = [cls]


def sum_to_shape(grad, shape: tuple[int, ...]):
    """Reduce a broadcast gradient back to ``shape`` (the adjoint of broadcasting).

    Every binary op calls this one helper: leading axes that broadcasting added are
    summed away, and axes of size 1 that were stretched are summed with keepdims.
    """
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1
    )
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    if lead:
        grad = grad.reshape(grad.shape[lead:])
    return grad.reshape(shape)


def _check_grad(fn: Function, grad, tensor) -> None:
    if grad.shape != tensor.shape:
        raise RuntimeError(
            f"{type(fn).__name__}.backward returned a gradient of shape {grad.shape} for an "
            f"input of shape {tensor.shape}"
        )


def run_backward(root: Tensor, grad, retain_graph: bool = False) -> None:
    """Propagate ``grad`` from ``root`` to every leaf that requires a gradient.

    Functions run in decreasing generation order (a heap, not recursion), so every
    Function's output gradient is complete before its backward runs and graphs of any
    depth work. Gradients of intermediate outputs are kept per Function and dropped as
    soon as that Function is done; leaves accumulate into ``tensor.grad``. Unless
    ``retain_graph`` is true, each Function releases its saved arrays after use.
    """
    if root.creator is None:
        if root.requires_grad:
            _accumulate_leaf(root, grad)
        return
    pending = {root.creator: grad}
    heap = [(-root.creator.generation, 0, root.creator)]
    counter = 1
    while heap:
        _, _, fn = heapq.heappop(heap)
        gy = pending.pop(fn)
        if fn.inputs is None:
            raise RuntimeError(
                "Trying to run backward through the graph a second time; the saved arrays "
                "were freed after the first backward. Pass retain_graph=True the first time."
            )
        grads = fn.backward(gy)
        if not isinstance(grads, tuple):
            grads = (grads,)
        inputs = fn.inputs
        needs = fn.needs_input_grad
        if not retain_graph:
            fn.release()
        for t, need, g in zip(inputs, needs, grads):
            if not need or g is None:
                continue
            if g.shape != t.data.shape:
                _check_grad(fn, g, t)
            creator = t.creator
            if creator is None:
                _accumulate_leaf(t, g)
            elif creator in pending:
                pending[creator] = pending[creator] + g
            else:
                pending[creator] = g
                heapq.heappush(heap, (-creator.generation, counter, creator))
                counter += 1


def _accumulate_leaf(t: Tensor, g) -> None:
    tensor = _TENSOR[0]
    if g.dtype != t.data.dtype:
        g = g.astype(t.data.dtype)
    if t.grad is None:
        t.grad = tensor(g)
    else:
        t.grad = tensor(t.grad.data + g)
