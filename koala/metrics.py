"""Colour-quality metrics: pure functions over batches of float RGB in [0, 1], shape (N, H, W, 3).

Every function returns one value per image (shape (N,)); callers average. Conventions are in
each docstring, because the literature mixes them.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

SSIM_FILTER_SIZE = 11
SSIM_SIGMA = 1.5


def psnr(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """PSNR in dB of RGB in [0, 1] (peak 1), over all pixels and channels of each image."""
    return tf.image.psnr(tf.convert_to_tensor(pred, tf.float32), tf.convert_to_tensor(true, tf.float32), 1.0).numpy()


def ssim(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """SSIM of RGB in [0, 1] (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1=0.01,
    K2=0.03), averaged over channels. Images smaller than the window are compared with a
    window of their own size."""
    pred, true = tf.convert_to_tensor(pred, tf.float32), tf.convert_to_tensor(true, tf.float32)
    size = min(SSIM_FILTER_SIZE, int(pred.shape[1]), int(pred.shape[2]))
    return tf.image.ssim(pred, true, 1.0, filter_size=size, filter_sigma=SSIM_SIGMA).numpy()


def colourfulness(rgb: np.ndarray) -> np.ndarray:
    """Hasler & Suesstrunk (2003) colourfulness M on 0-255 RGB:
    sqrt(std_rg^2 + std_yb^2) + 0.3 * sqrt(mean_rg^2 + mean_yb^2), rg = R - G, yb = (R + G)/2 - B."""
    rgb = np.asarray(rgb, np.float64) * 255.0
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    rg, yb = r - g, 0.5 * (r + g) - b
    axes = (1, 2)
    spread = np.sqrt(rg.std(axis=axes) ** 2 + yb.std(axis=axes) ** 2)
    centre = np.sqrt(rg.mean(axis=axes) ** 2 + yb.mean(axis=axes) ** 2)
    return spread + 0.3 * centre
