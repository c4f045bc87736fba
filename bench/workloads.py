"""The benchmark workloads of issues 5 and 17, each built in dojang and in PyTorch.

W1  seed 004 Fashion-MNIST CNN: training (Adam) at batch 32 and 128, inference at 1000
W2  LeNet-5 training at batch 64 with SGD
W3  one conv layer forward+backward (64x32x32x64 -> 64, 3x3 same; see also bench/conv.py)
W4  ResNet-20 (CIFAR) training at batch 128
W5  the seed CNN's ``predict`` on one image (latency)
W6  a depthwise-separable block (MobileNet style) forward+backward, batch 64, 32x32x64

``WORKLOADS`` lists them once for every driver (run.py, peers.py, ab.py); Keras's side
is in peer_keras.py. PyTorch builders take a ``layout``, 'NCHW' or 'channels_last':
inputs and 4-D weights get exactly that memory layout (checked on the strides).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from common import conv_data, layout_of, make_data, torch_setup

import dojang as dj
from dojang import zoo

LAYOUTS = ("NCHW", "channels_last")


@dataclass(frozen=True)
class Workload:
    """One benchmark workload: what runs, and how its figure is reported.

    ``kind``: 'train' (one optimizer step), 'infer' (``predict`` on the batch), 'conv'
    (one 3x3 same conv layer with bias, forward + all gradients), 'block' (the
    depthwise-separable block, forward + all gradients). ``steps``: steps per timed window
    in a full run. ``unit``: 'img/s', 'ms' (per step) or 'GFLOP/s'.
    """

    key: str
    group: str
    title: str
    kind: str
    model: str | None
    batch: int
    shape: tuple
    optimizer: str | None
    steps: int
    unit: str

    def figure(self, seconds: float) -> float:
        """The reported figure for ``seconds`` per step."""
        if self.unit == "ms":
            return seconds * 1e3
        if self.unit == "GFLOP/s":
            h, w, c = self.shape  # forward, filter and input gradients: 3 GEMM-sized passes
            return 3 * 2 * self.batch * h * w * 9 * c * c / seconds / 1e9
        return self.batch / seconds

    def spec(self) -> dict:
        """The workload as plain JSON data (for worker processes)."""
        return asdict(self)


WORKLOADS = [
    Workload("train32", "W1", "seed CNN training, batch 32", "train", "fashion_cnn", 32,
             (28, 28, 1), "adam", 32, "img/s"),
    Workload("train128", "W1", "seed CNN training, batch 128", "train", "fashion_cnn", 128,
             (28, 28, 1), "adam", 8, "img/s"),
    Workload("infer1000", "W1", "seed CNN inference, batch 1000", "infer", "fashion_cnn",
             1000, (28, 28, 1), None, 1, "img/s"),
    Workload("lenet64", "W2", "LeNet-5 training, batch 64", "train", "lenet5", 64,
             (28, 28, 1), "sgd", 16, "img/s"),
    Workload("conv3x3", "W3", "3x3 conv 64x32x32x64 fwd+bwd", "conv", None, 64, (32, 32, 64),
             None, 4, "GFLOP/s"),
    Workload("resnet20", "W4", "ResNet-20 training, batch 128", "train", "resnet20", 128,
             (32, 32, 3), "sgd", 4, "img/s"),
    Workload("latency1", "W5", "seed CNN predict, one image", "infer", "fashion_cnn", 1,
             (28, 28, 1), None, 200, "ms"),
    Workload("dwsep", "W6", "depthwise-separable block 64x32x32x64 fwd+bwd", "block", None,
             64, (32, 32, 64), None, 4, "ms"),
]
BY_KEY = {w.key: w for w in WORKLOADS}


# ---------------------------------------------------------------------------- dojang side
def dojang_step(w: Workload):
    """A callable running one step of ``w`` in dojang."""
    if w.kind == "train":
        return dojang_train_step(w.model, w.batch, w.shape, w.optimizer)
    if w.kind == "infer":
        return dojang_inference(w.model, w.batch, w.shape)
    if w.kind == "conv":
        x, k, b = conv_data(w.batch, w.shape)
        return dojang_conv_step(x, k, b, needs_input=True)
    return dojang_block_step(w.batch, w.shape)


def dojang_train_step(model_name, batch, shape, optimizer):
    """One ``train_step`` of a zoo model, compiled with sparse categorical cross-entropy."""
    dj.random.set_seed(0)
    model = zoo.get(model_name, input_shape=tuple(shape))
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    x, y = make_data(batch, shape)
    return lambda: model.train_step(x, y)


def dojang_inference(model_name, batch, shape):
    """``predict`` on one batch of a zoo model."""
    dj.random.set_seed(0)
    model = zoo.get(model_name, input_shape=tuple(shape))
    x, _ = make_data(batch, shape)
    return lambda: model.predict(x, batch_size=batch, verbose=0)


def dojang_conv_step(x, k, b, needs_input: bool):
    """Forward + backward of one conv (gy = y, as PyTorch's ``y.backward(y)``)."""
    x = dj.Tensor(x, requires_grad=needs_input)
    k, b = dj.Tensor(k, requires_grad=True), dj.Tensor(b, requires_grad=True)

    def step():
        y = dj.functional.conv2d(x, k, padding="SAME", bias=b)
        y.backward(y.detach())
    return step


def dojang_block(shape):
    """DepthwiseConv2D 3x3 same + bias, then a 1x1 Conv2D to the same width + bias."""
    from dojang import layers as L

    dj.random.set_seed(0)
    return dj.Sequential([L.DepthwiseConv2D(3, padding="same", input_shape=tuple(shape)),
                          L.Conv2D(shape[-1], 1)])


def dojang_block_step(batch, shape):
    """Forward + backward of the block: input gradient and all weight gradients."""
    model = dojang_block(shape)
    x = dj.Tensor(make_data(batch, shape)[0], requires_grad=True)

    def step():
        y = model(x, training=True)
        y.backward(y.detach())
    return step


# ---------------------------------------------------------------------------- torch side
def torch_model(name, shape):
    """The PyTorch twin of zoo model ``name`` (logits out; 'dwsep' is the W6 block)."""
    import torch.nn as nn

    c, classes = shape[-1], 10
    if name == "fashion_cnn":
        return nn.Sequential(
            nn.Conv2d(c, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * (shape[0] // 4) * (shape[1] // 4), 100), nn.ReLU(),
            nn.Dropout(0.4), nn.Linear(100, classes))
    if name == "lenet5":
        pad = 2 if shape[0] < 32 else 0
        return nn.Sequential(
            nn.Conv2d(c, 6, 5, padding=pad), nn.Tanh(), nn.AvgPool2d(2),
            nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(),
            nn.Linear(400, 120), nn.Tanh(), nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, classes))
    if name == "resnet20":
        return _torch_resnet20(c, classes)
    if name == "dwsep":
        return nn.Sequential(nn.Conv2d(c, c, 3, padding=1, groups=c), nn.Conv2d(c, c, 1))
    raise ValueError(name)


def _torch_resnet20(c, classes):
    import torch.nn as nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b1 = nn.BatchNorm2d(cout)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.b2 = nn.BatchNorm2d(cout)
            self.short = nn.Sequential()
            if stride != 1 or cin != cout:
                self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                           nn.BatchNorm2d(cout))

        def forward(self, x):
            y = self.b2(self.c2(self.b1(self.c1(x)).relu()))
            return (y + self.short(x)).relu()

    layers = [nn.Conv2d(c, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    cin = 16
    for stage, cout in enumerate((16, 32, 64)):
        for block in range(3):
            layers.append(Block(cin, cout, 2 if stage > 0 and block == 0 else 1))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, classes)]
    return nn.Sequential(*layers)


def _memory_format(layout):
    import torch

    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    return torch.channels_last if layout == "channels_last" else torch.contiguous_format


def torch_tensor(a, layout, transpose=(0, 3, 1, 2)):
    """A copy of the 4-D NumPy array ``a`` permuted by ``transpose`` into torch's (N, C, H, W)
    order, stored in ``layout``. ``np.ascontiguousarray(a.transpose(...))`` is not enough:
    with one channel it does not copy, and the strides stay channels-last."""
    import torch

    src = torch.from_numpy(np.ascontiguousarray(a)).permute(*transpose)
    t = torch.empty(src.shape, memory_format=_memory_format(layout)).copy_(src)
    if layout_of(t.shape, t.stride()) != layout:
        raise AssertionError(f"strides {t.stride()} of {tuple(t.shape)} are not {layout}")
    return t


def torch_step(w: Workload, layout: str):
    """A callable running one step of ``w`` in PyTorch with ``layout`` inputs and weights."""
    if w.kind == "train":
        return torch_train_step(w.model, w.batch, w.shape, w.optimizer, layout)
    if w.kind == "infer":
        return torch_inference(w.model, w.batch, w.shape, layout)
    if w.kind == "conv":
        x, k, b = conv_data(w.batch, w.shape)
        return torch_conv_step(x, k, b, needs_input=True, layout=layout)
    return torch_block_step(w.batch, w.shape, layout)


def _torch_model_in(name, shape, layout):
    """``torch_model`` with its 4-D weights in ``layout``."""
    torch_setup()
    return torch_model(name, shape).to(memory_format=_memory_format(layout))


def torch_train_step(model_name, batch, shape, optimizer, layout="NCHW"):
    """One optimizer step (cross-entropy on logits) of a ``torch_model``."""
    import torch

    model = _torch_model_in(model_name, shape, layout)
    opt = (torch.optim.Adam(model.parameters(), lr=1e-3) if optimizer == "adam"
           else torch.optim.SGD(model.parameters(), lr=0.01))
    x, y = make_data(batch, shape)
    xt, yt = torch_tensor(x, layout), torch.from_numpy(y)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xt), yt)
        loss.backward()
        opt.step()
    return step


