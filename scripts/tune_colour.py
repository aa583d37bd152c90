"""Choose a model's shipped colour setting on its frontier, on training photos (never val).

Sweeps the working size (the short side the network sees; the output keeps the photo's size),
temperature (models that predict a colour distribution) and saturation on an even sample of the
training photos and stores, in the run's metadata, the most colourful point whose PSNR
is at least ``--margin`` dB above the grayscale baseline's on those photos, ``--group-margin``
above it on each ``--group`` of sources (e.g. the general-photo sources), and no more than
``--source-floor`` below it on any source. The sweep is written beside it (``tune-frontier.json``
and ``.png`` in the run folder).

    python scripts/tune_colour.py runs/default --data ../shared/datasets/photos-v1/train --images 600 \\
        --sizes 128,160,192 --temperatures 0.3,0.38,0.5,0.7 --saturations 0.9,1,1.1,1.2 --margin 0.7 \\
        --group general=bsds500,imagenet_sample1000,urban100 --group-margin 0.3 --source-floor 0.3
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from koala.evaluation.evaluate import write_report
from koala.evaluation.frontier import choose, parse_groups, parse_values, plot_frontier, sweep_report
from koala.images import group_by_source, list_images
from koala.inference import Colorizer
from koala.runs import Run


def even_sample(paths: list[str], count: int) -> list[str]:
    """``count`` photos spread evenly over every source (a source smaller than its share gives all)."""
    groups = list(group_by_source(paths).values())
    share = max(1, count // len(groups))
    return [p for group in groups for p in group[:: max(1, len(group) // share)][:share]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--data", required=True, help="training photos (a folder of sources)")
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--sizes", help="working sizes (px) to try, comma-separated (default: the model's)")
    parser.add_argument("--temperatures", help="comma-separated (distribution models)")
    parser.add_argument("--saturations", default="1")
    parser.add_argument("--margin", type=float, default=0.7, help="dB above gray required (default 0.7)")
    parser.add_argument("--group", action="append", metavar="NAME=SOURCE1,SOURCE2", help="sources scored together")
    parser.add_argument("--group-margin", type=float, default=0.3, help="dB above gray on each group (default 0.3)")
    parser.add_argument("--source-floor", type=float, default=0.3,
                        help="dB a source may fall below gray at most (default 0.3)")
    args = parser.parse_args()
    paths = even_sample(list_images(args.data), args.images)
    sample = args.run / "tune-photos.txt"
    sample.write_text("\n".join(str(Path(p).resolve()) for p in paths) + "\n")
    colorizer = Colorizer.load(args.run)
    sizes = [int(v) for v in parse_values(args.sizes, "--sizes")] if args.sizes else [colorizer.image_size]
    models = {f"{args.run.name} at {size} px": dataclasses.replace(colorizer, image_size=size) for size in sizes}
    report = sweep_report(models, str(sample), parse_values(args.saturations, "--saturations"),
                          parse_values(args.temperatures, "--temperatures"), groups=parse_groups(args.group))
    write_report(report, args.run / "tune-frontier.json", plot_frontier)
    best = choose(report, args.margin, args.group_margin, args.source_floor)
    if best is None:
        raise SystemExit(f"no setting is {args.margin} dB above gray on {len(paths)} photos; see "
                         f"{args.run / 'tune-frontier.png'}")
    setting = {"image_size": sizes[list(models).index(best["model"])], "saturation": best["saturation"],
               "colour_setting": (f"{best['model']}: most colourful point >= gray + {args.margin} dB on "
                                  f"{len(paths)} training photos (scripts/tune_colour.py): PSNR {best['psnr']:.2f} "
                                  f"(gray {report['gray_baseline']['psnr']:.2f}), colourfulness ratio {best['colourfulness_ratio']:.3f}")}
    if best["temperature"] is not None:
        setting["temperature"] = best["temperature"]
    Run(args.run).update_metadata(**setting)
    print(setting["colour_setting"], f"-> working size {setting['image_size']} px, saturation {best['saturation']:g}, "
          f"temperature {best['temperature']}")


if __name__ == "__main__":
    main()
