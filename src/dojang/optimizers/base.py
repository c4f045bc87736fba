"""The Optimizer base class: clipping, decoupled weight decay, slots, state, config.

One step (``apply``), in Keras 3's order: gradients are clipped (``clipnorm`` per
variable, ``global_clipnorm`` over all, or ``clipvalue``), weights are decayed
``p -= lr * weight_decay * p``, each parameter is updated in place by the subclass's
``update`` with the learning rate of the current iteration, then ``iterations += 1``.

Updates write into ``p.data`` and the slot arrays with ``out=`` operations; the only
temporary is one flat scratch buffer per dtype, as large as the largest parameter, reused
by every step (clipping, when asked for, adds one scaled copy of the clipped gradient).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from dojang.autograd import Tensor
from dojang.backend import check_device, device_of, get_array_module, to_device, to_numpy
from dojang.backends import check_same_device
from dojang.optimizers import schedules
from dojang.registry import Configurable
from dojang.validation import check_float, check_int


def _optional_positive(value, name: str, owner: str) -> float | None:
    return None if value is None else check_float(value, name, owner, low=0.0, low_open=True)


class Optimizer(Configurable):
    """Base class of the optimizers.

    Args:
        learning_rate: a float or a ``schedules.LearningRateSchedule``.
        weight_decay: decoupled weight decay factor, or None.
        clipnorm: clip each gradient to this L2 norm.
        clipvalue: clip each gradient element to ``[-clipvalue, clipvalue]``.
        global_clipnorm: clip all gradients together to this global L2 norm.
        name: optimizer name.

    Raises:
        ValueError: for negative rates or more than one of the three clipping options.
    """

    default_name = "optimizer"

    def __init__(self, learning_rate=0.001, weight_decay: float | None = None,
                 clipnorm: float | None = None, clipvalue: float | None = None,
                 global_clipnorm: float | None = None, name: str | None = None):
        owner = type(self).__name__
        self.name = self.default_name if name is None else name
        if isinstance(learning_rate, dict):
            learning_rate = schedules.deserialize(learning_rate)
        self._schedule = learning_rate if isinstance(
            learning_rate, schedules.LearningRateSchedule) else None
        self._lr = None if self._schedule else check_float(
            learning_rate, "learning_rate", owner, low=0.0)
        self.weight_decay = None if weight_decay is None else check_float(
            weight_decay, "weight_decay", owner, low=0.0)
        self.clipnorm = _optional_positive(clipnorm, "clipnorm", owner)
        self.clipvalue = _optional_positive(clipvalue, "clipvalue", owner)
        self.global_clipnorm = _optional_positive(global_clipnorm, "global_clipnorm", owner)
        if sum(v is not None for v in (self.clipnorm, self.clipvalue, self.global_clipnorm)) > 1:
            raise ValueError(
                f"{owner}: Expected at most one of clipnorm, clipvalue and global_clipnorm. "
                f"Received: clipnorm={clipnorm}, clipvalue={clipvalue}, "
                f"global_clipnorm={global_clipnorm}")
        self.iterations = 0
        self._slots: list[dict] | None = None
        self._loaded: dict[int, dict[str, np.ndarray]] | None = None
        self._scratch: dict = {}

    # ------------------------------------------------------------------ learning rate
    @property
    def learning_rate(self) -> float:
        """The learning rate of the current iteration (settable unless a schedule is used)."""
        if self._schedule is not None:
            return float(self._schedule(self.iterations))
        return self._lr

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        if self._schedule is not None:
            raise TypeError(
                f"{type(self).__name__}: the learning rate follows the schedule "
                f"{self._schedule!r} and cannot be set. Create the optimizer with a float "
                f"learning_rate to change it during training.")
        self._lr = check_float(value, "learning_rate", type(self).__name__, low=0.0)

    # ------------------------------------------------------------------ slots
    def slot_names(self) -> tuple[str, ...]:
        """Names of the per-parameter state arrays this optimizer keeps."""
        return ()

    def init_slot(self, name: str, param):
        """A new slot array for ``param`` (zeros unless a subclass says otherwise)."""
        return get_array_module(param).zeros_like(param)

    def build(self, params: Sequence[Tensor]) -> None:
        """Create the slots of ``params`` (done by the first ``apply``).

        State loaded by ``set_state`` before this call fills the new slots.
        """
        loaded = self._loaded or {}
        if loaded and len(loaded) != len(params):
            raise ValueError(
                f"{type(self).__name__}: the loaded optimizer state holds slots for "
                f"{len(loaded)} parameters but {len(params)} parameters were given")
        self._slots = []
        for i, p in enumerate(params):
            slots = {}
            for name in self.slot_names():
                slot = self.init_slot(name, p.data)
                if i in loaded:
                    _copy_into(slot, loaded[i][name], f"{i}/{name}")
                slots[name] = slot
            self._slots.append(slots)
        self._loaded = None

    def to(self, device: str) -> Optimizer:
        """Move the slot arrays to ``device`` (``Model.to`` calls this); returns self.

        Slots are created on their parameter's device, and a slot found on another device
        than its parameter at a step follows the parameter, so this is only needed to
        move the state ahead of the next step.
        """
        device = check_device(device)
        for slots in self._slots or ():
            for name, arr in slots.items():
                slots[name] = to_device(arr, device)
        self._scratch.clear()
        return self

    def _buffer(self, like):
        """A scratch array shaped like ``like``: a view of one reused flat buffer."""
        xp = get_array_module(like)
        key = (xp.__name__, like.dtype.str)
        buf = self._scratch.get(key)
        if buf is None or buf.size < like.size:
            buf = self._scratch[key] = xp.empty(like.size, dtype=like.dtype)
        return buf[: like.size].reshape(like.shape)

    # ------------------------------------------------------------------ the step
    def apply(self, params: Iterable[Tensor]) -> None:
        """Update every parameter in place from its ``grad`` (parameters without one are
        skipped), then advance ``iterations``.

        Args:
            params: the same list of parameters, in the same order, at every call.

        Raises:
            ValueError: if the number of parameters changed since the first call.
        """
        params = list(params)
        self.apply_gradients(
            [(None if p.grad is None else p.grad.data, p) for p in params])

    def apply_gradients(self, grads_and_vars: Iterable[tuple]) -> None:
        """Keras's form of ``apply``: ``(gradient, parameter)`` pairs (arrays or Tensors)."""
        pairs = list(grads_and_vars)
        params = [p for _, p in pairs]
        grads = [g.data if isinstance(g, Tensor) else g for g, _ in pairs]
        if self._slots is None:
            self.build(params)
        elif len(self._slots) != len(params):
            raise ValueError(
                f"{type(self).__name__}: Expected the {len(self._slots)} parameters this "
                f"optimizer was built with. Received: {len(params)} parameters")
        grads = self._clip(grads)
        lr = self.learning_rate
        step = self.iterations + 1
        for p, g, slots in zip(params, grads, self._slots, strict=True):
            if g is None:
                continue
            if type(g) is not type(p.data):
                check_same_device((p.data, g), f"{type(self).__name__}.apply")
            if slots and type(next(iter(slots.values()))) is not type(p.data):
                for name, arr in slots.items():
                    slots[name] = to_device(arr, device_of(p.data))
            if self.weight_decay:
                p.data *= 1.0 - lr * self.weight_decay
            self.update(p.data, g, slots, lr, step)
        self.iterations += 1

    def update(self, param, grad, slots: dict, lr: float, step: int) -> None:
        """Update ``param`` (an array) in place; ``step`` counts from 1."""
        raise NotImplementedError

    def _clip(self, grads: list) -> list:
        if self.clipvalue is not None:
            v = self.clipvalue
            return [None if g is None else get_array_module(g).clip(g, -v, v) for g in grads]
        if self.clipnorm is not None:
            return [None if g is None else _scale_to_norm(g, _norm(g), self.clipnorm)
                    for g in grads]
        if self.global_clipnorm is not None:
            total = sum(_norm(g) ** 2 for g in grads if g is not None) ** 0.5
            return [None if g is None else _scale_to_norm(g, total, self.global_clipnorm)
                    for g in grads]
        return grads

    # ------------------------------------------------------------------ state and config
    def get_state(self) -> dict[str, np.ndarray]:
        """NumPy copies of the state: ``"iterations"``, ``"learning_rate"`` (without a
        schedule) and one ``"<index>/<slot>"`` array per parameter slot, indexed in the
        order of the parameter list."""
        state = {"iterations": np.array(self.iterations, dtype=np.int64)}
        if self._schedule is None:
            state["learning_rate"] = np.array(self._lr, dtype=np.float64)
        if self._slots is not None:
            for i, slots in enumerate(self._slots):
                for name, arr in slots.items():
                    state[f"{i}/{name}"] = to_numpy(arr).copy()
        elif self._loaded:
            for i, slots in self._loaded.items():
                for name, arr in slots.items():
                    state[f"{i}/{name}"] = arr.copy()
        return state

    def state_shapes(self, params: Sequence[Tensor]) -> dict[str, tuple]:
        """The keys ``get_state`` writes for ``params`` and the shape of each.

        A loader compares a file's header with this before reading any data.
        """
        shapes = {"iterations": ()}
        if self._schedule is None:
            shapes["learning_rate"] = ()
        for i, p in enumerate(params):
            for name in self.slot_names():
                shapes[f"{i}/{name}"] = tuple(p.shape)
        return shapes

    def set_state(self, state: dict, params: Sequence[Tensor] | None = None) -> None:
        """Restore ``get_state``'s output; before the first step the slots wait for ``build``.

        Restored values pass the constructor's checks (``learning_rate`` a number >= 0,
        ``iterations`` an int >= 0).

        Args:
            state: ``{"iterations", "learning_rate", "<index>/<slot>"...}`` arrays.
            params: the parameters the slots belong to; when given, the slots are built
                now and every slot's shape is checked against its parameter.

        Raises:
            ValueError: for missing or unexpected keys, values the constructor refuses, or
                slot arrays of the wrong shape.
        """
        owner = f"{type(self).__name__}.set_state"
        if "iterations" not in state:
            raise ValueError(f"{owner}: Expected an 'iterations' entry. Received "
                             f"keys: {sorted(state)}")
        iterations = check_int(_scalar(state["iterations"], "iterations", owner),
                               "iterations", owner, min_value=0)
        lr = None
        if "learning_rate" in state and self._schedule is None:
            lr = check_float(_scalar(state["learning_rate"], "learning_rate", owner),
                             "learning_rate", owner, low=0.0)
        loaded: dict[int, dict[str, np.ndarray]] = {}
        for key, value in state.items():
            if key in ("iterations", "learning_rate"):
                continue
            index, _, name = key.partition("/")
            if not index.isdigit() or name not in self.slot_names():
                raise ValueError(f"{owner}: unexpected key {key!r}; expected "
                                 f"'<index>/<slot>' with slot in {self.slot_names()}")
            loaded.setdefault(int(index), {})[name] = np.asarray(value)
        n = len(loaded)
        if sorted(loaded) != list(range(n)) or any(
                set(s) != set(self.slot_names()) for s in loaded.values()):
            raise ValueError(f"{owner}: Expected slots {self.slot_names()} for every "
                             f"parameter index 0..{n - 1}. Received keys: {sorted(state)}")
        if self._slots is not None:
            if n != len(self._slots):
                raise ValueError(f"{owner}: the state holds {n} parameters but the "
                                 f"optimizer was built with {len(self._slots)}")
            for i, slots in enumerate(self._slots):
                for name, arr in slots.items():
                    _copy_into(arr, loaded[i][name], f"{i}/{name}")
        else:
            self._loaded = loaded or None
            if params is not None:
                self.build(list(params))
        self.iterations = iterations
        if lr is not None:
            self._lr = lr

    def get_config(self) -> dict:
        lr = schedules.serialize(self._schedule) if self._schedule else self._lr
        return {"name": self.name, "learning_rate": lr, "weight_decay": self.weight_decay,
                "clipnorm": self.clipnorm, "clipvalue": self.clipvalue,
                "global_clipnorm": self.global_clipnorm}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(learning_rate={self.get_config()['learning_rate']!r})"


def _norm(g) -> float:
    flat = g.reshape(-1)
    return float(get_array_module(g).sqrt(flat @ flat))


def _scale_to_norm(g, norm: float, max_norm: float):
    """``g * max_norm / max(norm, max_norm)`` (a copy only when it actually shrinks)."""
    return g * (max_norm / norm) if norm > max_norm else g


def _scalar(value, name: str, owner: str):
    """A 0-d numeric array as a Python number (the form ``get_state`` writes)."""
    arr = np.asarray(value)
    if arr.shape != () or arr.dtype.kind not in "iuf":
        raise ValueError(f"{owner}: Expected {name} to be a numeric scalar. Received: "
                         f"{name} of shape {arr.shape} and dtype {arr.dtype}")
    return arr.item()


def _copy_into(dst, src: np.ndarray, key: str) -> None:
    if tuple(src.shape) != tuple(dst.shape):
        raise ValueError(f"Optimizer state {key!r}: Expected shape {tuple(dst.shape)}. "
                         f"Received: shape {tuple(src.shape)}")
    dst[...] = get_array_module(dst).asarray(src, dtype=dst.dtype)
