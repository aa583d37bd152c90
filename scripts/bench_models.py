"""What colorizing one photo costs with each model, side by side in one process: wall and process
CPU milliseconds of ``Colorizer.colorize`` (working-size L, the network, the join at full size) on
a photo of the given megapixels, so a new default can be held to "at most 1.3x today's".

    python scripts/bench_models.py old-default.keras default runs/short-32 --megapixels 1

The photo is one of the bundled samples resized to the size (3:2), so the network sees a real
picture. Numbers depend on what else the machine runs; CPU-ms hardly do.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import tensorflow as tf

from koala.images import load_rgb, to_uint8
from koala.inference import Colorizer
from timing import timed  # scripts/ is on the path when run as a script

SAMPLE = Path(__file__).resolve().parent.parent / "koala" / "samples" / "astronaut_gray.png"


def photo(megapixels: float) -> np.ndarray:
    """The sample at ``megapixels`` (3:2), uint8 RGB."""
    width = int(round(math.sqrt(megapixels * 1e6 * 1.5)))
    height = int(round(width / 1.5))
    rgb = tf.image.resize(load_rgb(str(SAMPLE)), (height, width), antialias=True).numpy()
    return to_uint8(np.clip(rgb, 0.0, 1.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="bundled names, run folders or .keras files")
    parser.add_argument("--megapixels", type=float, default=1.0)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    pixels = photo(args.megapixels)
    print(f"{pixels.shape[1]} x {pixels.shape[0]} photo, {args.steps} calls after 2 warm-up calls")
    base = None
    for name in args.models:
        colorizer = Colorizer.load(name)
        numbers = timed(lambda: colorizer.colorize(pixels), steps=args.steps, batch=1)
        base = base or numbers["cpu_ms_per_image"]
        print(f"{name:>24}: {numbers['ms_per_batch']:7.0f} ms wall, {numbers['cpu_ms_per_image']:7.0f} CPU-ms "
              f"({numbers['cpu_ms_per_image'] / base:.2f}x the first)", flush=True)


if __name__ == "__main__":
    main()
