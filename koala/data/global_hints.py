"""Global hints, as ideepcolor's global hints network takes them (Zhang, Zhu et al. 2017, sec. 3.3):
a photo-wide ab distribution over the gamut's bins (:func:`koala.color.ab_bins`, 309) plus a
"given" flag, one vector of :data:`GLOBAL_HINT_SIZE` per photo.

Where it comes from:

* in training, each crop's own colours (:func:`simulate_global_hints`), given about half the time
  (``GIVEN_P``), so the model learns both to follow a distribution and to do without one;
* from a person, a reference photo (:func:`reference_distribution`) or a palette of colours with
  optional weights (:func:`palette_distribution`, :func:`parse_palette`).

Every distribution is blurred over the bins by a Gaussian of ``BLUR_SIGMA`` Lab units: a training
crop's exact histogram would teach the model to copy colours bin for bin, and then only the photo's
own colours would help; blurred, a reference photo of a *similar* scene says "greens and a blue
sky" and the model places them. ab is average-pooled ``POOL`` x ``POOL`` first, so that pixel noise
and the fringes of edges do not count as colours.

Example::

    vector = global_hint(reference_distribution(rgb))              # (310,), given
    batch = simulate_global_hints(ab_norm, seed=tf.constant([3, 0], tf.int64))   # training
"""
from __future__ import annotations

import os
import re

import numpy as np
import tensorflow as tf

from koala.color import AB_NORM, ab_bins, nearest_bins, rgb_to_lab
from koala.images import ImageError, as_pixels, resize_short_side, to_float_rgb, to_uint8
from koala.knobs import MAX_PALETTE

GLOBAL_HINTS_INPUT_NAME = "global_hints"
GLOBAL_BINS = 309  # len(ab_bins()): the in-gamut bins of the 10-unit ab grid
GLOBAL_HINT_SIZE = GLOBAL_BINS + 1  # the distribution and the "given" flag
GIVEN_P = 0.5  # share of training crops that get their own colours as the global hint
BLUR_SIGMA = 10.0  # Lab units: the distribution is blurred so that similar colours count too
POOL = 4  # ab is average-pooled this much before the histogram
MIN_CHROMA = 5.0  # a*b* chroma below which a pixel is gray
COLOUR_PERCENTILE = 99  # a reference with 99% of its pixels gray has no colour to give (noise aside)
_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")


class GlobalHintError(ValueError):
    """A reference or palette that cannot be used; the message says which and why."""


def _blur_matrix(sigma: float = BLUR_SIGMA) -> tf.Tensor:
    """(Q, Q): row i spreads bin i's mass over the bins by a Gaussian of ``sigma``, summing to 1."""
    bins = tf.constant(ab_bins(), tf.float32)
    d2 = tf.reduce_sum((bins[:, None, :] - bins[None, :, :]) ** 2, axis=-1)
    kernel = tf.exp(-d2 / (2.0 * sigma**2))
    return kernel / tf.reduce_sum(kernel, axis=1, keepdims=True)


def distribution_from_ab(ab: tf.Tensor, sigma: float = BLUR_SIGMA) -> tf.Tensor:
    """Blurred ab distributions (B, Q) of photos' ab in Lab units (B, H, W, 2): ab pooled ``POOL``
    x ``POOL`` (no pooling below that size), soft-encoded over the bins, averaged, then blurred."""
    ab = tf.cast(ab, tf.float32)
    if ab.shape[1] is None or ab.shape[1] >= POOL:
        ab = tf.nn.avg_pool2d(ab, POOL, POOL, "VALID")
    indices, weights = nearest_bins(ab, ab_bins())
    batch = tf.shape(ab)[0]
    photo = tf.range(batch)[:, None, None, None] * GLOBAL_BINS  # each photo its own segments
    counts = tf.math.unsorted_segment_sum(tf.reshape(weights, [-1]), tf.reshape(indices + photo, [-1]),
                                          batch * GLOBAL_BINS)
    counts = tf.reshape(counts, [batch, GLOBAL_BINS])
    pixels = tf.reduce_sum(counts, axis=1, keepdims=True)
    return tf.linalg.matmul(counts / pixels, _blur_matrix(sigma))


def global_hint(distribution, given=True) -> tf.Tensor:
    """The model's input: ``distribution`` (..., Q) and the flag ``given`` (bool or (...,) of 0/1)
    -> (..., Q + 1). A photo without a global hint has zeros and flag 0."""
    distribution = tf.cast(distribution, tf.float32)
    flag = tf.cast(given, tf.float32) * tf.ones(tf.shape(distribution)[:-1])
    return tf.concat([distribution * flag[..., None], flag[..., None]], axis=-1)


def simulate_global_hints(ab_norm: tf.Tensor, seed: tf.Tensor, given_p: float = GIVEN_P) -> tf.Tensor:
    """Training's global hints (B, Q + 1) for a batch of normalised ab (B, H, W, 2): each crop's
    own blurred distribution, given with probability ``given_p`` (stateless ``seed``, 2 ints)."""
    given = tf.random.stateless_uniform([tf.shape(ab_norm)[0]], seed) < given_p
    return global_hint(distribution_from_ab(tf.cast(ab_norm, tf.float32) * AB_NORM), given)


