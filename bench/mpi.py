"""Data-parallel throughput of the seed CNN: N MPI ranks against one process.

Trains the seed 004 CNN (``zoo.fashion_cnn``) on synthetic 28x28 images with ``fit`` for
``--steps`` steps after a warm-up fit (compilation), and prints the examples per second,
the share of the step spent in the gradient reduction (``MPIStrategy.reduce_gradients``:
packing, the allreduce and waiting for the slower rank), and the time of one allreduce of
the model's gradients alone, with nothing else running.

Usage:
    OMP_NUM_THREADS=2 DOJANG_NUM_THREADS=2 python bench/mpi.py --batch 64
    OMP_NUM_THREADS=1 DOJANG_NUM_THREADS=1 mpiexec -n 2 python bench/mpi.py --batch 32
(``--batch`` is per rank: compare N ranks at B with one process at N*B.)
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import dojang as dj


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32, help="examples per step and rank")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    launched = "PMI_SIZE" in os.environ or "OMPI_COMM_WORLD_SIZE" in os.environ
    strategy = dj.distribute.MPIStrategy() if launched else dj.distribute.SingleProcess()
    size, global_batch = strategy.size, args.batch * strategy.size
    rng = np.random.default_rng(0)
    n = global_batch * max(args.steps, args.warmup)
    x = rng.random((n, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, n)
    dj.random.set_seed(0)
    model = dj.zoo.get("fashion_cnn", input_shape=(28, 28, 1), num_classes=10)
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    warm = global_batch * args.warmup
    model.fit(x[:warm], y[:warm], batch_size=args.batch, verbose=0, strategy=strategy)
    reduce_before = getattr(strategy, "allreduce_seconds", 0.0)
    strategy.barrier()
    start = time.perf_counter()
    model.fit(x[:global_batch * args.steps], y[:global_batch * args.steps],
              batch_size=args.batch, verbose=0, shuffle=False, strategy=strategy)
    elapsed = time.perf_counter() - start
    reduce = getattr(strategy, "allreduce_seconds", 0.0) - reduce_before
    line = (f"ranks {size} x {os.environ.get('OMP_NUM_THREADS', '?')} threads, batch "
            f"{args.batch}/rank ({global_batch}/step): "
            f"{global_batch * args.steps / elapsed:.0f} examples/s, "
            f"{1000 * elapsed / args.steps:.1f} ms/step")
    if size > 1:
        shares = strategy.gather(np.array([reduce / elapsed]))
        grads = [p.data for p in model.parameters()]
        nbytes = sum(g.nbytes for g in grads)
        buf = np.ones(sum(g.size for g in grads), np.float32)
        strategy.barrier()
        t = time.perf_counter()
        for _ in range(20):
            strategy._sum(buf, "the benchmark")
        alone = (time.perf_counter() - t) / 20
        line += (f"; gradient reduction {100 * shares.mean():.1f}% of the step (ranks: "
                 f"{', '.join(f'{100 * s:.1f}%' for s in shares)}); one allreduce of "
                 f"{nbytes / 1e6:.2f} MB alone: {1000 * alone:.2f} ms")
    if strategy.is_chief:
        print(line, flush=True)


if __name__ == "__main__":
    main()
