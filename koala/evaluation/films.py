"""Temporal stability of colorized films: flicker and the warping error (Lai et al. 2018).

Frames are float RGB in [0, 1], (N, H, W, 3), as :mod:`koala.evaluation.metrics` takes photos.

- :func:`flicker`: mean |delta ab| (Lab units) between consecutive frames: on a still shot, every
  change is flicker.
- :func:`warping_error`: Lai et al., "Learning Blind Video Temporal Consistency" (ECCV 2018), eq. 8:
  each output frame against the previous output warped onto it by the optical flow of the
  *input* frames, squared RGB error averaged over the pixels that are visible in both (occlusions
  masked by the forward-backward check of Ruder et al. 2016, their eq. 7), then over the frames.
  The flow is OpenCV's DIS (``pip install opencv-python-headless``, in koala's test extra) instead
  of their FlowNet 2.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from koala.color.lab import rgb_to_lab

OCCLUSION_RATIO, OCCLUSION_OFFSET = 0.01, 0.5  # Ruder et al.'s forward-backward consistency thresholds


def lab_ab(frames: np.ndarray) -> np.ndarray:
    """ab in Lab units (N, H, W, 2) of float RGB frames, with koala's own conversion."""
    return rgb_to_lab(tf.convert_to_tensor(frames, tf.float32)).numpy()[..., 1:]


def flicker(frames: np.ndarray) -> float:
    """Mean |delta ab| in Lab units between consecutive frames (N >= 2)."""
    ab = lab_ab(frames)
    return float(np.mean(np.abs(ab[1:] - ab[:-1])))


def _flow(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """DIS optical flow (H, W, 2) of gray uint8 frames: pixel (x, y) of ``source`` is at
    (x, y) + flow in ``target``."""
    import cv2  # the benchmark's and tests' extra, not a dependency of koala

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(np.ascontiguousarray(source), np.ascontiguousarray(target), None)


def _warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``image`` sampled at (x, y) + flow (bilinear); positions outside it give NaN."""
    import cv2

    height, width = flow.shape[:2]
    xx, yy = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    warped = cv2.remap(image.astype(np.float32), xx + flow[..., 0], yy + flow[..., 1], cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=np.nan)
    return warped.reshape(image.shape)


def visible_mask(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Pixels of frame t (H, W) whose backward flow to t-1 lands inside t-1 and agrees with the
    forward flow from there (|b + f(b)|^2 <= 0.01 (|b|^2 + |f(b)|^2) + 0.5): not occluded."""
    forward_there = _warp(forward, backward)
    inside = ~np.isnan(forward_there).any(axis=-1)
    forward_there = np.nan_to_num(forward_there)
    gap = np.sum((backward + forward_there) ** 2, axis=-1)
    bound = OCCLUSION_RATIO * (np.sum(backward ** 2, axis=-1) + np.sum(forward_there ** 2, axis=-1)) + OCCLUSION_OFFSET
    return inside & (gap <= bound)


def warping_error(outputs: np.ndarray, inputs: np.ndarray) -> float:
    """Lai et al.'s warping error of ``outputs`` (N, H, W, 3) float RGB in [0, 1], with the flow
    of ``inputs`` (N, H, W) gray uint8 frames (the film before colorizing)."""
    errors = []
    for t in range(1, len(outputs)):
        backward, forward = _flow(inputs[t], inputs[t - 1]), _flow(inputs[t - 1], inputs[t])
        mask = visible_mask(backward, forward)
        warped = _warp(outputs[t - 1], backward)
        squared = np.sum((outputs[t] - np.nan_to_num(warped)) ** 2, axis=-1)
        errors.append(float(squared[mask].mean()) if mask.any() else 0.0)
    return float(np.mean(errors))
