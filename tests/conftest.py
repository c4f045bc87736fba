"""Shared fixtures.

``kernels`` runs a test once on the NumPy reference kernels and once on the compiled ones
(``dojang.config.kernels("numba")``), so both stay equal to the oracles. ``device`` runs a
test on the CPU and on the strict stand-in device (``dojang.backends.strict``: arrays that
refuse implicit conversion to NumPy, as CuPy's do), so host/device mixing inside dojang
fails here rather than on a GPU. A test that takes both runs as cpu-numpy, cpu-jit and
strict-jit: on the strict device the compiled variants are asked for and must stay unused
(their rules take NumPy arrays only), so the reference kernels run there.

With ``DOJANG_TEST_DEVICE=gpu`` (``make test-gpu``, on a machine with an NVIDIA GPU and
CuPy) the GPU takes the stand-in's place, and only the tests that run on it are kept: the
oracle suite on CuPy arrays, with the GPU variants of the kernels.
"""

import os

import pytest

import dojang as dj
from dojang.backends import strict

ON_GPU = os.environ.get("DOJANG_TEST_DEVICE") == "gpu"
DEVICE = "gpu" if ON_GPU else "strict"
DEVICE_KERNELS = [("cpu", "numpy"), ("cpu", "jit"), (DEVICE, "jit")]


def pytest_generate_tests(metafunc):
    names = metafunc.fixturenames
    if "device" in names and "kernels" in names:
        metafunc.parametrize(("device", "kernels"), DEVICE_KERNELS, indirect=True)
    elif "device" in names:
        metafunc.parametrize("device", ["cpu", DEVICE], indirect=True)
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


def pytest_collection_modifyitems(config, items):
    if not ON_GPU:
        return
    keep = [item for item in items
            if getattr(item, "callspec", None) is not None
            and item.callspec.params.get("device") == "gpu"]
    config.hook.pytest_deselected(items=[i for i in items if i not in keep])
    items[:] = keep
