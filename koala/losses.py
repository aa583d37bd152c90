"""Losses over normalised ab: pure functions plus the name lookup that configs use."""
from __future__ import annotations

import keras
from keras import ops


def l1(y_true, y_pred):
    """Mean absolute error: the median of the plausible colours, less greyed than MSE's mean."""
    return ops.mean(ops.abs(y_true - y_pred), axis=(1, 2, 3))


def mse(y_true, y_pred):
    return ops.mean(ops.square(y_true - y_pred), axis=(1, 2, 3))


def huber(y_true, y_pred, delta: float = 0.1):
    err = ops.abs(y_true - y_pred)
    quad = ops.minimum(err, delta)
    return ops.mean(0.5 * quad**2 / delta + (err - quad), axis=(1, 2, 3))


# SSIM as Wang et al. (2004) and tf.image.ssim define it: 11x11 Gaussian window (sigma 1.5), no padding.
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
AB_RANGE = 2.0  # normalised ab spans [-1, 1]: SSIM's dynamic range L
SSIM_WEIGHT = 1e-3  # lambda in L1 (or MSE) + lambda * (1 - SSIM)


def _gaussian_window(channels: int):
    coords = ops.arange(SSIM_WINDOW, dtype="float32") - (SSIM_WINDOW - 1) / 2
    g = ops.exp(-(coords**2) / (2 * SSIM_SIGMA**2))
    g = g / ops.sum(g)
    window = ops.outer(g, g)[:, :, None, None]
    return ops.tile(window, (1, 1, channels, 1))


def ssim(y_true, y_pred, max_val: float = AB_RANGE):
    """Mean structural similarity per image, computed on each ab channel and averaged.

    SSIM is taken on the ab planes themselves, not on RGB rebuilt with L: a Keras loss only sees
    (true ab, predicted ab), and L is the same on both sides anyway, so what SSIM adds is whether
    the colour planes keep their local structure (colour bleeding across edges lowers it).
    Matches ``tf.image.ssim(y_true, y_pred, max_val)``; images need sides of at least 11 px.
    ``max_val`` (default 2, the span of normalised ab) sets the stabilising constants.
    """
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32")
    window = _gaussian_window(y_true.shape[-1])

    def blur(x):
        return ops.depthwise_conv(x, window, strides=1, padding="valid")

    c1, c2 = (SSIM_K1 * max_val) ** 2, (SSIM_K2 * max_val) ** 2
    mu_true, mu_pred = blur(y_true), blur(y_pred)
    mu_cross = 2.0 * mu_true * mu_pred
    mu_squares = mu_true**2 + mu_pred**2
    luminance = (mu_cross + c1) / (mu_squares + c1)
    contrast_structure = (2.0 * blur(y_true * y_pred) - mu_cross + c2) / (
        blur(y_true**2 + y_pred**2) - mu_squares + c2
    )
    return ops.mean(luminance * contrast_structure, axis=(1, 2, 3))


def l1_ssim(y_true, y_pred, ssim_weight: float = SSIM_WEIGHT):
    """L1 + ssim_weight * (1 - SSIM) (default weight 1e-3): ResUNet-34's loss.

    Example: ``l1_ssim(ab, ab)`` is 0; a constant error d on flat images gives about |d| + 1e-3.
    """
    return l1(y_true, y_pred) + ssim_weight * (1.0 - ssim(y_true, y_pred))


def mse_ssim(y_true, y_pred, ssim_weight: float = SSIM_WEIGHT):
    """MSE + ssim_weight * (1 - SSIM) (default weight 1e-3), for fine-tuning after l1_ssim."""
    return mse(y_true, y_pred) + ssim_weight * (1.0 - ssim(y_true, y_pred))


LOSSES = {"l1": l1, "mse": mse, "huber": huber, "l1_ssim": l1_ssim, "mse_ssim": mse_ssim}


def get_loss(name: str):
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose from {sorted(LOSSES)}")
    return LOSSES[name]
