"""Shared fixtures.

``kernels`` runs a test once on the NumPy reference kernels and once on the compiled ones
(``dojang.config.kernels("numba")``), so both stay equal to the oracles. ``device`` runs a
test on the CPU and on the strict stand-in device (``dojang.backends.strict``: arrays that
refuse implicit conversion to NumPy, as CuPy's do), so host/device mixing inside dojang
fails here rather than on a GPU. A test that takes both runs as cpu-numpy, cpu-jit and
strict-jit: on the strict device the compiled variants are asked for and must stay unused
(their rules take NumPy arrays only), so the reference kernels run there.
"""

import pytest

import dojang as dj
from dojang.backends import strict

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
    with dj.config.kernels("numba" if request.param == "jit" else "reference"):
        yield request.param
