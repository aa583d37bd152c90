"""Zhang16: colorization as classification over quantised ab, with class rebalancing.

Zhang, Isola & Efros (2016), "Colorful Image Colorization", ECCV, arXiv:1603.08511; layout
as in the authors' ``colorization_train_val_v2.prototxt`` (richzhang/colorization).

A VGG-style stack of 8 convolution blocks (64, 128, 256, 512, 512, 512, 512, 256 channels;
2, 2, 3, 3, 3, 3, 3, 3 3x3 convolutions with ReLU). The last convolution of blocks 1-3 has
stride 2 (H/8); blocks 5 and 6 use dilation 2 to widen the view without downsampling; blocks
1-7 end with batch normalisation; block 8 starts with a 4x4 transposed convolution of stride 2
(H/4). A linear 1x1 convolution gives, per pixel at H/4, logits over the Q in-gamut ab bins of
:mod:`koala.color.gamut`. Training: cross-entropy against the soft-encoded true ab, each pixel
weighted by the rarity of its colour (:func:`rebalanced_cross_entropy`). Inference: the
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
- Empirical prior: from ``data_tools.ab_prior`` on our training photos (the paper's is
  ImageNet's); without one a quick prior is estimated from the training source.
"""
from __future__ import annotations

import logging
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import layers
from tqdm import tqdm

from koala.color import (
    AB_NORM,
    NEIGHBOURS,
    PRIOR_LAMBDA,
    SIGMA,
    TEMPERATURE,
    ab_bins,
    ab_histogram,
    annealed_mean,
    nearest_bins,
    rebalance_weights,
    rgb_to_lab,
)
from koala.data.pipeline import load_shrunk
from koala.data.sources import data_source
from koala.images import evenly_spaced, list_images
from koala.models.layers import l_input, normalization

log = logging.getLogger(__name__)

CHANNELS = (64, 128, 256, 512, 512, 512, 512, 256)
CONVS = (2, 2, 3, 3, 3, 3, 3, 3)
STRIDE2_BLOCKS = (1, 2, 3)
DILATED_BLOCKS = (5, 6)
OUTPUT_STRIDE = 4  # the logits are at 1/4 of the input's resolution
PRIOR_SIZE = 64  # short side (px) at which photos are read to estimate the ab prior
QUICK_PRIOR_IMAGES = 256  # photos read when no prior file is configured
LOSS_ARGS = ("prior", "prior_lambda")


def _block(x, block: int, filters: int):
    """Block ``block`` (1-7): ReLU convolutions, the last one strided in blocks 1-3, then BN."""
    convs = CONVS[block - 1]
    dilation = 2 if block in DILATED_BLOCKS else 1
    for i in range(1, convs + 1):
        strides = 2 if block in STRIDE2_BLOCKS and i == convs else 1
        x = layers.Conv2D(filters, 3, strides=strides, dilation_rate=dilation, padding="same",
                          activation="relu", name=f"conv{block}_{i}")(x)
    return normalization(f"conv{block}_bn")(x)


def build_zhang16(width: float = 1.0, input_size: int | None = None) -> keras.Model:
    """Build the Zhang et al. (2016) network: normalised L "L" -> logits (H/4, W/4, Q), float32.

    ``width`` (default 1.0, the paper) scales every block's channels; ``input_size`` (default
    None: any size that is a multiple of 8) fixes the input's height and width.

    Example: ``build_zhang16(0.125)(np.zeros([1, 48, 80, 1]))`` has shape (1, 12, 20, 309).
    """
    if width <= 0:
        raise ValueError(f"width must be > 0; got {width}")
    channels = [max(1, round(c * width)) for c in CHANNELS]
    inputs = l_input(input_size)
    x = inputs
    for block in range(1, 8):
        x = _block(x, block, channels[block - 1])
    x = layers.Conv2DTranspose(channels[7], 4, strides=2, padding="same", activation="relu", name="conv8_1")(x)
    for i in (2, 3):
        x = layers.Conv2D(channels[7], 3, padding="same", activation="relu", name=f"conv8_{i}")(x)
    logits = layers.Conv2D(len(ab_bins()), 1, dtype="float32", name="logits")(x)
    return keras.Model(inputs, logits, name="zhang16")


def rebalanced_cross_entropy(ab_true, logits, weights, sigma: float = SIGMA, k: int = NEIGHBOURS) -> tf.Tensor:
    """The paper's loss, one value per image (N,).

    ``ab_true``: normalised ab (N, H, W, 2) at the input's resolution; ``logits``: (N, H/4,
    W/4, Q); ``weights``: the per-bin rebalancing weights (Q,). The target is pooled to the
    logits' size, soft-encoded over its ``k`` nearest bins, and each pixel's cross-entropy is
    scaled by the weight of its nearest bin.
    """
    ab = tf.nn.avg_pool2d(tf.cast(ab_true, tf.float32), OUTPUT_STRIDE, OUTPUT_STRIDE, "VALID") * AB_NORM
    indices, target = nearest_bins(ab, ab_bins(), sigma, k)
    log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
    cross_entropy = -tf.reduce_sum(target * tf.gather(log_probs, indices, batch_dims=3), axis=-1)
    pixel_weight = tf.gather(tf.cast(weights, tf.float32), indices[..., 0])
    return tf.reduce_mean(pixel_weight * cross_entropy, axis=(1, 2))


