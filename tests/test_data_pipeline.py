"""Input pipeline: seeded batching, scaling, channel axis, and batch augmentations.

Each augmentation is compared with a per-image loop that replays the same random draws
(the draw order is part of each function's documented contract).
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from dojang import random as dj_random
from dojang.data import (
    BatchLoader,
    add_channel_axis,
    batch_indices,
    compose,
    cutout,
    epoch_rng,
    iterate_batches,
    prepare_images,
    random_crop,
    random_flip_left_right,
    random_shift,
    to_float,
)

NP_MODES = {"constant": "constant", "reflect": "reflect", "edge": "edge", "wrap": "wrap"}


def images(shape=(6, 7, 5, 3), dtype=np.uint8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, shape).astype(dtype)


# ---------------------------------------------------------------- batching


def test_epoch_rng_is_a_function_of_seed_and_epoch():
    a = epoch_rng(7, 2).permutation(50)
    np.testing.assert_array_equal(a, epoch_rng(7, 2).permutation(50))
    assert not np.array_equal(a, epoch_rng(7, 3).permutation(50))
    assert not np.array_equal(a, epoch_rng(8, 2).permutation(50))
    with pytest.raises(ValueError, match=r"epoch_rng: Expected epoch to be an int >= 0\. "
                       r"Received: epoch=-1"):
        epoch_rng(7, -1)


@pytest.mark.parametrize("n, batch_size, drop", [(10, 3, False), (10, 3, True), (9, 3, True),
                                                 (1, 4, False), (0, 2, False), (5, 8, True)])
def test_batch_indices_cover_the_data(n, batch_size, drop):
    batches = batch_indices(n, batch_size, shuffle=True, rng=np.random.default_rng(0),
                            drop_remainder=drop)
    sizes = [len(b) for b in batches]
    full, rest = divmod(n, batch_size)
    assert sizes == [batch_size] * full + ([rest] if rest and not drop else [])
    seen = np.concatenate(batches) if batches else np.array([], int)
    assert len(np.unique(seen)) == len(seen)  # no index twice
    if not drop:
        np.testing.assert_array_equal(np.sort(seen), np.arange(n))


def test_shuffle_is_seeded_and_a_permutation():
    a = np.concatenate(batch_indices(100, 16, shuffle=True, rng=np.random.default_rng(3)))
    b = np.concatenate(batch_indices(100, 16, shuffle=True, rng=np.random.default_rng(3)))
    c = np.concatenate(batch_indices(100, 16, shuffle=True, rng=np.random.default_rng(4)))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, np.arange(100))
    np.testing.assert_array_equal(np.sort(a), np.arange(100))
    np.testing.assert_array_equal(np.concatenate(batch_indices(7, 2)), np.arange(7))


def test_batch_indices_errors():
    with pytest.raises(ValueError, match=r"batch_indices: Expected rng to be a "
                       r"numpy\.random\.Generator when shuffle=True\. Received: rng=None"):
        batch_indices(5, 2, shuffle=True)
    with pytest.raises(TypeError, match=r"batch_indices: Expected rng to be None or a "
                       r"numpy\.random\.Generator\. Received: rng=3"):
        batch_indices(5, 2, shuffle=True, rng=3)
    with pytest.raises(ValueError, match=r"Expected batch_size to be an int >= 1\. "
                       r"Received: batch_size=0"):
        batch_indices(5, 0)


def test_iterate_batches_keeps_pairs_and_applies_hooks():
    x = np.arange(11 * 2).reshape(11, 2)
    y = np.arange(11) * 10
    calls = []

    def augment(xb, rng):
        calls.append(len(xb))
        assert isinstance(rng, np.random.Generator)
        return xb + 1

    out = list(iterate_batches(x, y, 4, shuffle=True, rng=np.random.default_rng(0),
                               augment=augment, preprocess=lambda xb: xb * 2))
    assert calls == [4, 4, 3]
    xs = np.concatenate([xb for xb, _ in out])
    ys = np.concatenate([yb for _, yb in out])
    np.testing.assert_array_equal(xs, (x[ys // 10] + 1) * 2)  # each x stays with its y
    np.testing.assert_array_equal(np.sort(ys), y)
    with pytest.raises(ValueError, match=r"iterate_batches: Expected x and y to have the same "
                       r"number of samples\. Received: len\(x\)=11, len\(y\)=3"):
        list(iterate_batches(x, y[:3]))
    with pytest.raises(ValueError, match="Expected rng to be a numpy.random.Generator when "
                       "augment is given"):
        list(iterate_batches(x, augment=augment))


def test_batch_loader_epochs_are_reproducible():
    x = np.arange(20 * 3 * 3, dtype=np.uint8).reshape(20, 3, 3)
    y = np.arange(20)
    make = partial(BatchLoader, x, y, 6, seed=11,
                   augment=partial(random_shift, max_shift=1), preprocess=prepare_images)
    loader = make()
    assert len(loader) == 4 and len(make(drop_remainder=True)) == 3
    run = [list(loader) for _ in range(3)]  # epochs 0, 1, 2 by iteration
    resumed = list(make().epoch(2))  # a fresh loader asked for epoch 2 directly
    for (xa, ya), (xb, yb) in zip(run[2], resumed, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    orders = [np.concatenate([yb for _, yb in epoch]) for epoch in run]
    assert not np.array_equal(orders[0], orders[1])
    for order in orders:
        np.testing.assert_array_equal(np.sort(order), y)
    xb, _ = run[0][0]
    assert xb.shape == (6, 3, 3, 1) and xb.dtype == np.float32
    unshuffled = np.concatenate([yb for _, yb in BatchLoader(x, y, 6, shuffle=False).epoch(5)])
    np.testing.assert_array_equal(unshuffled, y)


def test_batch_loader_seed_and_errors():
    loader = BatchLoader(np.zeros(4), seed=None)
    assert isinstance(loader.seed, int) and loader.seed >= 0
    assert BatchLoader(np.zeros(4), seed=None).seed != loader.seed
    seeds = []
    for _ in range(2):
        dj_random.set_seed(123)
        seeds.append(BatchLoader(np.zeros(4)).seed)
    assert seeds[0] == seeds[1]
    with pytest.raises(ValueError, match=r"BatchLoader: Expected seed to be None or an int "
                       r">= 0\. Received: seed=-2"):
        BatchLoader(np.zeros(4), seed=-2)
    with pytest.raises(TypeError, match=r"BatchLoader: Expected augment to be None or a "
                       r"callable\. Received: augment=3"):
        BatchLoader(np.zeros(4), augment=3)
    with pytest.raises(ValueError, match=r"BatchLoader: Expected x and y to have the same"):
        BatchLoader(np.zeros(4), np.zeros(3))


# ---------------------------------------------------------------- scaling and channel axis


def test_to_float_matches_keras_scaling():
    x = np.arange(256, dtype=np.uint8).reshape(16, 16)
    out = to_float(x)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, (x / 255.0).astype("float32"))
    assert to_float(x, 1.0, "float64").dtype == np.float64
    with pytest.raises(ValueError, match=r"to_float: Expected dtype to be a floating dtype\. "
                       r"Received: dtype='int32'"):
        to_float(x, dtype="int32")


def test_channel_axis_and_prepare_images():
    x = images((2, 4, 5), seed=1)
    assert add_channel_axis(x).shape == (2, 4, 5, 1)
    assert add_channel_axis(x, "channels_first").shape == (2, 1, 4, 5)
    rgb = images((2, 4, 5, 3))
    assert add_channel_axis(rgb) is rgb
    with pytest.raises(ValueError, match=r"add_channel_axis: Expected x to be a 3-D \(N, H, W\) "
                       r"or 4-D image batch\. Received: x with shape \(2, 5\)"):
        add_channel_axis(x[:, 0])
    last = prepare_images(rgb)
    first = prepare_images(rgb, data_format="channels_first")
    np.testing.assert_array_equal(first, last.transpose(0, 3, 1, 2))
    assert first.flags.c_contiguous
    np.testing.assert_array_equal(prepare_images(x)[..., 0], x / np.float32(255))


# ---------------------------------------------------------------- augmentation references


def flip_reference(x, rng, p):
    flip = rng.random(len(x)) < p
    out = x.copy()
    for n in range(len(x)):
        if flip[n]:
            out[n] = x[n, :, ::-1]
    return out


def crop_reference(x, rng, padding, mode, fill):
    ph, pw = padding
    top = rng.integers(0, 2 * ph + 1, len(x))
    left = rng.integers(0, 2 * pw + 1, len(x))
    out = np.empty_like(x)
    h, w = x.shape[1:3]
    for n in range(len(x)):
        kw = {"constant_values": fill} if mode == "constant" else {}
        padded = np.pad(x[n], ((ph, ph), (pw, pw), (0, 0)), mode=NP_MODES[mode], **kw)
        out[n] = padded[top[n]:top[n] + h, left[n]:left[n] + w]
    return out


def shift_reference(x, rng, max_shift, fill):
    """Constant fill, written pixel by pixel from out[i, j] = x[i - dy, j - dx]."""
    dy = rng.integers(-max_shift[0], max_shift[0] + 1, len(x))
    dx = rng.integers(-max_shift[1], max_shift[1] + 1, len(x))
    out = np.full_like(x, fill)
    h, w = x.shape[1:3]
    for n in range(len(x)):
        for i in range(h):
            for j in range(w):
                if 0 <= i - dy[n] < h and 0 <= j - dx[n] < w:
                    out[n, i, j] = x[n, i - dy[n], j - dx[n]]
    return out


def cutout_reference(x, rng, size, p, fill):
    h, w = x.shape[1:3]
    cy = rng.integers(0, h, len(x))
    cx = rng.integers(0, w, len(x))
    apply = rng.random(len(x)) < p
    out = x.copy()
    for n in range(len(x)):
        if apply[n]:
            y0, x0 = cy[n] - size[0] // 2, cx[n] - size[1] // 2
            out[n, max(y0, 0):max(y0 + size[0], 0), max(x0, 0):max(x0 + size[1], 0)] = fill
    return out


CASES = [
    (random_flip_left_right, {"p": 0.5}, lambda x, r: flip_reference(x, r, 0.5)),
    (random_flip_left_right, {"p": 1.0}, lambda x, r: flip_reference(x, r, 1.0)),
    (random_crop, {"padding": (2, 1)},
     lambda x, r: crop_reference(x, r, (2, 1), "constant", 0)),
    (random_crop, {"padding": 3, "fill_value": 7},
     lambda x, r: crop_reference(x, r, (3, 3), "constant", 7)),
    (random_crop, {"padding": (2, 3), "fill_mode": "reflect"},
     lambda x, r: crop_reference(x, r, (2, 3), "reflect", 0)),
    (random_crop, {"padding": 2, "fill_mode": "replicate"},
     lambda x, r: crop_reference(x, r, (2, 2), "edge", 0)),
    (random_crop, {"padding": (1, 2), "fill_mode": "circular"},
     lambda x, r: crop_reference(x, r, (1, 2), "wrap", 0)),
    (random_shift, {"max_shift": (2, 3)}, lambda x, r: shift_reference(x, r, (2, 3), 0)),
    (random_shift, {"max_shift": 9, "fill_value": 5},
     lambda x, r: shift_reference(x, r, (9, 9), 5)),
    (cutout, {"size": 3}, lambda x, r: cutout_reference(x, r, (3, 3), 1.0, 0)),
    (cutout, {"size": (2, 4), "p": 0.5, "fill_value": 9},
     lambda x, r: cutout_reference(x, r, (2, 4), 0.5, 9)),
]


@pytest.mark.parametrize("fn, kwargs, reference", CASES)
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_augmentation_matches_loop_reference(fn, kwargs, reference, dtype):
    x = images((16, 7, 5, 3), dtype)
    out = fn(x, np.random.default_rng(5), **kwargs)
    assert out.shape == x.shape and out.dtype == x.dtype
    np.testing.assert_array_equal(out, reference(x, np.random.default_rng(5)))


@pytest.mark.parametrize("fn, kwargs, reference", CASES[::2])
def test_augmentation_layouts(fn, kwargs, reference):
    x = images((9, 6, 8, 2))
    want = fn(x, np.random.default_rng(2), **kwargs)
    first = fn(x.transpose(0, 3, 1, 2), np.random.default_rng(2), data_format="channels_first",
               **kwargs)
    np.testing.assert_array_equal(first, want.transpose(0, 3, 1, 2))
    gray = fn(x[..., 0], np.random.default_rng(2), **kwargs)
    np.testing.assert_array_equal(gray, want[..., 0])


def test_augmentations_change_something_and_keep_the_input():
    x = images((64, 8, 8, 1))
    before = x.copy()
    for fn, kwargs, _ in CASES:
        out = fn(x, np.random.default_rng(0), **kwargs)
        assert not np.array_equal(out, x), fn.__name__
    np.testing.assert_array_equal(x, before)
    flipped = random_flip_left_right(x, np.random.default_rng(0))
    n_flipped = sum(not np.array_equal(a, b) for a, b in zip(flipped, x, strict=True))
    assert 16 < n_flipped < 48  # about half of 64
    assert np.array_equal(cutout(x, np.random.default_rng(0), size=4, p=0.0), x)


def test_cutout_patch_area():
    x = np.ones((200, 10, 10, 1), np.float32)
    out = cutout(x, np.random.default_rng(0), size=4)
    zeros = (out == 0).sum(axis=(1, 2, 3))
    assert zeros.max() == 16 and zeros.min() >= 4  # clipped at a corner: at least 2x2 remain


def test_compose_is_sequential_with_one_rng():
    x = images((8, 6, 6, 3))
    aug = compose(random_flip_left_right, partial(random_crop, padding=2),
                  partial(cutout, size=2))
    rng = np.random.default_rng(9)
    want = cutout(random_crop(random_flip_left_right(x, rng), rng, padding=2), rng, size=2)
    np.testing.assert_array_equal(aug(x, np.random.default_rng(9)), want)
    with pytest.raises(TypeError, match=r"compose: Expected each augmentation to be a callable "
                       r"f\(x, rng\)\. Received: 3"):
        compose(random_crop, 3)


@pytest.mark.parametrize("call, error, match", [
    (lambda x: random_crop(x, 0), TypeError,
     r"random_crop: Expected rng to be a numpy\.random\.Generator\. Received: rng=0"),
    (lambda x: random_crop(x[0, 0], np.random.default_rng()), ValueError,
     r"random_crop: Expected x to be a 3-D \(N, H, W\) or 4-D \(N, H, W, C\) image batch\. "
     r"Received: x with shape \(5, 3\)"),
    (lambda x: random_crop(x, np.random.default_rng(), padding=(1, 2, 3)), ValueError,
     r"random_crop: Expected padding to be an int or a tuple of 2 ints, each >= 0\. "
     r"Received: padding=\(1, 2, 3\)"),
    (lambda x: random_crop(x, np.random.default_rng(), fill_mode="mirror"), ValueError,
     r"random_crop: Expected fill_mode to be one of \('constant', 'zeros', 'reflect', 'edge', "
     r"'replicate', 'wrap', 'circular'\)\. Received: fill_mode='mirror'"),
    (lambda x: random_crop(x, np.random.default_rng(), padding=5, fill_mode="reflect"),
     ValueError, r"random_crop: 'reflect' padding needs a pad smaller than the image\. "
                 r"Received: padding=\(5, 5\) for images of size \(4, 5\)"),
    (lambda x: random_shift(x, np.random.default_rng(), max_shift=-1), ValueError,
     r"random_shift: Expected max_shift to be an int or a tuple of 2 ints, each >= 0"),
    (lambda x: cutout(x, np.random.default_rng(), size=0), ValueError,
     r"cutout: Expected size to be an int or a tuple of 2 ints, each >= 1\. Received: size=0"),
    (lambda x: random_flip_left_right(x, np.random.default_rng(), p=1.5), ValueError,
     r"random_flip_left_right: Expected p to be a number in \[0\.0, 1\.0\]\. Received: p=1\.5"),
    (lambda x: cutout(x, np.random.default_rng(), data_format="NCW"), ValueError,
     r"cutout: Expected data_format to be one of \('NHWC', 'NCHW'"),
])
def test_augmentation_errors(call, error, match):
    with pytest.raises(error, match=match):
        call(images((2, 4, 5, 3)))
