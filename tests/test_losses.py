"""Losses: finite differences, the PyTorch oracle (float64 and float32), NumPy loop
references, stability under huge logits and the argument checks."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dojang as dj
import dojang.functional as djf
from tests.helpers import assert_close, gradcheck, torch_oracle

torch.set_num_threads(1)
REDUCTIONS = ("mean", "sum", "none")
N, C = 5, 4


def _rng(seed=0):
    return np.random.default_rng(seed)


def _labels(shape, n_classes=C, seed=0):
    return _rng(seed).integers(0, n_classes, size=shape)


def _probs(shape, seed=0):
    """Probability rows (a soft target) along the last axis."""
    p = _rng(seed).random(shape) + 0.05
    return p / p.sum(axis=-1, keepdims=True)


def _binary(shape, seed=0):
    """Values in (0.05, 0.95): valid probabilities away from the clip bounds."""
    return 0.05 + 0.9 * _rng(seed).random(shape)


# ---------------------------------------------------------------------------- sparse CE
SPARSE_LAYOUTS = {
    # name: (logits shape, class axis, labels shape, logits -> torch (N, C, ...) layout)
    "2d": ((N, C), -1, (N,), lambda x: x),
    "batch1": ((1, C), -1, (1,), lambda x: x),
    "3d_last": ((2, 3, C), -1, (2, 3), lambda x: x.permute(0, 2, 1)),
    "4d_axis1": ((2, C, 3, 2), 1, (2, 3, 2), lambda x: x),
}


@pytest.mark.parametrize("layout", SPARSE_LAYOUTS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_sparse_softmax_ce(layout, reduction, device):
    shape, axis, lshape, to_torch = SPARSE_LAYOUTS[layout]
    labels = _labels(lshape)
    logits = _rng(1).standard_normal(shape) * 3
    on_device = dj.backend.to_device(labels, device)

    def dj_fn(x):
        return djf.sparse_softmax_cross_entropy_with_logits(on_device, x, axis, reduction)

    def torch_fn(x):
        return F.cross_entropy(to_torch(x), torch.tensor(labels), reduction=reduction)

    if device == "cpu":
        gradcheck(dj_fn, logits)
    for dtype in (np.float64, np.float32):
        torch_oracle(dj_fn, torch_fn, logits, dtype=dtype, device=device)


def test_sparse_ce_matches_loop_reference():
    labels, logits = _labels(N), _rng(2).standard_normal((N, C))
    expected = [np.log(np.exp(row).sum()) - row[y] for row, y in zip(logits, labels, strict=True)]
    got = djf.sparse_softmax_cross_entropy_with_logits(labels, logits, reduction="none")
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)


# ---------------------------------------------------------------------------- one-hot CE
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_softmax_ce(smoothing, reduction, device):
    labels, logits = _probs((N, C)), _rng(3).standard_normal((N, C)) * 3

    def dj_fn(t, x):
        return djf.softmax_cross_entropy_with_logits(t, x, label_smoothing=smoothing,
                                                     reduction=reduction)

    def torch_fn(t, x):
        return F.cross_entropy(x, t, label_smoothing=smoothing, reduction=reduction)

    if device == "cpu":
        gradcheck(dj_fn, labels, logits)
    for dtype in (np.float64, np.float32):
        torch_oracle(dj_fn, torch_fn, labels, logits, dtype=dtype, device=device)


def test_softmax_ce_axis1_equals_sparse_with_one_hot():
    labels = _labels((2, 3))
    logits = _rng(4).standard_normal((2, C, 3))
    one_hot = np.ascontiguousarray(np.moveaxis(np.eye(C)[labels], -1, 1))
    dense = djf.softmax_cross_entropy_with_logits(one_hot, logits, axis=1, reduction="none")
    sparse = djf.sparse_softmax_cross_entropy_with_logits(labels, logits, axis=1,
                                                          reduction="none")
    assert_close(dense.numpy(), sparse.numpy(), np.float64)
    gradcheck(lambda t, x: djf.softmax_cross_entropy_with_logits(t, x, axis=1), one_hot, logits)


# ---------------------------------------------------------------------------- binary CE
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_sigmoid_ce(reduction, device):
    labels, logits = _binary((3, 4)), _rng(5).standard_normal((3, 4)) * 3

    def dj_fn(z, x):
        return djf.sigmoid_cross_entropy_with_logits(z, x, reduction)

    def torch_fn(z, x):
        return F.binary_cross_entropy_with_logits(x, z, reduction=reduction)

    if device == "cpu":
        gradcheck(dj_fn, labels, logits)
    for dtype in (np.float64, np.float32):
        torch_oracle(dj_fn, torch_fn, labels, logits, dtype=dtype, device=device)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_crossentropy(reduction, device):
    labels, probs = _binary((3, 4)), _binary((3, 4), seed=6)

    def dj_fn(z, p):
        return djf.binary_crossentropy(z, p, reduction=reduction)

    if device == "cpu":
        gradcheck(dj_fn, labels, probs)
    for dtype in (np.float64, np.float32):
        torch_oracle(dj_fn, lambda z, p: F.binary_cross_entropy(p, z, reduction=reduction),
                     labels, probs, dtype=dtype, wrt=[1], device=device)


def test_binary_crossentropy_clips_like_keras():
    eps = 1e-7
    probs = dj.Tensor(np.array([0.0, 1.0, 0.5]), requires_grad=True)
    loss = djf.binary_crossentropy(np.array([1.0, 0.0, 1.0]), probs, reduction="none")
    np.testing.assert_allclose(loss.numpy(), [-np.log(eps), -np.log(eps), np.log(2)],
                               rtol=1e-6)
    loss.sum().backward()
    np.testing.assert_allclose(probs.grad.numpy(), [0.0, 0.0, -2.0])  # clipped: no gradient


def test_binary_crossentropy_from_sigmoid_equals_from_logits():
    z, x = _binary((6,)), _rng(7).standard_normal(6)
    from_probs = djf.binary_crossentropy(z, djf.sigmoid(x))
    from_logits = djf.sigmoid_cross_entropy_with_logits(z, x)
    np.testing.assert_allclose(from_probs.numpy(), from_logits.numpy(), rtol=1e-12)


# ---------------------------------------------------------------------------- regression
REGRESSION = {
    "mse": (djf.mean_squared_error, F.mse_loss),
    "mae": (djf.mean_absolute_error, F.l1_loss),
}


@pytest.mark.parametrize("name", REGRESSION)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_regression_losses(name, reduction, device):
    dj_loss, torch_loss = REGRESSION[name]
    y_true, y_pred = _rng(8).standard_normal((3, 4)), _rng(9).standard_normal((3, 4))
    if device == "cpu":
        gradcheck(lambda t, p: dj_loss(t, p, reduction), y_true, y_pred)
    for dtype in (np.float64, np.float32):
        torch_oracle(lambda t, p: dj_loss(t, p, reduction),
                     lambda t, p: torch_loss(p, t, reduction=reduction),
                     y_true, y_pred, dtype=dtype, device=device)


def test_regression_mean_is_over_all_elements():
    y_true, y_pred = np.zeros((2, 3)), np.arange(6.0).reshape(2, 3)
    assert float(djf.mean_squared_error(y_true, y_pred)) == pytest.approx(55 / 6)
    assert float(djf.mean_absolute_error(y_true, y_pred, "sum")) == pytest.approx(15)


# ---------------------------------------------------------------------------- hinge
def _svm_loss_naive(scores, labels, margin):
    """cs231n's loop: sum over wrong classes of max(0, s_j - s_y + margin)."""
    losses = np.zeros(len(labels))
    for i, y in enumerate(labels):
        for j in range(scores.shape[1]):
            if j != y:
                losses[i] += max(0.0, scores[i, j] - scores[i, y] + margin)
    return losses


