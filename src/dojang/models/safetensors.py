"""Our own reader and writer of the safetensors format (no pickle, no dependency).

Layout of a file::

    8 bytes      N, the header length, unsigned little-endian
    N bytes      JSON header: {"name": {"dtype": "F32", "shape": [..],
                               "data_offsets": [begin, end]}, ..., "__metadata__": {..}}
    rest         the tensors' raw little-endian bytes; offsets count from here

Reading is strict, because the bytes may come from anyone: header size bounded, JSON
object with no duplicate keys, dtypes from a whitelist, shapes of non-negative ints,
offsets inside the buffer, ``prod(shape) * itemsize == end - begin``, and the tensors
tiling the buffer exactly (no overlap, no gap, nothing after). Any violation raises
``ValueError`` naming the source and the problem. The header is checked in full, against
the data's length, before any tensor is allocated or read.
"""

from __future__ import annotations

import io
import json
import math
from typing import NamedTuple

import numpy as np

# Stricter than the reference's 100 MB: a header describes ~100 bytes per tensor, and one
# megabyte of JSON can become ~25 MB of Python objects, so this bounds memory too.
MAX_HEADER_BYTES = 2**20
MAX_DIMS = 32  # NumPy's limit on array dimensions (64 since NumPy 2; 32 accepted everywhere)
DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
          "I8": "i1", "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?"}
_CODES = {np.dtype(v).str.lstrip("<|"): k for k, v in DTYPES.items()}


def _code(dtype: np.dtype) -> str:
    key = np.dtype(dtype).newbyteorder("<").str.lstrip("<|") if dtype.itemsize > 1 \
        else np.dtype(dtype).str.lstrip("<|")
    if key not in _CODES:
        raise TypeError(f"safetensors: dtype {dtype} is not storable; supported: "
                        f"{sorted(DTYPES)}")
    return _CODES[key]


