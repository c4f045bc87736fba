"""Data-parallel training over MPI (mpi4py): ``MPIStrategy``.

Every process (rank) holds the whole model and the whole data set; ``fit`` gives each rank
a disjoint part of every global batch (``Strategy.shard``), and between backward and the
optimizer step the gradients are summed over ranks, each rank's weighted by its number of
examples, so N ranks at batch B take the steps one process takes at batch N*B.

Gradients travel in fused buckets (Horovod's tensor fusion): parameters are packed, in
order, into flat buffers of about ``bucket_bytes``, and one non-blocking allreduce per
bucket is started as soon as the bucket is packed. They are not started during backward:
MPICH moves a non-blocking collective forward only inside MPI calls, so on a process with
no spare core (2 ranks on 2 cores, one thread each) there is nothing to overlap with.

Every collective is non-blocking and waited on with a deadline (``timeout`` seconds,
default ``DOJANG_MPI_TIMEOUT`` or 30): a rank that died or hangs makes the others raise
``CollectiveTimeout`` instead of waiting forever, also when the launcher does not clean up
(``mpiexec -disable-auto-cleanup``). Objects are broadcast as bytes, NumPy buffers or JSON,
never pickled.

Example (``mpiexec -n 2 python train.py``)::

    strategy = dj.distribute.MPIStrategy()
    model.fit(x, y, batch_size=32, strategy=strategy)   # 32 per rank, 64 per step
    if strategy.is_chief:
        print(model.evaluate(x_test, y_test, strategy=strategy))
"""

from __future__ import annotations

import json
import time

import numpy as np

from dojang.distribute.base import Strategy, register_process_strategy
from dojang.settings import MPI_TIMEOUT_TEXT

__all__ = ["CollectiveTimeout", "MPIStrategy"]

_KIND_BYTES, _KIND_ARRAY, _KIND_JSON = 0, 1, 2


class CollectiveTimeout(RuntimeError):
    """A collective did not complete in time: another rank died, hangs or diverged."""


def _import_mpi():
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError("MPIStrategy needs MPI for Python: pip install 'dojang[mpi]' "
                          f"(mpi4py and the mpich wheel). Reason: {e}") from None
    return MPI


