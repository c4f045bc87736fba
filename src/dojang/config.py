"""Global knobs of dojang under their historical names (defined in ``dojang.settings``).

Whether autograd records operations, the default floating dtype, the im2col buffer's
budget, and which kernels run (``jit(flag)``, ``kernels(variant)``): each a context
variable with a context manager. ``dojang.settings`` documents every knob and the
environment variables that set their defaults.
"""

from __future__ import annotations

from dojang.settings import (
    default_dtype,
    enable_grad,
    get_default_dtype,
    get_im2col_budget,
    get_jit,
    get_kernel_variant,
    im2col_budget,
    is_grad_enabled,
    jit,
    kernels,
    no_grad,
    set_default_dtype,
    set_im2col_budget,
)

__all__ = [
    "default_dtype", "enable_grad", "get_default_dtype", "get_im2col_budget", "get_jit",
    "get_kernel_variant", "im2col_budget", "is_grad_enabled", "jit", "kernels", "no_grad",
    "set_default_dtype", "set_im2col_budget",
]
