"""The benchmark workloads of issue 5, each built in dojang and in PyTorch.

W1  seed 004 Fashion-MNIST CNN: training (Adam) at batch 32 and 128, inference at 1000
W2  LeNet-5 training at batch 64 with SGD
W3  one conv layer forward+backward (64x32x32x64 -> 64, 3x3 same): see bench/conv.py
W4  ResNet-20 (CIFAR) training at batch 128
"""

from __future__ import annotations

import numpy as np

import dojang as dj
from dojang import zoo


def _data(batch, shape, classes=10, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((batch, *shape), dtype=np.float32)
    y = rng.integers(0, classes, size=batch)
    return x, y


# ---------------------------------------------------------------------------- dojang side
def dojang_train_step(model_name, batch, shape, optimizer):
    dj.random.set_seed(0)
    model = zoo.get(model_name, input_shape=shape)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    x, y = _data(batch, shape)
    return lambda: model.train_step(x, y)


def dojang_inference(model_name, batch, shape):
    dj.random.set_seed(0)
    model = zoo.get(model_name, input_shape=shape)
    x, _ = _data(batch, shape)
    return lambda: model.predict(x, batch_size=batch, verbose=0)


# ---------------------------------------------------------------------------- torch side
def torch_model(name, shape):
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


def torch_train_step(model_name, batch, shape, optimizer):
    from common import torch_setup

    torch = torch_setup()
    model = torch_model(model_name, shape)
    opt = (torch.optim.Adam(model.parameters(), lr=1e-3) if optimizer == "adam"
           else torch.optim.SGD(model.parameters(), lr=0.01))
    x, y = _data(batch, shape)
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    yt = torch.from_numpy(y)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xt), yt)
        loss.backward()
        opt.step()
    return step


def torch_inference(model_name, batch, shape):
    from common import torch_setup

    torch = torch_setup()
    model = torch_model(model_name, shape).eval()
    x, _ = _data(batch, shape)
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))

    def step():
        with torch.no_grad():
            model(xt).softmax(-1)
    return step
