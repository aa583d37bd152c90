"""Zhang16: colorization as classification over quantised ab, with class rebalancing.

Zhang, Isola & Efros (2016), "Colorful Image Colorization", ECCV, arXiv:1603.08511; layout
as in the authors' ``colorization_train_val_v2.prototxt`` (richzhang/colorization).

A VGG-style stack of 8 convolution blocks (64, 128, 256, 512, 512, 512, 512, 256 channels;
2, 2, 3, 3, 3, 3, 3, 3 3x3 convolutions with ReLU). The last convolution of blocks 1-3 has
stride 2 (H/8); blocks 5 and 6 use dilation 2 to widen the view without downsampling; blocks
1-7 end with batch normalisation; block 8 starts with a 4x4 transposed convolution of stride 2
(H/4). A linear 1x1 convolution gives, per pixel at H/4, logits over the Q in-gamut ab bins of
:mod:`koala.color.gamut`. Training: cross-entropy against the soft-encoded true ab, each pixel
weighted by the rarity of its colour (:func:`koala.losses.rebalanced_cross_entropy`). Inference: the
annealed mean (T = 0.38) of the predicted distribution, upsampled 4x (:func:`decode`).

Deviations from the paper:
- Q = 309 bins computed from the sRGB gamut (see :func:`koala.color.ab_bins`), not the
  paper's 313 (a superset of ours by four rim bins no sRGB colour reaches).
- ``width`` scales every block's channels (1.0 = the paper); the ``zhang16_small`` preset uses
  0.5 at 128 px, the seed projects' scaled-down variant for CPU training.
- The target ab is average-pooled 4x4 to the logits' resolution; the authors' Caffe net takes
  every 4th pixel. Averaging matches what the logits at H/4 can see.
- The weighted loss is the mean over pixels; no mask for grayscale images (the authors
  zero the loss of images with no |ab| > 5; photos-v1 has no grayscale photos).
- Adam without the paper's weight decay of 1e-3 (koala's trainer); the ``zhang16`` preset keeps
  the paper's learning rate 3e-5, batch 40 and 176 px crops.
- Empirical prior (:mod:`koala.color.prior`): from ``data_tools.ab_prior`` on our training
  photos (the paper's is ImageNet's); without one a quick prior is estimated from the training source.
"""
from __future__ import annotations

import logging

import keras
import tensorflow as tf
from keras import layers

from koala.color import AB_NORM, PRIOR_LAMBDA, TEMPERATURE, ab_bins, annealed_mean, rebalance_weights
from koala.color.prior import load_prior, prior_from_source
from koala.losses import LOGITS_STRIDE, RebalancedCrossEntropy, check_arguments
from koala.models.layers import l_input, model_config, normalization, set_policy
from koala.models.registry import register

log = logging.getLogger(__name__)

CHANNELS = (64, 128, 256, 512, 512, 512, 512, 256)
CONVS = (2, 2, 3, 3, 3, 3, 3, 3)
STRIDE2_BLOCKS = (1, 2, 3)
DILATED_BLOCKS = (5, 6)
QUICK_PRIOR_IMAGES = 256  # photos read when no prior file is configured
LOSS_ARGS = ("prior", "prior_lambda")


PRESETS = {
    "zhang16": {  # Zhang et al. 2016: the authors' 176 px crops, batch 40, Adam 3e-5; rebalanced CE
        "model_args": {"width": 1.0},
        "data": {"image_size": 176, "batch_size": 40},
        "train": {"learning_rate": 3e-5},
    },
    "zhang16_small": {  # the seeds' CPU variant: half width at 128 px, koala's Adam 1e-3
        "model_args": {"width": 0.5},
        "data": {"image_size": 128, "batch_size": 16},
        "train": {"learning_rate": 1e-3},
    },
}


def _block(x, block: int, filters: int, dtype=None):
    """Block ``block`` (1-7): ReLU convolutions, the last one strided in blocks 1-3, then BN."""
    convs = CONVS[block - 1]
    dilation = 2 if block in DILATED_BLOCKS else 1
    for i in range(1, convs + 1):
        strides = 2 if block in STRIDE2_BLOCKS and i == convs else 1
        x = layers.Conv2D(filters, 3, strides=strides, dilation_rate=dilation, padding="same",
                          activation="relu", name=f"conv{block}_{i}", dtype=dtype)(x)
    return normalization(f"conv{block}_bn", dtype)(x)


