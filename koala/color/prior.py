"""The empirical ab prior of a photo collection: how often each in-gamut ab bin occurs.

Zhang et al. (2016) rebalance their loss by the rarity of each colour (see
:func:`koala.color.rebalance_weights`); the rarity comes from this prior. ``data_tools.ab_prior``
computes it once from every training photo; zhang16's loss hook estimates a quick one from a few
hundred photos when none is given.

Example::

    prior, n = prior_from_source("photos/train.txt", max_images=256)   # (Q,) float32, sums to 1
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from koala.color.gamut import ab_bins, ab_histogram
from koala.color.lab import rgb_to_lab
from koala.images import evenly_spaced, list_images, load_shrunk, to_float_rgb

PRIOR_SIZE = 64  # short side (px) at which photos are read: the colour histogram barely depends on it


def estimate_prior(paths: list[str], size: int = PRIOR_SIZE, progress: bool = False) -> np.ndarray:
    """Empirical probability (Q,) of each ab bin over the pixels of ``paths``.

    Photos are read with :func:`koala.images.load_rgb` and shrunk to a short side of ``size``
    (default 64) px: the colour histogram barely changes and reading is much faster.
    Unreadable files are skipped with a warning; ``progress`` (default False) shows a bar.
    """
    bins = ab_bins()
    counts = np.zeros(len(bins), np.float64)
    for path in tqdm(paths, disable=not progress, unit="image"):
        rgb = load_shrunk(path, size)
        if rgb.size:
            counts += ab_histogram(rgb_to_lab(to_float_rgb(rgb))[..., 1:], bins).numpy()
    if counts.sum() == 0:
        raise ValueError(f"no readable photos among {len(paths)} path(s)")
    return (counts / counts.sum()).astype(np.float32)


def load_prior(path: str | Path) -> np.ndarray:
    """A prior saved by ``data_tools.ab_prior``, validated against the current bins and normalised."""
    prior = np.load(path)
    q = len(ab_bins())
    if prior.shape != (q,) or not np.all(np.isfinite(prior)) or (prior < 0).any() or prior.sum() <= 0:
        raise ValueError(f"{path}: expected {q} non-negative probabilities, one per ab bin; got shape {prior.shape}")
    return (prior / prior.sum()).astype(np.float32)


def prior_from_source(source: str, max_images: int | None = None, size: int = PRIOR_SIZE,
                      progress: bool = False) -> tuple[np.ndarray, int]:
    """The prior of a folder, split file (.txt) or image, and how many photos it came from.
    ``max_images`` (default: all) are taken evenly spaced over the sorted list, so every
    subfolder counts; ``size`` and ``progress`` as in :func:`estimate_prior`."""
    paths = list_images(source)
    if max_images:
        paths = evenly_spaced(paths, max_images)
    return estimate_prior(paths, size, progress), len(paths)
