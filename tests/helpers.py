"""Independent checks shared by the test suite: finite differences and the torch oracle."""

from __future__ import annotations

import numpy as np

import dojang as dj


def _to_tensors(arrays, requires_grad):
    return [dj.Tensor(np.array(a, dtype=np.float64), requires_grad=r)
            for a, r in zip(arrays, requires_grad)]


def gradcheck(f, *arrays, wrt=None, eps: float = 1e-6, atol: float = 1e-6, rtol: float = 1e-5,
              seed: int = 0) -> None:
    """Compare dojang's gradients of ``f`` with float64 central finite differences.

    ``f`` takes Tensors and returns a Tensor; the scalar checked is ``sum(f(...) * r)``
    for a fixed random ``r``, so every output element's gradient takes part.
    ``wrt`` lists the argument indices to check (default: all).
    """
    wrt = range(len(arrays)) if wrt is None else wrt
    base = [np.array(a, dtype=np.float64, order="C") for a in arrays]
    ts = _to_tensors(base, [i in wrt for i in range(len(base))])
    y = f(*ts)
    r = np.random.default_rng(seed).standard_normal(y.shape)
    (y * dj.Tensor(r)).sum().backward()

    def scalar(values):
        with dj.no_grad():
            out = f(*[dj.Tensor(v) for v in values])
        return float(np.sum(out.numpy() * r))

    for i in wrt:
        analytic = ts[i].grad.numpy() if ts[i].grad is not None else np.zeros_like(base[i])
        numeric = np.zeros_like(base[i])
        flat = base[i].reshape(-1)
        for j in range(flat.size):
            old = flat[j]
            flat[j] = old + eps
            hi = scalar(base)
            flat[j] = old - eps
            lo = scalar(base)
            flat[j] = old
            numeric.reshape(-1)[j] = (hi - lo) / (2 * eps)
        np.testing.assert_allclose(analytic, numeric, atol=atol, rtol=rtol,
                                   err_msg=f"gradient of argument {i}")


def assert_close(actual, expected, dtype) -> None:
    """The issue's tolerance: float64 <= 1e-9 abs-or-rel; float32 <= 1e-4 of the output scale."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    if np.dtype(dtype) == np.float64:
        np.testing.assert_allclose(actual, expected, rtol=1e-9, atol=1e-9)
    else:
        scale = max(float(np.abs(expected).max(initial=0.0)), 1.0)
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4 * scale)


def fetch(t) -> np.ndarray:
    """The values of Tensor ``t`` on the host, checked to be a NumPy array."""
    values = t.numpy()
    assert type(values) is np.ndarray, type(values)
    return values


def torch_oracle(dj_fn, torch_fn, *arrays, dtype=np.float64, wrt=None, seed: int = 0,
                 device: str = "cpu") -> None:
    """Run the same computation in dojang and PyTorch; compare output and input gradients.

    ``dj_fn`` takes dojang Tensors, ``torch_fn`` takes torch tensors, each returns one
    tensor. Gradients are of ``sum(out * r)`` for a fixed random ``r``. dojang's inputs
    are moved to ``device`` first; its output and gradients must stay there.
    """
    import torch

    wrt = range(len(arrays)) if wrt is None else wrt
    base = [np.array(a, dtype=dtype) for a in arrays]
    dts = [dj.Tensor(a.copy(), requires_grad=i in wrt).to(device) for i, a in enumerate(base)]
    tts = [torch.tensor(a.copy(), requires_grad=i in wrt) for i, a in enumerate(base)]
    y = dj_fn(*dts)
    ty = torch_fn(*tts)
    assert y.device == device
    assert_close(fetch(y), ty.detach().numpy(), dtype)
    r = np.random.default_rng(seed).standard_normal(y.shape).astype(dtype)
    (y * dj.Tensor(r).to(device)).sum().backward()
    (ty * torch.tensor(r)).sum().backward()
    for i in wrt:
        assert dts[i].grad.device == device
        assert_close(fetch(dts[i].grad), tts[i].grad.numpy(), dtype)


def conv_pool_dense_steps(n: int = 8, size: int = 12, cin: int = 1, filters: int = 4,
                          classes: int = 3, steps: int = 3, seed: int = 0) -> list[np.ndarray]:
    """Adam steps of conv+relu -> 2x2 max-pool -> dense on fixed random data (float32);
    returns the final weights (conv filters, conv bias, dense matrix)."""
    from dojang import functional as fn

    rng = np.random.default_rng(seed)
    x = rng.random((n, size, size, cin), dtype=np.float32)
    labels = rng.integers(0, classes, n)
    w1 = dj.Tensor(rng.standard_normal((3, 3, cin, filters), dtype=np.float32) * 0.3,
                   requires_grad=True)
    b1 = dj.Tensor(np.zeros(filters, np.float32), requires_grad=True)
    flat = (size // 2) ** 2 * filters
    w2 = dj.Tensor(rng.standard_normal((flat, classes), dtype=np.float32) * 0.1,
                   requires_grad=True)
    opt = dj.optimizers.Adam()
    for _ in range(steps):
        w1.grad = b1.grad = w2.grad = None
        h = fn.max_pool2d(fn.conv2d(x, w1, padding="SAME", bias=b1, activation="relu"), 2)
        logits = dj.ops.linear(h.reshape(n, -1), w2)
        fn.sparse_softmax_cross_entropy_with_logits(labels, logits).backward()
        opt.apply([w1, b1, w2])
    return [p.numpy().copy() for p in (w1, b1, w2)]


def run_in_threads(work, count: int) -> None:
    """Run ``work()`` in ``count`` threads at once; re-raise the first error any raised."""
    import threading

    errors = []

    def guarded():
        try:
            work()
        except BaseException as err:  # noqa: BLE001 - re-raised in the calling thread
            errors.append(err)

    threads = [threading.Thread(target=guarded) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
