"""Colours that hold still from frame to frame: the network's ab, at its working size, averaged
over time within a shot.

Each frame gets a running (exponential) average of the network's ab,
``ab_t = w * ab_(t-1) + (1 - w) * net_t``, with ``w = exp(-1 / (seconds * fps))`` where the picture
stands still. Where it changes (something moves, enters or leaves) ``w`` falls to 0 in proportion
to the change of L, so the average needs no optical flow and never drags a colour along behind a
moving object. A frame in which most of the picture changed starts a new shot: the average is
dropped, and the first frame after a cut has only its own colours. L is never averaged: it is
each frame's own, joined at full resolution afterwards.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# A change of normalised L this large (0.08: 8 Lab units, after removing the change of the whole
# frame's brightness, which old films flicker in) stops the average at that pixel; half of it halves it.
MOTION_L = 0.08
CUT_FRACTION = 0.4  # a frame where this share of the picture changed by MOTION_L or more starts a new shot


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


def is_cut(change: np.ndarray) -> bool:
    """Whether a frame whose :func:`local_change` is ``change`` starts a new shot."""
    return float(np.mean(change >= MOTION_L)) >= CUT_FRACTION


def smooth(previous: Previous | None, l: np.ndarray, ab: np.ndarray, weight: float) -> Previous:
    """One frame's ab (h, w, 2) after the running average, with its L (h, w, 1): the ``previous``
    of the next frame. ``weight`` is :func:`past_weight`; the first frame of a film or of a shot
    keeps its own ab."""
    if previous is None or weight <= 0:
        return Previous(l, ab)
    change = local_change(previous.l, l)
    if is_cut(change):
        return Previous(l, ab)
    past = weight * np.clip(1.0 - change / MOTION_L, 0.0, 1.0)
    return Previous(l, past * previous.ab + (1.0 - past) * ab)
