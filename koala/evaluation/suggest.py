"""How often the suggested colours at a click hold the true one, as a user would judge them::

    koala evaluate --model default --data photos/val --suggest 8 --out suggest.json

Each photo gets ``POINTS`` points drawn by seed among its coloured pixels (true chroma over
``MIN_CHROMA`` a*b* units: a gray pixel's colour is no question). At each, the ``k`` suggestions
(``Colorizer.suggest``, as ``koala suggest`` and the web page show them, #rrggbb) hit when one of
them lies within ``HIT_DISTANCE`` a*b* units of the true colour; beside it, the automatic colour
there (the 8-bit result of ``koala colorize``) hits on the same terms. Truth and suggestions are
both read from 8-bit RGB. Writes ``suggest.json`` (:func:`suggest_report`), overall and per source.
"""
from __future__ import annotations

import numpy as np

from koala.color import rgb_to_lab
from koala.evaluation import SUGGEST_HIT_DISTANCE, SUGGEST_MIN_CHROMA
from koala.evaluation.evaluate import photos_at_size
from koala.evaluation.frontier import scored_photos
from koala.images import as_8bit
from koala.inference import Colorizer

POINTS = 10  # points per photo
MIN_CHROMA, HIT_DISTANCE = SUGGEST_MIN_CHROMA, SUGGEST_HIT_DISTANCE  # stated once, for the CLI's help too
SEED_STRIDE = 1_000_003  # photo i of seed s draws from seed s * SEED_STRIDE + i


def coloured_points(ab: np.ndarray, count: int, seed: int) -> list[tuple[int, int]]:
    """Up to ``count`` (x, y) drawn by ``seed`` among the pixels whose a*b* (H, W, 2) chroma is over
    ``MIN_CHROMA``, without repeats; none for a photo without such pixels."""
    ys, xs = np.nonzero(np.hypot(ab[..., 0], ab[..., 1]) > MIN_CHROMA)
    if not len(ys):
        return []
    picked = np.random.default_rng(seed).choice(len(ys), size=min(count, len(ys)), replace=False)
    return [(int(xs[i]), int(ys[i])) for i in picked]


def lab_ab(rgb: np.ndarray) -> np.ndarray:
    """Float RGB (..., 3) in [0, 1] -> a*b* (..., 2), by koala's Lab (as every score)."""
    return rgb_to_lab(np.asarray(rgb, np.float32)).numpy()[..., 1:]


def hex_ab(colours: list[str]) -> np.ndarray:
    """'#rrggbb' colours -> their a*b* (K, 2)."""
    rgb = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in colours], np.float32) / 255.0
    return lab_ab(rgb)


def suggest_report(colorizer: Colorizer, data: str, k: int, size: int | None = None, limit: int | None = None,
                   seed: int = 0, progress: bool = True) -> dict:
    """Hit rates of the ``k`` suggestions and of the automatic colour at seeded coloured points of
    the photos of ``data`` (size: score at size x size, default full resolution). Returns
    ``{"data", "size", "images", "points", "k", "seed", "suggest_hit", "automatic_hit", "sources":
    {name: {"points", "suggest_hit", "automatic_hit"}}, "skipped"}``."""
    if not colorizer.suggests:
        raise ValueError(f"suggestions: this model ({colorizer.name}) has no colour distribution head; "
                         "use the bundled default or a model trained with distribution: true")
    paths, source = scored_photos(data, limit, None)
    hits: dict[str, list[tuple[bool, bool]]] = {}
    skipped, images = [], 0
    for index, (path, true) in enumerate(photos_at_size(paths, size, skipped, progress, desc="suggest")):
        images += 1
        true_ab = lab_ab(as_8bit(true))
        points = coloured_points(true_ab, POINTS, seed * SEED_STRIDE + index)
        if not points:
            continue
        auto_ab = lab_ab(as_8bit(colorizer.colorize_float(true)))
        for (x, y), found in zip(points, colorizer.suggest_points(true, points, k)):
            near = np.linalg.norm(hex_ab([s["color"] for s in found]) - true_ab[y, x], axis=-1).min() <= HIT_DISTANCE
            auto = np.linalg.norm(auto_ab[y, x] - true_ab[y, x]) <= HIT_DISTANCE
            hits.setdefault(source[path], []).append((bool(near), bool(auto)))
    if not images:
        raise ValueError("no readable images to evaluate")
    every = [h for rows in hits.values() for h in rows]
    if not every:
        raise ValueError(f"no coloured points to ask about (no pixel with chroma over {MIN_CHROMA:g})")
    rates = lambda rows: {"points": len(rows), "suggest_hit": float(np.mean([s for s, _ in rows])),  # noqa: E731
                          "automatic_hit": float(np.mean([a for _, a in rows]))}
    return {"data": str(data), "size": size, "images": images, "k": k, "seed": seed,
            "min_chroma": MIN_CHROMA, "hit_distance": HIT_DISTANCE, **rates(every),
            "sources": {name: rates(rows) for name, rows in sorted(hits.items())}, "skipped": skipped}


def markdown_table(report: dict) -> str:
    """One row overall and one per source: points, hit rate of the suggestions and of the automatic colour."""
    lines = [f"| source | points | {report['k']} suggestions hit | automatic colour hits |", "|---|---:|---:|---:|"]
    for name, entry in (("all", report), *report["sources"].items()):
        lines.append(f"| {name} | {entry['points']} | {entry['suggest_hit']:.3f} | {entry['automatic_hit']:.3f} |")
    return "\n".join(lines)
