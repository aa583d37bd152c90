"""Scoring colorizers, always beside the grayscale baseline (ab = 0).

    metrics.py    each colour-quality metric as a pure function over batches, with its reference
    evaluate.py   one colorizer on held-out photos: per-photo scores, the gray baseline, summaries
    frontier.py   the PSNR-colourfulness frontier: a model swept along its colour knobs
    reference.py  a reference photo's effect (its own colours, another photo's) beside none
    suggest.py    how often the suggested colours at a click hold the true one
    compare/      `koala compare`: several models trained (or loaded) and scored alike, one report

This file holds only what every report names (the protocol and the summary metrics), so that
reading it, or formatting a report, needs no TensorFlow.
"""
from __future__ import annotations

PROTOCOL = "docs/metrics.md"  # where the metrics and how photos are scored are stated for users
SUGGEST_MIN_CHROMA = 20.0  # a*b* units: koala evaluate --suggest asks only at pixels more colourful than this
SUGGEST_HIT_DISTANCE = 12.0  # a*b* units: a suggested colour this close to the true one is a hit

# Summary keys in table order, with how to read them.
METRICS = {
    "psnr": "PSNR of RGB, dB (higher is better)",
    "ssim": "SSIM of RGB (higher is better)",
    "ab_mse": "MSE of normalised ab (lower is better)",
    "ab_r2": "R^2 of ab over all pixels (higher is better)",
    "auc": "AuC of the ab error curve 0-150 (higher is better)",
    "bin_acc": "pixels in the true 10x10 ab bin (higher is better)",
    "coarse_acc": "pixels of the true coarse colour (higher is better)",
    "colourfulness": "Hasler-Suesstrunk colourfulness of the output",
    "colourfulness_ratio": "colourfulness / that of the photos (1 is ideal)",
    "delta_colourfulness": "colourfulness minus that of the photos (0 is ideal)",
    "fid": "Frechet distance of features to the photos' (lower is better)",
}

__all__ = ["METRICS", "PROTOCOL"]
