"""Where ``add_weight`` takes its values while a file is being loaded.

Loaders build a model inside ``weights_from(source)``; there every ``add_weight`` call
asks ``source.take(layer, name, shape, dtype)`` for its array instead of running the
initializer. The source checks the declared shape against what the file stores BEFORE
allocating, so a file's architecture can never allocate (or randomly initialize) a
weight that the file does not hold (docs/security.md; ``dojang.models.archive`` has the
source for safetensors headers).
"""

from __future__ import annotations

import contextvars

from dojang import settings

_SOURCE: contextvars.ContextVar = contextvars.ContextVar("dojang_weight_source", default=None)


def current():
    """The active source, or None outside ``weights_from``."""
    return _SOURCE.get()


def weights_from(source):
    """Scope in which ``add_weight`` takes every weight from ``source.take(...)``.

    Example:
        >>> import numpy as np, dojang as dj
        >>> class Zeros:
        ...     def take(self, layer, name, shape, dtype):
        ...         return np.zeros(shape, dtype)
        >>> with weights_from(Zeros()):
        ...     layer = dj.layers.Dense(2, input_shape=(3,))
        ...     _ = dj.Sequential([layer])
        >>> float(np.abs(layer.get_weights()[0]).sum())
        0.0
    """
    return settings.scoped(_SOURCE, source)
