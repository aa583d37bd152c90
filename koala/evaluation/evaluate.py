"""Evaluate a colorizer on held-out photos, always beside the grayscale baseline (ab = 0).

PSNR alone rewards grey and sepia (the field's gains over grey are often below one decibel),
so every report pairs it with ab errors, colour-bin accuracy and colourfulness relative to the
ground truth, and gives the same numbers for the gray image itself. Scores are taken on the
8-bit RGB a user would see; ab metrics use the Lab ab recomputed from those 8-bit images. The
whole protocol, for users: docs/metrics.md (:data:`koala.evaluation.PROTOCOL`), which every report names.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from koala.color import l_ab_to_rgb, rgb_to_l, rgb_to_lab
from koala.evaluation import METRICS, PROTOCOL, metrics
from koala.images import ImageError, as_8bit, load_rgb, resize_short_side, to_float_rgb, to_uint8, write_atomic
from koala.inference import Colorizer

PER_IMAGE = ("psnr", "ssim", "ab_mse", "auc", "bin_acc", "coarse_acc", "colourfulness", "colourfulness_true")


def gray_baseline(rgb: np.ndarray) -> np.ndarray:
    """The photo's own L with ab = 0: what 'doing nothing' scores."""
    l_norm = rgb_to_l(rgb)
    return l_ab_to_rgb(l_norm, np.zeros(l_norm.shape[:-1] + (2,), np.float32)).numpy()


def load_at_size(path: str, size: int | None = None) -> np.ndarray:
    """A photo as float RGB; with ``size``, its short side resized to ``size``
    (:func:`koala.images.resize_short_side`) and the centre ``size`` x ``size`` square kept.
    Without it, the full resolution. (The validation pipeline also takes the centre square, but
    of the photo shrunk to a little more than the crop, so its square holds a little less.)"""
    rgb = load_rgb(path)
    if size is None:
        return rgb
    img = to_float_rgb(resize_short_side(to_uint8(rgb), size))
    top, left = (img.shape[0] - size) // 2, (img.shape[1] - size) // 2
    return img[top:top + size, left:left + size]


def photos_at_size(paths: list[str], size: int | None, skipped: list[str], progress: bool = True,
                   desc: str = "evaluate") -> Iterator[tuple[str, np.ndarray]]:
    """(path, float RGB at ``size``: :func:`load_at_size`) for each readable photo of ``paths``,
    with a progress bar; the reason each unreadable one is passed over is appended to ``skipped``."""
    for path in tqdm(paths, disable=not progress, unit="image", desc=desc):
        try:
            yield path, load_at_size(path, size)
        except ImageError as e:
            skipped.append(str(e))


def image_scores(pred: np.ndarray, true: np.ndarray) -> dict:
    """Scores of one image pair (float RGB (H, W, 3)), both quantised to 8 bits as users see them.

    Holds the :data:`PER_IMAGE` keys plus ``delta_colourfulness`` and ``r2_terms`` (for the pooled
    R^2 of :func:`summarise`).
    """
    pred, true = as_8bit(pred)[None], as_8bit(true)[None]
    pred_ab, true_ab = rgb_to_lab(pred).numpy()[..., 1:], rgb_to_lab(true).numpy()[..., 1:]
    return {
        "psnr": float(metrics.psnr(pred, true)[0]),
        "ssim": float(metrics.ssim(pred, true)[0]),
        "ab_mse": float(metrics.ab_mse(pred_ab, true_ab)[0]),
        "auc": float(metrics.ab_auc(pred_ab, true_ab)[0]),
        "bin_acc": float(metrics.bin_accuracy(pred_ab, true_ab)[0]),
        "coarse_acc": float(metrics.coarse_accuracy(pred_ab, true_ab)[0]),
        "colourfulness": float(metrics.colourfulness(pred)[0]),
        "colourfulness_true": float(metrics.colourfulness(true)[0]),
        "delta_colourfulness": float(metrics.delta_colourfulness(pred, true)[0]),
        "r2_terms": metrics.r2_terms(pred_ab, true_ab)[0].tolist(),
    }


