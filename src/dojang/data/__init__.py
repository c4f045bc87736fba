"""Input pipeline: batching with a seeded shuffle, scaling, channel axis, augmentation.

Example:
    >>> import numpy as np
    >>> from functools import partial
    >>> from dojang.data import BatchLoader, compose, prepare_images, random_crop
    >>> x = np.zeros((100, 28, 28), np.uint8)
    >>> loader = BatchLoader(x, np.zeros(100, np.uint8), batch_size=32, seed=42,
    ...                      augment=compose(partial(random_crop, padding=2)),
    ...                      preprocess=prepare_images)
    >>> xb, yb = next(iter(loader.epoch(0)))
    >>> xb.shape, xb.dtype
    ((32, 28, 28, 1), dtype('float32'))
"""

from dojang.data.augment import compose, cutout, random_crop, random_flip_left_right, random_shift
from dojang.data.pipeline import (
    BatchLoader,
    add_channel_axis,
    batch_indices,
    epoch_rng,
    iterate_batches,
    prepare_images,
    to_float,
)

__all__ = [
    "BatchLoader", "add_channel_axis", "batch_indices", "compose", "cutout", "epoch_rng",
    "iterate_batches", "prepare_images", "random_crop", "random_flip_left_right",
    "random_shift", "to_float",
]
