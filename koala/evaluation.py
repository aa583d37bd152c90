"""Evaluate a colorizer on held-out photos, always beside the grayscale baseline (ab = 0).

PSNR alone rewards grey and sepia, so every report pairs it with colourfulness relative to
the ground truth, and with the same numbers for the gray image itself.
"""
from __future__ import annotations

import numpy as np
from tqdm import tqdm

from koala import metrics
from koala.color import colorize_lab, rgb_to_l
from koala.images import ImageError, load_rgb, to_uint8
from koala.inference import Colorizer


def gray_baseline(rgb: np.ndarray) -> np.ndarray:
    """The photo's own L with ab = 0: what 'doing nothing' scores."""
    l_norm = rgb_to_l(rgb)
    return colorize_lab(l_norm, np.zeros(l_norm.shape[:-1] + (2,), np.float32)).numpy()


def image_scores(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Scores of one image pair, both quantised to 8 bits as users see them."""
    pred, true = to_uint8(pred)[None] / 255.0, to_uint8(true)[None] / 255.0
    true_cf = float(metrics.colourfulness(true)[0])
    pred_cf = float(metrics.colourfulness(pred)[0])
    return {"psnr": float(metrics.psnr(pred, true)[0]), "ssim": float(metrics.ssim(pred, true)[0]),
            "colourfulness": pred_cf, "colourfulness_true": true_cf}


def summarise(rows: list[dict[str, float]]) -> dict[str, float]:
    """Means over images; the colourfulness ratio is mean(output) / mean(truth)."""
    mean = {key: float(np.mean([r[key] for r in rows])) for key in rows[0]}
    mean["colourfulness_ratio"] = mean["colourfulness"] / mean["colourfulness_true"]
    return mean


def evaluate(colorizer: Colorizer, paths: list[str], progress: bool = True) -> dict:
    """Model and gray-baseline scores on ``paths`` at each photo's full resolution."""
    model_rows, gray_rows, skipped = [], [], []
    for path in tqdm(paths, disable=not progress, unit="image"):
        try:
            true = load_rgb(path)
        except ImageError as e:
            skipped.append(str(e))
            continue
        model_rows.append(image_scores(colorizer.colorize_float(true), true))
        gray_rows.append(image_scores(gray_baseline(true), true))
    if not model_rows:
        raise ValueError("no readable images to evaluate")
    return {"images": len(model_rows), "skipped": skipped,
            "model": summarise(model_rows), "gray_baseline": summarise(gray_rows)}


def format_table(report: dict) -> str:
    """A Markdown table of the model beside the gray baseline."""
    keys = ("psnr", "ssim", "colourfulness", "colourfulness_ratio")
    lines = ["| | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name in ("model", "gray_baseline"):
        lines.append(f"| {name} | " + " | ".join(f"{report[name][k]:.4f}" for k in keys) + " |")
    return "\n".join(lines)
