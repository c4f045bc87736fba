"""Pure array math for convolution, pooling, activations, batch norm and optimizer updates.

Notation, used by every module below this one:

    N           batch size
    C           channels (C_in, C_out for a convolution; G groups, Cg = C_in / G)
    H, W        input height and width (D, H, W for 3-d; W for 1-d)
    KH, KW      kernel height and width
    SH, SW      strides
    DH, DW      dilations
    PH, PW      padding (each a (before, after) pair; before = top/left)
    OH, OW      output height and width:
                OH = floor((H + PH_before + PH_after - DH*(KH-1) - 1) / SH) + 1

Kernels are written once for any number of spatial dimensions; "H, W" above stand for
the spatial axes in general. Nothing here knows about Tensor.

Layout of the house below ``ops``:

    registry.py         (op, backend, variant) -> rule, implementation; ``dispatch``
    plan.py             the convolution planner (``plan(layer, input_shape)`` explains it)
    compile.py          numba, imported on first use: the ``kernel`` decorator, options
    isa.py              the vector ISA (AVX2, AVX-512) the compiled kernels target
    alloc.py threads.py recycled memory; NumPy work split over threads
    conv/ pool/ activation/ batchnorm/ optim/
                        one concept each: ``reference.py`` (NumPy, or any array module
                        through ``get_array_module``) beside ``numba.py`` (compiled)

The ops call ``dispatch(op, *args)`` only. Importing this package registers every
variant; numba itself is imported when a compiled kernel is first wanted.
"""

# importing the concept packages registers their variants; ``plan`` is the planner
# module, callable as ``dj.kernels.plan(layer, input_shape)``
from dojang.kernels import activation, batchnorm, conv, loss, optim, plan, pool, registry
from dojang.kernels.registry import dispatch, register, variants

__all__ = ["activation", "batchnorm", "conv", "dispatch", "loss", "optim", "plan", "pool",
           "register", "registry", "variants"]