def make_loss(loss_args: dict, train_source: str) -> RebalancedCrossEntropy:
    """The ``make_loss`` hook: the rebalanced cross-entropy (:class:`koala.losses.RebalancedCrossEntropy`).

    ``loss_args`` (``train.loss_args``): ``prior``, the path of ``data_tools.ab_prior``'s .npy
    (when absent, a quick prior is estimated from up to 256 photos of ``train_source``, a folder
    or split file, with a warning) and ``prior_lambda`` (default 0.5), the uniform share mixed
    into the prior. Unknown arguments are a ValueError that names them.

    Example: ``make_loss({"prior": "prior.npy"}, "photos/train.txt")``.
    """
    check_arguments("loss 'zhang16'", loss_args, LOSS_ARGS)
    if loss_args.get("prior"):
        prior = load_prior(loss_args["prior"])
    else:
        log.warning("zhang16: no train.loss_args.prior; estimating the ab prior from up to %d photos of %s "
                    "(python -m data_tools.ab_prior computes one from every photo)", QUICK_PRIOR_IMAGES, train_source)
        prior, _ = prior_from_source(train_source, QUICK_PRIOR_IMAGES)
    weights = rebalance_weights(prior, ab_bins(), lam=float(loss_args.get("prior_lambda", PRIOR_LAMBDA)))
    return RebalancedCrossEntropy(weights.numpy(), stride=LOGITS_STRIDE)


def decode(outputs, temperature: float | None = None) -> tf.Tensor:
    """The ``decode`` hook: logits (N, h, w, Q) -> normalised ab (N, 4h, 4w, 2).

    Annealed mean at ``temperature`` (None: the paper's 0.38), then bilinear upsampling by 4,
    back to the resolution of the L the network saw.
    """
    bins = ab_bins()
    logits = tf.cast(outputs, tf.float32)
    if logits.shape[-1] != len(bins):
        raise ValueError(f"expected logits over {len(bins)} ab bins; got shape {logits.shape}")
    ab = annealed_mean(logits, bins, TEMPERATURE if temperature is None else temperature) / AB_NORM
    return tf.image.resize(ab, tf.shape(ab)[1:3] * LOGITS_STRIDE, method="bilinear")


@keras.saving.register_keras_serializable(package="koala")
@register(
    "zhang16",
    paper="Zhang, Isola & Efros 2016, Colorful Image Colorization (ECCV, arXiv:1603.08511)",
    default_size=256,  # the authors' test size; they trained on 176 px crops (the zhang16 preset)
    multiple=8,  # three stride-2 blocks
    output="logits",
    presets=PRESETS,
    smoke_args={"width": 0.125},
    make_loss=make_loss,
    decode=decode,
)
class Zhang16(keras.Model):
    """The Zhang et al. (2016) network: normalised L "L" -> logits (H/4, W/4, Q), float32.

    ``width`` (default 1.0, the paper) scales every block's channels; ``input_size`` (default
    None: any size that is a multiple of 8) fixes the input's height and width.

    Example: ``Zhang16(0.125)(np.zeros([1, 48, 80, 1]))`` has shape (1, 12, 20, 309).
    """

    def __init__(self, width: float = 1.0, input_size: int | None = None, name: str = "zhang16", dtype=None,
                 **kwargs):
        if width <= 0:
            raise ValueError(f"width must be > 0; got {width}")
        channels = [max(1, round(c * width)) for c in CHANNELS]
        inputs = l_input(input_size)
        x = inputs
        for block in range(1, 8):
            x = _block(x, block, channels[block - 1], dtype)
        x = layers.Conv2DTranspose(channels[7], 4, strides=2, padding="same", activation="relu",
                                   name="conv8_1", dtype=dtype)(x)
        for i in (2, 3):
            x = layers.Conv2D(channels[7], 3, padding="same", activation="relu", name=f"conv8_{i}", dtype=dtype)(x)
        logits = layers.Conv2D(len(ab_bins()), 1, dtype="float32", name="logits")(x)
        super().__init__(inputs=inputs, outputs=logits, name=name, **kwargs)
        set_policy(self, dtype)
        self.width = width
        self.input_size = input_size

    def get_config(self) -> dict:
        return {**model_config(self), "width": self.width, "input_size": self.input_size}