@pytest.mark.parametrize("margin", [1.0, 0.5])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_multiclass_hinge(margin, reduction, device):
    labels, scores = _labels(N), _rng(10).standard_normal((N, C))
    on_device = dj.backend.to_device(labels, device)

    def dj_fn(s):
        return djf.multiclass_hinge(on_device, s, margin=margin, reduction=reduction)

    def torch_fn(s):
        # torch divides each example's sum by C; the cs231n loss does not
        return C * F.multi_margin_loss(s, torch.tensor(labels), margin=margin,
                                       reduction=reduction)

    if device == "cpu":
        gradcheck(dj_fn, scores)
    for dtype in (np.float64, np.float32):
        torch_oracle(dj_fn, torch_fn, scores, dtype=dtype, device=device)
    expected = _svm_loss_naive(scores, labels, margin)
    got = djf.multiclass_hinge(labels, scores, margin, reduction="none").numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_multiclass_hinge_class_axis_first():
    labels, scores = _labels(3), _rng(11).standard_normal((C, 3))
    got = djf.multiclass_hinge(labels, scores, axis=0, reduction="none")
    np.testing.assert_allclose(got.numpy(), _svm_loss_naive(scores.T, labels, 1.0))
    gradcheck(lambda s: djf.multiclass_hinge(labels, s, axis=0), scores)


