"""Shared loader for the datasets published as four IDX files (MNIST, Fashion-MNIST)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from dojang.datasets._download import DatasetCorruptError
from dojang.datasets._sources import DatasetSpec, RemoteFile, locate
from dojang.datasets.idx import read_idx


def _candidates(remote: RemoteFile) -> tuple[str, ...]:
    # Accept the published .gz file and its decompressed twin (as `gunzip` leaves it).
    name = remote.name
    return (name, name[:-3]) if name.endswith(".gz") else (name,)


def _find_idx_files(spec: DatasetSpec):
    def find(directory: Path):
        found, missing = [], []
        for remote in spec.files:
            paths = [directory / n for n in _candidates(remote) if (directory / n).is_file()]
            if paths:
                found.append(paths[0])
            else:
                missing.append(" or ".join(_candidates(remote)))
        if missing:
            return None, "missing " + ", ".join(missing)
        return found, None

    return find


def _verified_idx(path: Path, remote: RemoteFile, spec: DatasetSpec) -> np.ndarray:
    """Read one IDX file in a single streamed pass, hashing it on the way.

    Nothing is inflated past ``remote.content_size`` (when known) or what the header
    describes; the array is used only if the hash of all of its bytes matches.
    """
    package = spec.apt_package
    fix = f" or `sudo apt-get install --reinstall {package}`" if package else ""
    digest = hashlib.sha256()
    try:
        array = read_idx(path, size=remote.content_size, digest=digest)
    except DatasetCorruptError as e:
        raise DatasetCorruptError(f"{spec.owner}: {path} is not the published {spec.title} "
                                  f"file {remote.name}: {e}. Delete it and run again{fix}."
                                  ) from None
    actual = digest.hexdigest()
    if actual != remote.content_sha256:
        raise DatasetCorruptError(
            f"{spec.owner}: {path} is not the published {spec.title} file {remote.name}: the "
            f"SHA-256 of its uncompressed contents is {actual}, expected "
            f"{remote.content_sha256}. It is corrupt, truncated or from another dataset; "
            f"delete it and run again{fix}."
        )
    return array


def _check_split(images: np.ndarray, labels: np.ndarray, spec: DatasetSpec, num_classes: int,
                 names: tuple[str, str]) -> None:
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DatasetCorruptError(f"{spec.owner}: {names[0]} holds {images.dtype} images of "
                                  f"shape {images.shape}, expected uint8 (N, 28, 28)")
    if labels.dtype != np.uint8 or labels.shape != images.shape[:1]:
        raise DatasetCorruptError(f"{spec.owner}: {names[1]} holds {labels.dtype} labels of "
                                  f"shape {labels.shape}, expected uint8 ({len(images)},) to "
                                  f"match {names[0]}")
    if labels.size and labels.max() >= num_classes:
        raise DatasetCorruptError(f"{spec.owner}: {names[1]} has label {labels.max()}, "
                                  f"expected labels in [0, {num_classes - 1}]")


def load_mnist_format(spec: DatasetSpec, path, num_classes: int):
    """Locate, verify and decode the four IDX files of ``spec``.

    ``spec.files`` lists train images, train labels, test images, test labels, in that order.
    Every file is checked against the SHA-256 of its uncompressed contents before it is used.

    Returns:
        ``((x_train, y_train), (x_test, y_test))``, uint8 arrays of shapes (N, 28, 28) and (N,).
    """
    paths = locate(spec, path, _find_idx_files(spec))
    arrays = [_verified_idx(p, remote, spec) for p, remote in zip(paths, spec.files, strict=True)]
    for i in (0, 2):
        _check_split(arrays[i], arrays[i + 1], spec, num_classes,
                     (spec.files[i].name, spec.files[i + 1].name))
    return (arrays[0], arrays[1]), (arrays[2], arrays[3])
