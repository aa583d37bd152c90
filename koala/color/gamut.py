"""The quantised ab gamut of Zhang, Isola & Efros (2016) and the maths around it, as TF ops.

Colorization as classification: ab space is cut into a grid of ``GRID`` = 10 Lab units and the
network predicts a distribution over the Q grid points ("bins") that sRGB colours can reach.
The steps, each a small function here:

- :func:`ab_bins`: the Q in-gamut bin centres (Lab units).
- :func:`soft_encode`: a true ab -> a target distribution over its ``NEIGHBOURS`` = 5 nearest
  bins, weighted by a Gaussian of ``SIGMA`` = 5 Lab units.
- :func:`rebalance_weights`: per-bin loss weights from the empirical prior, so rare saturated
  colours are not drowned by the common desaturated ones (``PRIOR_LAMBDA`` = 0.5).
- :func:`nearest_bin`: each pixel's nearest bin (the one rule the loss weights, the prior's
  histogram and the bin accuracy metric share).
- :func:`pixel_weights`: each pixel's weight, that of its nearest bin.
- :func:`annealed_mean`: a predicted distribution -> one ab (``TEMPERATURE`` = 0.38).

Every ab here is in Lab units (about -110..110), not the network's normalised ab: multiply
normalised ab by ``AB_NORM`` first.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import tensorflow as tf

from koala.color.lab import rgb_to_lab

GRID = 10  # bin spacing in Lab units
SIGMA = 5.0  # Gaussian of the soft encoding and of the prior's smoothing, Lab units
NEIGHBOURS = 5  # bins that share a pixel's soft-encoded target
PRIOR_LAMBDA = 0.5  # weight of the uniform distribution mixed into the prior
TEMPERATURE = 0.38  # annealed-mean temperature of the paper: vivid but consistent colours
SRGB_LEVELS = 256  # 8-bit sRGB: the colours whose ab decide the gamut


def _cube_surface(levels: int) -> np.ndarray:
    """RGB points on the six faces of the unit cube, ``levels`` per side, shape (N, 3).

    The ab projection of the sRGB solid equals that of its surface (a vertical line through
    the solid meets its boundary), so the faces are enough and 40x cheaper than the cube.
    """
    axis = np.linspace(0.0, 1.0, levels, dtype=np.float32)
    u, v = (g.ravel() for g in np.meshgrid(axis, axis, indexing="ij"))
    faces = []
    for fixed in range(3):
        for value in (0.0, 1.0):
            columns = [u, v]
            columns.insert(fixed, np.full_like(u, value))
            faces.append(np.stack(columns, axis=-1))
    return np.concatenate(faces)


@functools.lru_cache(maxsize=None)
def _computed_bins() -> np.ndarray:
    # init_scope runs this eagerly even when the first caller is a function being traced (a fresh
    # process's colorize graph or SavedModel export): there a symbolic tensor has no .numpy().
    with tf.init_scope():
        ab = rgb_to_lab(_cube_surface(SRGB_LEVELS)).numpy()[:, 1:]
    corner = np.floor(ab / GRID)  # the lower-left grid point of each colour's grid square
    corner = np.unique(corner[:, 0] + 1j * corner[:, 1])  # as a + ib: a 1-D unique, 3x faster
    corner = np.stack([corner.real, corner.imag], axis=-1).astype(np.int64)
    cells = np.concatenate([corner + offset for offset in ((0, 0), (0, 1), (1, 0), (1, 1))])
    bins = (np.unique(cells, axis=0) * GRID).astype(np.float32)
    bins.flags.writeable = False
    return bins


@functools.lru_cache(maxsize=None)
def _loaded_bins(path: str) -> np.ndarray:
    bins = np.load(path)
    if bins.ndim != 2 or bins.shape[1] != 2 or len(bins) < NEIGHBOURS:
        raise ValueError(f"{path}: expected ab bin centres of shape (Q, 2) with Q >= {NEIGHBOURS}; got {bins.shape}")
    if not np.all(np.isfinite(bins)):
        raise ValueError(f"{path}: bin centres must be finite numbers")
    bins = bins.astype(np.float32)
    bins.flags.writeable = False
    return bins


def ab_bins(path: str | Path | None = None) -> np.ndarray:
    """The in-gamut ab bin centres, float32 (Q, 2) in Lab units, read-only and cached.

    Rule: a grid point (a, b) (multiples of ``GRID`` = 10) is a bin when it is one of the four
    grid points around the ab of some 8-bit sRGB colour (D65, our :func:`rgb_to_lab`). This
    gives Q = 309, a subset of the paper's 313 (``pts_in_hull.npy``; the 4 extra there are
    (40, 90), (100, -90), (100, -10), (100, 0), each 11-13 Lab units, more than a grid step,
    from every sRGB colour).
    Keeping the surrounding grid points, rather than only the nearest one (which gives 261),
    puts every in-gamut ab inside the bins' hull, so the annealed mean can reach saturated colours.

    ``path``: a ``pts_in_hull.npy``-style file of shape (Q, 2) to read instead (e.g. the
    paper's), for the functions below; the zhang16 model always uses the computed bins.

    Example: ``len(ab_bins())`` is 309 and ``[0, 0]`` is among them.
    """
    return _computed_bins() if path is None else _loaded_bins(str(Path(path).resolve()))


def _squared_distances(ab: tf.Tensor, bins) -> tf.Tensor:
    """|ab - bin|^2 for every bin: (..., 2) -> (..., Q)."""
    ab = tf.cast(ab, tf.float32)
    bins = tf.cast(bins, tf.float32)
    cross = tf.tensordot(ab, tf.transpose(bins), axes=1)
    d2 = tf.reduce_sum(ab**2, -1, keepdims=True) - 2.0 * cross + tf.reduce_sum(bins**2, -1)
    return tf.maximum(d2, 0.0)


def nearest_bins(ab: tf.Tensor, bins, sigma: float = SIGMA, k: int = NEIGHBOURS) -> tuple[tf.Tensor, tf.Tensor]:
    """The sparse soft encoding: indices (..., k) of the k nearest bins, nearest first, and
    their Gaussian weights (..., k), summing to 1. ab in Lab units, shape (..., 2)."""
    if sigma <= 0 or k < 1:
        raise ValueError(f"soft encoding needs sigma > 0 and k >= 1; got sigma={sigma}, k={k}")
    neg_d2, indices = tf.math.top_k(-_squared_distances(ab, bins), k=k)
    # Shift by the nearest distance before exp: same weights, no underflow far from the gamut.
    logits = (neg_d2 - neg_d2[..., :1]) / (2.0 * sigma**2)
    return indices, tf.nn.softmax(logits, axis=-1)


def soft_encode(ab: tf.Tensor, bins, sigma: float = SIGMA, k: int = NEIGHBOURS) -> tf.Tensor:
    """Target distribution over the Q bins for ab in Lab units: (..., 2) -> (..., Q).

    The ``k`` (default 5) nearest bins get weights from a Gaussian of ``sigma`` (default 5)
    Lab units on their distance; the rest get 0; each distribution sums to 1.

    Example: ``soft_encode([[0., 0.]], ab_bins())`` peaks at the bin (0, 0).
    """
    indices, weights = nearest_bins(ab, bins, sigma, k)
    q = tf.shape(tf.convert_to_tensor(bins))[0]
    return tf.reduce_sum(tf.one_hot(indices, q) * weights[..., None], axis=-2)


def smooth_prior(prior, bins, sigma: float = SIGMA) -> tf.Tensor:
    """The prior smoothed by a Gaussian of ``sigma`` Lab units over the bins.

    Each bin takes the Gaussian-weighted average of its neighbours' probabilities (a normalised
    convolution, so the gamut's edge is not darkened and a uniform prior stays uniform).
    """
    prior = tf.cast(prior, tf.float32)
    if sigma <= 0:
        return prior / tf.reduce_sum(prior)
    kernel = tf.exp(-_squared_distances(bins, bins) / (2.0 * sigma**2))
    smoothed = tf.linalg.matvec(kernel, prior) / tf.reduce_sum(kernel, axis=-1)
    return smoothed / tf.reduce_sum(smoothed)


def rebalance_weights(prior, bins, lam: float = PRIOR_LAMBDA, sigma: float = SIGMA) -> tf.Tensor:
    """Per-bin loss weights (Q,) that boost rare colours (the paper's eq. 4).

    ``prior``: the empirical probability of each bin (Q,), e.g. from ``data_tools.ab_prior``.
    The prior is smoothed (:func:`smooth_prior`, ``sigma`` default 5), mixed with the uniform
    distribution (``lam`` default 0.5: ``(1 - lam) * p + lam / Q``), inverted, and scaled so
    the expected weight under the given prior is 1: the loss keeps its unweighted scale.
    (The paper states that expectation under the smoothed prior; the two differ slightly.)

    Example: a uniform prior gives all weights 1.
    """
    prior = tf.cast(prior, tf.float32)
    bins = tf.cast(bins, tf.float32)
    if prior.shape.rank != 1 or prior.shape[0] != bins.shape[0]:
        raise ValueError(f"prior must have one probability per bin ({bins.shape[0]},); got {prior.shape}")
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1]; got {lam}")
    if bool(tf.reduce_any(prior < 0)) or not float(tf.reduce_sum(prior)) > 0:
        raise ValueError("prior must be non-negative with a positive sum")
    prior = prior / tf.reduce_sum(prior)
    mixed = (1.0 - lam) * smooth_prior(prior, bins, sigma) + lam / float(bins.shape[0])
    weights = 1.0 / mixed
    return weights / tf.reduce_sum(prior * weights)


def nearest_bin(ab: tf.Tensor, bins) -> tf.Tensor:
    """Index of the nearest bin centre for every ab (Lab units): (..., 2) -> (...) int32; ties
    go to the lower index. Memory is (..., Q) floats: split very large images into chunks.

    The argmin of |bin|^2 - 2 ab . bin, which is |ab - bin|^2 less |ab|^2, the same for every
    bin: half the work of the full distances."""
    bins = tf.cast(bins, tf.float32)
    scores = tf.reduce_sum(bins**2, -1) - 2.0 * tf.tensordot(tf.cast(ab, tf.float32), tf.transpose(bins), axes=1)
    return tf.argmin(scores, axis=-1, output_type=tf.int32)


def pixel_weights(ab: tf.Tensor, bins, weights) -> tf.Tensor:
    """Each pixel's rebalancing weight, that of its nearest bin: (..., 2) Lab units -> (...)."""
    return tf.gather(tf.cast(weights, tf.float32), nearest_bin(ab, bins))


def ab_histogram(ab: tf.Tensor, bins) -> tf.Tensor:
    """Counts of pixels per nearest bin (Q,), float32: the raw material of the empirical prior."""
    nearest = nearest_bin(tf.reshape(ab, [-1, 2]), bins)
    q = tf.shape(tf.convert_to_tensor(bins))[0]
    return tf.cast(tf.math.bincount(nearest, minlength=q, maxlength=q), tf.float32)


def annealed_mean(logits: tf.Tensor, bins, temperature: float = TEMPERATURE) -> tf.Tensor:
    """One ab (Lab units) per pixel from logits over the bins: (..., Q) -> (..., 2).

    The mean of ``softmax(logits / T)``: T = 1 gives the distribution's mean (greyish), T -> 0
    its mode (vivid but patchy); the default 0.38 is the paper's compromise. Pass
    ``log(probabilities)`` to decode probabilities.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0; got {temperature}")
    probs = tf.nn.softmax(tf.cast(logits, tf.float32) / temperature, axis=-1)
    return tf.tensordot(probs, tf.cast(bins, tf.float32), axes=1)
