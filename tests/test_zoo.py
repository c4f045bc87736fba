"""Model zoo: every network builds, has the parameter count of its paper, and runs forward.

The expected counts are worked out by hand from the layer shapes (conv: KH*KW*C_in*C_out
+ C_out bias, dense: in*out + out, batch norm: 4 per channel of which the moving mean and
variance are non-trainable), never read back from dojang.
"""

import re

import numpy as np
import pytest

import dojang as dj
from dojang import zoo

# fashion_cnn (28x28x1): conv 3*3*1*32+32, conv 3*3*32*64+64, dense 7*7*64*100+100, 100*10+10.
FASHION_CNN = 320 + 18_496 + 313_700 + 1_010  # 333,526

# lenet5 (32x32x1), LeCun et al. 1998: C1 5*5*1*6+6 = 156 (28x28), S2 -> 14x14,
# C3 5*5*6*16+16 = 2,416 (10x10), S4 -> 5x5x16 = 400, F5 400*120+120, F6 120*84+84, 84*10+10.
LENET5 = 156 + 2_416 + 48_120 + 10_164 + 850  # 61,706

# fashion_cnn_bn (28x28x1, width 32, one conv in block 1, two in block 2), convs without
# bias, BN 4 per channel: 3*3*1*32 + 3*3*32*64 + 3*3*64*64 = 288 + 18,432 + 36,864 = 55,584;
# after two 2x2 pools 7*7*64 = 3,136 -> dense 3,136*128 (no bias) = 401,408;
# BN channels 32+64+64+128 = 288 -> 1,152 (576 non-trainable); head 128*10+10 = 1,290.
FASHION_CNN_BN = 55_584 + 401_408 + 1_152 + 1_290  # 459,434
FASHION_CNN_BN_FROZEN = 576

# small_vgg (32x32x3, width 32): convs 3*3*3*32, 3*3*32*32, 3*3*32*64, 3*3*64*64,
# 3*3*64*128, 3*3*128*128 = 864 + 9,216 + 18,432 + 36,864 + 73,728 + 147,456 = 286,560;
# BN channels 2*(32+64+128) = 448 -> 1,792 (896 non-trainable); global pool, 128*10+10.
SMALL_VGG = 286_560 + 1_792 + 1_290  # 289,642
SMALL_VGG_FROZEN = 896

# alexnet (227x227x3): conv 11*11*3*96+96 = 34,944 (55x55), pool 3/2 -> 27x27,
# conv 5*5*96*256+256 = 614,656, pool -> 13x13, conv 3*3*256*384+384 = 885,120,
# conv 3*3*384*384+384 = 1,327,488, conv 3*3*384*256+256 = 884,992, pool -> 6x6x256 = 9,216,
# dense 9,216*4,096+4,096 = 37,752,832, 4,096*4,096+4,096 = 16,781,312, 4,096*1,000+1,000.
ALEXNET = 34_944 + 614_656 + 885_120 + 1_327_488 + 884_992 + 37_752_832 + 16_781_312 \
    + 4_097_000  # 62,378,344

# resnet20 (32x32x3), convs without bias, 1x1 projection shortcuts where the shape changes:
# stem 3*3*3*16 = 432 + BN 16;
# stage 16: 3 blocks of 2 convs 3*3*16*16 = 6 * 2,304 = 13,824, BN 6*16;
# stage 32: 3*3*16*32 = 4,608, 5 convs 3*3*32*32 = 46,080, projection 16*32 = 512, BN 7*32;
# stage 64: 3*3*32*64 = 18,432, 5 convs 3*3*64*64 = 184,320, projection 32*64 = 2,048, BN 7*64;
# dense 64*10+10 = 650. BN channels 16 + 96 + 224 + 448 = 784 -> 3,136 (1,568 non-trainable).
RESNET20_CONV = 432 + 13_824 + 4_608 + 46_080 + 512 + 18_432 + 184_320 + 2_048  # 270,256
RESNET20 = RESNET20_CONV + 4 * 784 + 650  # 274,042
RESNET20_FROZEN = 2 * 784


@pytest.fixture(autouse=True)
def _fresh_names():
    dj.layers.clear_session()
    dj.random.set_seed(0)


def summary_counts(model) -> tuple[int, int, int]:
    """(total, trainable, non-trainable) as printed by summary()."""
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    return tuple(int(re.search(rf"^{label} params: ([\d,]+)", text, re.M).group(1)
                     .replace(",", ""))
                 for label in ("Total", "Trainable", "Non-trainable"))


@pytest.mark.parametrize("name, total, frozen", [
    ("fashion_cnn", FASHION_CNN, 0),
    ("lenet5", LENET5, 0),
    ("fashion_cnn_bn", FASHION_CNN_BN, FASHION_CNN_BN_FROZEN),
    ("small_vgg", SMALL_VGG, SMALL_VGG_FROZEN),
    ("resnet20", RESNET20, RESNET20_FROZEN),
    ("alexnet", ALEXNET, 0),
])
def test_parameter_counts(name, total, frozen):
    model = zoo.get(name)
    assert model.count_params() == total
    assert summary_counts(model) == (total, total - frozen, frozen)


def test_published_totals():
    # The figures quoted in the papers and the seed: 333,526; 61,706; ~62.4M; ~0.27M.
    assert FASHION_CNN == 333_526
    assert LENET5 == 61_706
    assert ALEXNET == 62_378_344
    assert round(RESNET20 / 1e6, 2) == 0.27


def test_every_zoo_model_is_tested():
    assert set(zoo.MODELS) == {"fashion_cnn", "fashion_cnn_bn", "lenet5", "small_vgg",
                               "resnet20", "alexnet"}


def test_fashion_cnn_layers_are_the_seed_model():
    model = zoo.fashion_cnn()
    assert [type(layer).__name__ for layer in model.layers] == [
        "Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Flatten", "Dense", "Dropout",
        "Dense"]
    assert model.output_shape == (None, 10)


def test_lenet5_on_28x28_keeps_the_paper_feature_map_sizes():
    # 'same' first convolution: 28x28x6 maps as in the paper, so the count is unchanged.
    model = zoo.lenet5(input_shape=(28, 28, 1))
    assert model.layers[0].compute_output_shape((None, 28, 28, 1)) == (None, 28, 28, 6)
    assert model.count_params() == LENET5


@pytest.mark.parametrize("name, input_shape", [
    ("fashion_cnn", (28, 28, 1)),
    ("fashion_cnn_bn", (28, 28, 1)),
    ("lenet5", (32, 32, 1)),
    ("lenet5", (28, 28, 1)),
    ("small_vgg", (32, 32, 3)),
    ("resnet20", (32, 32, 3)),
])
def test_forward_gives_probabilities(name, input_shape):
    model = zoo.get(name, input_shape=input_shape, num_classes=7)
    x = np.random.default_rng(1).random((3, *input_shape), dtype=np.float32)
    probs = model.predict(x, batch_size=3)
    assert probs.shape == (3, 7)
    assert np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-5)


def test_unknown_model_name():
    with pytest.raises(ValueError, match=r"Expected a model name in \[.*'fashion_cnn'.*\]\. "
                                         r"Received: name='nope'"):
        zoo.get("nope")
