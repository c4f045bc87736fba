"""CIFAR-10 (Krizhevsky, 2009): 60,000 32x32 color images in 10 classes, binary version.

Reads ``cifar-10-binary.tar.gz`` from www.cs.toronto.edu/~kriz/cifar.html, never the
pickled Python version. Each of ``data_batch_1.bin`` ... ``data_batch_5.bin`` and
``test_batch.bin`` (inside ``cifar-10-batches-bin/``) holds 10,000 records of 1 + 3072 bytes:
the label (0-9), then 1024 red, 1024 green and 1024 blue pixel values, each plane row-major.

Checksum: the page publishes MD5 c32a1d4ab5d03f1284b67883e8d87530 for the archive; its
SHA-256 below (170,052,171 bytes) is the one recorded for that file by several independent
projects. An archive is verified by SHA-256 before it is opened; an already extracted
``cifar-10-batches-bin`` directory (no published digest exists for its members) is checked
for exact file sizes and label range.
"""

from __future__ import annotations

import os
import tarfile
import zlib
from pathlib import Path

import numpy as np

from dojang.datasets._download import DatasetCorruptError, sha256_file
from dojang.datasets._sources import DatasetSpec, RemoteFile, locate

__all__ = ["class_names", "load_data"]

class_names = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)

MIRRORS = ("https://www.cs.toronto.edu/~kriz/",)

FILES = (
    RemoteFile("cifar-10-binary.tar.gz",
               "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd", 170052171),
)

RECORDS_PER_FILE = 10000
_RECORD = 1 + 32 * 32 * 3
_FOLDER = "cifar-10-batches-bin"
_BATCHES = tuple(f"data_batch_{i}.bin" for i in range(1, 6)) + ("test_batch.bin",)


def _find(directory: Path):
    archive = directory / FILES[0].name
    if archive.is_file():
        return ("archive", archive), None
    for folder in (directory / _FOLDER, directory):
        if all((folder / name).is_file() for name in _BATCHES):
            return ("folder", folder), None
    return None, f"missing {FILES[0].name} or {_FOLDER}/{{{', '.join(_BATCHES)}}}"


def _check_size(size: int, name: str, owner: str) -> None:
    """Every batch file holds exactly RECORDS_PER_FILE records: checked before reading it."""
    expected = RECORDS_PER_FILE * _RECORD
    if size != expected:
        raise DatasetCorruptError(
            f"{owner}: {name} has {size} bytes, expected {RECORDS_PER_FILE} records of "
            f"{_RECORD} bytes = {expected} (truncated or not CIFAR-10)"
        )


def _read_batch(path: Path, owner: str) -> bytes:
    """One extracted batch file, its size checked (``fstat``) before it is read."""
    with open(path, "rb") as f:
        _check_size(os.fstat(f.fileno()).st_size, path.name, owner)
        data = f.read(RECORDS_PER_FILE * _RECORD + 1)
    _check_size(len(data), path.name, owner)
    return data


def _records(data: bytes, name: str, owner: str) -> np.ndarray:
    """Check one batch file's size and labels; return its records as (RECORDS_PER_FILE, 3073)."""
    _check_size(len(data), name, owner)
    records = np.frombuffer(data, np.uint8).reshape(RECORDS_PER_FILE, _RECORD)
    if records.size and records[:, 0].max() >= len(class_names):
        raise DatasetCorruptError(f"{owner}: {name} has label {records[:, 0].max()}, expected "
                                  f"labels in [0, {len(class_names) - 1}]")
    return records


def _split(batches: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate record arrays into images (N, 32, 32, 3) and labels (N, 1), one copy."""
    n = sum(len(r) for r in batches)
    images, labels = np.empty((n, 32, 32, 3), np.uint8), np.empty((n, 1), np.uint8)
    start = 0
    for records in batches:
        stop = start + len(records)
        # Each record stores the planes R, G, B (channels first); Keras returns channels last.
        images[start:stop] = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        labels[start:stop] = records[:, :1]
        start = stop
    return images, labels


def _read_archive(archive: Path, owner: str) -> dict[str, bytes]:
    actual = sha256_file(archive)
    if actual != FILES[0].sha256:
        raise DatasetCorruptError(
            f"{owner}: {archive} is not the published {FILES[0].name}: SHA-256 {actual}, "
            f"expected {FILES[0].sha256}. It is corrupt or truncated; delete it and run again."
        )
    wanted = {f"{_FOLDER}/{name}": name for name in _BATCHES}
    blobs = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            # Members are read in memory one by one; nothing is extracted to disk.
            for member in tar:
                if member.name in wanted and member.isfile():
                    _check_size(member.size, wanted[member.name], owner)
                    blobs[wanted[member.name]] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise DatasetCorruptError(f"{owner}: cannot read {archive}: {exc}") from exc
    missing = [name for name in _BATCHES if name not in blobs]
    if missing:
        raise DatasetCorruptError(f"{owner}: {archive} lacks {', '.join(missing)} in {_FOLDER}/")
    return blobs


def load_data(
    path: str | os.PathLike | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load CIFAR-10 as Keras does: 50,000 training and 10,000 test color images.

    Looks in ``path``, ``$DOJANG_DATA/cifar10``, ``/usr/share/datasets/cifar10``,
    ``~/.cache/dojang/datasets/cifar10``, then downloads ``cifar-10-binary.tar.gz`` (162 MB)
    into that cache (see :mod:`dojang.datasets`). Each place may hold the archive or its
    extracted ``cifar-10-batches-bin`` folder.

    Args:
        path: optional directory holding the archive or the extracted batch files.

    Returns:
        ``((x_train, y_train), (x_test, y_test))``: uint8 images of shape (50000, 32, 32, 3)
        and (10000, 32, 32, 3) (RGB, channels last); uint8 labels of shape (50000, 1) and
        (10000, 1) in [0, 9], indexing :data:`class_names`. The training set is
        ``data_batch_1`` to ``data_batch_5`` in order.

    Raises:
        DatasetNotFoundError: no place has the files and the download failed; the message
            lists every place tried and the commands that fix it.
        DatasetCorruptError: the archive fails its checksum, or a batch file has the wrong
            size or a label outside 0-9.

    Example:
        >>> from dojang.datasets import cifar10
        >>> (x_train, y_train), (x_test, y_test) = cifar10.load_data()  # doctest: +SKIP
        >>> x_train.shape, y_train.shape  # doctest: +SKIP
        ((50000, 32, 32, 3), (50000, 1))
    """
    owner = "cifar10.load_data"
    spec = DatasetSpec("cifar10", "CIFAR-10", owner, FILES, MIRRORS)
    kind, where = locate(spec, path, _find)
    if kind == "archive":
        blobs = _read_archive(where, owner)
    else:
        blobs = {name: _read_batch(where / name, owner) for name in _BATCHES}
    records = [_records(blobs[name], name, owner) for name in _BATCHES]
    x_train, y_train = _split(records[:5])
    x_test, y_test = _split(records[5:])
    return (x_train, y_train), (x_test, y_test)
