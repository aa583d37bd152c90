"""ResUNet-34: a U-Net whose encoder is a full ResNet-34, with an optional PatchGAN critic.

Encoder: ResNet-34 (He, Zhang, Ren & Sun 2016, "Deep Residual Learning for Image Recognition",
CVPR), not truncated, built by keras-cv's ``ResNetBackbone`` (:mod:`koala.models.resnet`): the
7x7/2 stem with BN, ReLU and 3x3/2 max pooling, then basic-block stages of [3, 4, 6, 3] blocks
with 64, 128, 256 and 512 filters (five downsamplings, H/32), taking one channel (normalised L)
instead of RGB. Decoder: a U-Net decoder (Ronneberger et al.
2015) as in segmentation_models' ``Unet("resnet34")`` (five blocks of 256, 128, 64, 32, 16
filters): each block upsamples x2 and concatenates the encoder map of that scale (stage 3,
stage 2, stage 1, the stem's ReLU at H/2, then the input L at full resolution), followed by two
3x3 conv + BN + ReLU; a 1x1 conv with tanh gives normalised ab.

Training: L1 + 1e-3 * (1 - SSIM) (``koala.losses.l1_ssim``, preset ``resunet34``). Adversarial
mode (``adversarial=True``, preset ``resunet34_gan``) wraps the network with a pix2pix 70x70
PatchGAN critic conditioned on L (:mod:`koala.models.critic`, :mod:`koala.models.adversarial`);
the generator's loss becomes l1_ssim + ``adv_weight`` * adversarial.
Fine-tuning with ``koala.losses.mse_ssim``: start from a trained run's weights
(``--set train.init_weights=RUN_DIR --set train.loss=mse_ssim`` and a lower learning rate).

Deviations: upsampling is bilinear (segmentation_models uses nearest; no transposed
convolutions, whose checkerboard artefacts show in flat colour regions), through koala's
``BilinearUpSampling2D`` because Keras 3.15's fails on unknown sizes in a graph; the last
block concatenates the input L (segmentation_models has no skip at full resolution) so edges
stay sharp in ab; the encoder has keras-cv's padding and BatchNormalization settings rather than
torchvision's (:mod:`koala.models.resnet`); trained from scratch by default (keras-cv publishes no
ImageNet weights for ResNet-34; ``encoder_weights`` takes a keras-cv preset with basic blocks).
Input sides must be multiples of 32; :mod:`koala.inference` rounds the working shape to that.
"""
from __future__ import annotations

import keras
from keras import layers

from koala.models.adversarial import ADV_WEIGHT, AdversarialColorizer
from koala.models.critic import PatchGANCritic
from koala.models.layers import (
    BilinearUpSampling2D,
    ab_head,
    conv_block,
    l_input,
    model_config,
    set_policy,
)
from koala.models.registry import register
from koala.models.resnet import RESNET34_STAGES, load_encoder_weights, resnet_encoder

DECODER_FILTERS = (256, 128, 64, 32, 16)
DOWNSAMPLINGS = 5

PRESETS = {
    "resunet34": {  # ResNet-34 U-Net: 256 px, L1 + 1e-3 * (1 - SSIM)
        "data": {"image_size": 256},
        "train": {"loss": "l1_ssim", "learning_rate": 1e-3},
    },
    "resunet34_gan": {  # the same with a pix2pix PatchGAN critic; pix2pix's learning rate 2e-4
        "model_args": {"adversarial": True, "adv_weight": 0.01},
        "data": {"image_size": 256},
        "train": {"loss": "l1_ssim", "learning_rate": 2e-4},
    },
}


def decoder_block(x, skip, filters: int, name: str, dtype=None):
    """Bilinear x2 upsampling, concatenate the skip, two 3x3 conv + BN + ReLU."""
    x = BilinearUpSampling2D(2, name=f"{name}_up", dtype=dtype)(x)
    x = layers.Concatenate(name=f"{name}_skip", dtype=dtype)([x, skip])
    x = conv_block(x, filters, f"{name}a", dtype=dtype)
    return conv_block(x, filters, f"{name}b", dtype=dtype)


@keras.saving.register_keras_serializable(package="koala")
class ResUNet34(keras.Model):
    """ResUNet-34, the L -> ab network (about 24.4M parameters with the default decoder).

    decoder_filters: widths of the five decoder blocks, deepest first (default 256, 128, 64, 32, 16).
    input_size: fixed side, or None (default) for any multiple of 32.

    Example: ``ResUNet34()(np.zeros([1, 64, 96, 1]))`` has shape (1, 64, 96, 2).
    """

    def __init__(self, decoder_filters: tuple[int, ...] = DECODER_FILTERS, input_size: int | None = None,
                 name: str = "resunet34", dtype=None, **kwargs):
        if len(decoder_filters) != DOWNSAMPLINGS:
            raise ValueError(f"decoder_filters needs {DOWNSAMPLINGS} widths, one per upsampling; got {decoder_filters}")
        inputs = l_input(input_size)
        *skips, x = resnet_encoder(inputs, RESNET34_STAGES, dtype)  # stem, stages 1-3 as skips; stage 4 the bottleneck
        skips.insert(0, inputs)
        for i, filters in enumerate(decoder_filters):
            x = decoder_block(x, skips[-1 - i], filters, f"dec{i + 1}", dtype)
        super().__init__(inputs=inputs, outputs=ab_head(x, dtype=dtype), name=name, **kwargs)
        set_policy(self, dtype)
        self.decoder_filters = tuple(decoder_filters)
        self.input_size = input_size

    def get_config(self) -> dict:
        return {**model_config(self), "decoder_filters": list(self.decoder_filters), "input_size": self.input_size}


@register(
    "resunet34",
    paper="He et al. 2016 (ResNet-34 encoder) + Ronneberger et al. 2015 (U-Net decoder); adversarial "
    "mode: Isola et al. 2017, pix2pix PatchGAN (CVPR)",
    default_size=256,
    multiple=2**DOWNSAMPLINGS,
    presets=PRESETS,
    smoke_args={"decoder_filters": [16, 16, 8, 8, 8]},  # keeps the full ResNet-34 encoder
)
def resunet34(
    decoder_filters: tuple[int, ...] = DECODER_FILTERS,
    adversarial: bool = False,
    adv_weight: float = ADV_WEIGHT,
    critic_filters: int = 64,
    input_size: int | None = None,
    encoder_weights: str | None = None,
    dtype=None,
) -> keras.Model:
    """A :class:`ResUNet34`, or with ``adversarial`` an :class:`AdversarialColorizer` that trains
    it against a :class:`PatchGANCritic` of ``critic_filters`` (default 64) base width, weighting
    the adversarial loss by ``adv_weight`` (default 0.01). Both are Keras classes whose configs
    hold these arguments, so ``keras.saving.load_model`` gives back either one whole.
    ``encoder_weights`` (default None: from scratch) names a keras-cv ``ResNetBackbone`` preset
    with ResNet-34's basic blocks whose weights start the encoder
    (:func:`koala.models.resnet.load_encoder_weights`); it is not part of the saved config.
    ``dtype`` (default None: Keras' global policy) is the dtype policy of all three models.

    Example: ``resunet34(adversarial=True).generator`` is the ResUNet34 that colorizes.
    """
    generator = ResUNet34(decoder_filters, input_size, dtype=dtype)
    if encoder_weights is not None:
        load_encoder_weights(generator, encoder_weights)
    if not adversarial:
        return generator
    return AdversarialColorizer(generator, PatchGANCritic(critic_filters, input_size, dtype=dtype),
                                adv_weight=adv_weight, dtype=dtype)
