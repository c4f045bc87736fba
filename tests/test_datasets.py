"""Dataset loaders: IDX reader, CIFAR-10 binary reader, search order and verified downloads.

Everything runs offline on small files written here; downloads go to an HTTP server on
127.0.0.1. The IDX and CIFAR writers below are independent of dojang's readers.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import os
import struct
import sys
import tarfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from dojang.datasets import (
    DatasetCorruptError,
    DatasetNotFoundError,
    DownloadError,
    cifar10,
    fashion_mnist,
    idx,
    mnist,
)
from dojang.datasets._download import download_file
from dojang.datasets._sources import RemoteFile

IDX_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D,
             np.float64: 0x0E}
IDX_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def idx_bytes(array: np.ndarray) -> bytes:
    """Serialize an array as IDX: 0x0000, dtype code, ndim, big-endian dims, big-endian data."""
    code = IDX_CODES[array.dtype.type]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Isolate every place a loader looks; no mirror is reachable unless a test sets one."""
    monkeypatch.delenv("DOJANG_DATA", raising=False)
    monkeypatch.setenv("DOJANG_SYSTEM_DATA", str(tmp_path / "system"))
    monkeypatch.setenv("DOJANG_CACHE", str(tmp_path / "cache"))
    for module in (fashion_mnist, mnist, cifar10):
        monkeypatch.setattr(module, "MIRRORS", ("http://127.0.0.1:1/",))  # connection refused
    return tmp_path


class Server:
    """Serve a directory over HTTP on loopback in a thread, recording the requested paths."""

    def __init__(self, root: Path):
        self.requests: list[str] = []
        server = self

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append(self.path)
                super().do_GET()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0),
                                         functools.partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    s = Server(root)
    s.root = root
    yield s
    s.close()


def fake_mnist(seed: int = 0, n_train: int = 5, n_test: int = 3):
    """Random MNIST-format arrays and their gzipped IDX files (as bytes)."""
    rng = np.random.default_rng(seed)
    arrays = (rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              rng.integers(0, 10, n_train, dtype=np.uint8),
              rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              rng.integers(0, 10, n_test, dtype=np.uint8))
    raw = [idx_bytes(a) for a in arrays]
    gz = [gzip.compress(r, mtime=0) for r in raw]
    files = tuple(RemoteFile(name, sha(g), len(g), sha(r))
                  for name, g, r in zip(IDX_NAMES, gz, raw, strict=True))
    return arrays, dict(zip(IDX_NAMES, gz, strict=True)), files


def write_files(directory: Path, blobs: dict[str, bytes], skip: tuple[str, ...] = ()) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in blobs.items():
        if name not in skip:
            (directory / name).write_bytes(data)
    return directory


def assert_same(loaded, arrays):
    (xa, ya), (xb, yb) = loaded
    for got, want in zip((xa, ya, xb, yb), arrays, strict=True):
        assert got.dtype == np.uint8 and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


# ---------------------------------------------------------------- IDX reader


@pytest.mark.parametrize("dtype", list(IDX_CODES))
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4)])
@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip(tmp_path, dtype, shape, compress):
    rng = np.random.default_rng(1)
    array = (rng.standard_normal(shape) * 50).astype(dtype)
    data = idx_bytes(array)
    path = tmp_path / "a.idx"
    path.write_bytes(gzip.compress(data) if compress else data)
    out = idx.read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative and out.shape == shape
    np.testing.assert_array_equal(out, array)
    out[...] = 0  # a writable copy, not a view of the file's bytes


def test_idx_known_bytes():
    # int16 (0x0B), 1-D of 2 elements: 0x0102 = 258, 0xFFFE = -2.
    out = idx.parse_idx(bytes([0, 0, 0x0B, 1, 0, 0, 0, 2, 1, 2, 0xFF, 0xFE]))
    assert out.tolist() == [258, -2]


