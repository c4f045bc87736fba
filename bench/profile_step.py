"""The seed 004 CNN training step from ``dojang.functional`` ops, timed against PyTorch.

Builds the step without the Keras layer code (conv+bias -> relu -> max-pool, twice, then
dense 3136->100, relu, dropout 0.4, dense 100->10, softmax, the Keras-style loss path
that takes the softmax's logits, backward, Adam), times it beside the same PyTorch model
in one process (alternating windows, 2 threads each, median) and, with ``--profile``,
prints a cProfile of dojang's step and a per-op table of forward and backward time.

Usage: python bench/profile_step.py [--batches 32,128] [--windows 7] [--repeats 1]
       [--profile] [--no-compare] [--tuned]
Environment: BENCH_THREADS (default 2), DOJANG_UNFUSED=1 (conv then relu, two ops),
DOJANG_JIT=0 (the NumPy kernels instead of the compiled ones).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (sets the thread count before NumPy loads)

if "--tuned" in sys.argv:  # must precede the NumPy import: OpenBLAS reads it at load
    os.environ["OPENBLAS_THREAD_TIMEOUT"] = "4"
    os.environ["DOJANG_NUM_THREADS"] = str(common.THREADS)

import numpy as np  # noqa: E402

import dojang as dj  # noqa: E402
from dojang import functional as F  # noqa: E402
from dojang.autograd import Function  # noqa: E402

SHAPE = (28, 28, 1)


def _glorot(rng, shape, fan_in, fan_out):
    lim = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-lim, lim, size=shape).astype(np.float32)


def dojang_model(seed: int = 0, fused: bool = True):
    """Parameters (HWIO filters, (in, out) dense kernels) and the forward function.

    ``fused``: conv+bias+relu as one op (``activation="relu"``), else conv then relu.
    """
    rng = np.random.default_rng(seed)
    shapes = [((3, 3, 1, 32), 9, 288), ((32,),), ((3, 3, 32, 64), 288, 576), ((64,),),
              ((3136, 100), 3136, 100), ((100,),), ((100, 10), 100, 10), ((10,),)]
    params = [dj.Tensor(_glorot(rng, s[0], s[1], s[2]) if len(s) == 3
                        else np.zeros(s[0], np.float32), requires_grad=True) for s in shapes]
    w1, b1, w2, b2, w3, b3, w4, b4 = params
    drop_rng = np.random.default_rng(seed + 1)

    def conv_relu(h, w, b):
        if fused:
            return F.conv2d(h, w, padding="SAME", bias=b, activation="relu")
        return F.relu(F.conv2d(h, w, padding="SAME", bias=b))

    def forward(x, training: bool):
        h = F.max_pool2d(conv_relu(x, w1, b1), 2)
        h = F.max_pool2d(conv_relu(h, w2, b2), 2)
        h = F.relu(dj.ops.linear(h.reshape(h.shape[0], -1), w3, b3))
        h = F.dropout(h, 0.4, drop_rng, training=training)
        return F.softmax(dj.ops.linear(h, w4, b4))

    return params, forward


FUSED = os.environ.get("DOJANG_UNFUSED") != "1"


def dojang_train_step(batch: int, seed: int = 0):
    params, forward = dojang_model(seed, FUSED)
    opt = dj.optimizers.Adam()
    x, y = common.make_data(batch, SHAPE)

    def step():
        for p in params:
            p.grad = None
        probs = forward(x, True)
        # Keras's loss path: a softmax output hands its logits to the fused loss
        loss = F.sparse_softmax_cross_entropy_with_logits(y, probs.creator.logits)
        loss.backward()
        opt.apply(params)
        return loss
    return step


def dojang_inference(batch: int, seed: int = 0):
    _, forward = dojang_model(seed, FUSED)
    x, _ = common.make_data(batch, SHAPE)

    def step():
        with dj.no_grad():
            return forward(x, False)
    return step


def torch_train_step(batch: int):
    import workloads as wl

    return wl.torch_train_step("fashion_cnn", batch, SHAPE, "adam")


def torch_inference(batch: int):
    import workloads as wl

    return wl.torch_inference("fashion_cnn", batch, SHAPE)


def compare(batches, windows: int, infer_batch: int, repeats: int) -> None:
    for _ in range(repeats):
        for b in batches:
            steps = max(2, 256 // b)
            sec = common.time_alternating({"dojang": dojang_train_step(b),
                                           "pytorch": torch_train_step(b)},
                                          steps=steps, windows=windows)
            _print(f"train batch {b}", b, sec)
        if infer_batch:
            sec = common.time_alternating({"dojang": dojang_inference(infer_batch),
                                           "pytorch": torch_inference(infer_batch)},
                                          steps=1, windows=windows)
            _print(f"inference batch {infer_batch}", infer_batch, sec)


def _print(label, batch, sec):
    d, t = batch / sec["dojang"], batch / sec["pytorch"]
    print(f"{label:24s} dojang {d:8.0f} img/s  pytorch {t:8.0f} img/s  ratio {d / t:5.2f}x",
          flush=True)


# ---------------------------------------------------------------------------- per-op timing
class _OpTimer:
    """Wraps every Function subclass's forward/backward to sum wall time per op."""

    def __init__(self):
        self.times = defaultdict(float)
        self.saved = []

    def __enter__(self):
        for cls in _subclasses(Function):
            for name in ("forward", "backward"):
                if name in cls.__dict__:
                    self.saved.append((cls, name, cls.__dict__[name]))
                    setattr(cls, name, self._wrap(cls.__name__, name, cls.__dict__[name]))
        return self

    def _wrap(self, op, phase, fn):
        times = self.times

        def timed(*args, **kw):
            t0 = time.perf_counter()
            out = fn(*args, **kw)
            times[(op, phase)] += time.perf_counter() - t0
            return out
        return timed

    def __exit__(self, *exc):
        for cls, name, fn in self.saved:
            setattr(cls, name, fn)


