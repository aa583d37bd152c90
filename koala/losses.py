"""Losses over normalised ab: pure functions over tensors, each with a thin Keras ``Loss`` class.

The classes are registered for serialisation (package "koala") and keep their keyword arguments
in ``get_config()``, so a compiled ``.keras`` file loads back with its loss. Configs name a loss
and its arguments (``train.loss``, ``train.loss_args``); :func:`get_loss` builds it::

    get_loss("huber", delta=0.2)        # Huber(delta=0.2)
    get_loss("l1", delta=0.2)           # ValueError: loss 'l1' takes no argument(s) ['delta']; it takes []

The pure functions keep their names: ``.keras`` files compiled with a function before the
classes existed refer to ``koala.losses.l1`` and friends.

:class:`RebalancedCrossEntropy` is zhang16's loss over logits (built by that model's
``make_loss`` hook from an ab prior, not by name).
"""
from __future__ import annotations

import inspect

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from koala.color import AB_NORM, NEIGHBOURS, SIGMA, ab_bins, nearest_bins, pixel_weights

HUBER_DELTA = 0.1  # normalised ab: errors above 11 Lab units count linearly

# SSIM as Wang et al. (2004) and tf.image.ssim define it: 11x11 Gaussian window (sigma 1.5), no padding.
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
AB_RANGE = 2.0  # normalised ab spans [-1, 1]: SSIM's dynamic range L
SSIM_WEIGHT = 1e-3  # lambda in L1 (or MSE) + lambda * (1 - SSIM)

LOGITS_STRIDE = 4  # zhang16's logits are at 1/4 of the input's resolution


# --- Pure functions: (y_true, y_pred) -> one value per image (N,) ---------------------------------


def l1(y_true, y_pred):
    """Mean absolute error: the median of the plausible colours, less greyed than MSE's mean."""
    return ops.mean(ops.abs(y_true - y_pred), axis=(1, 2, 3))


def mse(y_true, y_pred):
    """Mean squared error: the mean of the plausible colours (greyish where colours are ambiguous)."""
    return ops.mean(ops.square(y_true - y_pred), axis=(1, 2, 3))


