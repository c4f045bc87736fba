"""MNIST (LeCun, Cortes and Burges): 70,000 28x28 grayscale handwritten digits.

Files and checksums: the four ``.gz`` files of yann.lecun.com/exdb/mnist (MD5s f68b3c2d...,
d53e105e..., 9fb629c4..., ec29112d... as used by torchvision). ``sha256`` is of those files
as served by PyTorch's mirror (ossci-datasets) and TensorFlow's CVDF mirror;
``content_sha256`` of the uncompressed IDX files. Both sets were taken from independent
projects that publish them and agree. Debian has no MNIST package, so the system directory
``/usr/share/datasets/mnist`` is only used when someone put the files there.
"""

from __future__ import annotations

import os

import numpy as np

from dojang.datasets._mnist_format import load_mnist_format
from dojang.datasets._sources import DatasetSpec, RemoteFile

__all__ = ["class_names", "load_data"]

class_names = tuple(str(d) for d in range(10))

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

FILES = (
    RemoteFile("train-images-idx3-ubyte.gz",
               "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9912422,
               "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db", 47040016),
    RemoteFile("train-labels-idx1-ubyte.gz",
               "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28881,
               "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5", 60008),
    RemoteFile("t10k-images-idx3-ubyte.gz",
               "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1648877,
               "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7", 7840016),
    RemoteFile("t10k-labels-idx1-ubyte.gz",
               "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4542,
               "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2", 10008),
)


def load_data(
    path: str | os.PathLike | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load MNIST as Keras does: 60,000 training and 10,000 test digits.

    Looks in ``path``, ``$DOJANG_DATA/mnist``, ``/usr/share/datasets/mnist``,
    ``~/.cache/dojang/datasets/mnist``, then downloads into that cache (see
    :mod:`dojang.datasets`). Every file is verified by SHA-256 before use.

    Args:
        path: optional directory holding the four IDX files (``.gz`` or uncompressed).

    Returns:
        ``((x_train, y_train), (x_test, y_test))``: uint8 images of shape (60000, 28, 28) and
        (10000, 28, 28) with pixels in [0, 255]; uint8 labels of shape (60000,) and (10000,)
        holding the digits 0-9.

    Raises:
        DatasetNotFoundError: no place has the files and the download failed; the message
            lists every place tried and the commands that fix it.
        DatasetCorruptError: a file is truncated, malformed or fails its checksum.

    Example:
        >>> from dojang.datasets import mnist
        >>> (x_train, y_train), (x_test, y_test) = mnist.load_data()  # doctest: +SKIP
        >>> x_test.shape, y_test[:3]  # doctest: +SKIP
        ((10000, 28, 28), array([7, 2, 1], dtype=uint8))
    """
    spec = DatasetSpec("mnist", "MNIST", "mnist.load_data", FILES, MIRRORS)
    return load_mnist_format(spec, path, len(class_names))
