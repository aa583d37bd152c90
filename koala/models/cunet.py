"""CU-Net: a U-Net with dilated convolutions for colorization.

Wang, Chen & Tian (2022), "Colorization of images using U-Net with dilated convolutions",
Symmetry 14(11):2295, as reimplemented by the seed projects.

Encoder: three stages of two 3x3 convolutions, each followed by 2x2 *average* pooling.
Bottleneck: instead of deeper downsampling, four 3x3 convolutions with growing dilation
rates (2, 4, 8, 16) widen the receptive field at H/8. Decoder: 2x2 transposed convolutions
upsample, the encoder features of the same scale are concatenated, two 3x3 convolutions
follow; a 1x1 convolution with tanh gives normalised ab.

Deviations: the paper's width is 64 at the first stage; ``base_filters`` sets it (the bundled
model uses 16 to train on a CPU). ``activation`` and ``batch_norm`` keep the seeds' choices
(ReLU with batch normalisation) as defaults but are options, as the seeds varied them; the
bundled model drops batch normalisation, which costs training time on a CPU (the bundled
configuration trains at 47 images/s with it and 62 without, 1.3x, with data in memory in float32
without XLA, as measured for issue 11; about 3x with XLA on). The dilation rates are an argument:
at 128 px the H/8 map is 16 px wide, so a rate of 16 only sees padding (the bundled model uses
2, 4, 8, 8).
Input sides must be multiples of 8; :mod:`koala.inference` rounds the working shape to that.
"""
from __future__ import annotations

import keras
from keras import layers

from koala.models.layers import ab_head, conv_block, dtype_scope, l_input, model_config
from koala.models.registry import register

DILATION_RATES = (2, 4, 8, 16)
DOWNSAMPLINGS = 3


@keras.saving.register_keras_serializable(package="koala")
@register(
    "cunet",
    paper="Wang, Chen & Tian 2022, Colorization of images using U-Net with dilated convolutions (Symmetry)",
    default_size=128,
    multiple=8,
    smoke_args={"base_filters": 8, "batch_norm": False},
)
class CUNet(keras.Model):
    """CU-Net. ``base_filters`` (default 64) doubles at each of the 3 downsamplings;
    ``activation`` (default "relu"; or "leaky_relu", or any Keras activation) and ``batch_norm``
    (default True) apply to every 3x3 convolution; ``dilation_rates`` (default 2, 4, 8, 16) are
    the bottleneck's four dilated convolutions; ``input_size``: fixed side, or None (default) for
    any multiple of 8.

    Example: ``CUNet(base_filters=16)(np.zeros([1, 64, 64, 1]))`` has shape (1, 64, 64, 2).
    """

    def __init__(
        self,
        base_filters: int = 64,
        activation: str = "relu",
        batch_norm: bool = True,
        dilation_rates: tuple[int, ...] = DILATION_RATES,
        input_size: int | None = None,
        name: str = "cunet",
        dtype=None,
        **kwargs,
    ):
        with dtype_scope(dtype):
            inputs = l_input(input_size)
            x, skips = inputs, []
            for stage in range(DOWNSAMPLINGS):
                filters = base_filters * 2**stage
                x = conv_block(x, filters, f"enc{stage}a", activation, batch_norm)
                x = conv_block(x, filters, f"enc{stage}b", activation, batch_norm)
                skips.append(x)
                x = layers.AveragePooling2D(2, name=f"enc{stage}_pool")(x)
            bottleneck = base_filters * 2**DOWNSAMPLINGS
            for i, rate in enumerate(dilation_rates):
                x = conv_block(x, bottleneck, f"dil{i}_r{rate}", activation, batch_norm, dilation=rate)
            for stage in reversed(range(DOWNSAMPLINGS)):
                filters = base_filters * 2**stage
                x = layers.Conv2DTranspose(filters, 2, strides=2, padding="same", name=f"dec{stage}_up")(x)
                x = layers.Concatenate(name=f"dec{stage}_skip")([x, skips[stage]])
                x = conv_block(x, filters, f"dec{stage}a", activation, batch_norm)
                x = conv_block(x, filters, f"dec{stage}b", activation, batch_norm)
            super().__init__(inputs=inputs, outputs=ab_head(x), name=name, **kwargs)
        self.base_filters = base_filters
        self.activation = activation
        self.batch_norm = batch_norm
        self.dilation_rates = tuple(dilation_rates)
        self.input_size = input_size

    def get_config(self) -> dict:
        return {**model_config(self), "base_filters": self.base_filters, "activation": self.activation,
                "batch_norm": self.batch_norm, "dilation_rates": list(self.dilation_rates),
                "input_size": self.input_size}
