"""The model card's picture: fixed validation photos as truth | gray input | each model, full size.

    python scripts/model_card_grid.py --data ../shared/datasets/photos-v1/val \\
        --model old=old-default.keras --model new=default --out koala/weights/grid.jpg

The photos are the same every time: the first photos (by name) of each source in ``PER_SOURCE``, so
two model cards can be compared photo by photo. ``--samples`` instead takes every photo of a flat
folder of grayscale photos (the bundled samples), whose columns are input | each model:

    python scripts/model_card_grid.py --samples --data koala/samples \\
        --model before=old-default.keras --model now=default --out reports/default-model/samples.jpg
"""
from __future__ import annotations

import argparse
from pathlib import Path

from koala.evaluation.compare.plots import draw_image_grid
from koala.evaluation.evaluate import gray_baseline
from koala.evaluation.frontier import parse_labelled
from koala.images import group_by_source, list_images, load_rgb
from koala.inference import Colorizer

PER_SOURCE = {"bsds500": 2, "imagenet_sample1000": 3, "urban100": 1, "roads_scenes250": 2, "cats_dogs": 1,
              "people_masked": 1, "clothing_cc0": 1, "faces_rmfd_nomask": 1}


def pick(data: str, per_source: dict[str, int]) -> list[str]:
    groups = group_by_source(list_images(data))
    return [p for name, count in per_source.items() for p in groups.get(name, [])[:count]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", action="append", required=True, metavar="LABEL=MODEL")
    parser.add_argument("--out", required=True)
    parser.add_argument("--samples", action="store_true", help="every photo of --data, which are grayscale")
    args = parser.parse_args()
    models = {label: Colorizer.load(model) for label, model in map(parse_labelled, args.model)}
    paths = sorted(list_images(args.data)) if args.samples else pick(args.data, PER_SOURCE)
    titles = ["input", *models] if args.samples else ["truth", "gray input", *models]

    def row(path: str) -> tuple[str, list]:
        true = load_rgb(path)
        given = [gray_baseline(true)] if args.samples else [true, gray_baseline(true)]
        return (f"{Path(path).parent.name}\n{Path(path).stem[:18]}",
                [*given, *(c.colorize_float(true) for c in models.values())])

    draw_image_grid((row(path) for path in paths), titles, args.out, cell=(2.3, 1.9), title_size=10, dpi=90)
    print(f"wrote {args.out}: {len(paths)} photos x {len(titles)} columns")


if __name__ == "__main__":
    main()
