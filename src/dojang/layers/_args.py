"""Resolvers shared by layers: activation, initializer and regularizer arguments.

Each ``resolve_*`` turns a user argument (name, object, callable, or a serialized
config from a saved model) into the object the layer uses; each ``serialize_*`` turns
it back into JSON for ``get_config``.
"""

from __future__ import annotations

from dojang.validation import check_float


def resolve_activation(identifier, owner: str):
    from dojang import activations

    try:
        return activations.get(identifier)
    except (ValueError, TypeError) as e:
        raise type(e)(f"{owner}: {e}") from None


def serialize_activation(fn):
    from dojang import activations

    return activations.serialize(fn)


def resolve_initializer(identifier, owner: str):
    from dojang import initializers

    try:
        return initializers.get(identifier)
    except (ValueError, TypeError) as e:
        raise type(e)(f"{owner}: {e}") from None


def serialize_initializer(init):
    from dojang import initializers

    return initializers.serialize(init)


def resolve_regularizer(identifier, owner: str):
    from dojang import regularizers

    if identifier is None:
        return None
    try:
        return regularizers.get(identifier)
    except (ValueError, TypeError) as e:
        raise type(e)(f"{owner}: {e}") from None


def serialize_regularizer(reg):
    from dojang import regularizers

    return None if reg is None else regularizers.serialize(reg)


def check_rate(rate, owner: str) -> float:
    """A dropout rate in [0, 1)."""
    return check_float(rate, "rate", owner, low=0.0, high=1.0, high_open=True)


def check_bool(value, name: str, owner: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{owner}: Expected {name} to be a bool. Received: {name}={value!r}")
    return value