# ---------------------------------------------------------------------------- stability
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_logits_stay_finite(dtype):
    logits = np.array([[1e4, 0.0, -1e4], [-1e4, 1e4, 0.0]], dtype=dtype)
    labels = np.array([0, 2])
    cases = [
        (lambda x: djf.sparse_softmax_cross_entropy_with_logits(labels, x, reduction="none"),
         [0.0, 1e4]),
        (lambda x: djf.softmax_cross_entropy_with_logits(np.eye(3)[labels], x, reduction="none"),
         [0.0, 1e4]),
        (lambda x: djf.sigmoid_cross_entropy_with_logits(np.ones_like(x), x,
                                                         reduction="none")[:, 0], [0.0, 1e4]),
    ]
    for fn, expected in cases:
        x = dj.Tensor(logits, requires_grad=True)
        loss = fn(x)
        loss.sum().backward()
        np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-6, atol=1e-6)
        assert loss.dtype == dtype and np.isfinite(x.grad.numpy()).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_losses_keep_float32(dtype):
    x = np.zeros((2, 3), dtype)
    for loss in (djf.sparse_softmax_cross_entropy_with_logits([0, 1], x),
                 djf.softmax_cross_entropy_with_logits(np.eye(3)[:2], x, label_smoothing=0.1),
                 djf.sigmoid_cross_entropy_with_logits(np.ones((2, 3)), x),
                 djf.binary_crossentropy(np.ones((2, 3)), x + 0.5),
                 djf.mean_squared_error(np.ones((2, 3)), x),
                 djf.mean_absolute_error(np.ones((2, 3)), x),
                 djf.multiclass_hinge([0, 1], x)):
        assert loss.dtype == dtype and loss.shape == ()


def test_whole_float_labels_are_accepted():
    logits = _rng(12).standard_normal((N, C))
    labels = _labels(N)
    a = djf.sparse_softmax_cross_entropy_with_logits(labels.astype(np.float32), logits)
    b = djf.sparse_softmax_cross_entropy_with_logits(dj.Tensor(labels), logits)
    assert float(a) == float(b)


# ---------------------------------------------------------------------------- errors
SPARSE = djf.sparse_softmax_cross_entropy_with_logits


@pytest.mark.parametrize("call, exc, match", [
    (lambda: SPARSE([0, 4], np.zeros((2, 4))), ValueError,
     r"sparse_softmax_cross_entropy_with_logits: Expected labels in \[0, 4\) for 4 classes. "
     r"Received: a label 4"),
    (lambda: SPARSE([-1, 0], np.zeros((2, 4))), ValueError, r"Received: a label -1"),
    (lambda: SPARSE([0, 1, 2], np.zeros((2, 4))), ValueError,
     r"Expected labels of shape \(2,\) \(logits.shape=\(2, 4\) without axis 1\). "
     r"Received: labels.shape=\(3,\)"),
    (lambda: SPARSE([0.5, 1.0], np.zeros((2, 4))), TypeError,
     r"Expected labels to be integer class indices. Received: labels with dtype=float32"),
    (lambda: SPARSE(["a"], np.zeros((1, 4))), TypeError, r"Expected labels to be an integer"),
    (lambda: SPARSE([0], np.zeros((1, 4)), reduction="avg"), ValueError,
     r"Expected reduction to be one of \('mean', 'sum', 'none'\). Received: reduction='avg'"),
    (lambda: SPARSE([0], np.zeros((1, 4), dtype=int)), TypeError,
     r"Expected logits to be a floating-point tensor"),
    (lambda: SPARSE([0], np.zeros((1, 4)), axis=2), ValueError,
     r"Expected axis to be an int in \[-2, 2\)"),
    (lambda: djf.softmax_cross_entropy_with_logits(np.zeros((2, 3)), np.zeros((2, 4))),
     ValueError, r"softmax_cross_entropy_with_logits: Expected labels to have the shape of "
     r"logits, \(2, 4\). Received: labels.shape=\(2, 3\)"),
    (lambda: djf.softmax_cross_entropy_with_logits(np.zeros(2), np.zeros(2),
                                                   label_smoothing=1.5), ValueError,
     r"Expected label_smoothing to be a number in \[0.0, 1.0\]. Received: label_smoothing=1.5"),
    (lambda: djf.sigmoid_cross_entropy_with_logits(np.zeros(3), np.zeros(2)), ValueError,
     r"sigmoid_cross_entropy_with_logits: Expected labels to have the shape of logits"),
    (lambda: djf.binary_crossentropy(np.zeros(2), np.zeros(2), epsilon=0), ValueError,
     r"binary_crossentropy: Expected epsilon to be a number in \(0.0, 0.5\)"),
    (lambda: djf.mean_squared_error(np.zeros((2, 1)), np.zeros(2)), ValueError,
     r"mean_squared_error: Expected y_true to have the shape of y_pred, \(2,\). "
     r"Received: y_true.shape=\(2, 1\)"),
    (lambda: djf.mean_absolute_error(np.zeros(2), "x"), TypeError,
     r"mean_absolute_error: Expected y_pred to be a Tensor"),
    (lambda: djf.multiclass_hinge([0], np.zeros((1, 3)), margin=-1.0), ValueError,
     r"multiclass_hinge: Expected margin to be a number in \[0.0, inf\)"),
    (lambda: djf.multiclass_hinge([3], np.zeros((1, 3))), ValueError,
     r"multiclass_hinge: Expected labels in \[0, 3\) for 3 classes"),
])
def test_error_messages(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
