"""Building blocks shared by several architectures (one home for each)."""
from __future__ import annotations

import keras
from keras import layers

L_INPUT_NAME = "L"  # stable SavedModel signature key for every model


def l_input(size: int | None = None) -> keras.KerasTensor:
    """The normalised-L input all colorizers share; ``size=None`` accepts any height/width."""
    return keras.Input(shape=(size, size, 1), name=L_INPUT_NAME)


def activation(kind: str, name: str) -> layers.Layer:
    if kind == "leaky_relu":
        return layers.LeakyReLU(negative_slope=0.2, name=name)
    return layers.Activation(kind, name=name)


def conv_block(
    x,
    filters: int,
    name: str,
    act: str = "relu",
    batch_norm: bool = True,
    dilation: int = 1,
    strides: int = 1,
    kernel_size: int = 3,
):
    """Conv -> (BatchNorm) -> activation, with stable layer names."""
    x = layers.Conv2D(
        filters, kernel_size, strides=strides, dilation_rate=dilation, padding="same",
        use_bias=not batch_norm, name=f"{name}_conv",
    )(x)
    if batch_norm:
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return activation(act, f"{name}_{act}")(x)


def ab_head(x, name: str = "ab"):
    """1x1 convolution to two channels with tanh: normalised ab, kept in float32 under mixed precision."""
    x = layers.Conv2D(2, 1, padding="same", name=f"{name}_conv")(x)
    return layers.Activation("tanh", dtype="float32", name=name)(x)