def encode(tensors: dict, metadata: dict | None = None) -> bytes:
    """Serialize ``{name: array}`` (and optional ``{str: str}`` metadata) to bytes.

    Example:
        >>> import numpy as np
        >>> blob = encode({"w": np.arange(3, dtype=np.float32)})
        >>> decode(blob)[0]["w"]
        array([0., 1., 2.], dtype=float32)
    """
    header: dict = {}
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise TypeError("safetensors: metadata must map str to str")
        header["__metadata__"] = dict(metadata)
    chunks, offset = [], 0
    for name, array in tensors.items():
        if not isinstance(name, str) or name == "__metadata__":
            raise ValueError(f"safetensors: invalid tensor name {name!r}")
        arr = np.asarray(array)
        code = _code(arr.dtype)
        raw = np.ascontiguousarray(arr, dtype=np.dtype(DTYPES[code])).tobytes()
        header[name] = {"dtype": code, "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # keep the data 8-byte aligned, as the reference writer
    return len(text).to_bytes(8, "little") + text + b"".join(chunks)


def _no_duplicates(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r} in header")
        out[k] = v
    return out


def _is_nat(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


class Entry(NamedTuple):
    """One tensor of a header: its dtype code, shape and byte span in the data buffer."""

    code: str
    shape: tuple
    begin: int
    end: int

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(DTYPES[self.code])


def _bad(source: str, problem: str) -> ValueError:
    return ValueError(f"{source}: invalid safetensors data: {problem}")


def read_header(stream, size: int, source: str = "<bytes>") -> tuple[dict, dict, int]:
    """Read and validate the header of safetensors data of ``size`` bytes from ``stream``.

    Only the 8-byte length and the header itself are read; the tensors' data is described
    (and checked to tile the rest of the ``size`` bytes exactly) but not read.

    Returns:
        ``(entries, metadata, header_end)``: ``{name: Entry}`` in the header's order, the
        ``__metadata__`` strings and the offset at which the data buffer starts.

    Raises:
        ValueError: "<source>: invalid safetensors data: <problem>" for any malformed input.
    """
    from dojang.fileio import loads_json, read_exact

    if size < 8:
        raise _bad(source, f"{size} bytes is too short for the 8-byte header length")
    n = int.from_bytes(read_exact(stream, 8, source, "header length"), "little")
    if n < 2 or n > MAX_HEADER_BYTES:
        raise _bad(source, f"header length {n} outside [2, {MAX_HEADER_BYTES}]")
    if 8 + n > size:
        raise _bad(source, f"header length {n} runs past the end of the data ({size} bytes; "
                           f"truncated?)")
    raw = read_exact(stream, n, source, "header")
    if not raw.startswith(b"{"):
        raise _bad(source, "header is not a JSON object")
    try:
        header = loads_json(raw, source, max_bytes=MAX_HEADER_BYTES, max_depth=4,
                            object_pairs_hook=_no_duplicates)
    except ValueError as e:
        raise _bad(source, f"header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise _bad(source, "header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise _bad(source, "__metadata__ must map strings to strings")
    length = size - 8 - n
    entries = {name: _entry(name, info, length, source) for name, info in header.items()}
    position = 0
    for begin, end, name in sorted((e.begin, e.end, k) for k, e in entries.items()):
        if begin != position:
            raise _bad(source, f"tensor {name!r} starts at byte {begin}, expected {position} "
                               f"(overlapping or gapped data)")
        position = end
    if position != length:
        raise _bad(source, f"{length - position} bytes after the last tensor")
    return entries, metadata, 8 + n


def _entry(name: str, info, length: int, source: str) -> Entry:
    if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
        raise _bad(source, f"entry {name!r} must have exactly dtype, shape and data_offsets")
    code, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if not isinstance(code, str) or code not in DTYPES:
        raise _bad(source, f"tensor {name!r} has unsupported dtype {code!r}; allowed: "
                           f"{sorted(DTYPES)}")
    if not isinstance(shape, list) or not all(_is_nat(s) for s in shape) \
            or len(shape) > MAX_DIMS:
        raise _bad(source, f"tensor {name!r} has invalid shape {shape!r} (at most {MAX_DIMS} "
                           f"non-negative ints)")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(
            _is_nat(o) for o in offsets) or offsets[0] > offsets[1]:
        raise _bad(source, f"tensor {name!r} has invalid data_offsets {offsets!r}")
    begin, end = offsets
    if end > length:
        raise _bad(source, f"tensor {name!r} data_offsets {offsets} run past the data buffer "
                           f"({length} bytes; truncated?)")
    itemsize = np.dtype(DTYPES[code]).itemsize
    if math.prod(shape) * itemsize != end - begin:
        raise _bad(source, f"tensor {name!r} of shape {tuple(shape)} and dtype {code} needs "
                           f"{math.prod(shape) * itemsize} bytes, but data_offsets span "
                           f"{end - begin}")
    return Entry(code, tuple(shape), begin, end)


def read_tensors(stream, entries: dict, source: str, targets: dict | None = None) -> dict:
    """Stream the data buffer (just after the header) into arrays, in offset order.

    Args:
        stream: positioned at the start of the data buffer.
        entries: ``read_header``'s entries.
        targets: optional ``{name: array}`` to fill in place (same shape, any float or
            matching dtype); the other tensors get fresh native-byte-order arrays.

    Returns:
        ``{name: array}`` for every entry, in the header's order.
    """
    from dojang.fileio import check_at_end, read_into

    out = {}
    for name, entry in sorted(entries.items(), key=lambda item: item[1].begin):
        target = (targets or {}).get(name)
        native = entry.dtype.newbyteorder("=")
        direct = target is not None and target.dtype == entry.dtype and \
            target.flags.c_contiguous
        array = target if direct else np.empty(entry.shape, entry.dtype)
        read_into(stream, array, source, f"tensor {name!r}")
        if target is not None and not direct:
            target[...] = array
            array = target
        elif array.dtype != native:
            array = array.astype(native)
        out[name] = array
    check_at_end(stream, source)
    return {name: out[name] for name in entries}


def decode(data: bytes, source: str = "<bytes>") -> tuple[dict, dict]:
    """Parse and validate safetensors bytes; returns ``(tensors, metadata)``.

    Arrays are fresh, writable copies in native byte order.

    Raises:
        ValueError: "<source>: invalid safetensors data: <problem>" for any malformed input.
    """
    stream = io.BytesIO(memoryview(data).cast("B"))
    entries, metadata, _ = read_header(stream, len(stream.getbuffer()), source)
    return read_tensors(stream, entries, source), metadata


def save_file(tensors: dict, path, metadata: dict | None = None) -> None:
    """Write ``tensors`` to ``path`` atomically (temporary file, then rename)."""
    from dojang.fileio import atomic_write

    atomic_write(path, encode(tensors, metadata))


def load_file(path) -> dict:
    """Read and validate a safetensors file; returns ``{name: array}``.

    The header is read and checked against the file's length before any tensor is
    allocated, and the tensors are read straight into their arrays.
    """
    import os

    with open(path, "rb") as f:
        entries, _, _ = read_header(f, os.fstat(f.fileno()).st_size, str(path))
        return read_tensors(f, entries, str(path))