@pytest.mark.parametrize("mutate, match", [
    (lambda d: d[:-1], r"IDX file truncated: header says shape \(3, 4\) of uint8 \(24 bytes"),
    (lambda d: d + b"\x00", r"IDX file has trailing bytes"),
    (lambda d: b"\x01" + d[1:], r"not an IDX file: magic number 0x01000802"),
    (lambda d: d[:2] + b"\x07" + d[3:], r"magic number 0x00000702 should be 0x0000TTNN"),
    (lambda d: d[:3] + b"\x00" + d[4:], r"declares 0 dimensions"),
    (lambda d: d[:3] + b"\x03" + d[4:], r"IDX file truncated: header says shape \(3, 4, 66051\)"),
    (lambda d: d[:8] + struct.pack(">I", 5) + d[12:], r"header says shape \(3, 5\)"),
    (lambda d: d[:6], r"truncated IDX header: 6 bytes, the 2 dimensions need 12"),
    (lambda d: d[:3], r"shorter than the 4-byte magic number"),
])
def test_idx_rejects_malformed(tmp_path, mutate, match):
    data = mutate(idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4)))
    path = tmp_path / "bad.idx"
    path.write_bytes(data)
    with pytest.raises(DatasetCorruptError, match=match):
        idx.read_idx(path)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_idx_corrupt_gzip(tmp_path, damage):
    gz = bytearray(gzip.compress(idx_bytes(np.arange(600, dtype=np.int32))))
    if damage == "truncate":
        gz = gz[:-10]
    else:
        gz[-5] ^= 0xFF  # inside the stored length: the gzip trailer check fails
    path = tmp_path / "x.gz"
    path.write_bytes(bytes(gz))
    with pytest.raises(DatasetCorruptError, match=r"x\.gz: corrupt gzip data"):
        idx.read_idx(path)


# ---------------------------------------------------------------- MNIST-format loaders


@pytest.mark.parametrize("module", [fashion_mnist, mnist])
def test_loader_reads_gz_and_raw(env, monkeypatch, module):
    arrays, blobs, files = fake_mnist()
    monkeypatch.setattr(module, "FILES", files)
    assert_same(module.load_data(path=write_files(env / "gz", blobs)), arrays)
    raw = {name[:-3]: gzip.decompress(data) for name, data in blobs.items()}
    assert_same(module.load_data(path=write_files(env / "raw", raw)), arrays)
    assert len(module.class_names) == 10


def test_class_names():
    assert fashion_mnist.class_names[0] == "T-shirt/top"
    assert fashion_mnist.class_names[9] == "Ankle boot"
    assert cifar10.class_names[:3] == ("airplane", "automobile", "bird")
    assert mnist.class_names[7] == "7"


def test_loader_rejects_wrong_content(env, monkeypatch):
    arrays, blobs, files = fake_mnist(seed=0)
    monkeypatch.setattr(fashion_mnist, "FILES", files)
    _, other, _ = fake_mnist(seed=1)
    blobs["t10k-labels-idx1-ubyte.gz"] = other["t10k-labels-idx1-ubyte.gz"]
    d = write_files(env / "d", blobs)
    with pytest.raises(DatasetCorruptError, match=r"is not the published Fashion-MNIST file "
                       r"t10k-labels-idx1-ubyte\.gz: the SHA-256 of its uncompressed contents "
                       r".*sudo apt-get install --reinstall dataset-fashion-mnist"):
        fashion_mnist.load_data(path=d)


def test_loader_rejects_truncated_gz(env, monkeypatch):
    _, blobs, files = fake_mnist()
    monkeypatch.setattr(fashion_mnist, "FILES", files)
    blobs["train-images-idx3-ubyte.gz"] = blobs["train-images-idx3-ubyte.gz"][:-100]
    with pytest.raises(DatasetCorruptError, match="corrupt gzip data"):
        fashion_mnist.load_data(path=write_files(env / "d", blobs))


@pytest.mark.parametrize("which, array, match", [
    (0, np.zeros((5, 27, 28), np.uint8), r"holds uint8 images of shape \(5, 27, 28\)"),
    (1, np.zeros(4, np.uint8), r"labels of shape \(4,\), expected uint8 \(5,\)"),
    (1, np.full(5, 10, np.uint8), r"has label 10, expected labels in \[0, 9\]"),
    (3, np.zeros(3, np.int32), r"holds int32 labels"),
])
def test_loader_checks_structure(env, monkeypatch, which, array, match):
    # Checksums are set to match, so only the structure checks stand between the file and use.
    _, blobs, files = fake_mnist()
    name = IDX_NAMES[which]
    raw = idx_bytes(array)
    blobs[name] = raw
    files = tuple(RemoteFile(f.name, f.sha256, f.size, sha(raw)) if f.name == name else f
                  for f in files)
    monkeypatch.setattr(mnist, "FILES", files)
    with pytest.raises(DatasetCorruptError, match=match):
        mnist.load_data(path=write_files(env / "d", blobs))


