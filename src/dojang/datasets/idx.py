"""Reader for the IDX format of MNIST and Fashion-MNIST (raw or gzip-compressed).

Layout (all integers big-endian), from LeCun's MNIST page::

    bytes 0-1   0x00 0x00
    byte  2     dtype code: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
                0x0E float64
    byte  3     ndim (number of dimensions, >= 1)
    4 * ndim    the dimensions, one uint32 each
    rest        prod(dims) * itemsize bytes of data in C order

Every field is checked, and the file length must equal ``4 + 4*ndim + prod(dims)*itemsize``
exactly: a truncated or padded file is rejected, never half-used. The header is checked
against the file's length before the array is allocated, and a gzip file is inflated in a
stream straight into the array, never past what the header (or the caller) says.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import struct

import numpy as np

from dojang.datasets._download import DatasetCorruptError
from dojang.fileio import MAX_DEFLATE_RATIO, decode_errors, read_into

# IDX dtype code -> big-endian NumPy dtype.
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
MAX_DIMS = 32  # the most dimensions every NumPy version supports
_GZIP_MAGIC = b"\x1f\x8b"


def _read_upto(stream, n: int) -> bytes:
    """Up to ``n`` bytes (fewer only at the end of the stream)."""
    parts, got = [], 0
    while got < n:
        part = stream.read(min(1 << 20, n - got))
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def _parse_stream(stream, name: str, limit: int, size: int | None, digest) -> np.ndarray:
    """Parse IDX from ``stream``; ``limit`` is the most bytes the stream can hold.

    Everything the header says is checked (and the size compared with ``limit`` and
    ``size``) before the array is allocated; the data is then read straight into it.
    """
    head = _read_upto(stream, 4)
    if len(head) < 4:
        raise DatasetCorruptError(f"{name}: not an IDX file: {len(head)} bytes, shorter than "
                                  "the 4-byte magic number")
    zero, code, ndim = head[0:2], head[2], head[3]
    if zero != b"\x00\x00" or code not in IDX_DTYPES:
        raise DatasetCorruptError(
            f"{name}: not an IDX file: magic number 0x{head.hex()} should be 0x0000TTNN "
            f"with dtype code TT in {{{', '.join(f'0x{c:02x}' for c in IDX_DTYPES)}}}"
        )
    if ndim == 0:
        raise DatasetCorruptError(f"{name}: IDX header declares 0 dimensions")
    if ndim > MAX_DIMS:
        raise DatasetCorruptError(f"{name}: IDX header declares {ndim} dimensions; Expected "
                                  f"at most {MAX_DIMS}")
    header = 4 + 4 * ndim
    raw_dims = _read_upto(stream, 4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise DatasetCorruptError(f"{name}: truncated IDX header: {4 + len(raw_dims)} bytes, "
                                  f"the {ndim} dimensions need {header}")
    dims = struct.unpack(f">{ndim}I", raw_dims)
    dtype = np.dtype(IDX_DTYPES[code])
    expected = header + math.prod(dims) * dtype.itemsize  # Python ints: no overflow

    def wrong(what: str, count: str) -> DatasetCorruptError:
        return DatasetCorruptError(
            f"{name}: IDX file {what}: header says shape {dims} of {dtype.name} "
            f"({expected} bytes in all), the file has {count} bytes")

    if size is not None and expected != size:
        raise DatasetCorruptError(f"{name}: header says shape {dims} of {dtype.name} "
                                  f"({expected} bytes in all); Expected {size} bytes")
    if expected > limit:
        raise wrong("truncated", str(limit))
    array = np.empty(dims, dtype)
    read_into(stream, array, name, "IDX data", DatasetCorruptError)
    if stream.read(1):
        raise wrong("has trailing bytes", "more")
    if digest is not None:
        digest.update(head + raw_dims)
        digest.update(memoryview(array.reshape(-1).view(np.uint8)))
    # A native-endian, writable array (no copy for single-byte dtypes).
    return array.astype(dtype.newbyteorder("="), copy=False)


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode IDX bytes into an array with the file's dimensions and a native-endian dtype.

    Args:
        data: the uncompressed IDX file contents.
        name: file name used in error messages.

    Output shape: the dimensions stored in the header, ``(d_1, ..., d_ndim)``.

    Raises:
        DatasetCorruptError: wrong magic number, unknown dtype code, zero or more than 32
            dimensions, or a length that differs from ``4 + 4*ndim + prod(dims)*itemsize``.

    Example:
        >>> parse_idx(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]))
        array([7, 8, 9], dtype=uint8)
    """
    return _parse_stream(io.BytesIO(data), name, len(data), None, None)


def read_idx(path: str | os.PathLike, *, size: int | None = None, digest=None) -> np.ndarray:
    """Read an IDX file (raw or gzip, detected by content) into a NumPy array, in one pass.

    Memory: the array the header describes, once that size has been checked against the
    file (a raw file must be exactly that long; a gzip stream cannot hold more than
    1032 times its compressed length, and is never inflated past the header's size).

    Args:
        path: file to read.
        size: the uncompressed size the caller expects, checked before allocating.
        digest: a ``hashlib`` object fed every uncompressed byte (to verify a checksum).

    Output shape: the dimensions stored in the file's header.

    Raises:
        DatasetCorruptError: see :func:`parse_idx`; "corrupt gzip data" for a truncated
            or damaged gzip stream.

    Example:
        >>> x = read_idx("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz")
        ... # doctest: +SKIP
        >>> x.shape, x.dtype  # doctest: +SKIP
        ((10000,), dtype('uint8'))
    """
    name = str(path)
    with open(path, "rb") as raw:
        length = os.fstat(raw.fileno()).st_size
        if raw.read(2) != _GZIP_MAGIC:
            raw.seek(0)
            if size is None or size == length:
                return _parse_stream(raw, name, length, size, digest)
            raise DatasetCorruptError(f"{name}: Expected {size} bytes. Received: {length} "
                                      f"bytes")
        raw.seek(0)
        # EOFError: stream ends early; BadGzipFile (an OSError): CRC or length mismatch.
        with decode_errors(name, DatasetCorruptError, "corrupt gzip data"), \
                gzip.GzipFile(fileobj=raw, mode="rb") as stream:
            return _parse_stream(stream, name, length * MAX_DEFLATE_RATIO + 1024, size, digest)
