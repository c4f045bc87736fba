"""dojang.random: seeded generators, never NumPy's global state."""

import numpy as np
import pytest

from dojang import random as djr


def test_set_seed_gives_distinct_reproducible_generators():
    djr.set_seed(123)
    a, b = djr.make_rng().random(5), djr.make_rng().random(5)
    assert not np.allclose(a, b)
    djr.set_seed(123)
    np.testing.assert_array_equal(djr.make_rng().random(5), a)
    np.testing.assert_array_equal(djr.make_rng().random(5), b)
    assert djr.get_seed() == 123
    djr.set_seed(124)
    assert not np.allclose(djr.make_rng().random(5), a)


def test_explicit_seed_and_generator():
    np.testing.assert_array_equal(djr.make_rng(7).random(3),
                                  np.random.default_rng(7).random(3))
    g = np.random.default_rng(1)
    assert djr.make_rng(g) is g


def test_global_numpy_state_untouched():
    state = np.random.get_state()[1].copy()
    djr.set_seed(5)
    djr.make_rng().random(10)
    np.testing.assert_array_equal(np.random.get_state()[1], state)


@pytest.mark.parametrize("bad", [-1, 1.5, "3"])
def test_bad_seed(bad):
    with pytest.raises(ValueError, match="set_seed: Expected seed to be a non-negative int"):
        djr.set_seed(bad)
    with pytest.raises(ValueError, match="make_rng: Expected seed"):
        djr.make_rng(bad)
