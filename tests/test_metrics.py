"""Metrics vs scikit-learn and NumPy; 'accuracy' resolution; confusion matrix."""

import numpy as np
import pytest
import sklearn.metrics as skm

from dojang import losses as L
from dojang import metrics as M


def _batches(n, size):
    return [slice(i, i + size) for i in range(0, n, size)]


def test_sparse_and_categorical_accuracy_over_batches():
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((50, 6))
    labels = rng.integers(0, 6, 50)
    want = skm.accuracy_score(labels, scores.argmax(1))
    sparse, cat = M.SparseCategoricalAccuracy(), M.CategoricalAccuracy()
    for sl in _batches(50, 16):  # uneven last batch: the mean is over examples
        sparse.update_state(labels[sl, None], scores[sl])
        cat.update_state(np.eye(6)[labels[sl]], scores[sl])
    assert sparse.result() == pytest.approx(want) and cat.result() == pytest.approx(want)
    sparse.reset_state()
    assert sparse.result() == 0.0


def test_binary_accuracy_precision_recall():
    rng = np.random.default_rng(1)
    probs = rng.random(40)
    truth = (rng.random(40) > 0.4).astype(int)
    acc, prec, rec = M.BinaryAccuracy(), M.Precision(), M.Recall()
    for sl in _batches(40, 15):
        acc.update_state(truth[sl], probs[sl, None])
        prec.update_state(truth[sl], probs[sl])
        rec.update_state(truth[sl, None], probs[sl, None])
    pred = probs > 0.5
    assert acc.result() == pytest.approx(skm.accuracy_score(truth, pred))
    assert prec.result() == pytest.approx(skm.precision_score(truth, pred))
    assert rec.result() == pytest.approx(skm.recall_score(truth, pred))
    p7 = M.Precision(thresholds=0.7)
    p7.update_state(truth, probs)
    assert p7.result() == pytest.approx(skm.precision_score(truth, probs > 0.7))
    empty = M.Precision()
    empty.update_state(np.array([1, 0]), np.array([0.1, 0.2]))
    assert empty.result() == 0.0


def test_precision_recall_class_id():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 30)
    scores = rng.random((30, 3))
    onehot = np.eye(3)[labels]
    p, r = M.Precision(class_id=2), M.Recall(class_id=2)
    p.update_state(onehot, scores)
    r.update_state(onehot, scores)
    assert p.result() == pytest.approx(skm.precision_score(labels == 2, scores[:, 2] > 0.5))
    assert r.result() == pytest.approx(skm.recall_score(labels == 2, scores[:, 2] > 0.5))


@pytest.mark.parametrize("k", [1, 2, 4])
def test_top_k(k):
    rng = np.random.default_rng(3)
    scores = rng.standard_normal((30, 7))
    labels = rng.integers(0, 7, 30)
    topk = np.argsort(-scores, axis=1)[:, :k]
    want = np.mean([labels[i] in topk[i] for i in range(30)])
    sparse, cat = M.SparseTopKCategoricalAccuracy(k=k), M.TopKCategoricalAccuracy(k=k)
    sparse.update_state(labels, scores)
    cat.update_state(np.eye(7)[labels], scores)
    assert sparse.result() == pytest.approx(want) and cat.result() == pytest.approx(want)
    assert skm.top_k_accuracy_score(labels, scores, k=k, labels=range(7)) == pytest.approx(want)


def test_mean_and_regression_metrics():
    m = M.Mean(name="loss")
    m.update_state(2.0, sample_weight=32)
    m.update_state(5.0, sample_weight=8)
    assert m.result() == pytest.approx((2 * 32 + 5 * 8) / 40)
    m.update_state(np.array([1.0, 3.0]))
    assert m.result() == pytest.approx((2 * 32 + 5 * 8 + 4) / 42)
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((8, 3)), rng.standard_normal((8, 3))
    mse, mae = M.get("mse"), M.get("mae")
    mse.update_state(a, b)
    mae.update_state(a, b)
    assert mse.result() == pytest.approx(skm.mean_squared_error(a, b))
    assert mae.result() == pytest.approx(skm.mean_absolute_error(a, b))
    acc = M.Accuracy()
    acc.update_state(np.array([1, 2, 3]), np.array([1, 0, 3]))
    assert acc.result() == pytest.approx(2 / 3)


def test_confusion_matrix():
    rng = np.random.default_rng(5)
    t, p = rng.integers(0, 4, 60), rng.integers(0, 4, 60)
    np.testing.assert_array_equal(M.confusion_matrix(t, p), skm.confusion_matrix(t, p))
    np.testing.assert_array_equal(M.confusion_matrix(t, p, num_classes=6),
                                  skm.confusion_matrix(t, p, labels=range(6)))
    scores = np.eye(4)[p] + 0.1
    np.testing.assert_array_equal(M.confusion_matrix(t, scores), skm.confusion_matrix(t, p))
    with pytest.raises(ValueError, match=r"confusion_matrix: Expected y_true in \[0, 3\)"):
        M.confusion_matrix([0, 3], [0, 1], num_classes=3)
    with pytest.raises(ValueError, match="Expected y_true and y_pred with the same number"):
        M.confusion_matrix([0, 1], [0])


@pytest.mark.parametrize("loss, cls", [
    ("sparse_categorical_crossentropy", M.SparseCategoricalAccuracy),
    (L.SparseCategoricalCrossentropy(from_logits=True), M.SparseCategoricalAccuracy),
    ("categorical_crossentropy", M.CategoricalAccuracy),
    (L.BinaryCrossentropy, M.BinaryAccuracy), ("mse", M.Accuracy), (None, M.Accuracy),
])
def test_accuracy_resolution(loss, cls):
    for name in ("accuracy", "acc"):
        metric = M.get(name, loss=loss)
        assert type(metric) is cls and metric.name == name


def test_registry_and_config():
    assert type(M.get("sparse_top_k_categorical_accuracy")) is M.SparseTopKCategoricalAccuracy
    assert type(M.get("precision")) is M.Precision
    for obj in (M.SparseTopKCategoricalAccuracy(k=3, name="top3"), M.BinaryAccuracy(0.3),
                M.Precision(thresholds=0.6, class_id=1), M.Mean(name="loss"),
                M.SparseCategoricalAccuracy(name="accuracy")):
        again = M.deserialize(M.serialize(obj))
        assert type(again) is type(obj) and again.get_config() == obj.get_config()
    with pytest.raises(ValueError, match="Unknown metric: 'acuracy'"):
        M.get("acuracy")
    with pytest.raises(ValueError, match="SparseTopKCategoricalAccuracy: Expected k to be an "
                                         "int >= 1. Received: k=0"):
        M.SparseTopKCategoricalAccuracy(k=0)
