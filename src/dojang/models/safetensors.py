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
``ValueError`` naming the source and the problem.
"""

from __future__ import annotations

import json
import math

import numpy as np

MAX_HEADER_BYTES = 100 * 2**20
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


def decode(data: bytes, source: str = "<bytes>") -> tuple[dict, dict]:
    """Parse and validate safetensors bytes; returns ``(tensors, metadata)``.

    Arrays are fresh, writable copies in native byte order.

    Raises:
        ValueError: "<source>: invalid safetensors data: <problem>" for any malformed input.
    """
    def bad(problem: str) -> ValueError:
        return ValueError(f"{source}: invalid safetensors data: {problem}")

    data = memoryview(data).cast("B")
    if len(data) < 8:
        raise bad(f"{len(data)} bytes is too short for the 8-byte header length")
    n = int.from_bytes(data[:8], "little")
    if n < 2 or n > MAX_HEADER_BYTES:
        raise bad(f"header length {n} outside [2, {MAX_HEADER_BYTES}]")
    if 8 + n > len(data):
        raise bad(f"header length {n} runs past the end of the data ({len(data)} bytes; "
                  f"truncated?)")
    raw = bytes(data[8:8 + n])
    if not raw.startswith(b"{"):
        raise bad("header is not a JSON object")
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as e:
        raise bad(f"header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise bad("header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise bad("__metadata__ must map strings to strings")
    buffer = data[8 + n:]
    spans, tensors = [], {}
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise bad(f"entry {name!r} must have exactly dtype, shape and data_offsets")
        code, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if code not in DTYPES:
            raise bad(f"tensor {name!r} has unsupported dtype {code!r}; allowed: "
                      f"{sorted(DTYPES)}")
        if not isinstance(shape, list) or not all(_is_nat(s) for s in shape):
            raise bad(f"tensor {name!r} has invalid shape {shape!r}")
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(
                _is_nat(o) for o in offsets) or offsets[0] > offsets[1]:
            raise bad(f"tensor {name!r} has invalid data_offsets {offsets!r}")
        begin, end = offsets
        if end > len(buffer):
            raise bad(f"tensor {name!r} data_offsets {offsets} run past the data buffer "
                      f"({len(buffer)} bytes; truncated?)")
        dtype = np.dtype(DTYPES[code])
        count = math.prod(shape)
        if count * dtype.itemsize != end - begin:
            raise bad(f"tensor {name!r} of shape {tuple(shape)} and dtype {code} needs "
                      f"{count * dtype.itemsize} bytes, but data_offsets span {end - begin}")
        spans.append((begin, end, name))
        tensors[name] = np.frombuffer(buffer, dtype=dtype, count=count, offset=begin) \
            .reshape(shape).astype(dtype.newbyteorder("="), copy=True)
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            raise bad(f"tensor {name!r} starts at byte {begin}, expected {position} "
                      f"(overlapping or gapped data)")
        position = end
    if position != len(buffer):
        raise bad(f"{len(buffer) - position} bytes after the last tensor")
    return tensors, metadata


def save_file(tensors: dict, path, metadata: dict | None = None) -> None:
    """Write ``tensors`` to ``path`` atomically (temporary file, then rename)."""
    from dojang.fileio import atomic_write

    atomic_write(path, encode(tensors, metadata))


def load_file(path) -> dict:
    """Read and validate a safetensors file; returns ``{name: array}``."""
    with open(path, "rb") as f:
        return decode(f.read(), str(path))[0]
