"""Datasets as Keras ships them: ``fashion_mnist``, ``mnist`` and ``cifar10``.

Each module has ``load_data(path=None)`` returning ``((x_train, y_train), (x_test, y_test))``
as uint8 NumPy arrays shaped like Keras's, and ``class_names``. A loader looks, in order, in:

1. its ``path=`` argument (a directory holding the files);
2. ``$DOJANG_DATA/<name>`` (``fashion-mnist``, ``mnist``, ``cifar10``);
3. the system directory ``/usr/share/datasets/<name>`` (``sudo apt-get install
   dataset-fashion-mnist`` fills it for Fashion-MNIST; ``$DOJANG_SYSTEM_DATA`` moves it);
4. the user cache ``~/.cache/dojang/datasets/<name>`` (``$DOJANG_CACHE`` moves it);
5. the dataset's official mirrors, downloading into the cache with a progress bar, a
   SHA-256 check and an atomic move.

When all fail, :class:`DatasetNotFoundError` lists every place tried and the commands that
fix it. Files are verified by SHA-256 before use; a corrupt or truncated file raises
:class:`DatasetCorruptError` and is never partly used.

Example:
    >>> from dojang.datasets import fashion_mnist
    >>> (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()  # doctest: +SKIP
    >>> x_train.shape, x_train.dtype  # doctest: +SKIP
    ((60000, 28, 28), dtype('uint8'))
"""

from dojang.datasets import cifar10, fashion_mnist, idx, mnist
from dojang.datasets._download import (
    DatasetCorruptError,
    DatasetNotFoundError,
    DownloadError,
    cache_dir,
)
from dojang.datasets._sources import system_data_dir

__all__ = [
    "DatasetCorruptError", "DatasetNotFoundError", "DownloadError", "cache_dir", "cifar10",
    "fashion_mnist", "idx", "mnist", "system_data_dir",
]