def summarise(rows: list[dict]) -> dict[str, float]:
    """Means over images, except R^2 (pooled over all pixels: :func:`metrics.r2_from_terms`) and
    the colourfulness ratio (a ratio of means: :func:`metrics.ratio_of_means`)."""
    mean = {key: float(np.mean([r[key] for r in rows])) for key in PER_IMAGE}
    mean["ab_r2"] = metrics.r2_from_terms(np.array([r["r2_terms"] for r in rows]))
    mean["colourfulness_ratio"] = metrics.ratio_of_means([r["colourfulness"] for r in rows],
                                                         [r["colourfulness_true"] for r in rows])
    mean["delta_colourfulness"] = float(np.mean([r["delta_colourfulness"] for r in rows]))
    return mean


def evaluate(
    colorizer: Colorizer,
    paths: list[str],
    progress: bool = True,
    size: int | None = None,
    features: metrics.FeatureExtractor | None = None,
) -> dict:
    """Model and gray-baseline scores on ``paths``.

    size: evaluate every photo at ``size`` x ``size`` (:func:`load_at_size`; default: each
    photo's full resolution). features: an extractor for the Fréchet distance ("fid"; default:
    none, as the standard InceptionV3 needs its ImageNet weights).
    Returns the summaries ("model", "gray_baseline"), per-image scores ("per_image"), the
    inference speed of the colorizer alone and the skipped files.
    """
    model_rows, gray_rows, per_image, skipped = [], [], [], []
    feats = {"model": [], "gray_baseline": [], "truth": []}
    seconds, pixels = 0.0, 0
    for path, true in photos_at_size(paths, size, skipped, progress):
        start = time.perf_counter()
        pred = colorizer.colorize_float(true)
        seconds += time.perf_counter() - start
        pixels += true.shape[0] * true.shape[1]
        gray = gray_baseline(true)
        model_rows.append(image_scores(pred, true))
        gray_rows.append(image_scores(gray, true))
        per_image.append({"path": path, **{k: model_rows[-1][k] for k in PER_IMAGE},
                          "gray_psnr": gray_rows[-1]["psnr"]})
        if features is not None:
            for key, image in (("model", pred), ("gray_baseline", gray), ("truth", true)):
                feats[key].append(features(as_8bit(image)[None])[0])
    if not model_rows:
        raise ValueError("no readable images to evaluate")
    if not any(row["colourfulness_true"] > 0 for row in model_rows):  # no colour to score against
        raise ValueError(f"no colour photos to score against ({len(model_rows)} grayscale)")
    report = {"protocol": PROTOCOL, "images": len(model_rows), "size": size, "skipped": skipped,
              "model": summarise(model_rows), "gray_baseline": summarise(gray_rows),
              "images_per_second": len(model_rows) / seconds, "megapixels_per_second": pixels / seconds / 1e6,
              "per_image": per_image}
    if features is not None:
        truth = metrics.feature_statistics(np.array(feats["truth"]))
        for key in ("model", "gray_baseline"):
            report[key]["fid"] = metrics.frechet_distance(metrics.feature_statistics(np.array(feats[key])), truth)
        report["fid_extractor"] = features.name
    return report


def format_table(report: dict) -> str:
    """A Markdown table: one row per metric, the model beside the gray baseline."""
    keys = [k for k in METRICS if k in report["model"]]
    lines = ["| metric | model | gray baseline | what |", "|---|---:|---:|---|"]
    for key in keys:
        lines.append(f"| {key} | {report['model'][key]:.4f} | {report['gray_baseline'][key]:.4f} | {METRICS[key]} |")
    return "\n".join(lines)


def write_report(report: dict, out: str | Path, plot: Callable[[dict, Path], None]) -> tuple[Path, Path]:
    """``report`` as JSON at ``out`` and ``plot(report, path)`` beside it (same stem, .png), each
    replaced atomically: a kill never leaves half a report. Returns both paths."""
    out = Path(out)
    write_atomic(out, (json.dumps(report, indent=2) + "\n").encode(), overwrite=True)
    picture = out.with_suffix(".png")
    plot(report, picture)
    return out, picture
