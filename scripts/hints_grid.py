"""The hint model card's picture: fixed validation photos as truth | gray | automatic | 3 hints |
10 hints, full size, each hint drawn as a dot of its colour ringed in black and white.

    python scripts/hints_grid.py --data ../shared/datasets/photos-v1/val --model default \\
        --out reports/hints-model/grid.jpg

Hints are simulated as ``koala evaluate --hints`` places them (seeded, Gaussian around the centre,
the mean true colour of a 5 px patch) and go through the same path as a person's clicks.
"""
from __future__ import annotations

import argparse

import numpy as np

from koala.data.hints import simulate_user_hints
from koala.evaluation.compare.plots import draw_image_grid
from koala.evaluation.evaluate import gray_baseline
from koala.images import load_rgb, to_uint8
from koala.inference import Colorizer
from model_card_grid import PER_SOURCE, pick  # scripts/ is on the path when run as a script

COUNTS = (3, 10)
PATCH = 5
SEED = 0


def with_dots(rgb: np.ndarray, hints: list[dict]) -> np.ndarray:
    """``rgb`` (float) with each hint drawn as a disc of its colour in a black and white ring."""
    out = rgb.copy()
    radius = max(4, min(rgb.shape[:2]) // 60)
    yy, xx = np.mgrid[0:rgb.shape[0], 0:rgb.shape[1]]
    for hint in hints:
        distance = np.hypot(yy - hint["y"], xx - hint["x"])
        colour = np.array([int(hint["color"][i:i + 2], 16) for i in (1, 3, 5)]) / 255.0
        out[distance <= radius + 2] = 1.0
        out[distance <= radius + 1] = 0.0
        out[distance <= radius] = colour
    return out


def row(colorizer: Colorizer, path: str) -> tuple[str, list[np.ndarray]]:
    truth = load_rgb(path)
    cells = [truth, gray_baseline(truth), colorizer.colorize_float(truth)]
    for count in COUNTS:
        hints = simulate_user_hints(to_uint8(truth), SEED, count, PATCH)
        cells.append(with_dots(colorizer.colorize(to_uint8(truth), hints=hints) / 255.0, hints))
    return path.split("/")[-2], cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", default="hints")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    colorizer = Colorizer.load(args.model)
    paths = pick(args.data, PER_SOURCE)
    titles = ["truth", "gray input", "automatic", *(f"{count} hints" for count in COUNTS)]
    draw_image_grid((row(colorizer, path) for path in paths), titles, args.out, cell=(2.3, 1.9), title_size=10,
                    dpi=90)
    print(f"wrote {args.out}: {len(paths)} photos x {len(titles)} columns")


if __name__ == "__main__":
    main()