def test_path_argument_checked(env):
    with pytest.raises(TypeError, match=r"mnist\.load_data: Expected path to be None or a "
                       r"directory \(str or os\.PathLike\)\. Received: path=3"):
        mnist.load_data(path=3)
    f = env / "file.txt"
    f.write_text("x")
    with pytest.raises(ValueError, match="Expected path to be a directory holding the dataset "
                       "files.*which is a file"):
        mnist.load_data(path=f)


# ---------------------------------------------------------------- search order

PLACES = ("path", "env", "system", "cache", "download")


@pytest.mark.parametrize("winner", range(len(PLACES)))
def test_search_order(env, server, monkeypatch, winner):
    """Places before the winner hold incomplete sets (skipped), places after it hold corrupt
    sets (an error if consulted) and the mirror serves corrupt files (an error if used)."""
    arrays, good, files = fake_mnist(seed=0)
    _, bad, _ = fake_mnist(seed=1)
    monkeypatch.setattr(fashion_mnist, "FILES", files)
    monkeypatch.setattr(fashion_mnist, "MIRRORS", (server.url,))
    dirs = {"path": env / "p", "env": env / "e" / "fashion-mnist",
            "system": env / "system" / "fashion-mnist", "cache": env / "cache" / "fashion-mnist"}
    monkeypatch.setenv("DOJANG_DATA", str(env / "e"))
    for i, place in enumerate(PLACES):
        if i < winner:
            if place in dirs:
                write_files(dirs[place], good, skip=(IDX_NAMES[i % 4],))
        elif i == winner:
            write_files(dirs[place] if place in dirs else server.root, good)
        elif place in dirs:
            write_files(dirs[place], bad)
        else:
            write_files(server.root, bad)
    assert_same(fashion_mnist.load_data(path=dirs["path"]), arrays)
    # Up to the cache nothing is fetched; for the download, the cache held 3 of the 4 files
    # and only the missing one is fetched.
    assert server.requests == ([] if winner < 4 else ["/" + IDX_NAMES[3]])


def test_all_places_fail_lists_everything(env):
    with pytest.raises(DatasetNotFoundError) as info:
        fashion_mnist.load_data(path=env / "nowhere")
    msg = str(info.value)
    cache = env / "cache" / "fashion-mnist"
    expected_lines = [
        "fashion_mnist.load_data: could not find or download Fashion-MNIST. Places tried, in "
        "order:",
        f"  1. path argument {env / 'nowhere'}: no such directory",
        "  2. $DOJANG_DATA: not set",
        f"  3. system directory {env / 'system' / 'fashion-mnist'}: no such directory",
        f"  4. user cache {cache}: no such directory",
        "  5. download http://127.0.0.1:1/train-images-idx3-ubyte.gz: URLError:",
        "Any one of these fixes it:",
        "  sudo apt-get install dataset-fashion-mnist",
        f"  mkdir -p {cache} && cd {cache} && curl -fL -O http://127.0.0.1:1/train-images-idx3-"
        "ubyte.gz -O http://127.0.0.1:1/train-labels-idx1-ubyte.gz",
        "  export DOJANG_DATA=/path/to/datasets   (holding fashion-mnist/{train-images-idx3-"
        "ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-"
        "ubyte.gz})",
        "  fashion_mnist.load_data(path='/dir/with/the/files')",
    ]
    for line in expected_lines:
        assert line in msg, f"missing {line!r} in:\n{msg}"
    assert not cache.exists() or not any(cache.iterdir())


def test_incomplete_places_say_what_is_missing(env, monkeypatch):
    _, blobs, files = fake_mnist()
    monkeypatch.setattr(mnist, "FILES", files)
    write_files(env / "system" / "mnist", blobs, skip=IDX_NAMES[1:3])
    with pytest.raises(DatasetNotFoundError, match=r"2\. system directory .*: missing "
                       r"train-labels-idx1-ubyte\.gz or train-labels-idx1-ubyte, "
                       r"t10k-images-idx3-ubyte\.gz or t10k-images-idx3-ubyte\n") as info:
        mnist.load_data()
    assert "apt-get" not in str(info.value)  # Debian has no MNIST package


# ---------------------------------------------------------------- downloads


def test_download_fills_cache_with_progress(env, server, monkeypatch, capsys):
    arrays, blobs, files = fake_mnist()
    write_files(server.root, blobs)
    monkeypatch.setattr(mnist, "FILES", files)
    monkeypatch.setattr(mnist, "MIRRORS", ("http://127.0.0.1:1/", server.url))  # 1st is down
    assert_same(mnist.load_data(), arrays)
    cache = env / "cache" / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(IDX_NAMES)  # no .part left over
    err = capsys.readouterr().err
    assert "train-images-idx3-ubyte.gz" in err and "100%" in err
    server.requests.clear()
    assert_same(mnist.load_data(), arrays)  # second call: from the cache, no request
    assert server.requests == []


