"""Keras-style loss objects vs PyTorch: probabilities, logits, the softmax shortcut."""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import dojang as dj
from dojang import losses as L
from tests.helpers import assert_close, fetch

torch.set_num_threads(1)
EPS = 1e-7


def _data(dtype, n=6, c=4, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((n, c)).astype(dtype) * 2
    labels = rng.integers(0, c, n)
    return logits, labels


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _runner(device):
    """``run(loss, y_true, y_pred_np, via=None)``: dojang's loss value and gradient wrt the
    tensor that feeds ``y_pred``, computed on ``device`` (host targets follow ``y_pred``)."""
    def run(loss, y_true, y_pred_np, via=None):
        x = dj.Tensor(y_pred_np, requires_grad=True).to(device)
        y = loss(y_true, via(x) if via else x)
        y.backward()
        assert y.device == x.grad.device == device
        return fetch(y), fetch(x.grad)
    return run


def _torch(fn, y_pred_np):
    x = torch.tensor(y_pred_np, requires_grad=True)
    y = fn(x)
    y.backward()
    return y.detach().numpy(), x.grad.numpy()


def _check(ours, theirs, dtype):
    assert_close(ours[0], theirs[0], dtype)
    assert_close(ours[1], theirs[1], dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sparse_categorical(dtype, device):
    run = _runner(device)
    logits, labels = _data(dtype)
    tl = torch.tensor(labels)
    want = _torch(lambda x: TF.cross_entropy(x, tl), logits)
    _check(run(L.SparseCategoricalCrossentropy(from_logits=True), labels, logits), want, dtype)
    # probabilities made by softmax: the fused logits path, gradient to the logits
    _check(run(L.SparseCategoricalCrossentropy(), labels, logits, dj.functional.softmax),
           want, dtype)
    # labels shaped (N, 1) as Keras allows
    _check(run(L.get("sparse_categorical_crossentropy"), labels[:, None], logits,
                dj.functional.softmax), want, dtype)
    # raw probabilities (no softmax creator): clip then log
    probs = _softmax(logits)
    probs[0, labels[0]] = 0.0  # clipped to eps
    _check(run(L.SparseCategoricalCrossentropy(), labels, probs),
           _torch(lambda p: TF.nll_loss(torch.log(torch.clamp(p, EPS, 1 - EPS)), tl), probs),
           dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_categorical(dtype, smoothing, device):
    run = _runner(device)
    logits, labels = _data(dtype, seed=1)
    onehot = np.eye(4, dtype=dtype)[labels]
    want = _torch(lambda x: TF.cross_entropy(x, torch.tensor(onehot),
                                             label_smoothing=smoothing), logits)
    loss = L.CategoricalCrossentropy(label_smoothing=smoothing)
    _check(run(L.CategoricalCrossentropy(from_logits=True, label_smoothing=smoothing),
                onehot, logits), want, dtype)
    _check(run(loss, onehot, logits, dj.functional.softmax), want, dtype)
    probs = _softmax(logits)
    t = onehot * (1 - smoothing) + smoothing / 4
    _check(run(loss, onehot, probs), _torch(
        lambda p: -(torch.tensor(t) * torch.log(torch.clamp(p, EPS, 1 - EPS))).sum(-1).mean(),
        probs), dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_binary(dtype, device):
    run = _runner(device)
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((5, 3)).astype(dtype) * 3
    target = (rng.random((5, 3)) > 0.5).astype(dtype)
    tt = torch.tensor(target)
    want = _torch(lambda x: TF.binary_cross_entropy_with_logits(x, tt), logits)
    _check(run(L.BinaryCrossentropy(from_logits=True), target, logits), want, dtype)
    _check(run(L.BinaryCrossentropy(), target, logits, dj.functional.sigmoid), want, dtype)
    probs = 1 / (1 + np.exp(-logits))
    _check(run(L.get("binary_crossentropy"), target, probs),
           _torch(lambda p: TF.binary_cross_entropy(torch.clamp(p, EPS, 1 - EPS), tt), probs),
           dtype)
    smooth = target * 0.9 + 0.05
    _check(run(L.BinaryCrossentropy(from_logits=True, label_smoothing=0.1), target, logits),
           _torch(lambda x: TF.binary_cross_entropy_with_logits(x, torch.tensor(smooth)),
                  logits), dtype)
    # (N,) targets for (N, 1) outputs
    col = logits[:, :1]
    _check(run(L.BinaryCrossentropy(from_logits=True), target[:, 0], col),
           _torch(lambda x: TF.binary_cross_entropy_with_logits(x, tt[:, :1]), col), dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_regression_and_hinge(dtype, device):
    run = _runner(device)
    rng = np.random.default_rng(3)
    pred = rng.standard_normal((4, 5)).astype(dtype)
    true = rng.standard_normal((4, 5)).astype(dtype)
    tt = torch.tensor(true)
    _check(run(L.get("mse"), true, pred), _torch(lambda x: TF.mse_loss(x, tt), pred), dtype)
    _check(run(L.get("mae"), true, pred), _torch(lambda x: TF.l1_loss(x, tt), pred), dtype)
    signs = np.where(true > 0, 1.0, -1.0).astype(dtype)
    _check(run(L.get("hinge"), signs, pred),
           _torch(lambda x: torch.clamp(1 - torch.tensor(signs) * x, min=0).mean(), pred), dtype)
    # {0, 1} targets are mapped to {-1, 1}
    _check(run(L.Hinge(), (signs + 1) / 2, pred),
           _torch(lambda x: torch.clamp(1 - torch.tensor(signs) * x, min=0).mean(), pred), dtype)
    labels = rng.integers(0, 5, 4)
    # torch divides the cs231n sum by the number of classes
    _check(run(L.MulticlassHinge(margin=0.5), labels, pred),
           _torch(lambda x: 5 * TF.multi_margin_loss(x, torch.tensor(labels), margin=0.5),
                  pred), dtype)


def test_reductions():
    logits, labels = _data(np.float64, seed=4)
    per = TF.cross_entropy(torch.tensor(logits), torch.tensor(labels), reduction="none").numpy()
    scce = L.SparseCategoricalCrossentropy
    with dj.no_grad():
        assert_close(scce(True, reduction="none")(labels, dj.Tensor(logits)).numpy(), per,
                     np.float64)
        assert_close(scce(True, reduction="sum")(labels, dj.Tensor(logits)).numpy(), per.sum(),
                     np.float64)
        assert_close(scce(reduction="none")(labels, dj.Tensor(_softmax(logits))).numpy(), per,
                     np.float64)
    true = np.arange(12.0).reshape(3, 4)
    out = L.MeanSquaredError(reduction="none")(true, dj.Tensor(np.zeros((3, 4))))
    assert_close(out.numpy(), (true**2).mean(-1), np.float64)
    out = L.MeanAbsoluteError(reduction="sum")(true, dj.Tensor(np.zeros((3, 4))))
    assert_close(out.numpy(), true.mean(-1).sum(), np.float64)


def test_softmax_output_under_no_grad():
    logits, labels = _data(np.float64, seed=5)
    with dj.no_grad():
        out = L.SparseCategoricalCrossentropy()(labels, dj.functional.softmax(dj.Tensor(logits)))
    assert_close(out.numpy(), TF.cross_entropy(torch.tensor(logits), torch.tensor(labels)),
                 np.float64)


def test_registry_and_config():
    for name, cls in [("sparse_categorical_crossentropy", L.SparseCategoricalCrossentropy),
                      ("categorical_crossentropy", L.CategoricalCrossentropy),
                      ("binary_crossentropy", L.BinaryCrossentropy), ("mse", L.MeanSquaredError),
                      ("mean_squared_error", L.MeanSquaredError), ("mae", L.MeanAbsoluteError),
                      ("hinge", L.Hinge), ("multiclass_hinge", L.MulticlassHinge),
                      ("MeanSquaredError", L.MeanSquaredError)]:
        assert type(L.get(name)) is cls
    loss = L.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1, name="cce")
    again = L.deserialize(L.serialize(loss))
    assert type(again) is L.CategoricalCrossentropy and again.get_config() == loss.get_config()
    assert L.get(loss) is loss and isinstance(L.get(L.Hinge), L.Hinge)
    fn = lambda t, p: p.sum()  # noqa: E731
    assert L.get(fn) is fn
    assert L.get("mse").name == "mean_squared_error"


def test_errors():
    p = dj.Tensor(np.full((3, 4), 0.25))
    with pytest.raises(ValueError, match=r"SparseCategoricalCrossentropy: Expected integer labels "
                                         r"of shape \(3,\)"):
        L.SparseCategoricalCrossentropy()(np.zeros((3, 4)), p)
    with pytest.raises(ValueError, match=r"Expected labels in \[0, 4\)\. Received: labels in "
                                         r"\[0, 4\]"):
        L.SparseCategoricalCrossentropy()(np.array([0, 1, 4]), p)
    with pytest.raises(TypeError, match="Expected integer class labels"):
        L.SparseCategoricalCrossentropy()(np.array([0.5, 1, 2]), p)
    with pytest.raises(ValueError, match=r"CategoricalCrossentropy: Expected y_true of shape "
                                         r"\(3, 4\)"):
        L.CategoricalCrossentropy()(np.zeros((3, 5)), p)
    with pytest.raises(ValueError, match="Expected label_smoothing to be a number in"):
        L.CategoricalCrossentropy(label_smoothing=1.5)
    with pytest.raises(ValueError, match="MeanSquaredError: Expected reduction to be one of"):
        L.MeanSquaredError(reduction="mean")
    with pytest.raises(ValueError, match="Unknown loss: 'msee'"):
        L.get("msee")
