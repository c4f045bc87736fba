"""``CallbackList``: forwards each hook to many callbacks (what ``fit`` talks to)."""

from __future__ import annotations

from collections.abc import Iterable

from dojang.callbacks.base import HOOKS, Callback
from dojang.callbacks.history import History
from dojang.callbacks.progbar import ProgbarLogger


class CallbackList(Callback):
    """Forwards every hook to its callbacks, in order.

    Args:
        callbacks: the callbacks.
        add_history: append a ``History`` unless one is present.
        add_progbar: append a ``ProgbarLogger`` unless one is present.
        model: the model given to every callback.
        **params: ``verbose``, ``epochs``, ``steps`` given to every callback.

    Example:
        >>> cbs = CallbackList([], add_history=True, epochs=1, steps=1, verbose=0)
        >>> type(cbs.history).__name__
        'History'
    """

    def __init__(self, callbacks: Iterable[Callback] | None = None, add_history: bool = False,
                 add_progbar: bool = False, model=None, **params):
        super().__init__()
        self.callbacks = list(callbacks or [])
        self.history = next((c for c in self.callbacks if isinstance(c, History)), None)
        if self.history is None and add_history:
            self.history = History()
            self.callbacks.append(self.history)
        if add_progbar and not any(isinstance(c, ProgbarLogger) for c in self.callbacks):
            self.callbacks.append(ProgbarLogger())
        if model is not None:
            self.set_model(model)
        if params:
            self.set_params(params)

    def append(self, callback: Callback) -> None:
        self.callbacks.append(callback)

    def set_model(self, model) -> None:
        super().set_model(model)
        for cb in self.callbacks:
            cb.set_model(model)

    def set_params(self, params: dict) -> None:
        super().set_params(params)
        for cb in self.callbacks:
            cb.set_params(params)

    def __iter__(self):
        return iter(self.callbacks)

    def __len__(self) -> int:
        return len(self.callbacks)


def _forward(name: str):
    def hook(self, *args):
        for cb in self.callbacks:
            getattr(cb, name)(*args)

    hook.__name__ = name
    hook.__doc__ = f"Call ``{name}`` on every callback."
    return hook


for _name in (*HOOKS, "on_batch_begin", "on_batch_end"):
    setattr(CallbackList, _name, _forward(_name))