def _subclasses(cls):
    out = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_subclasses(sub))
    return out


def per_op(batch: int, steps: int) -> None:
    """Per-op forward/backward time: the median over steps (robust to a noisy machine)."""
    import statistics

    step = dojang_train_step(batch)
    for _ in range(3):
        step()
    samples = defaultdict(list)
    totals = []
    with _OpTimer() as timer:
        for _ in range(steps):
            timer.times.clear()
            t0 = time.perf_counter()
            step()
            totals.append(time.perf_counter() - t0)
            for key, t in timer.times.items():
                samples[key].append(t)
    med = {key: statistics.median(v) for key, v in samples.items()}
    params, _ = dojang_model()
    for p in params:
        p.grad = dj.Tensor(np.ones_like(p.data))
    opt = dj.optimizers.Adam()
    opt.apply(params)
    opt_samples = []
    for _ in range(steps):
        t0 = time.perf_counter()
        opt.apply(params)
        opt_samples.append(time.perf_counter() - t0)
    med[("Adam.apply", "")] = statistics.median(opt_samples)
    per = statistics.median(totals)
    print(f"\nper-op time (median of {steps} steps), batch {batch}: step {per * 1e3:.2f} ms "
          f"(min {min(totals) * 1e3:.2f}, max {max(totals) * 1e3:.2f})")
    for (op, phase), t in sorted(med.items(), key=lambda kv: -kv[1]):
        print(f"  {op:28s} {phase:8s} {t * 1e3:7.2f} ms  {t / per * 100:5.1f}%")
    rest = per - sum(med.values())
    print(f"  {'other (python, glue)':28s} {'':8s} {rest * 1e3:7.2f} ms  {rest / per * 100:5.1f}%")


def cprofile(batch: int, steps: int) -> None:
    import cProfile
    import pstats

    step = dojang_train_step(batch)
    for _ in range(3):
        step()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(steps):
        step()
    prof.disable()
    print(f"\ncProfile, batch {batch}, {steps} steps")
    pstats.Stats(prof).sort_stats("tottime").print_stats(25)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", default="32,128")
    p.add_argument("--infer", type=int, default=1000, help="inference batch (0: skip)")
    p.add_argument("--windows", type=int, default=7)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--profile", action="store_true", help="per-op table and cProfile")
    p.add_argument("--no-compare", action="store_true")
    p.add_argument("--tuned", action="store_true",
                   help="OPENBLAS_THREAD_TIMEOUT=4 and DOJANG_NUM_THREADS=threads "
                        "(short BLAS spin, elementwise work split over the threads)")
    args = p.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    if not args.no_compare:
        compare(batches, args.windows, args.infer, args.repeats)
    if args.profile:
        for b in batches:
            per_op(b, max(4, 512 // b))
        cprofile(batches[-1], 10)


if __name__ == "__main__":
    main()
