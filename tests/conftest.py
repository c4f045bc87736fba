"""Shared fixtures.

``kernels`` runs a test on the NumPy kernels and on the compiled ones
(``dojang.kernels.jit``), so both stay equal to the oracles. ``device`` runs a test on the
CPU and on the strict stand-in device (``dojang.backends.strict``: arrays that refuse
implicit conversion to NumPy, as CuPy's do), so host/device mixing inside dojang fails
here rather than on a GPU. A test that takes both runs as cpu-numpy, cpu-jit and
strict-jit: on the strict device the compiled kernels are switched on and must stay
unused (they take NumPy arrays only).
"""

import pytest

import dojang as dj
from dojang.backends import strict
from dojang.kernels import jit

DEVICE_KERNELS = [("cpu", "numpy"), ("cpu", "jit"), ("strict", "jit")]


def pytest_generate_tests(metafunc):
    names = metafunc.fixturenames
    if "device" in names and "kernels" in names:
        metafunc.parametrize(("device", "kernels"), DEVICE_KERNELS, indirect=True)
    elif "device" in names:
        metafunc.parametrize("device", ["cpu", "strict"], indirect=True)
    elif "kernels" in names:
        metafunc.parametrize("kernels", ["numpy", "jit"], indirect=True)


@pytest.fixture
def device(request):
    if request.param == "strict":
        strict.enable()
    return request.param


@pytest.fixture
def kernels(request):
    compiled = request.param == "jit"
    if compiled and not jit.available():
        if "device" not in request.fixturenames or request.getfixturevalue("device") == "cpu":
            pytest.skip("numba is not installed (the `fast` extra)")
        compiled = False  # the strict device runs the reference kernels either way
    with dj.config.jit(compiled):
        yield request.param