def huber(y_true, y_pred, delta: float = HUBER_DELTA):
    """Squared below ``delta`` (default 0.1), absolute above, divided by ``delta`` so that large
    errors cost exactly what L1 charges (less delta / 2): ``huber(0, 1, delta) == 1 - delta / 2``."""
    err = ops.abs(y_true - y_pred)
    quad = ops.minimum(err, delta)
    return ops.mean(0.5 * quad**2 / delta + (err - quad), axis=(1, 2, 3))


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """SSIM's normalised 1-D Gaussian of ``size`` taps (default 11, sigma 1.5), float64; its
    outer product with itself is the 2-D window."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    window = np.exp(-0.5 * (x / sigma) ** 2)
    return window / window.sum()


def ssim_map(mu_x, mu_y, squares, cross, max_val: float):
    """Wang et al. (2004)'s SSIM at each position from the window's local means: ``mu_x``,
    ``mu_y``, ``squares`` (of x^2 + y^2) and ``cross`` (of x * y); ``max_val`` is the dynamic
    range that sets the constants K1, K2. Plain arithmetic, so the loss (tensors) and the metric
    (float64 arrays) share it."""
    c1, c2 = (SSIM_K1 * max_val) ** 2, (SSIM_K2 * max_val) ** 2
    mu_cross = 2.0 * mu_x * mu_y
    mu_squares = mu_x**2 + mu_y**2
    luminance = (mu_cross + c1) / (mu_squares + c1)
    return luminance * (2.0 * cross - mu_cross + c2) / (squares - mu_squares + c2)


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
    g = gaussian_window()
    window = np.tile(np.outer(g, g)[:, :, None, None], (1, 1, y_true.shape[-1], 1)).astype(np.float32)

    def blur(x):
        return ops.depthwise_conv(x, window, strides=1, padding="valid")

    local = ssim_map(blur(y_true), blur(y_pred), blur(y_true**2 + y_pred**2), blur(y_true * y_pred), max_val)
    return ops.mean(local, axis=(1, 2, 3))


def l1_ssim(y_true, y_pred, ssim_weight: float = SSIM_WEIGHT):
    """L1 + ssim_weight * (1 - SSIM) (default weight 1e-3): ResUNet-34's loss.

    Example: ``l1_ssim(ab, ab)`` is 0; a constant error d on flat images gives about |d| + 1e-3.
    """
    return l1(y_true, y_pred) + ssim_weight * (1.0 - ssim(y_true, y_pred))


def mse_ssim(y_true, y_pred, ssim_weight: float = SSIM_WEIGHT):
    """MSE + ssim_weight * (1 - SSIM) (default weight 1e-3), for fine-tuning after l1_ssim."""
    return mse(y_true, y_pred) + ssim_weight * (1.0 - ssim(y_true, y_pred))


def rebalanced_cross_entropy(ab_true, logits, weights, sigma: float = SIGMA, k: int = NEIGHBOURS,
                             stride: int = LOGITS_STRIDE) -> tf.Tensor:
    """Zhang et al. (2016)'s loss, one value per image (N,).

    ``ab_true``: normalised ab (N, H, W, 2) at the input's resolution; ``logits``: (N, H/stride,
    W/stride, Q) over :func:`koala.color.ab_bins`; ``weights``: the per-bin rebalancing weights
    (Q,), from :func:`koala.color.rebalance_weights`. The target is average-pooled to the logits'
    size (``stride`` default 4), soft-encoded over its ``k`` (default 5) nearest bins with a
    Gaussian of ``sigma`` (default 5) Lab units, and each pixel's cross-entropy is scaled by the
    weight of its nearest bin.
    """
    ab = tf.nn.avg_pool2d(tf.cast(ab_true, tf.float32), stride, stride, "VALID") * AB_NORM
    indices, target = nearest_bins(ab, ab_bins(), sigma, k)
    log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
    cross_entropy = -tf.reduce_sum(target * tf.gather(log_probs, indices, batch_dims=3), axis=-1)
    return tf.reduce_mean(pixel_weights(ab, ab_bins(), weights) * cross_entropy, axis=(1, 2))


# --- Keras wrappers: the function and its keyword arguments, kept in get_config() ------------------


def _number(what: str, value, allow_zero: bool = False) -> float:
    """``value`` as a float that is > 0 (>= 0 with ``allow_zero``), or a one-line ValueError."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number; got {value!r}") from None
    if not np.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        raise ValueError(f"{what} must be {'>= 0' if allow_zero else '> 0'}; got {value!r}")
    return number


