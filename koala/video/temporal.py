"""Colours that hold still from frame to frame: the network's ab, at its working size, averaged
over time within a shot, following the picture as it moves.

Each frame gets a running (exponential) average of the network's ab,
``ab_t = w * warp(ab_(t-1)) + (1 - w) * net_t``, with ``w = exp(-1 / (seconds * fps))`` where the
picture stands still. ``warp`` moves the average by the frame's global shift against the last
one (:func:`global_shift`: gate weave, a pan), so a film that weaves in the gate keeps its colours
on the things they belong to. Where the picture changes beyond that shift (something moves,
enters or leaves) ``w`` falls to 0 with the change of L that remains beyond grain's, so the
average never drags a colour along behind a moving object. A frame in which most of the picture changed
starts a new shot: the average is dropped, and the first frame after a cut has only its own
colours. L is never averaged: it is each frame's own, joined at full resolution afterwards.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# A change of normalised L this large (0.08: 8 Lab units, after removing the change of the whole
# frame's brightness, which old films flicker in) stops the average at that pixel; a change up to
# GRAIN_L (1.5 Lab units after the 3x3 mean: grain, what is left of gate weave) lets nothing go,
# and between the two the average lets go in proportion. Letting go in proportion from 0 left the
# benchmark's weaving still shot at 0.60x of frame by frame against 0.57x with colours frozen; from
# GRAIN_L it is 0.57x, every other shot's flicker lower too, the warping error unchanged.
MOTION_L = 0.08
GRAIN_L = 0.015
CUT_FRACTION = 0.4  # a frame where this share of the picture changed by MOTION_L or more starts a new shot
REFINE_STEPS = 2  # Gauss-Newton steps from phase correlation's whole pixels to a fraction of one


@dataclass(frozen=True)
class Previous:
    """The last frame's working-size L (h, w, 1) and the ab it was given (h, w, 2), normalised."""

    l: np.ndarray
    ab: np.ndarray


def past_weight(seconds: float, fps: float, option: str = "temporal") -> float:
    """Weight of the past in still parts of a shot: exp(-1 / (seconds * fps)), so that the
    average's time constant is ``seconds`` at any frame rate; 0 (frame by frame) for ``seconds`` 0.
    A negative ``seconds`` is refused, naming the option as the caller calls it."""
    if seconds < 0:
        raise ValueError(f"{option} {seconds:g}: must be 0 (frame by frame) or more (seconds)")
    return math.exp(-1.0 / (seconds * fps)) if seconds > 0 and fps > 0 else 0.0


def box_blur(image: np.ndarray) -> np.ndarray:
    """The 3x3 mean of an (h, w, C) array, edges repeated: grain mostly averages out."""
    padded = np.pad(image, ((1, 1), (1, 1), (0, 0)), mode="edge")
    height, width = image.shape[:2]
    return sum(padded[dy:dy + height, dx:dx + width] for dy in range(3) for dx in range(3)) / 9.0


def local_change(previous_l: np.ndarray, l: np.ndarray) -> np.ndarray:
    """|change of L| per pixel (h, w, 1) between two frames, after a 3x3 mean (grain) and without
    the change of the whole frame's brightness (exposure flicker): its median, which something
    moving over less than half of the picture does not shift."""
    change = box_blur(l - previous_l)
    return np.abs(change - np.median(change))


def mean_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean |a - b| without the mean difference (exposure flicker): how well two frames' L agree."""
    difference = a - b
    return float(np.mean(np.abs(difference - difference.mean())))


def is_cut(change: np.ndarray) -> bool:
    """Whether a frame whose :func:`local_change` is ``change`` starts a new shot."""
    return float(np.mean(change >= MOTION_L)) >= CUT_FRACTION


def _shifted_along(image: np.ndarray, distance: float, axis: int) -> np.ndarray:
    """``image`` moved by ``distance`` pixels along ``axis``, edges repeated, interpolated by
    Catmull-Rom's cubic: linear interpolation blurs fine texture by up to a tenth at half a pixel,
    enough for the moved L to differ from the frame's own along every edge."""
    size, distance = image.shape[axis], float(distance)  # a Python float keeps float32 images float32
    start = math.floor(-distance)
    t = -distance - start
    index = np.arange(size) + start
    if t == 0:
        return np.take(image, np.clip(index, 0, size - 1), axis=axis)
    weights = ((-t ** 3 + 2 * t ** 2 - t) / 2, (3 * t ** 3 - 5 * t ** 2 + 2) / 2,
               (-3 * t ** 3 + 4 * t ** 2 + t) / 2, (t ** 3 - t ** 2) / 2)
    return sum(weight * np.take(image, np.clip(index + offset, 0, size - 1), axis=axis)
               for offset, weight in zip((-1, 0, 1, 2), weights))


