"""sRGB <-> CIE Lab (D65, 2 degree observer) as TensorFlow ops.

Written with plain TF ops so the same code runs in tf.data, inside a Keras model and
inside an exported SavedModel; the formulas and constants are those of
``skimage.color.rgb2lab`` / ``lab2rgb`` so results agree with scikit-image.
"""
from __future__ import annotations

import tensorflow as tf

# Normalisation of the network's input and output, named once (as in richzhang/colorization).
L_CENT = 50.0
L_NORM = 100.0
AB_NORM = 110.0

_XYZ_FROM_RGB = [
    [0.412453, 0.357580, 0.180423],
    [0.212671, 0.715160, 0.072169],
    [0.019334, 0.119193, 0.950227],
]
_D65 = (0.95047, 1.0, 1.08883)
_EPSILON = 0.008856  # (6/29)^3: where the cube root gives way to the linear segment
_KAPPA = 7.787


def _power(positive: tf.Tensor, exponent: float) -> tf.Tensor:
    """``positive ** exponent`` as exp(exponent * log): TensorFlow's pow is 3x slower on CPU."""
    return tf.exp(exponent * tf.math.log(positive))


def _srgb_to_linear(rgb: tf.Tensor) -> tf.Tensor:
    safe = tf.maximum(rgb, 0.04045)
    return tf.where(rgb > 0.04045, _power((safe + 0.055) / 1.055, 2.4), rgb / 12.92)


def _linear_to_srgb(lin: tf.Tensor) -> tf.Tensor:
    safe = tf.maximum(lin, 0.0031308)
    return tf.where(lin > 0.0031308, 1.055 * _power(safe, 1.0 / 2.4) - 0.055, lin * 12.92)


def _matrix(rows) -> tf.Tensor:
    return tf.constant(rows, dtype=tf.float32)


def _apply(matrix: tf.Tensor, colours: tf.Tensor) -> tf.Tensor:
    """``matrix`` (K, 3) times every colour (last axis) -> (..., K), as one matmul over all pixels:
    ``matvec`` broadcasts the matrix to each pixel and made the conversion 3x slower than scikit-image."""
    flat = tf.matmul(tf.reshape(colours, [-1, 3]), matrix, transpose_b=True)
    return tf.reshape(flat, tf.concat([tf.shape(colours)[:-1], tf.shape(matrix)[:1]], axis=0))


def _lab_f(t: tf.Tensor) -> tf.Tensor:
    """CIE's f: the cube root, with a linear segment below ``_EPSILON``."""
    return tf.where(t > _EPSILON, _power(tf.maximum(t, _EPSILON), 1.0 / 3.0), _KAPPA * t + 16.0 / 116.0)


def rgb_to_lab(rgb: tf.Tensor) -> tf.Tensor:
    """Convert float sRGB in [0, 1] (any shape ending in 3) to Lab (L in [0, 100]).

    Example: ``rgb_to_lab(tf.ones([2, 2, 3]))[..., 0]`` is 100.
    """
    rgb = tf.convert_to_tensor(rgb, dtype=tf.float32)
    xyz = _apply(_matrix(_XYZ_FROM_RGB), _srgb_to_linear(rgb))
    fx, fy, fz = tf.unstack(_lab_f(xyz / tf.constant(_D65)), axis=-1)
    return tf.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def lab_to_rgb(lab: tf.Tensor) -> tf.Tensor:
    """Convert Lab to float sRGB in [0, 1], clipping out-of-gamut colours as scikit-image does."""
    lab = tf.convert_to_tensor(lab, dtype=tf.float32)
    l, a, b = tf.unstack(lab, axis=-1)
    fy = (l + 16.0) / 116.0
    f = tf.stack([a / 500.0 + fy, fy, tf.maximum(fy - b / 200.0, 0.0)], axis=-1)
    xyz = tf.where(f > 0.2068966, f * f * f, (f - 16.0 / 116.0) / _KAPPA) * tf.constant(_D65)
    rgb_from_xyz = tf.linalg.inv(_matrix(_XYZ_FROM_RGB))
    return tf.clip_by_value(_linear_to_srgb(_apply(rgb_from_xyz, xyz)), 0.0, 1.0)


def split_lab(lab: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Split Lab into the network's normalised input L and target ab (both roughly in [-1, 1])."""
    return (lab[..., :1] - L_CENT) / L_NORM, lab[..., 1:] / AB_NORM


def join_lab(l_norm: tf.Tensor, ab_norm: tf.Tensor) -> tf.Tensor:
    """Inverse of :func:`split_lab`: normalised L and ab back to one Lab tensor."""
    return tf.concat([l_norm * L_NORM + L_CENT, ab_norm * AB_NORM], axis=-1)


def rgb_to_l(rgb: tf.Tensor) -> tf.Tensor:
    """Normalised L (..., 1) of float sRGB (..., 3): what the network sees. Only Y is computed (L
    is f(Y / Y_white), and Y_white is 1), not X and Z: a third of :func:`rgb_to_lab`'s cube roots,
    which matters at full resolution (a 24 MP scan's L is taken twice)."""
    rgb = tf.convert_to_tensor(rgb, dtype=tf.float32)
    y = _apply(_matrix(_XYZ_FROM_RGB[1:2]), _srgb_to_linear(rgb))
    return (116.0 * _lab_f(y) - 16.0 - L_CENT) / L_NORM


def l_ab_to_rgb(l_norm: tf.Tensor, ab_norm: tf.Tensor) -> tf.Tensor:
    """RGB in [0, 1] from normalised L and normalised ab (joined into Lab, then converted): a
    prediction with the predicted ab, the grayscale baseline with ab = 0."""
    return lab_to_rgb(join_lab(l_norm, ab_norm))
