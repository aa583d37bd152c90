"""Fit a model's chroma gain on training photos and store it as its default saturation.

Regression models trained with L1/L2 shrink ab towards grey. The least-squares scalar gain
g = <ab_pred, ab_true> / <ab_pred, ab_pred> over all pixels undoes the shrinkage that is
systematic without inventing colour; it is fitted on training photos, never on val.

    python scripts/calibrate_saturation.py runs/default --data ../shared/datasets/photos-v1/train --images 512
"""
from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from koala.color import rgb_to_lab, split_lab
from koala.images import ImageError, list_images, load_rgb
from koala.inference import Colorizer, predict_ab
from koala.runs import Run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run", type=Path)
    parser.add_argument("--data", required=True)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    colorizer = Colorizer.load(args.run, saturation=1.0)
    paths = random.Random(args.seed).sample(list_images(args.data), args.images)
    dot = norm = 0.0
    for path in tqdm(paths, unit="image"):
        try:
            rgb = load_rgb(path)
        except ImageError:
            continue
        l_norm, ab_true = split_lab(rgb_to_lab(tf.constant(rgb[None])))
        ab_pred = predict_ab(colorizer.network_fn(), l_norm, colorizer.image_size, colorizer.multiple)
        dot += float(tf.reduce_sum(ab_pred * ab_true))
        norm += float(tf.reduce_sum(ab_pred * ab_pred))
    gain = dot / norm
    run = Run(args.run)
    run.update_metadata(saturation=round(gain, 3),
                        saturation_fit=f"least-squares ab gain on {len(paths)} photos of {args.data}")
    print(f"saturation gain {gain:.3f} written to {run.metadata_file}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
