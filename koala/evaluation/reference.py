"""How far a reference photo moves the colours, scored as users see them::

    koala evaluate --model default --data photos/val --reference self,other --out reference.json

For each photo: the automatic colours (no reference) beside

* ``self``: the photo's own colour file as its reference, the most a reference can give (its
  colours are exactly the ones wanted, though blurred over the bins: :mod:`koala.data.global_hints`);
* ``other``: another photo of the same source (the first-level sub-folder), drawn by seed, as a
  person would give a photo of a similar scene.

Each goes through ``Colorizer.colorize_float(photo, reference=path)``, the path of
``koala colorize --reference``. Writes ``reference.json`` (:func:`reference_report`: overall, per
source and per group, beside the gray baseline) and ``reference.png``, a grid: truth | gray |
automatic | its own colours as reference | another photo as reference | that reference.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from koala.evaluation.compare.plots import draw_image_grid
from koala.evaluation.evaluate import gray_baseline, image_scores, load_at_size, photos_at_size
from koala.evaluation.frontier import grouped, scored_photos
from koala.inference import Colorizer

REFERENCE_KINDS = ("self", "other")
GRID_ROWS = 6  # photos shown in the grid
GRID_COLUMNS = ["truth", "gray", "automatic", "own colours as reference", "another photo as reference",
                "that reference"]


def parse_kinds(text: str, option: str = "--reference") -> list[str]:
    """'self,other' -> ['self', 'other']; a one-line error naming ``option`` for anything else."""
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in REFERENCE_KINDS]
    if not kinds or unknown:
        raise ValueError(f"{option}: expected some of {','.join(REFERENCE_KINDS)}; got {text!r}")
    return list(dict.fromkeys(kinds))


def other_photos(paths: list[str], source: dict[str, str], seed: int) -> dict[str, str]:
    """For each photo, another photo of its source drawn by ``seed`` (of any source when it is the
    only one of its own; itself when it is the only photo)."""
    rng = np.random.default_rng(seed)
    others = {}
    for path in paths:
        same = [p for p in paths if p != path and source[p] == source[path]] or [p for p in paths if p != path]
        others[path] = same[rng.integers(len(same))] if same else path
    return others


def reference_report(colorizer: Colorizer, data: str, kinds: list[str], size: int | None = None,
                     limit: int | None = None, seed: int = 0, progress: bool = True,
                     groups: dict[str, list[str]] | None = None) -> tuple[dict, list]:
    """Score ``colorizer`` on the photos of ``data`` without a reference and with each of ``kinds``,
    beside the gray baseline. size: score at size x size (default: full resolution); seed: of the
    other photos. Returns the report ``{"data", "size", "images", "seed", "gray_baseline",
    "automatic", "references": {kind: ...}, "pairs": {photo: other}, "skipped"}`` (each entry
    overall, per source and per group: :func:`koala.evaluation.frontier.grouped`) and the grid's
    rows (label, images) for the first ``GRID_ROWS`` photos."""
    paths, source = scored_photos(data, limit, groups)
    others = other_photos(paths, source, seed)
    rows = {kind: [] for kind in ("automatic", *kinds)}
    gray_rows, sources, skipped, grid = [], [], [], []
    for path, true in photos_at_size(paths, size, skipped, progress, desc="reference"):
        sources.append(source[path])
        gray = gray_baseline(true)
        gray_rows.append(image_scores(gray, true))
        results = {"automatic": colorizer.colorize_float(true)}
        for kind in kinds:
            results[kind] = colorizer.colorize_float(true, reference=path if kind == "self" else others[path])
        for kind, result in results.items():
            rows[kind].append(image_scores(result, true))
        if len(grid) < GRID_ROWS:
            blank = np.ones_like(true)
            grid.append((Path(path).name, [true, gray, results["automatic"], results.get("self", blank),
                                           results.get("other", blank), load_at_size(others[path], size)]))
    if not gray_rows:
        raise ValueError("no readable images to evaluate")
    report = {"data": str(data), "size": size, "images": len(gray_rows), "seed": seed,
              "gray_baseline": grouped(gray_rows, sources, groups),
              "automatic": grouped(rows["automatic"], sources, groups),
              "references": {kind: grouped(rows[kind], sources, groups) for kind in kinds},
              "pairs": {path: others[path] for path in paths}, "skipped": skipped}
    return report, grid


def markdown_table(report: dict) -> str:
    """One row per setting (gray, automatic, each reference) and source: PSNR, SSIM, colourfulness ratio."""
    settings = [("gray baseline", report["gray_baseline"]), ("automatic", report["automatic"]),
                *((f"reference: {kind}", entry) for kind, entry in report["references"].items())]
    lines = ["| setting | source | PSNR | SSIM | CF ratio | AuC |", "|---|---|---:|---:|---:|---:|"]
    for name, entry in settings:
        for where, scores in (("all", entry), *sorted(entry.get("sources", {}).items())):
            lines.append(f"| {name} | {where} | {scores['psnr']:.2f} | {scores['ssim']:.4f} | "
                         f"{scores['colourfulness_ratio']:.3f} | {scores['auc']:.4f} |")
    return "\n".join(lines)


def plot_grid(grid: list, path: str | Path) -> None:
    """The grid of :func:`reference_report`: truth | gray | automatic | self | other | that reference."""
    draw_image_grid(grid, GRID_COLUMNS, path)
