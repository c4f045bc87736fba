"""Shared fixtures: ``kernels`` runs a test once on the NumPy reference kernels and once on
the compiled ones (``dojang.config.kernels("numba")``), so both stay equal to the oracles."""

import pytest

import dojang as dj


@pytest.fixture(params=["numpy", "jit"])
def kernels(request):
    with dj.config.kernels("numba" if request.param == "jit" else "reference"):
        yield request.param