@keras.saving.register_keras_serializable(package="koala")
class L1(keras.losses.Loss):
    """:func:`l1` as a Keras loss. Example: ``model.compile(loss=L1())``."""

    def __init__(self, name: str = "l1", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return l1(y_true, y_pred)


@keras.saving.register_keras_serializable(package="koala")
class MSE(keras.losses.Loss):
    """:func:`mse` as a Keras loss."""

    def __init__(self, name: str = "mse", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return mse(y_true, y_pred)


@keras.saving.register_keras_serializable(package="koala")
class Huber(keras.losses.Loss):
    """:func:`huber` as a Keras loss; ``delta`` (default 0.1, normalised ab) must be > 0.

    Not ``keras.losses.Huber``: this one is divided by ``delta``, so large errors cost what L1 charges.
    """

    def __init__(self, delta: float = HUBER_DELTA, name: str = "huber", **kwargs):
        super().__init__(name=name, **kwargs)
        self.delta = _number("huber's delta", delta)

    def call(self, y_true, y_pred):
        return huber(y_true, y_pred, self.delta)

    def get_config(self) -> dict:
        return {**super().get_config(), "delta": self.delta}


@keras.saving.register_keras_serializable(package="koala")
class L1SSIM(keras.losses.Loss):
    """:func:`l1_ssim` as a Keras loss; ``ssim_weight`` (default 1e-3) must be >= 0."""

    def __init__(self, ssim_weight: float = SSIM_WEIGHT, name: str = "l1_ssim", **kwargs):
        super().__init__(name=name, **kwargs)
        self.ssim_weight = _number("l1_ssim's ssim_weight", ssim_weight, allow_zero=True)

    def call(self, y_true, y_pred):
        return l1_ssim(y_true, y_pred, self.ssim_weight)

    def get_config(self) -> dict:
        return {**super().get_config(), "ssim_weight": self.ssim_weight}


@keras.saving.register_keras_serializable(package="koala")
class MSESSIM(keras.losses.Loss):
    """:func:`mse_ssim` as a Keras loss; ``ssim_weight`` (default 1e-3) must be >= 0."""

    def __init__(self, ssim_weight: float = SSIM_WEIGHT, name: str = "mse_ssim", **kwargs):
        super().__init__(name=name, **kwargs)
        self.ssim_weight = _number("mse_ssim's ssim_weight", ssim_weight, allow_zero=True)

    def call(self, y_true, y_pred):
        return mse_ssim(y_true, y_pred, self.ssim_weight)

    def get_config(self) -> dict:
        return {**super().get_config(), "ssim_weight": self.ssim_weight}


@keras.saving.register_keras_serializable(package="koala")
class RebalancedCrossEntropy(keras.losses.Loss):
    """:func:`rebalanced_cross_entropy` as a Keras loss, for zhang16's logits.

    ``weights``: one per ab bin, from :func:`koala.color.rebalance_weights`; ``sigma`` (default 5)
    and ``neighbours`` (default 5): the soft encoding; ``stride`` (default 4): the logits' stride.
    """

    def __init__(self, weights, sigma: float = SIGMA, neighbours: int = NEIGHBOURS, stride: int = LOGITS_STRIDE,
                 name: str = "rebalanced_cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.class_weights = [float(w) for w in np.asarray(weights, np.float32)]
        if len(self.class_weights) != len(ab_bins()):
            raise ValueError(f"expected {len(ab_bins())} weights, one per ab bin; got {len(self.class_weights)}")
        self.sigma = float(sigma)
        self.neighbours = int(neighbours)
        self.stride = int(stride)

    def call(self, y_true, y_pred):
        return rebalanced_cross_entropy(y_true, y_pred, self.class_weights, self.sigma, self.neighbours, self.stride)

    def get_config(self) -> dict:
        return {**super().get_config(), "weights": self.class_weights, "sigma": self.sigma,
                "neighbours": self.neighbours, "stride": self.stride}


# --- By name, as configs give them ----------------------------------------------------------------

LOSSES: dict[str, type[keras.losses.Loss]] = {"l1": L1, "mse": MSE, "huber": Huber, "l1_ssim": L1SSIM,
                                              "mse_ssim": MSESSIM}
_KERAS_ARGUMENTS = ("self", "name", "reduction", "dtype")  # keras.losses.Loss's own, not the loss's


def loss_arguments(name: str) -> list[str]:
    """The keyword arguments that loss ``name`` takes (its class's, less Keras' own)."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose from {sorted(LOSSES)}")
    parameters = inspect.signature(LOSSES[name].__init__).parameters.values()
    return [p.name for p in parameters if p.name not in _KERAS_ARGUMENTS and p.kind is p.POSITIONAL_OR_KEYWORD]


def check_arguments(what: str, args, accepted) -> None:
    """A one-line ValueError when ``args`` has keys outside ``accepted``, naming both."""
    unknown = sorted(set(args) - set(accepted))
    if unknown:
        raise ValueError(f"{what} takes no argument(s) {unknown}; it takes {sorted(accepted)}")


def get_loss(name: str, /, **args) -> keras.losses.Loss:
    """The loss ``name`` (one of :data:`LOSSES`) built with ``args``.

    Unknown names and arguments are a ValueError that names them, e.g.
    ``get_loss("l1", delta=0.2)``: "loss 'l1' takes no argument(s) ['delta']; it takes []".
    """
    check_arguments(f"loss {name!r}", args, loss_arguments(name))
    return LOSSES[name](**args)
