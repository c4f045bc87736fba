"""Reading ``.dojang`` files (and safetensors weights) in bounded memory and time.

The order of the checks is the point (docs/security.md describes it):

1. the zip directory: only ``config.json``, ``model.safetensors`` and
   ``optimizer.safetensors``, each plain (no encryption), stored or deflated, with a
   declared size that its compressed bytes can hold;
2. ``config.json``: at most ``MAX_CONFIG_BYTES``, inflated in a stream, parsed with its
   nesting depth bounded;
3. the safetensors header alone: its declared length, then every entry, checked to
   tile the member's declared size exactly (the member is never inflated past it);
4. the architecture is built inside ``weights_from``: each weight the config declares is
   matched by name and shape against a header entry BEFORE it is allocated, and nothing
   is randomly initialized;
5. the tensors' bytes are inflated straight into the weights, in one pass, and the
   member's CRC is checked at its end.

Peak memory is a small constant (the JSON objects, bounded by the 1 MiB caps) plus the
weights the header and the config agree on.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np

from dojang import fileio
from dojang.models import safetensors

FORMAT = "dojang.model"
FORMAT_VERSION = 1
MEMBERS = ("config.json", "model.safetensors", "optimizer.safetensors")
MAX_CONFIG_BYTES = fileio.MAX_JSON_BYTES
MAX_BUILD_ELEMENTS = 2**24  # zeros a subclassed model is called on to create its weights


def is_zip(path) -> bool:
    """True when the file starts with a zip local-file header."""
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


class ModelArchive:
    """An open ``.dojang`` file whose directory has been checked (step 1).

    Args:
        path: the file.

    Raises:
        ValueError: naming the file: not a zip archive, a pickle or any unexpected,
            duplicate or missing member, an encrypted or oddly compressed member.
    """

    def __init__(self, path):
        self.source = os.fspath(path)
        self.zf = fileio.open_zip(path, self.source, max_members=64)
        try:
            self.infos = self._check_directory()
        except BaseException:
            self.zf.close()
            raise

    def __enter__(self) -> ModelArchive:
        return self

    def __exit__(self, *exc) -> None:
        self.zf.close()

    def _check_directory(self) -> dict:
        source = self.source
        infos = self.zf.infolist()
        names = [i.filename for i in infos]
        for name in names:
            if name.endswith((".pkl", ".pickle")) or "pickle" in name.lower():
                raise ValueError(f"{source}: contains a pickle ({name!r}); dojang never "
                                 f"unpickles, refusing to load")
            if name not in MEMBERS:
                raise ValueError(f"{source}: unexpected member {name!r} in the archive; a "
                                 f"dojang model file holds only {list(MEMBERS)}")
        if len(set(names)) != len(names):
            raise ValueError(f"{source}: duplicate members in the archive")
        for required in MEMBERS[:2]:
            if required not in names:
                raise ValueError(f"{source}: missing {required!r} in the archive")
        for info in infos:
            fileio.check_member(info, source)
        return {i.filename: i for i in infos}

    def has(self, name: str) -> bool:
        return name in self.infos

    def config(self) -> dict:
        """``config.json``, checked for the format name and version (step 2)."""
        source = self.source
        blob = fileio.read_member(self.zf, self.infos["config.json"], source,
                                  cap=MAX_CONFIG_BYTES)
        try:
            config = fileio.loads_json(blob, f"{source}!config.json")
        except ValueError as e:
            raise ValueError(f"{source}: config.json is not valid JSON ({e})") from None
        if not isinstance(config, dict) or config.get("format") != FORMAT:
            raise ValueError(f"{source}: config.json is not a dojang model config (expected "
                             f"format {FORMAT!r})")
        version = config.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(f"{source}: unsupported format_version {version!r}; this dojang "
                             f"reads version {FORMAT_VERSION}")
        if not isinstance(config.get("model"), dict):
            raise ValueError(f"{source}: config.json has no 'model' entry")
        return config

    @contextlib.contextmanager
    def tensors(self, name: str):
        """Yield ``(stream, entries, source)`` for a safetensors member, header checked (step 3).

        The stream is positioned at the data; reading it past the header's size is refused.
        """
        info = self.infos[name]
        where = f"{self.source}!{name}"
        with fileio.decode_errors(where), self.zf.open(info) as stream:
            entries, _, _ = safetensors.read_header(stream, info.file_size, where)
            yield stream, entries, where


@contextlib.contextmanager
def weights_file(path):
    """Yield ``(stream, entries, source)`` for the weights of a ``.dojang`` or safetensors file."""
    source = os.fspath(path)
    if is_zip(path):
        with ModelArchive(path) as archive, archive.tensors("model.safetensors") as opened:
            yield opened
        return
    with open(path, "rb") as f:
        entries, _, _ = safetensors.read_header(f, os.fstat(f.fileno()).st_size, source)
        yield f, entries, source


class WeightSource:
    """Hands out the weights a model declares while it is built inside ``weights_from``.

    ``take`` matches each declared weight by name (``<layer>/<weight>``) and shape against
    the header BEFORE allocating it, so a config that declares ``Dense(10**12)`` is
    refused without asking NumPy for a byte (step 4).
    """

    def __init__(self, entries: dict, source: str):
        self.entries, self.source = entries, source
        self._by_name: dict[str, list[str]] = {}
        self._by_shape: dict[tuple, list[str]] = {}
        for key in sorted(entries, reverse=True):  # popped from the end: key order
            self._by_name.setdefault(key.partition("/")[2], []).append(key)
            self._by_shape.setdefault(entries[key].shape, []).append(key)
        self._used: set[str] = set()

    def take(self, layer, name: str, shape: tuple, dtype) -> np.ndarray:
        """Check a declared weight against the file, then allocate it (uninitialized).

        The stored tensor of the same name is used; failing that (a subclassed model's
        layers get fresh names), the first unused one of the same shape. Which stored
        tensor fills which weight is decided later, by position (``fill_weights``).
        """
        full = f"{layer.name}/{name}"
        shape = tuple(shape)
        key = self._pop(self._by_name.get(full)) or self._pop(self._by_shape.get(shape))
        if key is None:
            raise ValueError(f"{self.source}: layer '{layer.name}' declares weight '{full}' "
                             f"of shape {shape}, which the file does not hold")
        check_entry(key, self.entries[key], full, shape, self.source)
        self._used.add(key)
        return np.empty(shape, dtype)

    def _pop(self, keys: list | None) -> str | None:
        while keys:
            key = keys.pop()
            if key not in self._used:
                return key
        return None


def check_entry(key: str, entry, weight_name: str, shape: tuple, source: str) -> None:
    """A stored tensor must have the declared shape and a float dtype."""
    if entry.shape != tuple(shape):
        raise ValueError(f"{source}: weight {key!r} has shape {entry.shape}, model weight "
                         f"'{weight_name}' expects {tuple(shape)}")
    if entry.dtype.kind != "f":
        raise ValueError(f"{source}: weight {key!r} has dtype {entry.dtype}, expected a "
                         f"float dtype")


def fill_weights(model, stream, entries: dict, source: str) -> None:
    """Check stored keys against ``model.weights`` (by position and shape), then stream the
    data straight into the weights (step 5)."""
    from dojang import backend

    weights = model.weights
    keys = sorted(entries)
    if len(keys) != len(weights):
        raise ValueError(f"{source}: the file holds {len(keys)} weights, model "
                         f"'{model.name}' has {len(weights)}")
    targets = {}
    for i, (key, w) in enumerate(zip(keys, weights)):
        if not key.startswith(f"{i:04d}/"):
            raise ValueError(f"{source}: weight key {key!r} is not numbered {i:04d}")
        check_entry(key, entries[key], w.name, w.shape, source)
        if backend.get_array_module(w.data) is np and w.data.flags.c_contiguous:
            targets[key] = w.data
    arrays = safetensors.read_tensors(stream, entries, source, targets)
    for key, w in zip(keys, weights):
        if key not in targets:
            w.data[...] = backend.to_device(arrays[key].astype(w.dtype), w.device)


def read_optimizer_state(archive: ModelArchive, optimizer, params) -> dict:
    """The optimizer's saved state, its keys and shapes checked before any data is read."""
    with archive.tensors("optimizer.safetensors") as (stream, entries, where):
        expected = optimizer.state_shapes(params)
        for key, entry in entries.items():
            if key not in expected or entry.shape != expected[key]:
                want = expected.get(key)
                raise ValueError(f"{where}: optimizer state {key!r} has shape {entry.shape}; "
                                 f"Expected " + ("no such key" if want is None else
                                                 f"shape {want}"))
        return safetensors.read_tensors(stream, entries, where)


def check_build_shape(shape, source: str) -> None:
    """A subclassed model is built by a call on zeros of this shape: keep it small."""
    shapes = shape if shape and isinstance(shape[0], list) else [shape]
    total = 0
    for one in shapes:
        if not isinstance(one, list) or not all(
                s is None or (isinstance(s, int) and not isinstance(s, bool) and s >= 1)
                for s in one):
            raise ValueError(f"{source}: Expected build_input_shape to hold positive ints or "
                             f"null. Received: build_input_shape={shape!r}"[:300])
        total += int(np.prod([1 if s is None else s for s in one], dtype=object))
    if total > MAX_BUILD_ELEMENTS:
        raise ValueError(f"{source}: Expected build_input_shape of at most "
                         f"{MAX_BUILD_ELEMENTS} elements. Received: {total}")
