"""Atomic writes and bounded reads: every file dojang writes or parses goes through here.

Writing: ``atomic_write`` puts the bytes in a temporary file in the target's folder,
flushes it to disk and renames it over the target (``os.replace`` is atomic on one
filesystem). A crash or a kill at any moment leaves either the old file or the new one,
never a mix; ``remove_orphans`` deletes the temporary files of killed writes.

Reading untrusted bytes (see docs/security.md): ``read_capped`` (a file whose size is
checked before reading), ``read_member`` / ``check_member`` (zip members: no encryption,
stored or deflate only, sizes checked before inflating), ``read_exact`` / ``read_into``
(exact-length streaming), ``loads_json`` (size
and depth bounded), ``decode_errors`` (low-level exceptions become ValueError naming the
file) and ``confined`` (a name from a file stays inside its folder).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from errno import EINVAL


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path, data: bytes | str) -> None:
    """Write ``data`` (bytes, or text as UTF-8) to ``path`` atomically.

    The file gets the usual permissions (0666 less the umask), not the private mode
    that temporary files are created with.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path, obj) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    import json

    atomic_write(path, json.dumps(obj, indent=1))


# ---------------------------------------------------------------------- bounded reading
# Every reader of untrusted bytes (model files, datasets, run directories) goes through
# the helpers below. Each one decides how many bytes it may read BEFORE reading them, from
# what the file legitimately describes, and turns every low-level failure into a
# ValueError (or the caller's subclass of it) that names the file.
CHUNK = 1 << 20
MAX_JSON_BYTES = 1 << 20
MAX_JSON_DEPTH = 100
# The best ratio deflate can reach is 1032:1 (258-byte matches coded in 2 bits each);
# a stream that claims more than this is lying about its size.
MAX_DEFLATE_RATIO = 1032


def read_capped(path, cap: int, *, exact: int | None = None, error=ValueError,
                source: str | None = None) -> bytes:
    """Read a regular file whose size, taken from ``fstat`` before reading, is at most ``cap``.

    Args:
        path: the file.
        cap: largest size accepted, in bytes.
        exact: when given, the only size accepted.
        error: the exception class raised (a subclass of ValueError).
        source: name used in messages (default: ``path``).

    Raises:
        error: the file is not a regular file, is larger than ``cap``, differs from
            ``exact``, or changes size while being read.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "f")
        >>> atomic_write(p, b"abc")
        >>> read_capped(p, 10)
        b'abc'
    """
    source = source or os.fspath(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if exact is not None and size != exact:
            raise error(f"{source}: Expected a file of {exact} bytes. Received: {size} bytes")
        if size > cap:
            raise error(f"{source}: Expected a file of at most {cap} bytes. Received: "
                        f"{size} bytes")
        data = f.read(size + 1)
    if len(data) != size:
        raise error(f"{source}: the file changed size while being read")
    return data


def read_exact(stream, n: int, source: str, what: str, error=ValueError) -> bytes:
    """Read exactly ``n`` bytes from ``stream`` (in chunks), or raise ``error`` naming ``what``."""
    parts, got = [], 0
    while got < n:
        part = stream.read(min(CHUNK, n - got))
        if not part:
            raise error(f"{source}: truncated {what}: {got} of {n} bytes")
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def read_into(stream, array, source: str, what: str, error=ValueError) -> None:
    """Fill a C-contiguous NumPy ``array`` from ``stream`` with no intermediate copy."""
    view = memoryview(array.reshape(-1).view("u1"))
    got = 0
    while got < len(view):
        n = stream.readinto(view[got:got + CHUNK])
        if not n:
            raise error(f"{source}: truncated {what}: {got} of {len(view)} bytes")
        got += n


def check_at_end(stream, source: str, error=ValueError) -> None:
    """Refuse bytes after the end the header described."""
    if stream.read(1):
        raise error(f"{source}: unexpected bytes after the end of the data")


@contextlib.contextmanager
def decode_errors(source: str, error=ValueError, what: str = "corrupt or unsupported data"):
    """Turn the exceptions of the zip, zlib and gzip readers into ``error`` naming ``source``.

    ``RuntimeError`` (encrypted zip member), ``NotImplementedError`` (unknown compression
    method), ``zlib.error`` (corrupt deflate stream), ``EOFError`` (truncated stream) and
    ``OSError`` (bad CRC, bad gzip header) all become one kind of error.
    """
    import zipfile
    import zlib

    try:
        yield
    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError,
            OSError, OverflowError) as e:
        if isinstance(e, error) or (isinstance(e, OSError) and e.errno not in (None, EINVAL)):
            raise  # already ours, or a real OS error (missing file, permission, disk)
        raise error(f"{source}: {what} ({type(e).__name__}: {e})") from None