def shifted(image: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``image`` (h, w, ...) moved by ``shift`` (dy, dx) pixels (cubic), edges repeated: what was
    at (y, x) is at (y + dy, x + dx)."""
    if not np.any(shift):
        return image
    return _shifted_along(_shifted_along(image, shift[0], 0), shift[1], 1)


@lru_cache(maxsize=4)
def _window(height: int, width: int) -> np.ndarray:
    """A 2-D Hann window: phase correlation then sees no edges where the frame's sides meet."""
    return np.outer(np.hanning(height), np.hanning(width))


def phase_shift(previous: np.ndarray, current: np.ndarray) -> np.ndarray:
    """The whole-pixel shift (dy, dx) of ``current`` (h, w) against ``previous`` by phase
    correlation: the peak of the inverse of their cross-power spectrum, whitened. Frequencies
    weaker than the mean are whitened less (divided by their magnitude plus the mean), so that
    grain, where a frame has little texture, does not outvote the picture; (0, 0) for frames
    without any."""
    window = _window(*previous.shape)
    spectra = [np.fft.rfft2((image - image.mean()) * window) for image in (previous, current)]
    cross = spectra[1] * np.conj(spectra[0])
    magnitude = np.abs(cross)
    surface = np.fft.irfft2(cross / (magnitude + magnitude.mean() + 1e-12), s=previous.shape)
    peak = np.array(np.unravel_index(np.argmax(surface), surface.shape), np.float64)
    size = np.array(previous.shape)
    return np.where(peak > size / 2, peak - size, peak)


def refined_shift(previous: np.ndarray, current: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``shift`` (dy, dx) made sub-pixel by Gauss-Newton steps on the squared difference of
    ``current`` and ``previous`` moved by it (with a brightness offset, for exposure flicker),
    over the pixels that stay inside the frame."""
    for _ in range(REFINE_STEPS):
        moved = shifted(previous, shift)
        margin = int(np.ceil(np.abs(shift).max())) + 1
        inner = np.s_[margin:-margin, margin:-margin]
        gy, gx = (g[inner].ravel() for g in np.gradient(moved))
        design = np.stack([-gy, -gx, np.ones_like(gy)])  # (3, pixels): d(moved)/d(dy, dx, offset)
        residual = (current - moved)[inner].ravel()
        step = np.linalg.lstsq(design @ design.T, design @ residual, rcond=None)[0]
        shift = shift + step[:2]
    return shift


def global_shift(previous_l: np.ndarray, l: np.ndarray) -> np.ndarray:
    """How far the picture moved (dy, dx, in working-size pixels, sub-pixel) from ``previous_l``
    to ``l`` (h, w, 1): gate weave or a pan. Phase correlation finds the whole pixels, whatever the
    distance; :func:`refined_shift` the fraction."""
    previous, current = previous_l[..., 0].astype(np.float64), l[..., 0].astype(np.float64)
    return refined_shift(previous, current, phase_shift(previous, current))


def smooth(previous: Previous | None, l: np.ndarray, ab: np.ndarray, weight: float) -> Previous:
    """One frame's ab (h, w, 2) after the running average, with its L (h, w, 1): the ``previous``
    of the next frame. ``weight`` is :func:`past_weight`; the first frame of a film or of a shot
    keeps its own ab. The average is moved by the frame's :func:`global_shift` when that brings the
    last frame's L closer to this one's than standing still (a frame without texture, or a cut,
    can give a meaningless shift)."""
    if previous is None or weight <= 0:
        return Previous(l, ab)
    shift = global_shift(previous.l, l)
    moved_l = shifted(previous.l, shift)
    if mean_difference(moved_l, l) >= mean_difference(previous.l, l):
        shift, moved_l = np.zeros(2), previous.l
    change = local_change(moved_l, l)
    if is_cut(change):
        return Previous(l, ab)
    past = weight * np.clip((MOTION_L - change) / (MOTION_L - GRAIN_L), 0.0, 1.0)
    return Previous(l, past * shifted(previous.ab, shift) + (1.0 - past) * ab)
