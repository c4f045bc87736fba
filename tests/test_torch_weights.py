"""PyTorch state dicts into dojang: a PyTorch twin of each model gives the same logits."""

from __future__ import annotations

import numpy as np
import pytest

import dojang as dj
from dojang import layers as L
from dojang.models import safetensors

torch = pytest.importorskip("torch")
nn = torch.nn


def _twins():
    """The seed CNN (channels-last dojang, NCHW torch) with batch norm and a depthwise conv."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1, groups=8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(), nn.Conv2d(32, 12, 1), nn.Flatten(), nn.Linear(12 * 2 * 3, 20), nn.ReLU(),
        nn.Dropout(0.4), nn.Linear(20, 10))
    net[1].running_mean.uniform_(-0.5, 0.5)
    net[1].running_var.uniform_(0.5, 1.5)
    model = dj.Sequential([
        L.InputLayer((8, 12, 1)), L.Conv2D(8, 3, padding="same"),
        L.BatchNormalization(epsilon=1e-5), L.ReLU(), L.MaxPooling2D(2),
        L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", activation="relu"),
        L.MaxPooling2D(2), L.Conv2D(16, 3, padding="same", activation="relu"),
        L.Conv2D(32, 3, padding="same", activation="relu"), L.Conv2D(12, 1), L.Flatten(),
        L.Dense(20, activation="relu"), L.Dropout(0.4), L.Dense(10)])
    return net.eval(), model


def _compare(net, model, channels_last=True):
    x = np.random.default_rng(0).standard_normal((3, 1, 8, 12)).astype("f4")
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    got = model(x.transpose(0, 2, 3, 1) if channels_last else x).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-5 * np.abs(ref).max())


def test_state_dict_in_its_own_order():
    net, model = _twins()
    assert "1.num_batches_tracked" in net.state_dict()
    dj.interop.load_torch_state_dict(model, net.state_dict())
    _compare(net, model)


def test_safetensors_file_numeric_order(tmp_path):
    net, model = _twins()
    path = tmp_path / "net.safetensors"
    tensors = {k: v.numpy() for k, v in net.state_dict().items()}
    # Written in lexical order: 0, 1, 11, 13, 16, 4, 7, 9 -- the loader sorts numerically.
    safetensors.save_file(dict(sorted(tensors.items())), path)
    dj.interop.load_torch_state_dict(model, path)
    _compare(net, model)


def test_channels_first_twin_needs_no_row_permutation():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 10, 3)).eval()
    model = dj.Sequential([L.InputLayer((1, 8, 12)), L.Conv2D(4, 3, data_format="channels_first"),
                           L.Flatten(data_format="channels_first"), L.Dense(3)])
    dj.interop.load_torch_state_dict(model, net.state_dict())
    _compare(net, model, channels_last=False)


class _Named(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(6)
        self.fc = nn.Linear(6, 5)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.fc(x.mean((2, 3)))


def _named_twin():
    model = dj.Sequential([
        L.InputLayer((8, 12, 1)), L.Conv2D(4, 3, padding="same", use_bias=False),
        L.BatchNormalization(epsilon=1e-5), L.ReLU(),
        L.Conv2D(6, 3, padding="same", use_bias=False, name="second"),
        L.BatchNormalization(epsilon=1e-5, name="second_bn"), L.ReLU(),
        L.GlobalAveragePooling2D(), L.Dense(5)])
    torch.manual_seed(2)
    net = _Named().eval()
    for bn in (net.bn1, net.bn2):
        bn.running_var.uniform_(0.5, 1.5)
        bn.running_mean.uniform_(-0.5, 0.5)
    return net, model


def test_named_modules_matched_by_shape_from_a_file(tmp_path):
    net, model = _named_twin()
    path = tmp_path / "named.safetensors"
    safetensors.save_file({k: v.numpy() for k, v in net.state_dict().items()}, path)
    dj.interop.load_torch_state_dict(model, path)  # sorted: bn1, bn2, conv1, conv2, fc
    _compare(net, model)


def test_explicit_mapping():
    net, model = _named_twin()
    sd = dict(reversed(list(net.state_dict().items())))
    dj.interop.load_torch_state_dict(model, sd, mapping={"second": "conv2",
                                                         "second_bn": "bn2"})
    _compare(net, model)


def test_mismatches_are_named():
    net, model = _named_twin()
    sd = dict(net.state_dict())
    sd["extra.weight"] = torch.zeros(3)
    with pytest.raises(ValueError, match=r"modules \['extra'\] in state dict match no layer"):
        dj.interop.load_torch_state_dict(model, sd)
    del sd["extra.weight"], sd["fc.weight"], sd["fc.bias"]
    with pytest.raises(ValueError, match=r"layer 'dense.*' \(Dense: kernel \(6, 5\), bias "
                                         r"\(5,\)\) has no unused module"):
        dj.interop.load_torch_state_dict(model, sd)
    with pytest.raises(ValueError, match="mapping names module 'nope'"):
        dj.interop.load_torch_state_dict(model, net.state_dict(), mapping={"second": "nope"})


def test_pickle_refused(tmp_path):
    path = tmp_path / "net.pt"
    torch.save(nn.Linear(2, 2).state_dict(), path)
    with pytest.raises(ValueError, match="never unpickles"):
        dj.interop.load_torch_state_dict(dj.Sequential([L.Dense(2, input_shape=(2,))]), path)
