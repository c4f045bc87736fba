"""Hostile values, as tables: saved optimizer state, shape-helper arguments and user errors,
each row an input, the error type and the message expected (files: tests/test_hostile.py)."""

import numpy as np
import pytest

import dojang as dj
from dojang import layers as L
from dojang import shapes


def _adam_state() -> dict:
    """A real Adam state for a Dense(2) on 3 features: kernel (3, 2) and bias (2,)."""
    dj.layers.clear_session()
    model = dj.Sequential([L.Dense(2, input_shape=(3,))])
    model.compile("adam", "mse")
    model.fit(np.ones((4, 3), np.float32), np.ones((4, 2), np.float32), verbose=0)
    return model.optimizer.get_state()


OPT_STATE = _adam_state()


# ---------------------------------------------------------------------- saved state
@pytest.mark.parametrize("change, error, message", [
    ({"learning_rate": np.array(-1.0)}, ValueError,
     r"Adam\.set_state: Expected learning_rate to be a number in \[0\.0, inf\)\. "
     r"Received: learning_rate=-1\.0"),
    ({"learning_rate": np.array(np.nan)}, ValueError, r"Received: learning_rate=nan"),
    ({"learning_rate": np.ones(2)}, ValueError,
     r"Expected learning_rate to be a numeric scalar\. Received: learning_rate of shape \(2,\)"),
    ({"iterations": np.array(-1)}, ValueError,
     r"Expected iterations to be an int >= 0\. Received: iterations=-1"),
    ({"iterations": np.array(1.5)}, TypeError, r"Expected iterations to be an int >= 0"),
    ({"iterations": np.array("x")}, ValueError, r"iterations of shape \(\) and dtype <U1"),
    ({"0/momentum": np.zeros((3, 5), np.float32)}, ValueError,
     r"Optimizer state '0/momentum': Expected shape \(3, 2\)\. Received: shape \(3, 5\)"),
], ids=["lr negative", "lr nan", "lr array", "iterations negative", "iterations float",
        "iterations text", "slot shape"])
def test_optimizer_state_passes_the_constructor_checks(change, error, message):
    params = [dj.Tensor(np.zeros((3, 2), np.float32)), dj.Tensor(np.zeros(2, np.float32))]
    opt = dj.optimizers.Adam()
    with pytest.raises(error, match=message):
        opt.set_state({**OPT_STATE, **change}, params)
    assert opt.iterations == 0 and opt.learning_rate == 0.001


# ---------------------------------------------------------------------- shape helpers
@pytest.mark.parametrize("call, error, message", [
    (lambda: shapes.conv_output_length(13, 6, stride=0), ValueError,
     r"conv_output_length: Expected stride to be an int >= 1\. Received: stride=0"),
    (lambda: shapes.conv_output_length(13, 0), ValueError,
     r"Expected kernel to be an int >= 1\. Received: kernel=0"),
    (lambda: shapes.conv_output_length(-1, 3), ValueError, r"Received: length=-1"),
    (lambda: shapes.conv_output_length(13, 3, pad_before=1.5), TypeError,
     r"Expected pad_before to be an int\. Received: pad_before=1\.5"),
    (lambda: shapes.conv_output_length(13, 3, dilation=0), ValueError, r"Received: dilation=0"),
    (lambda: shapes.conv_output_length(13.0, 3), TypeError, r"Received: length=13\.0"),
    (lambda: shapes.same_padding(13, 3, 0), ValueError,
     r"same_padding: Expected stride to be an int >= 1\. Received: stride=0"),
    (lambda: shapes.conv_transpose_output_length(3, 3, 2, output_padding=2), ValueError,
     r"Expected output_padding to be smaller than the stride or the dilation"),
    (lambda: shapes.conv_params((3, 3), 1, -5), ValueError,
     r"conv_params: Expected filters to be an int >= 1\. Received: filters=-5"),
    (lambda: shapes.conv_params((3, 0), 1, 5), ValueError,
     r"conv_params: Expected kernel_size to be an int or a tuple of 2 ints, each >= 1\. "
     r"Received: kernel_size=\(3, 0\)"),
    (lambda: shapes.conv_params((3, 3), 3, 6, groups=2), ValueError,
     r"Expected groups to divide in_channels\. Received: groups=2, in_channels=3"),
    (lambda: shapes.conv_params((3, 3), 3, 6, use_bias=1), TypeError,
     r"Expected use_bias to be a bool"),
    (lambda: shapes.dense_params(0, 3), ValueError, r"Received: in_features=0"),
    (lambda: shapes.conv_macs((26, -1), (3, 3), 1, 32), ValueError,
     r"conv_macs: Expected output_spatial .* each >= 0"),
], ids=lambda v: None if callable(v) else "")
def test_shape_helpers_check_their_arguments(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_shape_helpers_still_compute():
    assert shapes.conv_output_length(13, 6, stride=5, pad_before=1, pad_after=2) == 3
    assert shapes.conv_output_length(2, 5) == 0
    assert shapes.conv_params((3, 3), 1, 32) == 320 and shapes.conv_params(3, 4, 2) == 26
    assert shapes.conv_transpose_output_length(3, 3, 2, output_padding=1) == 8


# ---------------------------------------------------------------------- user errors
def _model():
    dj.layers.clear_session()
    model = dj.Sequential([L.Conv2D(2, 3, input_shape=(5, 5, 1)), L.Flatten(), L.Dense(4)])
    model.compile("sgd", "sparse_categorical_crossentropy", ["accuracy"])
    return model


X, Y = np.zeros((6, 5, 5, 1), np.float32), np.zeros(6, np.int64)


@pytest.mark.parametrize("call, error, message", [
    (lambda m: m.fit(X, Y, epochs=1, verbose=0, validation_data=(X[:3], Y[:2])), ValueError,
     r"fit: Expected validation_data \(x_val, y_val\) with the same number of examples, at "
     r"least one\. Received: len\(x_val\)=3, len\(y_val\)=2"),
    (lambda m: m.fit(X, Y, epochs=1, verbose=0, validation_data=(X[:0], Y[:0])), ValueError,
     r"len\(x_val\)=0"),
    (lambda m: m.evaluate(X[:0], Y[:0], verbose=0), ValueError,
     r"evaluate: Expected at least one example.*Received: len\(x\)=0"),
    (lambda m: L.Dense(3, dtype="str"), ValueError,
     r"Dense 'dense_\d+': Expected dtype to be a float dtype such as 'float32'\. "
     r"Received: dtype='str'"),
    (lambda m: L.Conv2D(3, 3, dtype="int32"), ValueError, r"Received: dtype='int32'"),
    (lambda m: L.Dense(3, dtype="no-such-type"), TypeError, r"Received: dtype='no-such-type'"),
], ids=["validation lengths", "empty validation", "evaluate empty", "dense str",
        "conv int", "unknown dtype"])
def test_user_errors_surface_early_and_clearly(call, error, message):
    model = _model()
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(error, match=message):
        call(model)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_predict_on_empty_input_keeps_the_output_shape():
    model = _model()
    out = model.predict(X[:0])
    assert out.shape == (0, 4) and out.dtype == np.float32
    assert out.shape[1:] == model.predict(X[:1]).shape[1:]


