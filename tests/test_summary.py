"""summary(): Keras's table for the seed 004 model, plus MACs and receptive fields."""

import re

import numpy as np
import pytest

import dojang as dj
from dojang import layers as L


@pytest.fixture(autouse=True)
def _fresh_names():
    dj.layers.clear_session()
    dj.random.set_seed(0)


def seed004_model():
    """Typed as in the book, with dj in place of keras."""
    return dj.Sequential([
        L.Conv2D(32, kernel_size=3, activation="relu", padding="same", input_shape=(28, 28, 1)),
        L.MaxPooling2D(2),
        L.Conv2D(64, kernel_size=(3, 3), activation="relu", padding="same"),
        L.MaxPooling2D(2),
        L.Flatten(),
        L.Dense(100, activation="relu"),
        L.Dropout(0.4),
        L.Dense(10, activation="softmax"),
    ])


# Param # from Keras: (3*3*1+1)*32, (3*3*32+1)*64, (7*7*64+1)*100, (100+1)*10.
# MACs per example: OH*OW*filters*KH*KW*C_in, and in*units for Dense:
# 28*28*32*9 = 225,792; 14*14*64*9*32 = 3,612,672; 3136*100 = 313,600; 100*10 = 1,000.
# Receptive field: size += (K-1)*jump, jump *= stride: 3/1, 4/2, 8/2, 10/4, then global.
# Memory: 333,526 float32 = 1,334,104 bytes = 1.27 MB (powers of 1024, as Keras).
SEED004_SUMMARY = """\
Model: "sequential"
__________________________________________________________________________________________________
 Layer (type)                    Output Shape              Param #   MACs        Receptive field
==================================================================================================
 conv2d (Conv2D)                 (None, 28, 28, 32)        320       225,792     3x3, jump 1
 max_pooling2d (MaxPooling2D)    (None, 14, 14, 32)        0         0           4x4, jump 2
 conv2d_1 (Conv2D)               (None, 14, 14, 64)        18,496    3,612,672   8x8, jump 2
 max_pooling2d_1 (MaxPooling2D)  (None, 7, 7, 64)          0         0           10x10, jump 4
 flatten (Flatten)               (None, 3136)              0         0           global
 dense (Dense)                   (None, 100)               313,700   313,600     global
 dropout (Dropout)               (None, 100)               0         0           global
 dense_1 (Dense)                 (None, 10)                1,010     1,000       global
==================================================================================================
Total params: 333,526 (1.27 MB)
Trainable params: 333,526 (1.27 MB)
Non-trainable params: 0 (0.00 B)
MACs per example: 4,153,064
__________________________________________________________________________________________________"""


def test_seed004_summary_text_is_pinned():
    model = seed004_model()
    assert model.summary(return_string=True) == SEED004_SUMMARY
    assert model.count_params() == 333_526


def test_summary_prints_through_print_fn_and_is_pure():
    model = seed004_model()
    lines = []
    assert model.summary(print_fn=lines.append) is None
    assert lines == [SEED004_SUMMARY]
    before = [w.numpy().copy() for w in model.weights]
    model.summary(print_fn=lambda s: None)
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(before, model.weights))


def test_summary_of_lazily_built_sequential_matches_eager_one():
    model = dj.Sequential([L.Dense(4), L.Dense(2)])
    model(np.zeros((3, 5), np.float32))
    text = model.summary(return_string=True)
    row = next(line for line in text.splitlines() if line.startswith(" dense (Dense)"))
    assert re.split(r"\s{2,}", row.strip()) == ["dense (Dense)", "(None, 4)", "24", "20", "-"]
    assert "Total params: 34 (136.00 B)" in text


def test_functional_summary_has_connections_and_merged_receptive_field():
    x = dj.Input((8, 8, 3))
    h = L.Conv2D(3, 3, padding="same", strides=2)(x)
    h = L.Conv2D(3, 3, padding="same")(h)
    skip = L.AveragePooling2D(2)(x)
    y = L.Add()([skip, h])
    model = dj.Model(x, L.Dense(2)(L.GlobalAveragePooling2D()(y)))
    lines = model.summary(return_string=True).splitlines()
    row = {line.split()[0]: line for line in lines if line.startswith(" ") and "(" in line}
    # conv 3x3 s2: 3/2; conv 3x3: 3 + 2*2 = 7/2; avg pool 2: 2/2; add: max -> 7/2
    assert "3x3, jump 2" in row["conv2d"]
    assert "7x7, jump 2" in row["conv2d_1"] and "7x7, jump 2" in row["add"]
    assert row["add"].rstrip().endswith("average_pooling2d, conv2d_1")
    assert "global" in row["global_average_pooling2d"]
    # BN: 4 * C params, half of them non-trainable
    bn = dj.Sequential([L.BatchNormalization(input_shape=(5,))])
    assert "Non-trainable params: 10 (40.00 B)" in bn.summary(return_string=True)


def test_subclassed_model_summary_before_and_after_build():
    class Net(dj.Model):
        def __init__(self):
            super().__init__()
            self.hidden = L.Dense(4)
            self.out = L.Dense(2)

        def call(self, x, training=False):
            return self.out(self.hidden(x))

    net = Net()
    assert "0 (unbuilt)" in net.summary(return_string=True)
    net(np.ones((1, 3), np.float32))
    text = net.summary(return_string=True)
    assert "(None, 4)" in text and "Total params: 26 (104.00 B)" in text


def test_nested_model_row_carries_its_macs_and_receptive_field():
    inner = dj.Sequential([L.Conv2D(2, 3, input_shape=(8, 8, 1)), L.Conv2D(2, 3)])
    x = dj.Input((8, 8, 1))
    outer = dj.Model(x, inner(x))
    text = outer.summary(return_string=True)
    row = next(r for r in text.splitlines() if r.startswith(" sequential"))
    macs = 6 * 6 * 9 * 1 * 2 + 4 * 4 * 9 * 2 * 2  # each conv: OH*OW*KH*KW*C_in*C_out
    assert f"{macs:,}" in row and "5x5, jump 1" in row
    assert f"MACs per example: {macs:,}" in text
