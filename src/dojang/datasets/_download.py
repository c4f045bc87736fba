"""Cache directory, SHA-256 checks and verified downloads for the dataset loaders.

A download streams into a temporary file beside its destination while hashing it, and the
temporary file is renamed into place (``os.replace``, atomic on one filesystem) only after its
size and SHA-256 match the published values. A failed or interrupted download leaves nothing
behind, so a file in the cache is always a complete, verified copy.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import tempfile
import urllib.request
from pathlib import Path

_CHUNK = 1 << 20  # 1 MiB: large enough that hashing and progress updates cost nothing


class DatasetNotFoundError(FileNotFoundError):
    """No place held a dataset and no download succeeded; the message lists every place tried."""


class DatasetCorruptError(ValueError):
    """A dataset file exists but is truncated, malformed or fails its checksum."""


class DownloadError(OSError):
    """One download attempt failed (network error, HTTP error, wrong size or wrong checksum)."""


def cache_dir() -> Path:
    """Return the user cache for datasets: ``$DOJANG_CACHE`` or ``~/.cache/dojang/datasets``.

    Example:
        >>> isinstance(cache_dir(), Path)
        True
    """
    env = os.environ.get("DOJANG_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dojang" / "datasets"


def sha256_file(path: str | os.PathLike) -> str:
    """Return the hex SHA-256 digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


class _TextBar:
    """Plain-text progress bar for terminals without tqdm: ``name: [####....]  42% 11/26 MB``."""

    def __init__(self, total: int | None, desc: str, file) -> None:
        self.total, self.desc, self.file = total, desc, file
        self.done = 0
        self._shown = -1

    def update(self, n: int) -> None:
        self.done += n
        # Redraw once per whole percent (or per MiB without a known total), not per chunk.
        step = self.done * 100 // self.total if self.total else self.done >> 20
        if step != self._shown:
            self._shown = step
            self._draw()

    def _draw(self) -> None:
        mb = f"{self.done / 1e6:.1f}"
        if self.total:
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(frac * 30)
            line = f"{self.desc}: [{bar:<30}] {frac:4.0%} {mb}/{self.total / 1e6:.1f} MB"
        else:
            line = f"{self.desc}: {mb} MB"
        self.file.write("\r" + line)
        self.file.flush()

    def close(self) -> None:
        self.file.write("\n")
        self.file.flush()


def _progress_bar(total: int | None, desc: str):
    """A tqdm bar when tqdm is installed, else :class:`_TextBar`; both write to stderr."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _TextBar(total, desc, sys.stderr)
    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                file=sys.stderr, leave=True)


def download_file(
    url: str, dest: str | os.PathLike, sha256: str, *, size: int | None = None,
    timeout: float = 30.0, progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest``, verifying size and SHA-256 before an atomic move into place.

    Args:
        url: address to fetch (``http``, ``https`` or ``file``).
        dest: final path; its directory is created if needed.
        sha256: expected hex SHA-256 of the whole file.
        size: expected size in bytes, if known (checked before the hash).
        timeout: seconds to wait for the connection and for each read.
        progress: show a progress bar on stderr (tqdm if installed, plain text otherwise).

    Returns:
        ``dest`` as a Path.

    Raises:
        DownloadError: the connection failed, the server answered with an error, the transfer
            was cut short, or the size or checksum is wrong. Nothing is left at ``dest`` or
            in its directory in that case.

    Example:
        >>> download_file("https://example.org/f.gz", "/tmp/f.gz", "ab12...")  # doctest: +SKIP
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        digest = hashlib.sha256()
        got = 0
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    length = response.headers.get("Content-Length")
                    announced = int(length) if length and length.isdigit() else None
                    total = announced if announced is not None else size
                    bar = _progress_bar(total, dest.name) if progress else None
                    try:
                        for chunk in iter(lambda: response.read(_CHUNK), b""):
                            out.write(chunk)
                            digest.update(chunk)
                            got += len(chunk)
                            if bar is not None:
                                bar.update(len(chunk))
                    finally:
                        if bar is not None:
                            bar.close()
            except (OSError, http.client.HTTPException, ValueError) as exc:
                # URLError, HTTPError and timeouts are OSErrors; IncompleteRead is an
                # HTTPException; a malformed URL is a ValueError.
                raise DownloadError(f"{url}: {type(exc).__name__}: {exc}") from exc
        if announced is not None and got != announced:
            raise DownloadError(f"{url}: transfer cut short: received {got} of the {announced} "
                                "bytes announced")
        if size is not None and got != size:
            raise DownloadError(f"{url}: expected {size} bytes, received {got} (transfer cut "
                                "short or a different file)")
        actual = digest.hexdigest()
        if actual != sha256.lower():
            raise DownloadError(f"{url}: SHA-256 mismatch: expected {sha256.lower()}, "
                                f"got {actual}")
        os.replace(tmp_name, dest)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return dest