def reference_distribution(rgb: np.ndarray, sigma: float = BLUR_SIGMA) -> np.ndarray:
    """The blurred ab distribution (Q,) of a reference photo, float RGB (H, W, 3) in [0, 1].
    A reference without colour (99% of its pixels below ``MIN_CHROMA``) is a GlobalHintError:
    it would only ask for gray."""
    lab = rgb_to_lab(tf.convert_to_tensor(np.asarray(rgb, np.float32)[None]))
    ab = lab[..., 1:]
    if np.percentile(tf.norm(ab, axis=-1).numpy(), COLOUR_PERCENTILE) < MIN_CHROMA:
        raise GlobalHintError("reference: the photo has no colour (it is grayscale), so it cannot give any")
    return distribution_from_ab(ab, sigma)[0].numpy()


def parse_palette(value) -> tuple[np.ndarray, np.ndarray]:
    """A palette as a person gives it -> (colours (K, 3) float RGB in [0, 1], weights (K,) summing
    to 1). ``value``: "#c02020,#2050a0" or "#c02020:2,#2050a0:1" (weights after a colon), or a list
    of "#rrggbb" strings, or of (colour, weight) pairs. At most ``MAX_PALETTE`` entries."""
    entries = [e.strip() for e in value.split(",")] if isinstance(value, str) else list(value)
    if not entries or entries == [""]:
        raise GlobalHintError("palette: no colours given (expected e.g. '#c02020,#2050a0')")
    if len(entries) > MAX_PALETTE:
        raise GlobalHintError(f"palette: {len(entries)} colours; at most {MAX_PALETTE}")
    colours, weights = [], []
    for i, entry in enumerate(entries, 1):
        colour, weight = _palette_entry(entry, i)
        colours.append([int(colour[k:k + 2], 16) / 255.0 for k in (1, 3, 5)])
        weights.append(weight)
    weights = np.asarray(weights, np.float64)
    return np.asarray(colours, np.float32), (weights / weights.sum()).astype(np.float32)


def _palette_entry(entry, position: int) -> tuple[str, float]:
    """One palette entry -> ("#rrggbb", weight), or a GlobalHintError naming it."""
    if isinstance(entry, str) and ":" in entry:
        entry = tuple(entry.split(":", 1))
    colour, weight = (entry, 1.0) if isinstance(entry, str) else (tuple(entry) + (None,))[:2]
    if not isinstance(colour, str) or not _COLOUR.fullmatch(colour.strip()):
        raise GlobalHintError(f"palette: entry {position} ({colour!r}) is not a colour; expected #rrggbb")
    try:
        weight = float(weight)
    except (TypeError, ValueError):
        weight = float("nan")
    if not np.isfinite(weight) or weight <= 0:
        raise GlobalHintError(f"palette: entry {position} ({colour.strip()}) has weight {entry[1]!r}; "
                              "expected a number > 0")
    return colour.strip(), weight


def palette_distribution(colours: np.ndarray, weights: np.ndarray, sigma: float = BLUR_SIGMA) -> np.ndarray:
    """The blurred ab distribution (Q,) of palette ``colours`` (K, 3) RGB in [0, 1] with ``weights``
    (K,): each colour's a*b* (its lightness is the photo's business) weighted, then blurred."""
    lab = rgb_to_lab(tf.convert_to_tensor(np.asarray(colours, np.float32)[None, None]))  # (1, 1, K, 3)
    indices, soft = nearest_bins(lab[0, 0, :, 1:], ab_bins())
    counts = tf.math.unsorted_segment_sum(tf.reshape(soft * np.asarray(weights, np.float32)[:, None], [-1]),
                                          tf.reshape(indices, [-1]), GLOBAL_BINS)
    return tf.linalg.matvec(_blur_matrix(sigma), counts, transpose_a=True).numpy()


REFERENCE_SIDE = 256  # a reference's short side is shrunk to this first: its colours count, not its detail


class NoGlobalHintInputsError(GlobalHintError):
    """A reference or palette for a model without a global-hint input; ``reason`` is the message
    without its ``reference/palette:``."""

    def __init__(self, model: str):
        self.reason = (f"this model ({model}) has no global-hint input, so it takes no reference or palette; "
                       "use the bundled default or a model trained with global_hints: true")
        super().__init__(f"reference/palette: {self.reason}")


def reference_hint(source, name: str | None = None) -> np.ndarray:
    """A reference photo -> the model's global hint (:data:`GLOBAL_HINT_SIZE`,), given. ``source``:
    a path, encoded bytes, a PIL image, or an array (H, W) or (H, W, 3|4) of uint8, uint16 or float
    in [0, 1]. Shrunk to a short side of ``REFERENCE_SIDE`` first. A file that is no usable photo,
    or a photo without colour, is a :class:`GlobalHintError` naming it (as ``name``, default: the
    path, else the kind of object)."""
    if name is None:
        name = str(source) if isinstance(source, (str, os.PathLike)) else f"<{type(source).__name__}>"
    try:
        pixels = as_pixels(source)
    except ImageError as e:
        raise GlobalHintError(f"reference {name}: {e.reason}") from None
    except ValueError as e:  # an array of another shape
        raise GlobalHintError(f"reference {name}: {e}") from None
    small = to_float_rgb(resize_short_side(to_uint8(to_float_rgb(pixels)), REFERENCE_SIDE, upscale=False))
    try:
        return global_hint(reference_distribution(small)).numpy()
    except GlobalHintError:
        raise GlobalHintError(f"reference {name}: the photo has no colour (it is grayscale), so it cannot "
                              "give any; give a colour photo") from None


def palette_hint(value) -> np.ndarray:
    """A palette as :func:`parse_palette` takes it -> the model's global hint (:data:`GLOBAL_HINT_SIZE`,)."""
    return global_hint(palette_distribution(*parse_palette(value))).numpy()
