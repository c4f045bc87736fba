"""Weight initializers, as in Keras: ``init(shape, dtype, rng) -> np.ndarray``.

Fans follow Keras: for a kernel shaped ``(*K, C_in, C_out)`` the receptive field size is
``prod(K)``, ``fan_in = prod(K) * C_in`` and ``fan_out = prod(K) * C_out``; a matrix
``(n_in, n_out)`` has ``fan_in = n_in``, ``fan_out = n_out``.

Values are drawn in float64 and then cast, so one seed gives the same numbers (up to
rounding) in float32 and float64.
"""

from __future__ import annotations

import math

import numpy as np

from dojang.config import get_default_dtype
from dojang.random import make_rng
from dojang.registry import Configurable, Registry
from dojang.validation import check_choice, check_float

registry = Registry("initializer", base=None)  # base set below, once the class exists


def compute_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """Return ``(fan_in, fan_out)`` of a weight shape, Keras's convention.

    Example:
        >>> compute_fans((3, 3, 16, 32))
        (144, 288)
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


class Initializer(Configurable):
    """Base class: ``init(shape, dtype=None, rng=None)`` returns a new NumPy array.

    ``dtype`` defaults to dojang's default float dtype. The generator used is ``rng`` if
    given, else ``np.random.default_rng(seed)`` when the initializer has a ``seed``, else
    the next generator of ``dojang.random.make_rng()``.
    """

    seed: int | None = None

    def __call__(self, shape, dtype=None, rng: np.random.Generator | None = None) -> np.ndarray:
        shape = tuple(int(s) for s in shape)
        dtype = np.dtype(get_default_dtype() if dtype is None else dtype)
        if rng is None:
            rng = make_rng(self.seed)
        return np.asarray(self.generate(shape, rng), dtype=np.float64).astype(dtype)

    def generate(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError


registry.base = Initializer


def _truncated_normal(rng: np.random.Generator, shape, stddev: float) -> np.ndarray:
    """Normal(0, stddev) redrawn until within two standard deviations (as TF/Keras)."""
    x = rng.standard_normal(shape)
    bad = np.abs(x) > 2.0
    while bad.any():
        x[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(x) > 2.0
    return x * stddev


@registry.register("zeros")
class Zeros(Initializer):
    """All zeros.

    Example:
        >>> Zeros()((2,), "float32")
        array([0., 0.], dtype=float32)
    """

    def generate(self, shape, rng):
        return np.zeros(shape)


@registry.register("ones")
class Ones(Initializer):
    """All ones."""

    def generate(self, shape, rng):
        return np.ones(shape)


@registry.register("constant")
class Constant(Initializer):
    """Every value equal to ``value``.

    Args:
        value: a number.
    """

    def __init__(self, value: float = 0.0):
        self.value = check_float(value, "value", "Constant")

    def generate(self, shape, rng):
        return np.full(shape, self.value)

    def get_config(self) -> dict:
        return {"value": self.value}


class _Seeded(Initializer):
    def __init__(self, seed: int | None = None):
        self.seed = seed

    def get_config(self) -> dict:
        return {"seed": self.seed}


@registry.register("random_normal")
class RandomNormal(_Seeded):
    """Normal distribution ``N(mean, stddev^2)``.

    Args:
        mean: mean of the values.
        stddev: standard deviation (> 0).
        seed: optional int making the initializer repeatable on its own.
    """

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None):
        super().__init__(seed)
        self.mean = check_float(mean, "mean", "RandomNormal")
        self.stddev = check_float(stddev, "stddev", "RandomNormal", low=0.0, low_open=True)

    def generate(self, shape, rng):
        return self.mean + self.stddev * rng.standard_normal(shape)

    def get_config(self) -> dict:
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


@registry.register("truncated_normal")
class TruncatedNormal(RandomNormal):
    """Normal ``N(mean, stddev^2)`` with values beyond two stddevs redrawn (Keras)."""

    def generate(self, shape, rng):
        return self.mean + _truncated_normal(rng, shape, self.stddev)


@registry.register("random_uniform")
class RandomUniform(_Seeded):
    """Uniform distribution on ``[minval, maxval)``.

    Args:
        minval: lower bound.
        maxval: upper bound (> minval).
        seed: optional int making the initializer repeatable on its own.

    Raises:
        ValueError: if ``maxval <= minval``.
    """

    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None):
        super().__init__(seed)
        self.minval = check_float(minval, "minval", "RandomUniform")
        self.maxval = check_float(maxval, "maxval", "RandomUniform", low=self.minval,
                                  low_open=True)

    def generate(self, shape, rng):
        return rng.uniform(self.minval, self.maxval, shape)

    def get_config(self) -> dict:
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


_MODES = ("fan_in", "fan_out", "fan_avg")
_DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")

# stddev of a unit normal truncated to [-2, 2]; dividing by it restores the variance.
_TRUNCATION_STD = 0.87962566103423978


@registry.register("variance_scaling")
class VarianceScaling(_Seeded):
    """Values with variance ``scale / n``, ``n`` the fan chosen by ``mode``.

    ``uniform`` draws from ``[-limit, limit]`` with ``limit = sqrt(3 * scale / n)``;
    ``truncated_normal`` uses ``stddev = sqrt(scale / n) / 0.8796...`` truncated at two
    stddevs; ``untruncated_normal`` uses ``stddev = sqrt(scale / n)``.

    Args:
        scale: positive scaling factor.
        mode: "fan_in", "fan_out" or "fan_avg" (``(fan_in + fan_out) / 2``).
        distribution: "truncated_normal", "untruncated_normal" or "uniform".
        seed: optional int making the initializer repeatable on its own.

    Raises:
        ValueError: for a non-positive scale, an unknown mode or distribution.

    Example:
        >>> w = VarianceScaling(2.0, "fan_in", "uniform")((3, 3, 8, 4), rng=make_rng(0))
        >>> bool(abs(w).max() <= (3 * 2.0 / 72) ** 0.5)
        True
    """

    def __init__(self, scale: float = 1.0, mode: str = "fan_in",
                 distribution: str = "truncated_normal", seed: int | None = None):
        super().__init__(seed)
        owner = type(self).__name__
        self.scale = check_float(scale, "scale", owner, low=0.0, low_open=True)
        self.mode = check_choice(mode, _MODES, "mode", owner)
        self.distribution = check_choice(distribution, _DISTRIBUTIONS, "distribution", owner)

    def generate(self, shape, rng):
        fan_in, fan_out = compute_fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, n)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            return rng.uniform(-limit, limit, shape)
        if self.distribution == "untruncated_normal":
            return math.sqrt(variance) * rng.standard_normal(shape)
        return _truncated_normal(rng, shape, math.sqrt(variance) / _TRUNCATION_STD)

    def get_config(self) -> dict:
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                "seed": self.seed}


def _preset(name: str, scale: float, mode: str, distribution: str, doc: str) -> type:
    """A VarianceScaling subclass with fixed arguments (GlorotUniform, HeNormal, ...)."""

    def __init__(self, seed: int | None = None):
        VarianceScaling.__init__(self, scale, mode, distribution, seed)

    def get_config(self) -> dict:
        return {"seed": self.seed}

    cls = type(name, (VarianceScaling,), {
        "__init__": __init__, "get_config": get_config, "__doc__": doc,
        "__module__": __name__,
    })
    return cls


GlorotUniform = registry.register("glorot_uniform")(_preset(
    "GlorotUniform", 1.0, "fan_avg", "uniform",
    "Glorot (Xavier) uniform: ``U(-l, l)``, ``l = sqrt(6 / (fan_in + fan_out))``. "
    "The Keras default for kernels."))
GlorotNormal = registry.register("glorot_normal")(_preset(
    "GlorotNormal", 1.0, "fan_avg", "truncated_normal",
    "Glorot (Xavier) normal: truncated normal, variance ``2 / (fan_in + fan_out)``."))
HeUniform = registry.register("he_uniform")(_preset(
    "HeUniform", 2.0, "fan_in", "uniform",
    "He uniform: ``U(-l, l)``, ``l = sqrt(6 / fan_in)``."))
HeNormal = registry.register("he_normal")(_preset(
    "HeNormal", 2.0, "fan_in", "truncated_normal",
    "He normal: truncated normal, variance ``2 / fan_in``."))
LecunUniform = registry.register("lecun_uniform")(_preset(
    "LecunUniform", 1.0, "fan_in", "uniform",
    "LeCun uniform: ``U(-l, l)``, ``l = sqrt(3 / fan_in)``."))
LecunNormal = registry.register("lecun_normal")(_preset(
    "LecunNormal", 1.0, "fan_in", "truncated_normal",
    "LeCun normal: truncated normal, variance ``1 / fan_in``."))


get, serialize, deserialize = registry.functions(none=None)


__all__ = [
    "Constant", "GlorotNormal", "GlorotUniform", "HeNormal", "HeUniform", "Initializer",
    "LecunNormal", "LecunUniform", "Ones", "RandomNormal", "RandomUniform", "TruncatedNormal",
    "VarianceScaling", "Zeros", "compute_fans", "deserialize", "get", "serialize",
]