@keras.saving.register_keras_serializable(package="koala")
class RebalancedCrossEntropy(keras.losses.Loss):
    """Keras wrapper of :func:`rebalanced_cross_entropy`; ``weights`` from
    :func:`koala.color.rebalance_weights` (one per bin)."""

    def __init__(self, weights, sigma: float = SIGMA, neighbours: int = NEIGHBOURS,
                 name: str = "rebalanced_cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.class_weights = [float(w) for w in np.asarray(weights, np.float32)]
        if len(self.class_weights) != len(ab_bins()):
            raise ValueError(f"expected {len(ab_bins())} weights, one per ab bin; got {len(self.class_weights)}")
        self.sigma = float(sigma)
        self.neighbours = int(neighbours)

    def call(self, y_true, y_pred):
        return rebalanced_cross_entropy(y_true, y_pred, self.class_weights, self.sigma, self.neighbours)

    def get_config(self) -> dict:
        return {**super().get_config(), "weights": self.class_weights, "sigma": self.sigma,
                "neighbours": self.neighbours}


def estimate_prior(paths: list[str], size: int = PRIOR_SIZE, progress: bool = False) -> np.ndarray:
    """Empirical probability (Q,) of each ab bin over the pixels of ``paths``.

    Photos are read with :func:`koala.images.load_rgb` and shrunk to a short side of ``size``
    (default 64) px: the colour histogram barely changes and reading is much faster.
    Unreadable files are skipped with a warning.
    """
    bins = ab_bins()
    counts = np.zeros(len(bins), np.float64)
    for path in tqdm(paths, disable=not progress, unit="image"):
        rgb = load_shrunk(path, size)
        if rgb.size:
            counts += ab_histogram(rgb_to_lab(rgb.astype(np.float32) / 255.0)[..., 1:], bins).numpy()
    if counts.sum() == 0:
        raise ValueError(f"no readable photos among {len(paths)} path(s)")
    return (counts / counts.sum()).astype(np.float32)


def load_prior(path: str | Path) -> np.ndarray:
    """A prior saved by ``data_tools.ab_prior``, validated against the current bins."""
    prior = np.load(path)
    q = len(ab_bins())
    if prior.shape != (q,) or not np.all(np.isfinite(prior)) or (prior < 0).any() or prior.sum() <= 0:
        raise ValueError(f"{path}: expected {q} non-negative probabilities, one per ab bin; got shape {prior.shape}")
    return (prior / prior.sum()).astype(np.float32)


def prior_from_source(source: str, max_images: int | None = None, size: int = PRIOR_SIZE,
                      progress: bool = False) -> tuple[np.ndarray, int]:
    """The prior of a folder or split file, and how many photos it came from. ``max_images``
    (default: all) are taken evenly spaced over the sorted list, so every subfolder counts."""
    paths = list_images(source)
    if max_images:
        paths = evenly_spaced(paths, max_images)
    return estimate_prior(paths, size, progress), len(paths)


def make_loss(cfg) -> RebalancedCrossEntropy:
    """The ``make_loss`` hook: the rebalanced cross-entropy for ``cfg``.

    ``cfg.train.loss_args``: ``prior`` (path to ``data_tools.ab_prior``'s .npy; when absent
    a quick prior is estimated from the training photos, with a warning) and ``prior_lambda``
    (default 0.5).
    """
    args = dict(cfg.train.loss_args)
    unknown = sorted(set(args) - set(LOSS_ARGS))
    if unknown:
        raise ValueError(f"unknown zhang16 loss_args {unknown}; known: {list(LOSS_ARGS)}")
    if args.get("prior"):
        prior = load_prior(args["prior"])
    else:
        source = data_source(cfg.data.train)
        log.warning("zhang16: no train.loss_args.prior; estimating the ab prior from up to %d photos of %s "
                    "(python -m data_tools.ab_prior computes one from every photo)", QUICK_PRIOR_IMAGES, source)
        prior, _ = prior_from_source(source, QUICK_PRIOR_IMAGES)
    weights = rebalance_weights(prior, ab_bins(), lam=float(args.get("prior_lambda", PRIOR_LAMBDA)))
    return RebalancedCrossEntropy(weights.numpy())


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
    return tf.image.resize(ab, tf.shape(ab)[1:3] * OUTPUT_STRIDE, method="bilinear")
