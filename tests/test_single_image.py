"""``predict`` on one image: the paths small inputs take, against the batch paths and PyTorch.

One image takes other paths than a batch: the serial twins of the compiled kernels
(``kernels.compile.threaded``), the direct kernel for a single-channel convolution
(``plan.MAX_DIRECT_SINGLE_CHANNEL``), and the functional checks a layer keeps per input
signature (``layers._args.per_signature``). Each is compared with the path a batch
takes and with PyTorch.
"""

import numpy as np
import pytest

import dojang as dj
from dojang import zoo
from dojang.kernels import compile, plan
from dojang.layers._args import MAX_SIGNATURES

torch = pytest.importorskip("torch")
torch.set_num_threads(1)
TF = torch.nn.functional


def _seed_cnn():
    dj.random.set_seed(3)
    return zoo.get("fashion_cnn", input_shape=(28, 28, 1))


def _torch_seed_cnn(model, x):
    """The seed CNN's inference in PyTorch (NCHW), with ``model``'s weights."""
    k1, b1, k2, b2, d1, c1, d2, c2 = (torch.from_numpy(w) for w in model.get_weights())
    h = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    h = TF.max_pool2d(TF.relu(TF.conv2d(h, k1.permute(3, 2, 0, 1), b1, padding=1)), 2)
    h = TF.max_pool2d(TF.relu(TF.conv2d(h, k2.permute(3, 2, 0, 1), b2, padding=1)), 2)
    h = TF.relu(h.permute(0, 2, 3, 1).flatten(1) @ d1 + c1)  # flattened in NHWC order
    return torch.softmax(h @ d2 + c2, -1).numpy()


def test_one_image_equals_its_row_of_a_batch_and_torch():
    model = _seed_cnn()
    x = np.random.default_rng(0).random((40, 28, 28, 1), dtype=np.float32)
    # the batch runs im2col for the first conv and threads; one image the direct kernel,
    # serially
    assert not plan.direct_forward(x, (3, 3, 1, 32), 1)
    assert plan.direct_forward(x[:1], (3, 3, 1, 32), 1)
    batch = model.predict(x, batch_size=40)
    ones = np.concatenate([model.predict(x[i:i + 1], batch_size=1) for i in range(4)])
    np.testing.assert_allclose(ones, batch[:4], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(ones, _torch_seed_cnn(model, x[:4]), rtol=1e-4, atol=1e-6)
    with dj.no_grad():  # the model's call: the same numbers as predict
        np.testing.assert_array_equal(model(x[:1]).numpy(), ones[:1])


def test_serial_twins_equal_the_parallel_kernels():
    # which one runs is fixed by the shapes: one task never runs over threads
    assert not compile.threaded(1, 1 << 30)
    assert not compile.threaded(8, compile.MIN_ELEMENTWISE - 1)
    assert compile.threaded(2, compile.MIN_ELEMENTWISE)
    from dojang.kernels.conv import numba as conv_numba
    from dojang.kernels.pool import numba as pool_numba

    kernel = conv_numba._bias_relu
    assert kernel.sized(1, 1 << 30) == kernel.serial and kernel.sized(4, 1 << 20) is kernel
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 6, 6, 16)).astype(np.float32)
    x[0, 0, 0, :2] = np.nan
    outs = []
    for run in (pool_numba._max_pool2x2, pool_numba._max_pool2x2.serial):
        y, pick = np.empty((4, 3, 3, 16), np.float32), np.empty((4, 3, 3, 16), np.int16)
        run(x, y, pick)
        outs.append((y, pick))
    np.testing.assert_array_equal(outs[0][0], outs[1][0])
    np.testing.assert_array_equal(outs[0][1], outs[1][1])


def test_layers_keep_checks_per_signature_and_still_refuse_bad_inputs():
    layer = dj.layers.Conv2D(16, 3, padding="same", activation="relu")
    pool = dj.layers.MaxPooling2D(2)
    rng = np.random.default_rng(2)
    for size in (8, 10, 8):  # a second signature, then the first again
        x = rng.standard_normal((2, size, size, 3)).astype(np.float32)
        with dj.no_grad():
            y = pool(layer(x)).numpy()
        w, b = (torch.from_numpy(a) for a in layer.get_weights())
        ref = TF.max_pool2d(TF.relu(TF.conv2d(torch.from_numpy(x.transpose(0, 3, 1, 2)),
                                              w.permute(3, 2, 0, 1), b, padding=1)), 2)
        np.testing.assert_allclose(y, ref.numpy().transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-5)
    assert len(layer._signatures) == 2 and len(pool._signatures) == 2
    for size in range(12, 12 + MAX_SIGNATURES + 2):  # the oldest are dropped
        layer(np.zeros((1, size, size, 3), np.float32))
    assert len(layer._signatures) == MAX_SIGNATURES
    with pytest.raises(ValueError, match="expects input of rank 4, shape"):
        layer(np.zeros((1, 8, 8, 4), np.float32))  # the shape accepted last was 3 channels
    with pytest.raises(ValueError, match="expects input of rank 4"):
        pool(np.zeros((8, 8, 3), np.float32))


def test_a_scope_used_as_a_decorator_scopes_each_call():
    seen = []

    @dj.config.jit(False)
    def nested(depth):
        seen.append(dj.config.get_jit())
        with dj.config.jit(True):
            seen.append(dj.config.get_jit())
            if depth:
                nested(depth - 1)
            seen.append(dj.config.get_jit())
        seen.append(dj.config.get_jit())

    before = dj.config.get_jit()
    nested(2)
    f, t = False, True  # depth 2 calls depth 1 calls depth 0, each inside jit(True)
    assert seen == [f, t, f, t, f, t, t, f, t, f, t, f]
    assert dj.config.get_jit() == before
