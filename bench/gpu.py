"""``make bench-gpu``: dojang's CuPy backend against PyTorch + cuDNN on one GPU.

Workloads (float32, synthetic data resident on the device, after a warm-up):
- the seed CNN's training images/s at batch 128 and 1024 (Adam);
- ResNet-20's training images/s at batch 128 (SGD);
- one 3x3 SAME conv layer, 128x56x56x64 -> 64, forward + both gradients, in TFLOP/s
  (2 FLOPs per multiply-accumulate, three GEMM-sized passes).
Each figure is the median of ``--windows`` timed windows, the two frameworks alternating,
each window ended by a device synchronisation. PyTorch runs with
``cudnn.benchmark = True`` in its faster layout (NCHW and channels_last are both timed).
A benchmark, not a test: it prints a table and exits 0 without a GPU.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (the alternating timer)
import numpy as np  # noqa: E402

CONV = (128, 56, 56, 64, 64)  # N, H, W, C_in, C_out


def dojang_train(model_name, batch, shape, optimizer):
    import cupy

    import dojang as dj

    dj.random.set_seed(0)
    model = dj.zoo.get(model_name, input_shape=shape)
    model.to("gpu")
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = cupy.asarray(rng.random((batch, *shape), dtype=np.float32))
    y = cupy.asarray(rng.integers(0, 10, batch))
    return lambda: model.train_step(x, y)


def torch_train(model_name, batch, shape, optimizer, channels_last: bool):
    import torch
    import workloads

    model = workloads.torch_model(model_name, shape).cuda()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = (torch.optim.Adam(model.parameters(), lr=1e-3) if optimizer == "adam"
           else torch.optim.SGD(model.parameters(), lr=0.01))
    x = torch.rand((batch, shape[-1], *shape[:-1]), device="cuda").to(memory_format=fmt)
    y = torch.randint(0, 10, (batch,), device="cuda")
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()
    return step


def dojang_conv():
    import cupy

    import dojang as dj

    n, h, w, c, co = CONV
    rng = np.random.default_rng(0)
    x = dj.Tensor(cupy.asarray(rng.standard_normal((n, h, w, c), dtype=np.float32)),
                  requires_grad=True)
    k = dj.Tensor(cupy.asarray(rng.standard_normal((3, 3, c, co), dtype=np.float32) * 0.05),
                  requires_grad=True)

    def step():
        y = dj.functional.conv2d(x, k, padding="SAME")
        y.backward(y.detach())
    return step


def torch_conv(channels_last: bool):
    import torch

    n, h, w, c, co = CONV
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn((n, c, h, w), device="cuda").to(memory_format=fmt).requires_grad_()
    k = (torch.randn((co, c, 3, 3), device="cuda") * 0.05).requires_grad_()

    def step():
        y = torch.nn.functional.conv2d(x, k, padding=1)
        y.backward(y.detach())
    return step


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--tf32", action="store_true", help="allow TF32 on both sides")
    args = parser.parse_args(argv)
    if args.tf32:  # CuPy reads it when it loads (cuBLAS math mode for its GEMMs)
        os.environ["CUPY_TF32"] = "1"
    try:
        import cupy
        import torch
        if cupy.cuda.runtime.getDeviceCount() < 1 or not torch.cuda.is_available():
            raise RuntimeError("no CUDA device")
    except Exception as exc:  # noqa: BLE001 - any reason means: nothing to measure
        print(f"bench-gpu: skipped ({exc})")
        return
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = args.tf32
    sync = torch.cuda.synchronize
    print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}  "
          f"cupy {cupy.__version__}  tf32={args.tf32}")
    print(f"{'workload':<34} {'dojang':>12} {'torch':>12} {'ratio':>7}  torch layout")
    jobs = [("seed CNN train b128 img/s", "fashion_cnn", 128, (28, 28, 1), "adam", 20),
            ("seed CNN train b1024 img/s", "fashion_cnn", 1024, (28, 28, 1), "adam", 10),
            ("ResNet-20 train b128 img/s", "resnet20", 128, (32, 32, 3), "sgd", 5)]
    for label, model, batch, shape, opt, steps in jobs:
        fns = {"dojang": dojang_train(model, batch, shape, opt),
               "nchw": torch_train(model, batch, shape, opt, False),
               "nhwc": torch_train(model, batch, shape, opt, True)}
        sec = common.time_alternating(fns, steps, args.windows, sync=sync)
        best = min(("nchw", "nhwc"), key=sec.get)
        d, t = batch / sec["dojang"], batch / sec[best]
        print(f"{label:<34} {d:12.0f} {t:12.0f} {d / t:7.2f}  {best}", flush=True)
    n, h, w, c, co = CONV
    flops = 3 * 2 * n * h * w * 9 * c * co
    fns = {"dojang": dojang_conv(), "nchw": torch_conv(False), "nhwc": torch_conv(True)}
    sec = common.time_alternating(fns, 10, args.windows, sync=sync)
    best = min(("nchw", "nhwc"), key=sec.get)
    d, t = flops / sec["dojang"] / 1e12, flops / sec[best] / 1e12
    print(f"{'3x3 conv 128x56x56x64 fwd+bwd TFLOP/s':<34} {d:12.2f} {t:12.2f} {d / t:7.2f}  "
          f"{best}")


if __name__ == "__main__":
    main()