def torch_inference(model_name, batch, shape, layout="NCHW"):
    """Class probabilities for the batch: eval mode, no autograd."""
    import torch

    model = _torch_model_in(model_name, shape, layout).eval()
    xt = torch_tensor(make_data(batch, shape)[0], layout)

    def step():
        with torch.no_grad():
            model(xt).softmax(-1)
    return step


def torch_conv_step(x, k, b, needs_input: bool, layout="NCHW"):
    """Forward + backward of one conv in PyTorch, from the same NHWC / HWIO arrays."""
    import torch
    import torch.nn.functional as F

    torch_setup()
    tx = torch_tensor(x, layout).requires_grad_(needs_input)
    tk = torch_tensor(k, layout, transpose=(3, 2, 0, 1)).requires_grad_()
    tb = torch.tensor(b, requires_grad=True)

    def step():
        y = F.conv2d(tx, tk, tb, padding=1)
        y.backward(y.detach())
    return step


def torch_block_step(batch, shape, layout="NCHW"):
    """Forward + backward of the block in PyTorch: input gradient and all weight gradients."""
    model = _torch_model_in("dwsep", shape, layout)
    xt = torch_tensor(make_data(batch, shape)[0], layout).requires_grad_()

    def step():
        y = model(xt)
        y.backward(y.detach())
    return step
