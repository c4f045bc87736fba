"""Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017): 70,000 28x28 grayscale clothing images.

Files and checksums. ``sha256`` is of the ``.gz`` files as published by Zalando Research
(github.com/zalandoresearch/fashion-mnist, whose README gives their MD5s 8d4fb7e6...,
25c81989..., bef4ecab..., bb300cfd...; the SHA-256 values are those recorded for the same
files by several independent projects). ``content_sha256`` is of the uncompressed IDX files;
it was computed here from Debian's ``dataset-fashion-mnist`` (0.0~git20200523.55506a9-1),
whose ``.gz`` files are recompressed (a 24-byte shorter gzip header, so a different
``sha256``) but hold the same bytes, and it matches the uncompressed digests published
elsewhere. Local files are checked by ``content_sha256``, downloads by ``sha256``.
"""

from __future__ import annotations

import os

import numpy as np

from dojang.datasets._mnist_format import load_mnist_format
from dojang.datasets._sources import DatasetSpec, RemoteFile

__all__ = ["class_names", "load_data"]

class_names = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

MIRRORS = (
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
)

FILES = (
    RemoteFile("train-images-idx3-ubyte.gz",
               "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", 26421880,
               "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888", 47040016),
    RemoteFile("train-labels-idx1-ubyte.gz",
               "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", 29515,
               "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9", 60008),
    RemoteFile("t10k-images-idx3-ubyte.gz",
               "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", 4422102,
               "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b", 7840016),
    RemoteFile("t10k-labels-idx1-ubyte.gz",
               "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", 5148,
               "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34", 10008),
)


def load_data(
    path: str | os.PathLike | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load Fashion-MNIST as Keras does: 60,000 training and 10,000 test images.

    Looks in ``path``, ``$DOJANG_DATA/fashion-mnist``, ``/usr/share/datasets/fashion-mnist``
    (``sudo apt-get install dataset-fashion-mnist``), ``~/.cache/dojang/datasets/fashion-mnist``,
    then downloads into that cache (see :mod:`dojang.datasets`). Every file is verified by
    SHA-256 before use.

    Args:
        path: optional directory holding the four IDX files (``.gz`` or uncompressed).

    Returns:
        ``((x_train, y_train), (x_test, y_test))``: uint8 images of shape (60000, 28, 28) and
        (10000, 28, 28) with pixels in [0, 255]; uint8 labels of shape (60000,) and (10000,)
        in [0, 9], indexing :data:`class_names`.

    Raises:
        DatasetNotFoundError: no place has the files and the download failed; the message
            lists every place tried and the commands that fix it.
        DatasetCorruptError: a file is truncated, malformed or fails its checksum.

    Example:
        >>> from dojang.datasets import fashion_mnist
        >>> (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()  # doctest: +SKIP
        >>> x_train.shape, fashion_mnist.class_names[y_train[0]]  # doctest: +SKIP
        ((60000, 28, 28), 'Ankle boot')
    """
    spec = DatasetSpec("fashion-mnist", "Fashion-MNIST", "fashion_mnist.load_data", FILES,
                       MIRRORS, apt_package="dataset-fashion-mnist")
    return load_mnist_format(spec, path, len(class_names))
