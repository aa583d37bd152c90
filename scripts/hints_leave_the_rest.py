"""Issue 28 item 3 in numbers and a picture: one hint in a corner leaves the rest of the photo alone.

For each photo: the automatic result at the model's tuned saturation, the result with one hint in
its top-left corner (the photo's own colour there, as a person who knows it would give it) as koala
colours it now (the hint's ab divided by the saturation on the way in, the output scaled by it),
and as koala coloured it before issue 28 (saturation 1 for the whole photo when hinted: the same
as asking for saturation 1 now). Printed per photo and in all: the colourfulness (Hasler &
Suesstrunk, koala.evaluation.metrics) of the opposite (bottom-right) quarter against the
automatic result's, and how far the hinted point's a*b* lies from the hint's::

    .venv/bin/python scripts/hints_leave_the_rest.py --data ../shared/datasets/photos-v1/val --limit 24 \\
        --out reports/issue28/hints_leave_the_rest
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from koala.color import rgb_to_lab
from koala.evaluation.compare.plots import draw_image_grid
from koala.evaluation.metrics import colourfulness
from koala.images import evenly_spaced, list_images, load_rgb, resize_short_side, to_float_rgb, to_uint8
from koala.inference import Colorizer

SIDE = 320  # photos are shrunk to this short side: the figures concern colour, not detail
CORNER = 0.1  # the hint sits this far into the photo from its top-left corner
GRID_ROWS = 4


def lab(rgb: np.ndarray) -> np.ndarray:
    return rgb_to_lab(np.asarray(rgb, np.float32) / 255.0).numpy()


def one_photo(colorizer: Colorizer, rgb: np.ndarray) -> tuple[dict, list[np.ndarray]]:
    height, width = rgb.shape[:2]
    x, y = int(width * CORNER), int(height * CORNER)
    colour = "#%02x%02x%02x" % tuple(rgb[y, x])
    hint = [{"x": x, "y": y, "color": colour}]
    automatic = colorizer.colorize(rgb)
    hinted = colorizer.colorize(rgb, hints=hint)
    before = colorizer.colorize(rgb, hints=hint, saturation=1.0)
    quarter = (slice(height // 2, None), slice(width // 2, None))
    cf = {name: float(colourfulness(image[quarter][None].astype(np.float64) / 255.0)[0])
          for name, image in (("automatic", automatic), ("hinted", hinted), ("before", before))}
    wanted = lab(rgb[y, x])[1:]
    row = {"hint": hint[0], "quarter_colourfulness": cf,
           "ratio_now": cf["hinted"] / cf["automatic"], "ratio_before": cf["before"] / cf["automatic"],
           "hint_distance_now": float(np.linalg.norm(lab(hinted[y, x])[1:] - wanted)),
           "hint_distance_before": float(np.linalg.norm(lab(before[y, x])[1:] - wanted))}
    return row, [rgb / 255.0, automatic / 255.0, hinted / 255.0, before / 255.0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--data", required=True)
    parser.add_argument("--limit", type=int, default=24)
    parser.add_argument("--out", required=True, help="stem: writes STEM.json and STEM.png")
    args = parser.parse_args()
    colorizer = Colorizer.load(args.model)
    rows, grid = [], []
    for path in evenly_spaced(list_images(args.data), args.limit):
        rgb = resize_short_side(to_uint8(load_rgb(path)), SIDE, upscale=False)
        row, images = one_photo(colorizer, rgb)
        rows.append({"path": path, **row})
        print(f"{path}: quarter colourfulness {row['ratio_now']:.3f}x automatic (before: {row['ratio_before']:.3f}x); "
              f"hint off by {row['hint_distance_now']:.1f} a*b* units (before: {row['hint_distance_before']:.1f})")
        if len(grid) < GRID_ROWS:
            grid.append((path.split("/")[-1], images))
    summary = {key: {"mean": float(np.mean([r[key] for r in rows])), "min": float(np.min([r[key] for r in rows])),
                     "max": float(np.max([r[key] for r in rows]))}
               for key in ("ratio_now", "ratio_before", "hint_distance_now", "hint_distance_before")}
    summary["mean_of_quarters"] = {k: float(np.mean([r["quarter_colourfulness"][k] for r in rows]))
                                   for k in ("automatic", "hinted", "before")}
    report = {"model": args.model, "saturation": colorizer.saturation, "data": args.data, "photos": len(rows),
              "side": SIDE, "summary": summary, "photos_scored": rows}
    with open(f"{args.out}.json", "w") as f:
        json.dump(report, f, indent=2)
    draw_image_grid(grid, ["truth", "automatic", "one hint (now)", "one hint (before issue 28)"], f"{args.out}.png",
                    cell=(2.6, 2.2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