def test_download_plain_text_progress_without_tqdm(env, server, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # makes `import tqdm.auto` fail
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    data = os.urandom(3 << 20)
    (server.root / "blob.bin").write_bytes(data)
    out = download_file(server.url + "blob.bin", env / "dl" / "blob.bin", sha(data))
    assert out.read_bytes() == data
    err = capsys.readouterr().err
    assert f"blob.bin: [{'#' * 30}] 100% 3.1/3.1 MB" in err
    assert "blob.bin: [" in err.split("\r")[1] and err.endswith("\n")


def test_download_wrong_checksum_leaves_nothing(env, server, monkeypatch):
    arrays, blobs, files = fake_mnist()
    write_files(server.root, blobs)
    wrong = (RemoteFile(files[0].name, "0" * 64, files[0].size, files[0].content_sha256),)
    monkeypatch.setattr(fashion_mnist, "FILES", wrong + files[1:])
    monkeypatch.setattr(fashion_mnist, "MIRRORS", (server.url,))
    with pytest.raises(DatasetNotFoundError, match=r"4\. download http://127\.0\.0\.1:\d+/"
                       r"train-images-idx3-ubyte\.gz: SHA-256 mismatch: expected 0{64}, got "
                       + files[0].sha256):
        fashion_mnist.load_data()
    cache = env / "cache" / "fashion-mnist"
    assert list(cache.iterdir()) == []


def test_download_wrong_size(env, server):
    (server.root / "f").write_bytes(b"abc")
    with pytest.raises(DownloadError, match="expected 4 bytes, received 3"):
        download_file(server.url + "f", env / "c" / "f", sha(b"abc"), size=4, progress=False)
    assert list((env / "c").iterdir()) == []


def test_download_cut_short_by_server(env):
    """The server promises 1000 bytes, sends 10 and closes: no file may be left."""

    class Liar(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"x" * 10)
            self.wfile.flush()
            self.close_connection = True

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Liar)
    threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/f"
        with pytest.raises(DownloadError, match="transfer cut short: received 10 of the 1000 "
                           "bytes announced"):
            download_file(url, env / "c" / "f", "0" * 64, progress=False)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert list((env / "c").iterdir()) == []


