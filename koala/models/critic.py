"""PatchGAN critic: is each 70x70 patch of (L, ab) a real photo's colouring or a generated one?

Isola, Zhu, Zhou & Efros (2017), "Image-to-Image Translation with Conditional Adversarial
Networks" (pix2pix), CVPR; layout of the reference code's ``NLayerDiscriminator`` (n_layers=3):
C64 (no BN) - C128 - C256 (4x4 conv, stride 2) - C512 (stride 1) - 4x4 conv to one logit per
patch, LeakyReLU(0.2) throughout. Conditional, as in pix2pix: it sees the input L concatenated
with the (real or predicted) ab, so it judges whether the colours fit this photo.

Deviations: "same" padding instead of a symmetric pad of 1 (receptive field still 70x70, the
map is H/8 instead of H/8 - 2); the logits layer stays float32 under mixed precision. With 3
input channels it has 2,765,633 parameters (the reference's 2,768,705 for 6 RGB channels, less
3 x 4 x 4 x 64 first-layer weights).
"""
from __future__ import annotations

import keras
from keras import layers

from koala.models.layers import l_input, model_config, normalization, set_policy

KERNEL = 4
LEAKY_SLOPE = 0.2
PATCHGAN_STRIDES = (2, 2, 2, 1)  # n_layers=3: three stride-2 convolutions, then one of stride 1


def critic_block(x, filters: int, strides: int, batch_norm: bool, name: str, dtype=None):
    """4x4 conv -> (BN) -> LeakyReLU(0.2), under the dtype policy ``dtype`` (default None: the global one)."""
    x = layers.Conv2D(filters, KERNEL, strides=strides, padding="same", use_bias=not batch_norm,
                      name=f"{name}_conv", dtype=dtype)(x)
    if batch_norm:
        x = normalization(f"{name}_bn", dtype)(x)
    return layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name=f"{name}_lrelu", dtype=dtype)(x)


@keras.saving.register_keras_serializable(package="koala")
class PatchGANCritic(keras.Model):
    """The 70x70 PatchGAN; inputs ``[L, ab]``, output one logit per patch, shape (N, H/8, W/8, 1).

    ``base_filters`` (default 64, pix2pix's ndf) doubles per layer up to 8x; ``input_size``: fixed
    side, or None (default) for any size.

    Example: ``PatchGANCritic()([np.zeros([1, 64, 64, 1]), np.zeros([1, 64, 64, 2])])`` has shape (1, 8, 8, 1).
    """

    def __init__(self, base_filters: int = 64, input_size: int | None = None, name: str = "patchgan",
                 dtype=None, **kwargs):
        l_in = l_input(input_size)
        ab_in = keras.Input(shape=(input_size, input_size, 2), name="ab")
        x = layers.Concatenate(name="condition", dtype=dtype)([l_in, ab_in])
        for i, strides in enumerate(PATCHGAN_STRIDES):
            x = critic_block(x, base_filters * min(2**i, 8), strides, batch_norm=i > 0, name=f"critic{i}", dtype=dtype)
        logits = layers.Conv2D(1, KERNEL, padding="same", dtype="float32", name="patch_logits")(x)
        super().__init__(inputs=[l_in, ab_in], outputs=logits, name=name, **kwargs)
        set_policy(self, dtype)
        self.base_filters = base_filters
        self.input_size = input_size

    def get_config(self) -> dict:
        return {**model_config(self), "base_filters": self.base_filters, "input_size": self.input_size}
