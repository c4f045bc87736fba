"""Whole-model oracle: a residual CNN in dojang and in PyTorch with the same weights.

Conv, batch norm (training and inference), ReLU, a residual block joined by ``Add``,
max pooling, dropout (off), flatten and dense; same logits, loss and gradient of every
parameter. Weights are copied HWIO -> OIHW, NHWC -> NCHW, dense kernels transposed.
"""

import numpy as np
import pytest

import dojang as dj
from dojang import layers as L
from tests.helpers import assert_close

torch = pytest.importorskip("torch")
torch.set_num_threads(1)
TF = torch.nn.functional


def build_dojang():
    x = dj.Input((8, 8, 3))
    h = L.Conv2D(4, 3, padding="same", name="stem")(x)
    h = L.BatchNormalization(name="bn")(h)
    h = L.ReLU()(h)
    b = L.Conv2D(4, 3, padding="same", activation="relu", name="block_a")(h)
    b = L.Conv2D(4, 3, padding="same", name="block_b")(b)
    h = L.Activation("relu")(L.Add()([h, b]))
    h = L.MaxPooling2D(2)(h)
    h = L.Conv2D(5, (2, 3), strides=2, name="down")(h)
    h = L.Dropout(0.5, name="drop")(h)
    logits = L.Dense(6, name="head")(L.Flatten()(h))
    return dj.Model(x, logits)


def torch_forward(x, p, bn_stats, training):
    """The same network on NCHW tensors; ``p`` holds OIHW kernels and (out, in) matrices."""
    h = TF.conv2d(x, p[0], p[1], padding=1)
    h = TF.batch_norm(h, bn_stats[0], bn_stats[1], p[2], p[3], training=training,
                      momentum=0.01, eps=1e-3)
    h = TF.relu(h)
    b = TF.relu(TF.conv2d(h, p[4], p[5], padding=1))
    b = TF.conv2d(b, p[6], p[7], padding=1)
    h = TF.max_pool2d(TF.relu(h + b), 2)
    h = TF.conv2d(h, p[8], p[9], stride=2)
    h = h.permute(0, 2, 3, 1).flatten(1)  # flatten in NHWC order, as dojang does
    return TF.linear(h, p[10], p[11])


def to_torch_layout(a):
    if a.ndim == 4:
        return a.transpose(3, 2, 0, 1)  # HWIO -> OIHW
    if a.ndim == 2:
        return a.T  # (in, out) -> (out, in)
    return a


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_residual_cnn_matches_torch(dtype, device):
    dj.layers.clear_session()
    dj.random.set_seed(7)
    rng = np.random.default_rng(0)
    with dj.default_dtype(dtype):
        model = build_dojang().to(device)
    x = rng.standard_normal((4, 8, 8, 3)).astype(dtype)
    y = np.array([0, 3, 5, 1])
    params = model.parameters()
    stats = model.get_layer("bn").non_trainable_weights
    assert [w.name for w in params] == [
        "stem/kernel", "stem/bias", "bn/gamma", "bn/beta", "block_a/kernel", "block_a/bias",
        "block_b/kernel", "block_b/bias", "down/kernel", "down/bias", "head/kernel",
        "head/bias"]
    # random gamma/beta so batch norm's affine part is exercised
    params[2].data[...] = rng.uniform(0.5, 1.5, 4)
    params[3].data[...] = rng.standard_normal(4)
    tp = [torch.tensor(to_torch_layout(p.numpy()).copy(), requires_grad=True) for p in params]
    t_stats = [torch.tensor(s.numpy().copy()) for s in stats]
    tx = torch.tensor(x.transpose(0, 3, 1, 2).copy())

    # training mode (batch statistics), dropout off
    model.get_layer("drop").rate = 0.0
    logits = model(x, training=True)
    loss = dj.losses.SparseCategoricalCrossentropy(from_logits=True)(y, logits)
    loss.backward()
    t_logits = torch_forward(tx, tp, t_stats, training=True)
    t_loss = TF.cross_entropy(t_logits, torch.tensor(y))
    t_loss.backward()
    assert logits.dtype == dtype and logits.device == device
    assert all(p.grad.device == device for p in params)
    assert_close(logits.numpy(), t_logits.detach().numpy(), dtype)
    assert_close(loss.numpy(), t_loss.detach().numpy(), dtype)
    for p, t in zip(params, tp):
        assert_close(to_torch_layout(p.grad.numpy()), t.grad.numpy(), dtype)
    # moving mean follows Keras's momentum (= 1 - torch's momentum)
    assert_close(stats[0].numpy(), t_stats[0].numpy(), dtype)

    # inference mode: moving statistics, dropout (rate 0.5) inactive
    model.get_layer("drop").rate = 0.5
    mean, var = rng.standard_normal(4), rng.uniform(0.5, 2.0, 4)
    stats[0].data[...], stats[1].data[...] = mean, var
    with dj.no_grad():
        infer = model(x, training=False).numpy()
    with torch.no_grad():
        t_infer = torch_forward(tx, tp, [torch.tensor(mean.astype(dtype)),
                                         torch.tensor(var.astype(dtype))], training=False)
    assert_close(infer, t_infer.numpy(), dtype)
    assert_close(model.predict(x), t_infer.numpy(), dtype)
