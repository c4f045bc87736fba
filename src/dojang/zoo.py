"""Ready-made networks: the seeds' Fashion-MNIST CNN, LeNet-5, a small VGG, ResNet-20, AlexNet.

Every builder returns an uncompiled ``Model`` built for its input shape, so ``summary()``
works at once. Kernels use Keras's default Glorot-uniform initialization unless noted.

Example:
    >>> import dojang as dj
    >>> dj.zoo.fashion_cnn().count_params()
    333526
"""

from __future__ import annotations

from dojang import layers as L
from dojang.models import Model, Sequential


def fashion_cnn(input_shape=(28, 28, 1), num_classes: int = 10, name: str = "fashion_cnn"):
    """The CNN of seed 004 (Fashion-MNIST), exactly as the book types it.

    conv 32@3x3 same + ReLU, 2x2 max pool, conv 64@3x3 same + ReLU, 2x2 max pool,
    flatten, dense 100 + ReLU, dropout 0.4, dense 10 + softmax (333,526 parameters).
    """
    return Sequential([
        L.Conv2D(32, kernel_size=3, activation="relu", padding="same", input_shape=input_shape),
        L.MaxPooling2D(2),
        L.Conv2D(64, kernel_size=(3, 3), activation="relu", padding="same"),
        L.MaxPooling2D(2),
        L.Flatten(),
        L.Dense(100, activation="relu"),
        L.Dropout(0.4),
        L.Dense(num_classes, activation="softmax"),
    ], name=name)


def fashion_cnn_bn(input_shape=(28, 28, 1), num_classes: int = 10, width: int = 32,
                   convs_per_block=(1, 2), dense: int = 128, dropout: float = 0.3,
                   name: str = "fashion_cnn_bn"):
    """The seed CNN made trainable fast: batch normalization and a little more depth.

    Block ``i`` has ``convs_per_block[i]`` 3x3 conv-BN-ReLU layers of ``width * 2**i``
    filters and a 2x2 max pool; then a dense-BN-ReLU layer, dropout and a softmax head.
    Convolutions before BN have no bias (BN's beta replaces it).
    """
    stack = []
    for i, convs in enumerate(convs_per_block):
        for _ in range(convs):
            extra = {"input_shape": input_shape} if not stack else {}
            stack += [L.Conv2D(width * 2**i, 3, padding="same", use_bias=False, **extra),
                      L.BatchNormalization(), L.ReLU()]
        stack.append(L.MaxPooling2D(2))
    stack += [L.Flatten(), L.Dense(dense, use_bias=False), L.BatchNormalization(), L.ReLU(),
              L.Dropout(dropout), L.Dense(num_classes, activation="softmax")]
    return Sequential(stack, name=name)


def lenet5(input_shape=(32, 32, 1), num_classes: int = 10, activation: str = "tanh",
           name: str = "lenet5"):
    """LeNet-5 (LeCun et al. 1998): conv 6@5x5, pool, conv 16@5x5, pool, dense 120, 84, 10.

    Subsampling is 2x2 average pooling as in the paper; on 28x28 inputs the first
    convolution uses 'same' padding so the feature maps keep the paper's 28x28 size.
    """
    pad = "same" if input_shape[0] < 32 else "valid"
    return Sequential([
        L.Conv2D(6, 5, padding=pad, activation=activation, input_shape=input_shape),
        L.AveragePooling2D(2),
        L.Conv2D(16, 5, activation=activation),
        L.AveragePooling2D(2),
        L.Flatten(),
        L.Dense(120, activation=activation),
        L.Dense(84, activation=activation),
        L.Dense(num_classes, activation="softmax"),
    ], name=name)


def small_vgg(input_shape=(32, 32, 3), num_classes: int = 10, width: int = 32,
              name: str = "small_vgg"):
    """A VGG-style net: three blocks of two 3x3 conv-BN-ReLU layers and a max pool."""
    stack = []
    for i, filters in enumerate((width, 2 * width, 4 * width)):
        for j in range(2):
            extra = {"input_shape": input_shape} if i == j == 0 else {}
            stack += [L.Conv2D(filters, 3, padding="same", use_bias=False, **extra),
                      L.BatchNormalization(), L.ReLU()]
        stack.append(L.MaxPooling2D(2))
    stack += [L.GlobalAveragePooling2D(), L.Dropout(0.3),
              L.Dense(num_classes, activation="softmax")]
    return Sequential(stack, name=name)


def _residual_block(x, filters: int, stride: int):
    """Two 3x3 conv-BN layers with an identity (or 1x1 projection) shortcut (He et al.)."""
    y = L.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False,
                 kernel_initializer="he_normal")(x)
    y = L.ReLU()(L.BatchNormalization()(y))
    y = L.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer="he_normal")(y)
    y = L.BatchNormalization()(y)
    if stride != 1 or x.shape[-1] != filters:
        x = L.Conv2D(filters, 1, strides=stride, use_bias=False,
                     kernel_initializer="he_normal")(x)
        x = L.BatchNormalization()(x)
    return L.ReLU()(L.Add()([x, y]))


def resnet20(input_shape=(32, 32, 3), num_classes: int = 10, name: str = "resnet20"):
    """ResNet-20 for 32x32 inputs (He et al. 2016, section 4.2): 3 stages of 3 blocks."""
    inputs = L.Input(shape=input_shape)
    x = L.Conv2D(16, 3, padding="same", use_bias=False, kernel_initializer="he_normal")(inputs)
    x = L.ReLU()(L.BatchNormalization()(x))
    for stage, filters in enumerate((16, 32, 64)):
        for block in range(3):
            x = _residual_block(x, filters, 2 if stage > 0 and block == 0 else 1)
    x = L.GlobalAveragePooling2D()(x)
    outputs = L.Dense(num_classes, activation="softmax")(x)
    return Model(inputs, outputs, name=name)


def alexnet(input_shape=(227, 227, 3), num_classes: int = 1000, name: str = "alexnet"):
    """AlexNet (Krizhevsky et al. 2012) as a single-tower definition, for ``summary()``.

    conv 96@11x11/4, pool 3/2, conv 256@5x5, pool 3/2, conv 384, 384, 256 @3x3,
    pool 3/2, dense 4096, 4096, 1000 (about 62 million parameters).
    """
    return Sequential([
        L.Conv2D(96, 11, strides=4, activation="relu", input_shape=input_shape),
        L.MaxPooling2D(3, strides=2),
        L.Conv2D(256, 5, padding="same", activation="relu"),
        L.MaxPooling2D(3, strides=2),
        L.Conv2D(384, 3, padding="same", activation="relu"),
        L.Conv2D(384, 3, padding="same", activation="relu"),
        L.Conv2D(256, 3, padding="same", activation="relu"),
        L.MaxPooling2D(3, strides=2),
        L.Flatten(),
        L.Dense(4096, activation="relu"), L.Dropout(0.5),
        L.Dense(4096, activation="relu"), L.Dropout(0.5),
        L.Dense(num_classes, activation="softmax"),
    ], name=name)


MODELS = {
    "fashion_cnn": fashion_cnn,
    "fashion_cnn_bn": fashion_cnn_bn,
    "lenet5": lenet5,
    "small_vgg": small_vgg,
    "resnet20": resnet20,
    "alexnet": alexnet,
}


def get(name: str, **kwargs):
    """Build a zoo model by name (``dojang.zoo.MODELS`` lists them)."""
    if name not in MODELS:
        raise ValueError(f"Expected a model name in {sorted(MODELS)}. Received: name={name!r}")
    return MODELS[name](**kwargs)