def open_zip(path, source: str, max_members: int):
    """Open a zip archive for bounded reading; refuses more than ``max_members`` entries.

    Raises:
        ValueError: not a zip archive, or too many entries.
    """
    import zipfile

    try:
        with decode_errors(source):
            zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise ValueError(f"{source}: not a valid zip archive (truncated or corrupted?)") \
            from None
    except ValueError as e:
        raise ValueError(f"{source}: not a valid zip archive ({e})") from None
    if len(zf.infolist()) > max_members:
        zf.close()
        raise ValueError(f"{source}: Expected at most {max_members} members in the archive. "
                         f"Received: {len(zf.infolist())}")
    return zf


def check_member(info, source: str, size: int | None = None, cap: int | None = None) -> None:
    """Check a zip member before inflating a byte of it.

    Refuses encryption, compression methods other than stored and deflate, a declared
    size other than ``size`` (when known) or above ``cap``, and a declared size that no
    deflate stream of the member's compressed size can produce.
    """
    import zipfile

    where = f"{source}!{info.filename}"
    if info.flag_bits & 0x1:
        raise ValueError(f"{where}: the member is encrypted; dojang reads only plain members")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise ValueError(f"{where}: Expected compression stored (0) or deflate (8). "
                         f"Received: compress_type={info.compress_type}")
    limit = info.compress_size if info.compress_type == zipfile.ZIP_STORED else \
        info.compress_size * MAX_DEFLATE_RATIO + 1024
    if info.file_size > limit:
        raise ValueError(f"{where}: declares {info.file_size} bytes, more than its "
                         f"{info.compress_size} compressed bytes can hold")
    if size is not None and info.file_size != size:
        raise ValueError(f"{where}: Expected {size} bytes, as its header describes. "
                         f"Received: a member of {info.file_size} bytes")
    if cap is not None and info.file_size > cap:
        raise ValueError(f"{where}: Expected at most {cap} bytes. Received: "
                         f"{info.file_size} bytes")


def read_member(zf, info, source: str, cap: int) -> bytes:
    """Inflate one zip member of at most ``cap`` bytes (checked before inflating)."""
    check_member(info, source, cap=cap)
    where = f"{source}!{info.filename}"
    with decode_errors(where), zf.open(info) as stream:
        data = read_exact(stream, info.file_size, where, "member")
        check_at_end(stream, where)
    return data


def loads_json(blob: bytes, source: str, max_bytes: int = MAX_JSON_BYTES,
               max_depth: int = MAX_JSON_DEPTH, object_pairs_hook=None):
    """Parse untrusted JSON: size and nesting depth bounded, every failure a ValueError.

    Example:
        >>> loads_json(b'{"a": [1, 2]}', "x.json")
        {'a': [1, 2]}
    """
    import json

    if len(blob) > max_bytes:
        raise ValueError(f"{source}: Expected JSON of at most {max_bytes} bytes. Received: "
                         f"{len(blob)} bytes")
    try:
        value = json.loads(blob.decode("utf-8"), object_pairs_hook=object_pairs_hook)
    except RecursionError:
        raise ValueError(f"{source}: JSON nested deeper than {max_depth} levels") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"{source}: not valid JSON ({e})") from None
    # Later code walks the value recursively: bound its depth here, without recursion.
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            raise ValueError(f"{source}: JSON nested deeper than {max_depth} levels")
        children = item.values() if isinstance(item, dict) else \
            item if isinstance(item, list) else ()
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return value


# ---------------------------------------------------------------------- confined paths
def confined(folder, name, what: str) -> str:
    """``folder/name`` for a ``name`` read from an untrusted file, kept inside ``folder``.

    Only a plain file name is accepted: no absolute path, no separator, no ``..``, and
    the path must not be a symbolic link, so nothing outside ``folder`` is ever read,
    replaced or deleted through it.

    Raises:
        ValueError: naming ``what`` and the value received.

    Example:
        >>> confined("runs/a", "ckpt-001.dojang", "checkpoint")
        'runs/a/ckpt-001.dojang'
    """
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name \
            or "\\" in name or "\0" in name or os.sep in name or os.path.isabs(name):
        raise ValueError(f"{os.fspath(folder)}: Expected {what} to be a file name inside the "
                         f"folder. Received: {what}={name!r}")
    path = os.path.join(os.fspath(folder), name)
    if os.path.islink(path):
        raise ValueError(f"{os.fspath(folder)}: Expected {what} to be a regular file. "
                         f"Received: {what}={name!r}, a symbolic link")
    return path


def remove_orphans(folder) -> list[str]:
    """Delete the temporary files that killed ``atomic_write`` calls left in ``folder``.

    Only regular files named as ``atomic_write`` names them (``.<name>.<8 chars>.tmp``)
    are removed; symbolic links and everything else are left alone.

    Returns:
        The names removed.
    """
    removed = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if _TEMP_NAME.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed.append(entry.name)
    return sorted(removed)


_TEMP_NAME = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.tmp")


def check_writable(folder) -> None:
    """Create ``folder`` if needed and prove that a file can be written in it.

    Run before long work (loading data, building a model) so that a read-only or
    missing place fails at once instead of at the first save.

    Raises:
        OSError: the folder cannot be created or written to (the OS's own error).
    """
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".write-test.", suffix=".tmp")
    os.close(fd)
    os.unlink(tmp)
