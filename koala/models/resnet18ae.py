"""ResNet-18 autoencoder: mid-level ResNet-18 features, upsampled back to ab.

After Luke Melas-Kyriazi (2018), "Image Colorization with Convolutional Neural Networks", the
tutorial's ``ColorizationNet`` (lukemelas.github.io/image-colorization.html; its repository
github.com/lukemelas/Automatic-Image-Colorization trains the same encoder with MSE on 224 px crops).
Encoder: the first six children of torchvision's ResNet-18 (He et al. 2016) with a one-channel
conv1: conv1 7x7/2, bn1, relu, maxpool 3x3/2, layer1 (2 basic blocks, 64) and layer2 (2 basic
blocks, 128): 128 channels at H/8, built by keras-cv's ``ResNetBackbone`` with ResNet-18's first
two stages (:mod:`koala.models.resnet`). Decoder: conv 128 -> up -> conv 64 -> conv 64 -> up ->
conv 32 -> conv 2 -> up, each conv 3x3 (+ BN + ReLU except the last), nearest-neighbour x2
upsampling.

Deviations: the original's output is linear and regresses (ab + 128) / 255 in [0, 1] with MSE;
here it ends in tanh because koala's targets are normalised ab in [-1, 1] (so the final layer is
not the shared 1x1 ``ab_head``: the original's last conv is 3x3 at H/2, kept, then upsampled,
then tanh). The original feeds grayscale from ``rgb2gray``; here normalised L. Convolutions
followed by BN have no bias (BN cancels it). The encoder has keras-cv's padding and
BatchNormalization settings rather than torchvision's. The original starts from a Places365
ResNet-18 whose conv1 sums the RGB filters; no such weights ship here (and keras-cv publishes no
ImageNet ResNet-18), so it trains from scratch unless ``encoder_weights`` names a keras-cv preset
with ResNet-18's basic blocks, whose conv1 is summed the same way. The preset keeps the
original's MSE loss, Adam at 1e-2 and 224 px crops.
Input sides must be multiples of 8; :mod:`koala.inference` rounds the working shape to that.
"""
from __future__ import annotations

import keras
from keras import layers

from koala.models.layers import conv_block, l_input, model_config, set_policy
from koala.models.registry import register
from koala.models.resnet import RESNET18_STAGES, load_encoder_weights, resnet_encoder

RESNET18_MIDLEVEL = RESNET18_STAGES[:2]  # layer1 and layer2 of ResNet-18: (filters, blocks)
# (filters, upsample after) for each conv + BN + ReLU of the original decoder
DECODER = ((128, True), (64, False), (64, True), (32, False))
DOWNSAMPLINGS = 3

PRESETS = {
    "resnet18ae": {  # Melas-Kyriazi 2018: 224 px crops, MSE, Adam 1e-2
        "data": {"image_size": 224},
        "train": {"loss": "mse", "learning_rate": 1e-2},
    },
}


@keras.saving.register_keras_serializable(package="koala")
class ResNet18AE(keras.Model):
    """The ResNet-18 colorization autoencoder (about 0.9M parameters).

    input_size: fixed side, or None (default) for any multiple of 8.

    Example: ``ResNet18AE()(np.zeros([1, 64, 96, 1]))`` has shape (1, 64, 96, 2).
    """

    def __init__(self, input_size: int | None = None, name: str = "resnet18ae", dtype=None, **kwargs):
        inputs = l_input(input_size)
        x = resnet_encoder(inputs, RESNET18_MIDLEVEL, dtype)[-1]
        for i, (filters, upsample) in enumerate(DECODER):
            x = conv_block(x, filters, f"dec{i + 1}", dtype=dtype)
            if upsample:
                x = layers.UpSampling2D(2, interpolation="nearest", name=f"dec{i + 1}_up", dtype=dtype)(x)
        x = layers.Conv2D(2, 3, padding="same", name="ab_conv", dtype=dtype)(x)
        x = layers.UpSampling2D(2, interpolation="nearest", name="ab_up", dtype=dtype)(x)
        ab = layers.Activation("tanh", dtype="float32", name="ab")(x)
        super().__init__(inputs=inputs, outputs=ab, name=name, **kwargs)
        set_policy(self, dtype)
        self.input_size = input_size

    def get_config(self) -> dict:
        return {**model_config(self), "input_size": self.input_size}


@register(
    "resnet18ae",
    paper="Melas-Kyriazi 2018, Image Colorization with Convolutional Neural Networks (ResNet-18 autoencoder)",
    default_size=224,
    multiple=2**DOWNSAMPLINGS,
    presets=PRESETS,
    smoke_args={},  # 0.9M parameters: small enough as it is
)
def resnet18ae(input_size: int | None = None, encoder_weights: str | None = None, dtype=None) -> ResNet18AE:
    """A :class:`ResNet18AE` under the dtype policy ``dtype`` (default None: the global one); ``encoder_weights`` (default None: from scratch) names a keras-cv
    ``ResNetBackbone`` preset with ResNet-18's basic blocks whose first two stages start the
    encoder (:func:`koala.models.resnet.load_encoder_weights`; not part of the saved config).

    Example: ``resnet18ae(encoder_weights="path/to/resnet18_preset")``.
    """
    model = ResNet18AE(input_size, dtype=dtype)
    if encoder_weights is not None:
        load_encoder_weights(model, encoder_weights)
    return model
