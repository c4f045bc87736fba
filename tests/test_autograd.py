"""The autograd engine: deep graphs, accumulation, graph freeing, no_grad, dtype rules and
a leak test that counts live Tensors after a training step."""

import gc
import weakref

import numpy as np
import pytest

import dojang as dj
import dojang.functional as djf
from dojang import ops


def test_backward_through_depth_10000():
    x = dj.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y + 1.0
    (y * y).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * (x.numpy() + 10_000))


def test_gradient_accumulates_when_a_tensor_is_used_twice():
    x = dj.Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    y = x * x + x  # x appears three times
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy() + 1)


def test_diamond_graph_sums_both_branches():
    x = dj.Tensor(np.array([0.5, 1.5]), requires_grad=True)
    h = ops.exp(x)
    y = ops.log(h) * h + h  # two paths from h back to x
    y.sum().backward()
    expected = np.exp(x.numpy()) * (x.numpy() + 1) + np.exp(x.numpy())
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-6)


def test_leaf_gradients_accumulate_across_backward_calls():
    x = dj.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * 3).sum().backward()
    (x * 4).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [7.0, 7.0])
    x.zero_grad()
    assert x.grad is None


class _WrongShape(dj.Function):
    def forward(self, x):
        return x * 2

    def backward(self, gy):
        return gy[:1]


def test_wrong_shaped_gradient_raises():
    x = dj.Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(RuntimeError,
                       match=r"_WrongShape.backward returned a gradient of shape \(1,\) for an "
                             r"input of shape \(3,\)"):
        _WrongShape.apply(x).sum().backward()


def test_graph_is_freed_after_backward():
    x = dj.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match=r"backward through the graph a second time"):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = dj.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 4 * x.numpy())


def test_no_grad_records_nothing():
    x = dj.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    with dj.no_grad():
        y = djf.relu(x * 2 + 1).sum()
        assert not dj.is_grad_enabled()
        with dj.enable_grad():
            z = x * 2
    assert dj.is_grad_enabled()
    assert y.creator is None and not y.requires_grad
    assert z.requires_grad
    with pytest.raises(RuntimeError, match=r"does not require grad"):
        y.backward()


def test_backward_argument_checks():
    x = dj.Tensor(np.ones((2, 2)), requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match=r"implicitly created only for a one-element tensor"):
        y.backward()
    with pytest.raises(ValueError, match=r"Expected grad of shape \(2, 2\). Received: grad of "
                                         r"shape \(2,\)"):
        y.backward(np.ones(2))
    y.backward(np.full((2, 2), 0.5))
    np.testing.assert_allclose(x.grad.numpy(), np.ones((2, 2)))


def test_bool_of_a_multi_element_tensor_raises():
    with pytest.raises(ValueError, match=r"truth value of a tensor with more than one element"):
        bool(dj.Tensor([1.0, 2.0]))
    assert bool(dj.Tensor([1.0])) and not bool(dj.Tensor(0.0))


@pytest.mark.parametrize("data, dtype", [
    ([1.0, 2.0], np.float32), (1.5, np.float32), ([1, 2], np.int64), (3, np.int64),
    ([True, False], np.bool_), (np.array([1.0, 2.0]), np.float64),
    (np.array([1, 2], np.int32), np.int32), (np.float64(2.0), np.float64),
])
def test_dtype_rules(data, dtype):
    assert dj.Tensor(data).dtype == dtype


def test_default_dtype_context():
    with dj.default_dtype("float64"):
        assert dj.Tensor([1.0]).dtype == np.float64
    assert dj.Tensor([1.0]).dtype == np.float32


def test_arrays_are_wrapped_without_a_copy_and_convert_back():
    a = np.arange(6.0).reshape(2, 3)
    t = dj.Tensor(a)
    assert t.data is a
    np.testing.assert_array_equal(np.asarray(t), a)
    assert np.asarray(t, dtype=np.float32).dtype == np.float32
    assert t.numpy() is a or np.shares_memory(t.numpy(), a)


def test_ndarray_plus_tensor_returns_a_tensor():
    t = dj.Tensor(np.ones(3), requires_grad=True)
    for y in (np.ones(3) + t, np.ones(3) * t, np.ones(3) - t, np.ones(3) / t,
              np.ones((2, 3)) @ dj.Tensor(np.ones(3))):
        assert isinstance(y, dj.Tensor)


def test_requires_grad_on_an_integer_tensor_raises():
    with pytest.raises(TypeError, match=r"Only floating-point tensors can require gradients. "
                                        r"Received: dtype=int64"):
        dj.Tensor([1, 2], requires_grad=True)


def test_non_numeric_data_raises():
    with pytest.raises(TypeError, match=r"Expected numeric data"):
        dj.Tensor(["a", "b"])
    with pytest.raises(TypeError, match=r"Expected a number, a \(nested\) list"):
        dj.Tensor([[1.0], [1.0, 2.0]])


def test_detach_cuts_the_graph():
    x = dj.Tensor(np.ones(2), requires_grad=True)
    d = (x * 2).detach()
    assert d.creator is None and not d.requires_grad
    (d * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0])


def test_item_and_comparisons():
    assert dj.Tensor([[2.5]]).item() == 2.5
    with pytest.raises(ValueError, match=r"item\(\) needs a tensor with exactly one element"):
        dj.Tensor([1.0, 2.0]).item()
    np.testing.assert_array_equal((dj.Tensor([1.0, 3.0]) > 2).numpy(), [False, True])


def _live_tensors() -> int:
    return sum(issubclass(type(o), dj.Tensor) for o in gc.get_objects())


def test_training_step_leaves_no_live_tensors_and_no_cycles():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 5))
    labels = rng.integers(0, 3, size=8)
    w1 = dj.Tensor(rng.standard_normal((5, 6)), requires_grad=True)
    b1 = dj.Tensor(np.zeros(6), requires_grad=True)
    w2 = dj.Tensor(rng.standard_normal((6, 3)), requires_grad=True)
    params = (w1, b1, w2)
    gc.collect()
    gc.disable()
    try:
        before = _live_tensors()
        refs = []
        for _ in range(2):
            h = djf.relu(ops.linear(x, w1, b1))
            logits = h @ w2
            loss = djf.sparse_softmax_cross_entropy_with_logits(labels, logits)
            refs += [weakref.ref(t) for t in (h, logits, loss)]
            refs.append(weakref.ref(loss.creator))
            loss.backward()
            with dj.no_grad():
                for p in params:
                    p.data -= 0.1 * p.grad.data
                    p.grad = None
            del h, logits, loss
        assert all(r() is None for r in refs)  # freed by reference counting alone
        assert _live_tensors() == before
        assert gc.collect() == 0  # nothing was left for the cycle collector
    finally:
        gc.enable()
