"""One lookup for every named family: initializers, regularizers, activations, losses,
metrics, optimizers and learning-rate schedules.

A :class:`Registry` maps names to classes (or, for activations, to plain functions) and
turns any identifier a user may write into an object: a name (``"glorot_uniform"``,
``"GlorotUniform"``; case and underscores do not matter), a registered class, an instance,
or a config dict ``{"class_name": ..., "config": {...}}`` as written by ``serialize``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

_C = TypeVar("_C", bound="Configurable")
_REQUIRED = object()


class Configurable:
    """Base of the families' objects (initializers, regularizers, losses, metrics, schedules).

    A config dict describes the object: ``cls.from_config(obj.get_config())`` rebuilds
    ``obj`` (the config holds the constructor's keyword arguments), and ``repr`` shows the
    same arguments. Subclasses override ``get_config``; the default is an object without
    arguments.

    Example:
        >>> class Scale(Configurable):
        ...     def __init__(self, factor=1.0):
        ...         self.factor = factor
        ...     def get_config(self):
        ...         return {"factor": self.factor}
        >>> Scale.from_config({"factor": 2.0})
        Scale(factor=2.0)
    """

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls: type[_C], config: dict) -> _C:
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _key(name: str) -> str:
    return name.replace("_", "").lower()


class Registry:
    """Names -> objects for one family, with Keras's ``get``/``serialize``/``deserialize``.

    Args:
        kind: family name used in messages (``"initializer"``, ``"loss"``, ...).
        base: common base class of the family's objects, or None for plain functions.

    Example:
        >>> reg = Registry("thing", base=None)
        >>> @reg.register("double")
        ... def double(x):
        ...     return 2 * x
        >>> reg.get("Double")(3)
        6
    """

    def __init__(self, kind: str, base: type | None):
        self.kind = kind
        self.base = base
        self._entries: dict[str, Any] = {}
        self._names: dict[int, str] = {}

    def register(self, *names: str) -> Callable:
        """Decorator registering a class or function under its name and ``names``.

        The first name given is the canonical one used by ``serialize`` for functions;
        classes always serialize under their class name.
        """

        def deco(obj):
            all_names = (*names, obj.__name__)
            for name in all_names:
                self._entries[_key(name)] = obj
            self._names.setdefault(id(obj), all_names[0])
            return obj

        return deco

    def names(self) -> list[str]:
        """Registered canonical names (for messages and documentation)."""
        return sorted({self._names[id(v)] for v in self._entries.values()})

    def _is_class(self, obj) -> bool:
        return isinstance(obj, type) and self.base is not None and issubclass(obj, self.base)

    def lookup(self, name: str):
        """Return the registered class or function called ``name`` (no instantiation)."""
        try:
            return self._entries[_key(name)]
        except KeyError:
            raise ValueError(
                f"Unknown {self.kind}: {name!r}. Expected one of {self.names()}."
            ) from None

    def get(self, identifier, **kwargs):
        """Resolve ``identifier`` to an object of this family.

        Names and classes are instantiated with ``kwargs`` (classes) or returned as is
        (functions); instances and other callables pass through; dicts are deserialized.

        Raises:
            ValueError: for an unknown name.
            TypeError: for anything else that cannot be interpreted.
        """
        if isinstance(identifier, str):
            obj = self.lookup(identifier)
            return obj(**kwargs) if self._is_class(obj) else obj
        if isinstance(identifier, dict):
            return self.deserialize(identifier)
        if self._is_class(identifier):
            return identifier(**kwargs)
        if self.base is not None and isinstance(identifier, self.base):
            return identifier
        if callable(identifier) and not isinstance(identifier, type):
            return identifier
        raise TypeError(
            f"Could not interpret {self.kind} identifier: {identifier!r}. Expected a name "
            f"(one of {self.names()}), a class, an instance or a config dict."
        )

    def serialize(self, obj) -> dict | str:
        """Config dict ``{"class_name", "config"}`` of an object, or the name of a function."""
        if self.base is not None and isinstance(obj, self.base):
            return {"class_name": type(obj).__name__, "config": obj.get_config()}
        name = self._names.get(id(obj))
        if name is None:
            raise ValueError(
                f"Cannot serialize {self.kind} {obj!r}: it is neither a {self.kind} object nor "
                f"a registered function. Register it with `register(name)` first."
            )
        return name

    def deserialize(self, config):
        """Inverse of ``serialize``: a name or a ``{"class_name", "config"}`` dict."""
        if isinstance(config, str):
            return self.get(config)
        if (not isinstance(config, dict) or set(config) - {"class_name", "config", "module"}
                or not isinstance(config.get("class_name"), str)):
            raise ValueError(
                f"Expected a {self.kind} config of the form {{'class_name': str, "
                f"'config': dict}}. Received: config={config!r}"
            )
        cls = self.lookup(config["class_name"])
        inner = config.get("config") or {}
        if not isinstance(inner, dict):
            raise ValueError(f"Expected the 'config' entry to be a dict. Received: {inner!r}")
        if not self._is_class(cls):
            return cls
        return cls.from_config(inner)

    def functions(self, none=_REQUIRED) -> tuple[Callable, Callable, Callable]:
        """The family module's ``get``, ``serialize`` and ``deserialize``, made once here.

        Args:
            none: what ``get(None)`` returns (None for initializers and regularizers, the
                identity for activations); by default None is refused like any non-name.

        Example:
            >>> reg = Registry("thing", base=None)
            >>> _ = reg.register("double")(lambda x: 2 * x)
            >>> get, serialize, deserialize = reg.functions(none=abs)
            >>> get(None) is abs, get("double")(3), deserialize(serialize(get("double")))(4)
            (True, 6, 8)
        """
        kind = self.kind
        shown = getattr(none, "__name__", none)
        default = "" if none is _REQUIRED else f" ``None`` gives {shown}."

        def get(identifier):
            if identifier is None and none is not _REQUIRED:
                return none
            return self.get(identifier)

        def serialize(obj):
            return self.serialize(obj)

        def deserialize(config):
            return self.deserialize(config)

        get.__doc__ = (f"Return the {kind} named by ``identifier``: a name, a class, an instance "
                       f"or a config dict (see ``Registry.get``).{default}")
        serialize.__doc__ = f"A {kind}'s config dict ``{{'class_name', 'config'}}`` (or name)."
        deserialize.__doc__ = f"Rebuild a {kind} from ``serialize``'s output (or a name)."
        return get, serialize, deserialize
