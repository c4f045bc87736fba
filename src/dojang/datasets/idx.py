"""Reader for the IDX format of MNIST and Fashion-MNIST (raw or gzip-compressed).

Layout (all integers big-endian), from LeCun's MNIST page::

    bytes 0-1   0x00 0x00
    byte  2     dtype code: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
                0x0E float64
    byte  3     ndim (number of dimensions, >= 1)
    4 * ndim    the dimensions, one uint32 each
    rest        prod(dims) * itemsize bytes of data in C order

Every field is checked, and the file length must equal ``4 + 4*ndim + prod(dims)*itemsize``
exactly: a truncated or padded file is rejected, never half-used.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from dojang.datasets._download import DatasetCorruptError

# IDX dtype code -> big-endian NumPy dtype.
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"


def read_bytes(path: str | os.PathLike) -> bytes:
    """Return a file's bytes, decompressed if it is gzip (detected by content, not by name).

    Raises:
        DatasetCorruptError: the gzip stream is truncated or fails its CRC/length check.
    """
    data = Path(path).read_bytes()
    if data[:2] != _GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except (EOFError, OSError, zlib.error) as exc:
        # EOFError: stream ends early; BadGzipFile (an OSError): CRC or length mismatch.
        raise DatasetCorruptError(f"{path}: corrupt gzip data ({exc})") from exc


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode IDX bytes into an array with the file's dimensions and a native-endian dtype.

    Args:
        data: the uncompressed IDX file contents.
        name: file name used in error messages.

    Output shape: the dimensions stored in the header, ``(d_1, ..., d_ndim)``.

    Raises:
        DatasetCorruptError: wrong magic number, unknown dtype code, zero ndim, or a length
            that differs from ``4 + 4*ndim + prod(dims)*itemsize``.

    Example:
        >>> parse_idx(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]))
        array([7, 8, 9], dtype=uint8)
    """
    if len(data) < 4:
        raise DatasetCorruptError(f"{name}: not an IDX file: {len(data)} bytes, shorter than "
                                  "the 4-byte magic number")
    zero, code, ndim = data[0:2], data[2], data[3]
    if zero != b"\x00\x00" or code not in IDX_DTYPES:
        raise DatasetCorruptError(
            f"{name}: not an IDX file: magic number 0x{data[:4].hex()} should be 0x0000TTNN "
            f"with dtype code TT in {{{', '.join(f'0x{c:02x}' for c in IDX_DTYPES)}}}"
        )
    if ndim == 0:
        raise DatasetCorruptError(f"{name}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetCorruptError(f"{name}: truncated IDX header: {len(data)} bytes, the "
                                  f"{ndim} dimensions need {header}")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_DTYPES[code])
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise DatasetCorruptError(
            f"{name}: IDX file {what}: header says shape {dims} of {dtype.name} "
            f"({expected} bytes in all), the file has {len(data)} bytes"
        )
    # astype makes a writable, native-endian copy (np.frombuffer on bytes is read-only).
    return np.frombuffer(data, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (raw or ``.gz``) into a NumPy array.

    Args:
        path: file to read.

    Output shape: the dimensions stored in the file's header.

    Raises:
        DatasetCorruptError: see :func:`parse_idx` and :func:`read_bytes`.

    Example:
        >>> x = read_idx("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz")
        ... # doctest: +SKIP
        >>> x.shape, x.dtype  # doctest: +SKIP
        ((10000,), dtype('uint8'))
    """
    return parse_idx(read_bytes(path), name=str(path))