def test_download_timeout(env):
    """A server that accepts but never answers: the timeout ends the attempt."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/f"
        with pytest.raises(DownloadError, match="timed out"):
            download_file(url, env / "c" / "f", "0" * 64, timeout=0.3, progress=False)
    finally:
        listener.close()
    assert list((env / "c").iterdir()) == []


def test_download_http_error(env, server):
    with pytest.raises(DownloadError, match=r"/missing: HTTPError: HTTP Error 404"):
        download_file(server.url + "missing", env / "c" / "missing", "0" * 64, progress=False)


# ---------------------------------------------------------------- CIFAR-10 binary


def fake_cifar(records: int, seed: int = 0):
    """Images (N, 32, 32, 3) and labels for 6 batch files, and the files' bytes."""
    rng = np.random.default_rng(seed)
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    images = rng.integers(0, 256, (6, records, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, (6, records), dtype=np.uint8)
    blobs = {}
    for k, name in enumerate(names):
        out = io.BytesIO()
        for n in range(records):  # the documented layout, written record by record
            out.write(bytes([labels[k, n]]))
            for c in range(3):
                out.write(images[k, n, :, :, c].tobytes())
        blobs[name] = out.getvalue()
    return images, labels, blobs


def cifar_tarball(blobs: dict[str, bytes], extra: dict[str, bytes] | None = None) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in {**blobs, **(extra or {})}.items():
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.fixture
def cifar_env(env, monkeypatch):
    monkeypatch.setattr(cifar10, "RECORDS_PER_FILE", 3)
    images, labels, blobs = fake_cifar(3)
    archive = cifar_tarball(blobs, {"batches.meta.txt": b"airplane\n"})
    monkeypatch.setattr(cifar10, "FILES", (RemoteFile("cifar-10-binary.tar.gz", sha(archive),
                                                      len(archive)),))
    return env, images, labels, blobs, archive


def check_cifar(loaded, images, labels):
    (x_train, y_train), (x_test, y_test) = loaded
    assert x_train.shape == (15, 32, 32, 3) and y_train.shape == (15, 1)
    assert x_test.shape == (3, 32, 32, 3) and y_test.shape == (3, 1)
    assert {a.dtype for a in (x_train, y_train, x_test, y_test)} == {np.dtype(np.uint8)}
    np.testing.assert_array_equal(x_train, images[:5].reshape(15, 32, 32, 3))
    np.testing.assert_array_equal(y_train[:, 0], labels[:5].reshape(15))
    np.testing.assert_array_equal(x_test, images[5])
    np.testing.assert_array_equal(y_test[:, 0], labels[5])
    for a in (x_train, y_train, x_test, y_test):
        assert a.flags.c_contiguous and a.flags.writeable


def test_cifar_archive(cifar_env):
    env, images, labels, _, archive = cifar_env
    (env / "d").mkdir()
    (env / "d" / "cifar-10-binary.tar.gz").write_bytes(archive)
    check_cifar(cifar10.load_data(path=env / "d"), images, labels)


def test_cifar_extracted_folder(cifar_env):
    env, images, labels, blobs, _ = cifar_env
    write_files(env / "system" / "cifar10" / "cifar-10-batches-bin", blobs)
    check_cifar(cifar10.load_data(), images, labels)


def test_cifar_download(cifar_env, server, monkeypatch):
    env, images, labels, _, archive = cifar_env
    (server.root / "cifar-10-binary.tar.gz").write_bytes(archive)
    monkeypatch.setattr(cifar10, "MIRRORS", (server.url,))
    check_cifar(cifar10.load_data(), images, labels)
    assert (env / "cache" / "cifar10" / "cifar-10-binary.tar.gz").read_bytes() == archive


def test_cifar_archive_checksum(cifar_env):
    env, _, _, blobs, archive = cifar_env
    (env / "d").mkdir()
    (env / "d" / "cifar-10-binary.tar.gz").write_bytes(archive[:-1])
    with pytest.raises(DatasetCorruptError, match=r"cifar10\.load_data: .*cifar-10-binary\.tar"
                       r"\.gz is not the published cifar-10-binary\.tar\.gz: SHA-256"):
        cifar10.load_data(path=env / "d")


def test_cifar_archive_missing_member(cifar_env, monkeypatch):
    env, _, _, blobs, _ = cifar_env
    archive = cifar_tarball({k: v for k, v in blobs.items() if k != "test_batch.bin"})
    monkeypatch.setattr(cifar10, "FILES", (RemoteFile("cifar-10-binary.tar.gz", sha(archive),
                                                      len(archive)),))
    (env / "d").mkdir()
    (env / "d" / "cifar-10-binary.tar.gz").write_bytes(archive)
    with pytest.raises(DatasetCorruptError, match=r"lacks test_batch\.bin in "
                       r"cifar-10-batches-bin/"):
        cifar10.load_data(path=env / "d")


@pytest.mark.parametrize("edit, match", [
    (lambda b: b[:-1], r"test_batch\.bin has 9218 bytes, expected 3 records of 3073 bytes = "
                       r"9219 \(truncated or not CIFAR-10\)"),
    (lambda b: b + b[:3073], r"test_batch\.bin has 12292 bytes"),
    (lambda b: bytes([10]) + b[1:], r"test_batch\.bin has label 10, expected labels in \[0, 9\]"),
])
def test_cifar_bad_batch(cifar_env, edit, match):
    env, _, _, blobs, _ = cifar_env
    blobs = {**blobs, "test_batch.bin": edit(blobs["test_batch.bin"])}
    with pytest.raises(DatasetCorruptError, match=match):
        cifar10.load_data(path=write_files(env / "d", blobs))


def test_cifar_not_found_message(cifar_env):
    (cifar_env[0] / "system" / "cifar10").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError, match=r"(?s)missing cifar-10-binary\.tar\.gz or "
                       r"cifar-10-batches-bin/\{data_batch_1\.bin, .*test_batch\.bin\}.*"
                       r"download http://127\.0\.0\.1:1/cifar-10-binary\.tar\.gz"):
        cifar10.load_data()


# ---------------------------------------------------------------- the real data, if installed

REAL = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not (REAL / IDX_NAMES[0]).exists(),
                    reason="needs `sudo apt-get install dataset-fashion-mnist`")
def test_real_fashion_mnist(monkeypatch):
    monkeypatch.delenv("DOJANG_DATA", raising=False)
    monkeypatch.delenv("DOJANG_SYSTEM_DATA", raising=False)
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10
    assert y_train[0] == 9 and fashion_mnist.class_names[y_train[0]] == "Ankle boot"
