"""Where the loaders look for data, in order, and the error that lists every place tried.

Search order for a dataset with directory name ``KEY`` (e.g. ``fashion-mnist``):

1. the ``path=`` argument of ``load_data`` (a directory holding the files themselves);
2. ``$DOJANG_DATA/KEY``;
3. the system dataset directory ``/usr/share/datasets/KEY`` (where Debian's ``dataset-*``
   packages install; ``$DOJANG_SYSTEM_DATA`` replaces ``/usr/share/datasets``);
4. the user cache ``~/.cache/dojang/datasets/KEY`` (``$DOJANG_CACHE`` replaces the root);
5. a download from the dataset's official mirrors into the user cache.

The first directory that holds a complete set of files is used; its files are verified by the
caller, and a corrupt file there is an error rather than a reason to look further.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dojang.datasets._download import (
    DatasetNotFoundError,
    DownloadError,
    cache_dir,
    download_file,
)

# A finder looks into one directory and returns (what it found, None) or (None, why not).
Finder = Callable[[Path], "tuple[object | None, str | None]"]


@dataclass(frozen=True)
class RemoteFile:
    """One published file of a dataset.

    Args:
        name: file name, the same at the mirror and on disk.
        sha256: SHA-256 of the file exactly as published (checked on download).
        size: its size in bytes.
        content_sha256: SHA-256 of the decompressed contents, for gzip files; unlike
            ``sha256`` it does not change when a distribution recompresses the file.
        content_size: size of the decompressed contents: nothing is inflated past it.
    """

    name: str
    sha256: str
    size: int
    content_sha256: str | None = None
    content_size: int | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """What a loader needs to find, fetch and describe one dataset."""

    key: str
    title: str
    owner: str
    files: tuple[RemoteFile, ...]
    mirrors: tuple[str, ...]
    apt_package: str | None = None


def system_data_dir() -> Path:
    """Return the system dataset root: ``$DOJANG_SYSTEM_DATA`` or ``/usr/share/datasets``."""
    return Path(os.environ.get("DOJANG_SYSTEM_DATA") or "/usr/share/datasets")


def _places(spec: DatasetSpec, path) -> list[tuple[str, Path | None]]:
    env = os.environ.get("DOJANG_DATA")
    places = [] if path is None else [("path argument", Path(path).expanduser())]
    places.append(("$DOJANG_DATA", Path(env).expanduser() / spec.key if env else None))
    places.append(("system directory", system_data_dir() / spec.key))
    places.append(("user cache", cache_dir() / spec.key))
    return places


def _check_path(path, owner: str) -> None:
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{owner}: Expected path to be None or a directory (str or "
                        f"os.PathLike). Received: path={path!r}")
    if path is not None and Path(path).expanduser().is_file():
        raise ValueError(f"{owner}: Expected path to be a directory holding the dataset files. "
                         f"Received: path={str(path)!r}, which is a file")


def _download_missing(spec: DatasetSpec, target: Path) -> list[str]:
    """Fetch every file absent from ``target``; return the failures (empty on success)."""
    failures = []
    for remote in spec.files:
        if (target / remote.name).exists():
            continue
        for mirror in spec.mirrors:
            url = mirror.rstrip("/") + "/" + remote.name
            try:
                download_file(url, target / remote.name, remote.sha256, size=remote.size)
                break
            except DownloadError as exc:
                failures.append(f"download {exc}")
        else:
            return failures
    return []


def _fix_hint(spec: DatasetSpec) -> str:
    names = ", ".join(f.name for f in spec.files)
    cache = cache_dir() / spec.key
    urls = " ".join(f"-O {spec.mirrors[0].rstrip('/')}/{f.name}" for f in spec.files)
    lines = ["Any one of these fixes it:"]
    if spec.apt_package:
        lines.append(f"  sudo apt-get install {spec.apt_package}")
    lines.append(f"  mkdir -p {cache} && cd {cache} && curl -fL {urls}")
    lines.append(f"  export DOJANG_DATA=/path/to/datasets   (holding {spec.key}/{{{names}}})")
    lines.append(f"  {spec.owner}(path='/dir/with/the/files')")
    return "\n".join(lines)


def locate(spec: DatasetSpec, path, find: Finder) -> object:
    """Return what ``find`` reports for the first place holding the dataset.

    Args:
        spec: the dataset.
        path: the loader's ``path=`` argument (a directory) or None.
        find: looks into one directory; returns ``(found, None)`` or ``(None, reason)``.

    Raises:
        TypeError: ``path`` is neither None, a str nor an os.PathLike.
        ValueError: ``path`` names a file instead of a directory.
        DatasetNotFoundError: no place holds the files and every download failed; the
            message lists each place with the reason, and the commands that would fix it.
    """
    _check_path(path, spec.owner)
    tried = []
    for label, directory in _places(spec, path):
        if directory is None:
            tried.append(f"{label}: not set")
            continue
        if not directory.is_dir():
            tried.append(f"{label} {directory}: no such directory")
            continue
        found, reason = find(directory)
        if found is not None:
            return found
        tried.append(f"{label} {directory}: {reason}")
    target = cache_dir() / spec.key
    failures = _download_missing(spec, target)
    if not failures:
        found, reason = find(target)
        if found is not None:
            return found
        failures = [f"user cache {target} after download: {reason}"]
    tried.extend(failures)
    listing = "\n".join(f"  {i}. {line}" for i, line in enumerate(tried, 1))
    raise DatasetNotFoundError(
        f"{spec.owner}: could not find or download {spec.title}. Places tried, in order:\n"
        f"{listing}\n{_fix_hint(spec)}"
    )