class MPIStrategy(Strategy):
    """Data parallelism over the processes of an MPI launch (``mpiexec -n N``).

    Args:
        timeout: seconds a collective may wait before ``CollectiveTimeout`` (default:
            the environment variable ``DOJANG_MPI_TIMEOUT``, else 30).
        bucket_bytes: size of a fused gradient bucket (default 4 MiB).
        comm: an mpi4py communicator (default ``MPI.COMM_WORLD``).

    Attributes:
        rank, size, is_chief: this process's index, the number of processes, rank 0.

    Raises:
        ImportError: mpi4py is missing. ValueError: a bad ``timeout``/``bucket_bytes``.
    """

    def __init__(self, timeout: float | None = None, bucket_bytes: int = 4 << 20, comm=None):
        if timeout is None:
            text = MPI_TIMEOUT_TEXT
            try:
                timeout = float(text)
            except ValueError:
                raise ValueError(f"MPIStrategy: Expected DOJANG_MPI_TIMEOUT to be a number of "
                                 f"seconds. Received: {text!r}") from None
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or \
                not timeout > 0:
            raise ValueError(f"MPIStrategy: Expected timeout to be a positive number of "
                             f"seconds. Received: timeout={timeout!r}")
        if isinstance(bucket_bytes, bool) or not isinstance(bucket_bytes, int) or \
                bucket_bytes < 1024:
            raise ValueError(f"MPIStrategy: Expected bucket_bytes to be an int >= 1024. "
                             f"Received: bucket_bytes={bucket_bytes!r}")
        self._mpi = _import_mpi()
        self.comm = self._mpi.COMM_WORLD if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.timeout, self.bucket_bytes = float(timeout), bucket_bytes
        self.allreduce_seconds = 0.0  # time spent in gradient reduction, for measurements
        register_process_strategy(self)

    def __repr__(self) -> str:
        return f"MPIStrategy(rank={self.rank}, size={self.size}, timeout={self.timeout:g})"

    # ------------------------------------------------------------- collectives
    def _wait(self, request, what: str) -> None:
        """Poll ``request`` until done; raise ``CollectiveTimeout`` after the deadline."""
        deadline = time.monotonic() + self.timeout
        pause = 0.0
        while not request.Test():
            if time.monotonic() > deadline:
                raise CollectiveTimeout(
                    f"MPIStrategy: rank {self.rank} of {self.size} waited {self.timeout:g} s "
                    f"for {what}; another rank has died, hangs or runs different code. "
                    "Set DOJANG_MPI_TIMEOUT (seconds) or MPIStrategy(timeout=...) to wait "
                    "longer.")
            time.sleep(pause)  # sleep(0) yields; then back off up to 1 ms
            pause = min(1e-3, pause * 2 or 1e-6)

    def _sum(self, buffer: np.ndarray, what: str) -> np.ndarray:
        self._wait(self.comm.Iallreduce(self._mpi.IN_PLACE, buffer, op=self._mpi.SUM), what)
        return buffer

    def _bcast(self, buffer: np.ndarray, what: str) -> np.ndarray:
        self._wait(self.comm.Ibcast(buffer, root=0), what)
        return buffer

    def _allgather(self, value: np.ndarray, what: str) -> np.ndarray:
        out = np.empty((self.size, *value.shape), value.dtype)
        self._wait(self.comm.Iallgather(value, out), what)
        return out

    def barrier(self) -> None:
        self._wait(self.comm.Ibarrier(), "a barrier")

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every rank: bytes, a NumPy array, or JSON data."""
        head = np.zeros(3, np.int64)
        if self.rank == 0:
            if isinstance(obj, (bytes, bytearray)):
                kind, meta, payload = _KIND_BYTES, b"", np.frombuffer(bytes(obj), np.uint8)
            elif isinstance(obj, np.ndarray):
                arr = np.ascontiguousarray(obj)
                kind = _KIND_ARRAY
                meta = json.dumps({"dtype": arr.dtype.str, "shape": arr.shape}).encode()
                payload = arr.reshape(-1).view(np.uint8)
            else:
                kind, meta = _KIND_JSON, b""
                payload = np.frombuffer(json.dumps(obj).encode(), np.uint8)
            head[:] = kind, len(meta), payload.size
        kind, n_meta, n_payload = (int(v) for v in self._bcast(head, "a broadcast"))
        meta_buf = np.frombuffer(meta, np.uint8).copy() if self.rank == 0 else \
            np.empty(n_meta, np.uint8)
        data = payload.copy() if self.rank == 0 else np.empty(n_payload, np.uint8)
        if n_meta:
            self._bcast(meta_buf, "a broadcast")
        self._bcast(data, "a broadcast")
        if kind == _KIND_BYTES:
            return data.tobytes()
        if kind == _KIND_ARRAY:
            info = json.loads(meta_buf.tobytes())
            return data.view(np.dtype(info["dtype"])).reshape(info["shape"])
        return json.loads(data.tobytes())

    def gather(self, array: np.ndarray) -> np.ndarray:
        """Every rank's ``array`` concatenated along axis 0 in rank order (empty ones too)."""
        array = np.ascontiguousarray(array)
        sizes = self._allgather(np.array([array.size], np.int64), "a gather")[:, 0]
        full = [r for r in range(self.size) if sizes[r]]
        if not full:
            return array
        # Rank ``full[0]``'s row shape and dtype describe everyone's (empty shards send ()).
        info = self.broadcast_from(full[0], {"dtype": array.dtype.str,
                                             "shape": list(array.shape[1:])})
        row_shape, dtype = tuple(info["shape"]), np.dtype(info["dtype"])
        out = np.empty(int(sizes.sum()), dtype)
        send = array.reshape(-1).astype(dtype, copy=False)
        self._wait(self.comm.Iallgatherv(send, [out, sizes.tolist()]), "a gather")
        return out.reshape(-1, *row_shape)

    def broadcast_from(self, root: int, obj: dict) -> dict:
        """JSON data of rank ``root`` on every rank."""
        data = np.frombuffer(json.dumps(obj).encode(), np.uint8)
        sizes = self._allgather(np.array([data.size], np.int64), "a broadcast")[:, 0]
        buf = data.copy() if self.rank == root else np.empty(int(sizes[root]), np.uint8)
        self._wait(self.comm.Ibcast(buf, root=root), "a broadcast")
        return json.loads(buf.tobytes())

    # ------------------------------------------------------------- training hooks
    def reduce_logs(self, sums: dict, count: int) -> dict:
        names = list(sums)
        parts = [np.atleast_1d(np.asarray(sums[k], np.float64)).ravel() for k in names]
        flat = np.concatenate([*parts, [float(count)]])
        self._sum(flat, "the metrics of a step")
        out, start = {}, 0
        for name, part in zip(names, parts):
            value = flat[start:start + part.size]
            out[name] = value if np.ndim(sums[name]) else float(value[0])
            start += part.size
        out["count"] = int(round(flat[-1]))
        return out

    def reduce_gradients(self, params, local_count: int, total_count: int | None = None) -> None:
        """Replace each ``p.grad`` by the count-weighted mean over ranks, in place.

        Each rank sends ``local_count * grad`` (zeros for a missing gradient) in fused
        buckets; the first bucket also carries ``local_count`` and, per parameter, whether
        this rank has a gradient for it, so neither needs a message of its own. The sum
        divided by the total count is the gradient of the mean loss over every example of
        the step; a parameter no rank has a gradient for keeps none (the optimizer skips
        it, as with one process).
        """
        from dojang.autograd import Tensor

        start_time = time.perf_counter()
        params = list(params)
        buckets = self._pack(params, float(local_count))
        for bucket in buckets:
            self._wait(bucket["request"], "the gradients of a step")
        meta = buckets[0]["buf"][-(len(params) + 1):]
        total = float(meta[0]) if total_count is None else float(total_count)
        if total <= 0:
            raise ValueError(f"MPIStrategy: Expected a step with examples. Received: "
                             f"total_count={total}")
        has_grad = meta[1:] > 0
        index = 0
        for bucket in buckets:
            buf = bucket["buf"]
            buf *= buf.dtype.type(1.0 / total)
            for p, offset in bucket["members"]:  # views of the bucket: no copy back
                p.grad = (Tensor._from_op(buf[offset:offset + p.data.size].reshape(
                    p.data.shape), None) if has_grad[index] else None)
                index += 1
        self.allreduce_seconds += time.perf_counter() - start_time

    def _pack(self, params: list, scale: float) -> list:
        """Fill and start one allreduce per bucket of same-dtype parameters, in order; the
        first bucket ends with ``[scale, has_grad(p) for p in params]``."""
        meta = [scale, *(float(p.grad is not None) for p in params)]
        buckets, current, size, dtype = [], [], 0, None

        def flush():
            extra = len(meta) if not buckets else 0
            buf = np.empty(size + extra, dtype)
            for p, offset in current:
                view = buf[offset:offset + p.data.size]
                if p.grad is None:
                    view[...] = 0
                else:
                    np.multiply(p.grad.data.reshape(-1), dtype.type(scale), out=view)
            if extra:
                buf[size:] = meta
            request = self.comm.Iallreduce(self._mpi.IN_PLACE, buf, op=self._mpi.SUM)
            buckets.append({"buf": buf, "members": list(current), "request": request})

        limit = self.bucket_bytes
        for p in params:
            if not isinstance(p.data, np.ndarray):
                raise TypeError(f"MPIStrategy: Expected the model's parameters on the CPU "
                                f"(NumPy arrays). Received: a parameter of type "
                                f"{type(p.data).__name__}; call model.to('cpu')")
            pdtype = p.data.dtype
            if current and (pdtype != dtype or (size + p.data.size) * pdtype.itemsize > limit):
                flush()
                current, size = [], 0
            dtype = pdtype
            current.append((p, size))
            size += p.data.size
        if current or not buckets:  # with no parameters the count still has to travel
            dtype = dtype or np.dtype(np.float64)
            flush()
        return buckets

    def check_same(self, what: str, value: str) -> None:
        """Raise ValueError on every rank unless all ranks pass the same ``value``."""
        digest = np.frombuffer(_digest(value), np.uint8)
        everyone = self._allgather(digest, f"a check of {what}")
        differ = [r for r in range(self.size) if not np.array_equal(everyone[r], everyone[0])]
        if differ:
            raise ValueError(f"MPIStrategy: Expected every rank to have the same {what}. "
                             f"Received: ranks {differ} differ from rank 0")


def _digest(text: str) -> bytes:
    import hashlib

    return hashlib.sha256(text.encode()).digest()
