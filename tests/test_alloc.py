"""The array recycler (``dojang.kernels.alloc``): a block is handed out again only when
nothing uses it any more, whatever views of it are still alive."""

import gc

import numpy as np
import pytest

from dojang import settings
from dojang.kernels import alloc
from tests.helpers import run_in_threads

BIG = (256, 1024)  # 1 MiB of float32: over MIN_BYTES


def _shares(a, b) -> bool:
    return np.shares_memory(a, b)


def test_a_free_block_is_reused_and_a_busy_one_is_not():
    alloc.clear()
    a = alloc.empty(BIG, np.float32)
    b = alloc.empty(BIG, np.float32)
    assert not _shares(a, b)  # both in use
    a[...] = 1
    del a
    gc.collect()
    c = alloc.empty(BIG, np.float32)
    assert c.shape == BIG and c.dtype == np.float32 and not _shares(b, c)
    assert alloc.kept_bytes() == 2 * np.prod(BIG) * 4  # c reused the first block


def test_views_keep_their_block_busy():
    alloc.clear()
    a = alloc.empty(BIG, np.float32)
    view = a[10:20].T.reshape(-1)  # derived views name the block as their base
    del a
    b = alloc.empty(BIG, np.float32)
    assert not _shares(view, b)
    b[...] = 0
    view[...] = 7
    assert (b == 0).all()


def test_small_arrays_and_other_sizes_are_plain():
    alloc.clear()
    small = alloc.empty((4, 4), np.float64)
    assert alloc.kept_bytes() == 0 and small.shape == (4, 4)
    z = alloc.zeros(BIG, np.float64)
    assert (z == 0).all() and z.dtype == np.float64
    before = alloc.kept_bytes()
    with settings.recycling(False):  # DOJANG_RECYCLE=0
        alloc.empty(BIG, np.float32)
    assert alloc.kept_bytes() == before


def test_limits_fall_back_to_new_arrays(monkeypatch):
    alloc.clear()
    monkeypatch.setattr(alloc, "MAX_PER_SIZE", 2)
    arrays = [alloc.empty(BIG, np.float32) for _ in range(4)]
    assert alloc.kept_bytes() == 2 * np.prod(BIG) * 4
    for i, a in enumerate(arrays):
        for b in arrays[i + 1:]:
            assert not _shares(a, b)


def test_threads_never_share_a_block():
    alloc.clear()
    got = []

    def worker():
        for _ in range(50):
            got.append(alloc.empty(BIG, np.float32))

    run_in_threads(worker, 4)
    live = got[:]  # all still referenced: no two may overlap
    for i in range(0, len(live), 17):
        for j in range(i + 1, len(live), 13):
            assert not _shares(live[i], live[j])


@pytest.fixture(autouse=True)
def _fresh():
    yield
    alloc.clear()


def test_free_blocks_of_other_sizes_make_room(monkeypatch):
    alloc.clear()
    nbytes = np.prod(BIG) * 4
    monkeypatch.setattr(alloc, "MAX_BYTES", 2 * nbytes)
    a = alloc.empty(BIG, np.float32)
    b = alloc.empty(BIG, np.float32)
    del a  # one free, one busy block of the first size
    other = alloc.empty((BIG[0] * 2, BIG[1]), np.float32)  # twice the size: needs both
    assert alloc.kept_bytes() <= 2 * nbytes  # never over the limit
    assert not _shares(other, b)
    c = alloc.empty((128, 1024), np.float64)  # fits once the free block is gone
    assert not _shares(c, b) and not _shares(c, other)


def test_large_add_uses_recycled_memory_and_is_exact():
    import dojang as dj

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal(BIG).astype(np.float32) for _ in range(2))
    ta, tb = dj.Tensor(a, requires_grad=True), dj.Tensor(b, requires_grad=True)
    alloc.clear()
    y = ta + tb
    assert alloc.kept_bytes() == a.nbytes
    np.testing.assert_array_equal(y.numpy(), a + b)
    y.sum().backward()
    np.testing.assert_array_equal(ta.grad.numpy(), np.ones_like(a))


def test_kept_bytes_stay_true_through_evictions(monkeypatch):
    alloc.clear()
    monkeypatch.setattr(alloc, "MAX_BYTES", 3 << 20)
    busy = alloc.empty((1 << 20,), np.uint8)
    for _ in range(3):
        t = alloc.empty((2 << 20,), np.uint8)
        del t
        u = alloc.empty((1 << 20,), np.uint8)
        del u
        held = sum(size * len(blocks) for size, blocks in alloc._blocks.items())
        assert alloc.kept_bytes() == held <= alloc.MAX_BYTES
    assert busy.size == 1 << 20
