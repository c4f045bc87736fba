"""Machinery for hostile-file tests: crafted archives, compression bombs, and a child
process that loads each file and reports its error, peak memory and wall time.

A loader joins the tables by listing ``FileCase``s (see tests/test_hostile.py and
docs/security.md): each case writes one hostile file and names the Python statement
that loads it (``PATH`` is the file); ``run_cases`` runs them all in ONE child process,
resetting the peak-memory counter (``/proc/self/clear_refs``) before each, and returns
one ``Outcome`` per case.
"""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
import textwrap
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MEMORY_LIMIT_MB = 50
TIME_LIMIT_S = 2.0


@dataclass(frozen=True)
class FileCase:
    """One hostile file: how to make it, how to load it, what must be raised.

    Args:
        name: the case's id in the table.
        make: ``make(folder) -> path`` writes the file (or folder) under ``folder``.
        load: a Python statement run in the child with ``PATH`` bound to the path.
        error: the exception class expected (its name is looked up in the MRO).
        match: a regular expression the message must contain (``re.search``).
    """

    name: str
    make: Callable[[Path], Path]
    load: str
    error: type
    match: str


@dataclass(frozen=True)
class Outcome:
    error: list[str]  # the raised exception's class names (MRO), [] when nothing was raised
    message: str
    peak_mb: float
    seconds: float


_CHILD = textwrap.dedent("""
    import json, sys, time, traceback
    import dojang, dojang.models, dojang.datasets
    from dojang.datasets import cifar10, fashion_mnist, idx, _mnist_format, _sources
    from dojang.models import safetensors

    def status(key):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024

    exec(sys.argv[2])  # warm-up: imports and first calls do not count against a case
    results = {}
    for name, (path, code) in json.load(open(sys.argv[1])).items():
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # the peak (VmHWM) restarts from the current resident size
        base = status("VmRSS")
        start = time.perf_counter()
        try:
            exec(code, {"PATH": path, **globals()})
            error, message = [], ""
        except BaseException as e:
            error = [c.__name__ for c in type(e).__mro__]
            message = str(e) if not isinstance(e, (AssertionError, NameError)) else \\
                traceback.format_exc()
        seconds = time.perf_counter() - start
        results[name] = [error, message, status("VmHWM") - base, seconds]
    print(json.dumps(results))
""")


def check_outcome(case: FileCase, got: Outcome) -> None:
    """The case was refused with its error and message, within the memory and time limits."""
    assert case.error.__name__ in got.error, (got.error, got.message)
    assert got.error[0] not in ("MemoryError", "RecursionError", "RuntimeError")
    assert re.search(case.match, got.message), got.message
    assert got.peak_mb < MEMORY_LIMIT_MB, f"{got.peak_mb:.1f} MB above the baseline"
    assert got.seconds < TIME_LIMIT_S, f"{got.seconds:.2f} s"


def run_cases(cases: list[FileCase], folder: Path, warm_up: str = "") -> dict[str, Outcome]:
    """Make every case's file, then load them all in one child process."""
    table = {}
    for case in cases:
        where = folder / case.name.replace(" ", "_")
        where.mkdir(parents=True)
        table[case.name] = [str(case.make(where)), case.load]
    spec = folder / "cases.json"
    spec.write_text(json.dumps(table))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(spec), warm_up], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {name: Outcome(*row) for name, row in json.loads(proc.stdout).items()}


# ---------------------------------------------------------------------- crafted bytes
def zero_deflate(megabytes: int) -> bytes:
    """A raw deflate stream of ``megabytes`` MiB of zeros, ~1 KB per MiB, made instantly:
    a full flush resets the compressor, so every MiB compresses to the same bytes."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = c.compress(bytes(1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)
    return chunk * megabytes + c.flush()


def deflate(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


@dataclass
class Member:
    """One zip member written byte by byte: every field may lie."""

    name: str
    payload: bytes  # the stored bytes (already compressed for method 8)
    size: int  # the declared uncompressed size
    method: int = 8
    crc: int = 0
    flags: int = 0


def raw_zip(members: list[Member]) -> bytes:
    """A zip archive whose local and central headers say exactly what ``members`` say."""
    out, central = bytearray(), bytearray()
    for m in members:
        name = m.name.encode()
        offset = len(out)
        out += struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, m.flags, m.method, 0, 0, m.crc,
                           len(m.payload), m.size, len(name), 0) + name + m.payload
        central += struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, 20, m.flags, m.method, 0, 0,
                               m.crc, len(m.payload), m.size, len(name), 0, 0, 0, 0, 0,
                               offset) + name
    n = len(members)
    return bytes(out + central + struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, n, n,
                                             len(central), len(out), 0))


def member(name: str, data: bytes, method: int = 8, **lies) -> Member:
    """An honest member of ``data`` (deflated or stored); ``lies`` override any field."""
    payload = deflate(data) if method == 8 else data
    return Member(**{"name": name, "payload": payload, "size": len(data), "method": method,
                     "crc": zlib.crc32(data), **lies})


def safetensors_header(entries: dict) -> bytes:
    """The 8-byte length and JSON header of a safetensors blob (no data)."""
    text = json.dumps(entries).encode()
    return len(text).to_bytes(8, "little") + text
