"""Shared fixtures: ``kernels`` runs a test once on the NumPy kernels and once on the
compiled ones (``dojang.kernels.jit``), so both stay equal to the oracles."""

import pytest

import dojang as dj
from dojang.kernels import jit


@pytest.fixture(params=["numpy", "jit"])
def kernels(request):
    if request.param == "jit" and not jit.available():
        pytest.skip("numba is not installed (the `fast` extra)")
    with dj.config.jit(request.param == "jit"):
        yield request.param
