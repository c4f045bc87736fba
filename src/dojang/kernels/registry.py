"""One table of kernel variants, and the one dispatch point the ops call.

A kernel op (``"relu"``, ``"conv.im2col"``, ``"pool.max"``, ...) has variants, each
registered under ``(op, backend, variant)`` with a rule ``usable(*args, **kwargs)`` that
says whether it takes these arguments, and a priority. The NumPy reference
(``backend="numpy"``, ``variant="reference"``) is registered for every op: it is the truth
every other variant is tested against (``tests/test_kernel_variants.py``), and, since it
asks the data for its array module (``xp = get_array_module(x)``), the fallback for any
backend that has no variant of its own.

``dispatch(op, *args)`` finds the backend of the first array argument and calls the
highest-priority variant whose rule takes the arguments. Inside
``dojang.config.kernels(name)`` only the variant ``name`` (where its rule takes the
arguments) or the reference runs; ``kernels("reference")`` runs the reference alone.

Example:
    >>> import numpy as np
    >>> from dojang.kernels import registry
    >>> [v.name for v in registry.variants("relu", backend="numpy")]
    ['numba', 'reference']
    >>> from dojang import config
    >>> with config.kernels("reference"):
    ...     registry.select("relu", np.ones((300, 300), np.float32)).name
    'reference'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dojang import backends, settings

REFERENCE = "reference"


@dataclass(frozen=True)
class Variant:
    """One registered implementation of a kernel op.

    Attributes:
        op: the op's name.
        backend: the backend whose arrays it takes (``"numpy"``, ``"cupy"``, ...).
        name: the variant's name (``"reference"``, ``"numba"``, ...).
        fn: the implementation, called with the op's arguments.
        usable: the rule ``usable(*args, **kwargs) -> bool``; None: always usable.
        priority: higher is tried first; the reference is tried last.
    """

    op: str
    backend: str
    name: str
    fn: Callable
    usable: Callable | None
    priority: int


_table: dict[tuple[str, str], list[Variant]] = {}


def register(op: str, backend: str = "numpy", variant: str = REFERENCE, usable=None,
             priority: int = 0):
    """Decorator: register ``fn`` as ``variant`` of ``op`` for ``backend``'s arrays.

    Args:
        op: the op's name (one name for every variant of it).
        backend: the backend name whose arrays the variant takes.
        variant: the variant's name; the reference is ``"reference"``.
        usable: ``usable(*args, **kwargs) -> bool``, the rule that says whether the variant
            takes these arguments (None: always). Compiled variants start from
            ``kernels.compile.usable`` (NumPy float arrays, compiled kernels on).
        priority: variants are tried from the highest priority down; the reference last.

    Raises:
        ValueError: ``(op, backend, variant)`` is registered already.

    Example (a compiled variant of ``"relu"`` for the ``"cupy"`` backend would read)::

        @register("relu", backend="cupy", variant="cuda", priority=1,
                  usable=lambda x: x.dtype.kind == "f")
        def relu(x):
            ...
    """

    def add(fn):
        entries = _table.setdefault((op, backend), [])
        if any(v.name == variant for v in entries):
            raise ValueError(f"Expected one registration of ({op!r}, {backend!r}, "
                             f"{variant!r}). Received a second: {fn!r}")
        entries.append(Variant(op, backend, variant, fn, usable, priority))
        # highest priority first; the reference after every other variant
        entries.sort(key=lambda v: (v.name == REFERENCE, -v.priority))
        return fn

    return add


def _backend(args) -> str:
    """The backend name of the first array among ``args`` (``"numpy"`` when none is)."""
    for a in args:
        if isinstance(a, np.ndarray):
            return "numpy"
        if hasattr(a, "dtype") and hasattr(a, "shape"):
            return backends.backend_of(a).name
    return "numpy"


def select(op: str, *args, **kwargs) -> Variant:
    """The variant ``dispatch`` would call with these arguments (see the module docstring).

    Raises:
        KeyError: ``op`` is not registered.
    """
    backend = _backend(args)
    entries = _table.get((op, backend)) or _table.get((op, "numpy"))
    if entries is None:
        raise KeyError(f"Expected a registered kernel op. Received: op={op!r} "
                       f"(known: {ops()})")
    forced = settings.get_kernel_variant()
    if forced != REFERENCE:
        for v in entries:
            if v.name == REFERENCE:
                return v
            if (forced is None or v.name == forced) and (
                    v.usable is None or v.usable(*args, **kwargs)):
                return v
    if entries[-1].name == REFERENCE:
        return entries[-1]
    return _table[(op, "numpy")][-1]  # another backend without a reference of its own


def dispatch(op: str, *args, **kwargs):
    """Call the variant of ``op`` chosen for these arguments; return what it returns.

    Raises:
        KeyError: ``op`` is not registered.

    Example:
        >>> import numpy as np
        >>> from dojang.kernels import dispatch
        >>> dispatch("relu", np.array([-1.0, 2.0]))
        array([0., 2.])
    """
    return select(op, *args, **kwargs).fn(*args, **kwargs)


def variants(op: str | None = None, backend: str | None = None) -> list[Variant]:
    """The registered variants of ``op`` (every op when None), for ``backend`` (every
    backend when None), each op's in the order ``dispatch`` tries them."""
    return [v for (o, b), entries in sorted(_table.items()) for v in entries
            if (op is None or o == op) and (backend is None or b == backend)]


def ops() -> list[str]:
    """The names of every registered op, sorted."""
    return sorted({o for o, _ in _table})
