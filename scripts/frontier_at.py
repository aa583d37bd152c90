"""Frontier reports read at equal colour: each model's dB over gray at fixed colourfulness ratios,
overall, per group and per source, so models swept at different saturations can be set side by side.

    python scripts/frontier_at.py reports/issue31/frontier-photos.json reports/issue31/short/*-photos.json \\
        --ratios 0.5,0.6,0.7

Reads ``koala evaluate --sweep`` reports (several models each, or one). The dB at a ratio is
interpolated linearly between the two swept points around it; outside the swept range it is blank
(never extrapolated), and a row blank for every model is left out. A model named in several
reports is taken from the first.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from koala.evaluation import frontier


def gain_at(points: list[tuple[float, float]], ratio: float) -> float | None:
    """dB over gray at colourfulness ``ratio`` from (ratio, dB) points, or None outside them."""
    points = sorted(points)
    ratios, gains = np.array([p[0] for p in points]), np.array([p[1] for p in points])
    if not ratios[0] <= ratio <= ratios[-1]:
        return None
    return float(np.interp(ratio, ratios, gains))


def curves(report: dict) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """curve (a model, or a model at one temperature: :func:`koala.evaluation.frontier.curves`) ->
    part ("all", "group NAME", source) -> [(colourfulness ratio, dB over gray)]."""
    gray = report["gray_baseline"]
    out: dict[str, dict[str, list]] = {}
    for name, points in frontier.curves(report).items():
        model = out.setdefault(name, {})
        for point in points:
            parts = {"all": (point, gray)}
            parts.update({f"group {k}": (v, gray["groups"][k]) for k, v in point.get("groups", {}).items()})
            parts.update({k: (v, gray["sources"][k]) for k, v in point.get("sources", {}).items()})
            for part, (scores, base) in parts.items():
                model.setdefault(part, []).append((scores["colourfulness_ratio"], scores["psnr"] - base["psnr"]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="+")
    parser.add_argument("--ratios", default="0.5,0.6,0.7")
    parser.add_argument("--parts", default="", help="comma-separated parts (default: all of them)")
    args = parser.parse_args()
    ratios = [float(r) for r in args.ratios.split(",")]
    models: dict[str, dict] = {}
    for path in args.reports:
        try:
            report = frontier.read_report(path)
        except ValueError as e:
            sys.exit(f"frontier_at: {e}")
        for name, parts in curves(report).items():
            models.setdefault(name, parts)
    names = list(models)
    parts = args.parts.split(",") if args.parts else list(dict.fromkeys(p for m in models.values() for p in m))
    print("| part | ratio | " + " | ".join(names) + " |")
    print("|---|---:|" + "---:|" * len(names))
    for part in parts:
        for ratio in ratios:
            cells = [gain_at(models[n][part], ratio) if part in models[n] else None for n in names]
            if all(c is None for c in cells):
                continue
            print(f"| {part} | {ratio:g} | " + " | ".join("" if c is None else f"{c:+.2f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
