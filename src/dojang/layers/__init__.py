"""Keras-style layers; ``dj.layers.Conv2D(32, 3, activation="relu")`` and friends.

Every layer builds its weights on the first call (``build(input_shape)`` through
``add_weight``), takes Keras's argument names and defaults, and round-trips through
``get_config()`` / ``from_config()``.
"""

from dojang.layers.activation import ELU, LeakyReLU, ReLU, Softmax
from dojang.layers.base import InputSpec, Layer, clear_session
from dojang.layers.conv import (
    BaseConv,
    Conv,
    Conv1D,
    Conv1DTranspose,
    Conv2D,
    Conv2DTranspose,
    Conv3D,
    Conv3DTranspose,
    ConvTranspose,
    DepthwiseConv2D,
    SeparableConv2D,
)
from dojang.layers.core import Activation, Dense, Dropout, Flatten, Reshape, SpatialDropout2D
from dojang.layers.input import Input, InputLayer
from dojang.layers.merge import Add, Concatenate
from dojang.layers.node import KerasTensor
from dojang.layers.normalization import BatchNormalization
from dojang.layers.pooling import (
    AveragePooling1D,
    AveragePooling2D,
    AveragePooling3D,
    BaseGlobalPooling,
    BasePooling,
    GlobalAveragePooling1D,
    GlobalAveragePooling2D,
    GlobalAveragePooling3D,
    GlobalMaxPooling1D,
    GlobalMaxPooling2D,
    GlobalMaxPooling3D,
    MaxPooling1D,
    MaxPooling2D,
    MaxPooling3D,
)
from dojang.layers.reshaping import Cropping2D, UpSampling2D, ZeroPadding2D

# Keras's short aliases
Convolution1D, Convolution2D, Convolution3D = Conv1D, Conv2D, Conv3D
Convolution2DTranspose = Conv2DTranspose
MaxPool1D, MaxPool2D, MaxPool3D = MaxPooling1D, MaxPooling2D, MaxPooling3D
AvgPool1D, AvgPool2D, AvgPool3D = AveragePooling1D, AveragePooling2D, AveragePooling3D
GlobalAvgPool1D, GlobalAvgPool2D, GlobalAvgPool3D = (
    GlobalAveragePooling1D, GlobalAveragePooling2D, GlobalAveragePooling3D)
GlobalMaxPool1D, GlobalMaxPool2D, GlobalMaxPool3D = (
    GlobalMaxPooling1D, GlobalMaxPooling2D, GlobalMaxPooling3D)

__all__ = [
    "Activation", "Add", "AveragePooling1D", "AveragePooling2D", "AveragePooling3D",
    "AvgPool1D", "AvgPool2D", "AvgPool3D", "BaseConv", "BaseGlobalPooling", "BasePooling",
    "BatchNormalization", "Concatenate", "Conv", "Conv1D", "Conv1DTranspose", "Conv2D",
    "Conv2DTranspose", "Conv3D", "Conv3DTranspose", "ConvTranspose", "Convolution1D",
    "Convolution2D", "Convolution2DTranspose", "Convolution3D", "Cropping2D", "Dense",
    "DepthwiseConv2D", "Dropout", "ELU", "Flatten", "GlobalAveragePooling1D",
    "GlobalAveragePooling2D", "GlobalAveragePooling3D", "GlobalAvgPool1D", "GlobalAvgPool2D",
    "GlobalAvgPool3D", "GlobalMaxPool1D", "GlobalMaxPool2D", "GlobalMaxPool3D",
    "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D", "Input", "InputLayer",
    "InputSpec", "KerasTensor", "Layer", "LeakyReLU", "MaxPool1D", "MaxPool2D", "MaxPool3D",
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "ReLU", "Reshape", "SeparableConv2D",
    "Softmax", "SpatialDropout2D", "UpSampling2D", "ZeroPadding2D", "clear_session",
]
