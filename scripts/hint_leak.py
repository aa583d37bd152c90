"""How far one colour hint leaks across a strong edge, per model: a number and a picture.

    koala-shared nice -n 10 .venv/bin/python scripts/hint_leak.py \\
        --model before=old-default.keras --model new=default \\
        --data ../shared/datasets/scenes-v2/val/houses --data ../shared/datasets/photos-v1/val/urban100 \\
        --data ../shared/datasets/scenes-v2/val/wonders7 --out reports/issue31/hint-leak

For each photo the hint goes next to its strongest step edge, found once on L at a fixed scale
(short side ``EDGE_SIDE``, the bundled models' working size), so every model gets the same hint:
the smoothed gradient's strongest local maxima away from the border, of which the one with the
largest L step between two windows ``OFFSET`` px either side of it along the gradient. The hint
sits on the side whose L is nearer mid-grey, where a colour can show (a wall or a roof against
the sky; ``--side dark`` or ``bright`` to choose), ``OFFSET`` px from the edge, as a model's
default 5 px patch; it is given twice: a vivid barn red (``RED``), and the photo's own colour
there (what a careful user clicks).

|Δab| = |ab(hinted) - ab(automatic)| at full size, in Lab units, of the ab the model predicts
(upsampled and scaled by its saturation as the colorize path does, before it is joined with L):
what the model does with the hint, whether or not the photo's L can show it (a red hint on a
near-black wall shows almost nothing, and its red in the sky beyond shows in full). The same
figures of the colours shown (the output RGB's ab) are kept as ``shown_*``. ``own`` is its mean in a
``WINDOW`` px square (at the edge scale) around the hint, ``beyond`` the same at the mirror point
on the far side of the edge, and ``leak = beyond / own``: 0 when the hint stays on its surface,
1 when it floods across the edge as if it were not there. A hint that changes its own side by
less than ``MIN_OWN`` gets no leak (a hint that does nothing leaks nothing). ``whole`` is the
mean |Δab| over the whole photo: how far the hint spreads beyond the edge's neighbourhood.

Writes OUT.json (per photo and medians per model and hint colour) and OUT.jpg: truth | gray with
the red hint | each model's result with it | each model's predicted |Δab| map (hint side's
window in white, far side's in cyan) for ``--show`` photos (names, default the highest-leak ones).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import tensorflow as tf
from matplotlib import colormaps
from scipy import ndimage

from koala.color import AB_NORM, lab_to_rgb, rgb_to_lab
from koala.evaluation.compare.plots import draw_image_grid
from koala.evaluation.evaluate import gray_baseline
from koala.evaluation.frontier import parse_labelled
from koala.images import evenly_spaced, list_images, load_rgb, resize_short_side, to_uint8
from koala.inference import Colorizer, side_inputs, working_l
from hints_grid import with_dots  # scripts/ is on the path when run as a script

EDGE_SIDE = 160  # short side (px) at which the edge is found and OFFSET and WINDOW are measured
SIGMA = 1.5  # Gaussian smoothing of L before its gradient, px at EDGE_SIDE
OFFSET = 6  # px at EDGE_SIDE from the edge to the hint, and to the mirror point beyond it
WINDOW = 5  # side (px at EDGE_SIDE) of the square windows measured around both points
CANDIDATES = 40  # strongest gradient maxima whose L step across the edge is compared
RED = "#b02418"  # barn red, the vivid hint
MIN_OWN = 2.0  # Lab units: a hint that moves its own side less than this has no leak ratio
SHOW = 5  # photos in the picture when --show is not given
HEAT_MAX = 40.0  # Lab units at the top of the |Δab| colour scale


def box_mean(image: np.ndarray, centre: np.ndarray, side: float) -> float:
    """Mean of ``image`` (H, W) over the square of ``side`` px centred at ``centre`` (row, col),
    clipped to the image."""
    lo = np.floor(centre - side / 2 + 0.5).astype(int)
    hi = np.maximum(lo + 1, np.floor(centre + side / 2 + 0.5).astype(int))
    lo = np.clip(lo, 0, image.shape[:2])
    hi = np.clip(hi, lo + 1, image.shape[:2])
    return float(image[lo[0]:hi[0], lo[1]:hi[1]].mean())


SIDES = ("mid", "dark", "bright")


def find_edge(lightness: np.ndarray, offset: float = OFFSET, window: float = WINDOW, side: str = "mid",
              sigma: float = SIGMA, candidates: int = CANDIDATES) -> dict:
    """The strongest step edge of ``lightness`` (H, W; L at the edge scale) and the two points
    ``offset`` px either side of it along the gradient, as (row, col) arrays: ``hint`` on the
    ``side`` ("mid": the one whose window's mean L is nearer 50, "dark" or "bright") and ``beyond``
    its mirror; ``step`` is the L difference between ``window`` px squares at the two.
    Candidates are the ``candidates`` strongest local maxima of the gradient of L smoothed by
    ``sigma``, far enough from the border for both windows.

    Example: on a step from L 20 (left) to 80 (right) at column 40, ``find_edge(l, side="dark")``
    has ``hint`` at about (row, 39.5 - offset) and ``beyond`` at about (row, 39.5 + offset)."""
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}; got {side!r}")
    smooth = ndimage.gaussian_filter(lightness.astype(np.float64), sigma)
    grad_row, grad_col = ndimage.sobel(smooth, 0) / 8.0, ndimage.sobel(smooth, 1) / 8.0
    magnitude = np.hypot(grad_row, grad_col)
    margin = int(np.ceil(offset + window / 2)) + 1
    if min(lightness.shape) <= 2 * margin:
        raise ValueError(f"a {lightness.shape[1]}x{lightness.shape[0]} image is too small for an edge with "
                         f"windows {offset} px either side")
    inner = np.zeros_like(magnitude, bool)
    inner[margin:-margin, margin:-margin] = True
    peaks = inner & (magnitude == ndimage.maximum_filter(magnitude, size=2 * offset + 1)) & (magnitude > 0)
    rows, cols = np.nonzero(peaks)
    if not len(rows):
        raise ValueError("no edge: the photo's L is flat")
    order = np.argsort(magnitude[rows, cols])[::-1][:candidates]
    best = None
    for r, c in zip(rows[order], cols[order]):
        normal = np.array([grad_row[r, c], grad_col[r, c]]) / magnitude[r, c]  # towards the brighter side
        centre = np.array([r, c], float)
        dark, bright = centre - offset * normal, centre + offset * normal
        dark_l, bright_l = box_mean(lightness, dark, window), box_mean(lightness, bright, window)
        step = abs(bright_l - dark_l)
        if side == "mid":
            side_here = "dark" if abs(dark_l - 50.0) <= abs(bright_l - 50.0) else "bright"
        else:
            side_here = side
        hint, beyond = (dark, bright) if side_here == "dark" else (bright, dark)
        if best is None or step > best["step"]:
            best = {"edge": centre, "normal": normal, "hint": hint, "beyond": beyond, "step": step,
                    "gradient": float(magnitude[r, c])}
    return best


def to_full(point: np.ndarray, small_shape: tuple, full_shape: tuple) -> np.ndarray:
    """A (row, col) at the edge scale -> the same place in the full-size photo (pixel centres)."""
    scale = np.array(full_shape[:2], float) / np.array(small_shape[:2], float)
    return (point + 0.5) * scale - 0.5


def lab(rgb: np.ndarray) -> np.ndarray:
    """Float or uint8 RGB (H, W, 3) -> Lab (float)."""
    rgb = rgb / 255.0 if rgb.dtype == np.uint8 else rgb
    return rgb_to_lab(np.asarray(rgb, np.float32)).numpy()


def true_colour(truth_lab: np.ndarray, centre: np.ndarray, side: float) -> str:
    """#rrggbb of the mean Lab of ``truth_lab`` in the square of ``side`` px at ``centre``, as
    :func:`koala.data.hints.simulate_user_hints` takes a hint's colour."""
    mean = np.array([box_mean(truth_lab[..., k], centre, side) for k in range(3)], np.float32)
    return "#%02x%02x%02x" % tuple(to_uint8(lab_to_rgb(mean[None]).numpy()[0]))


def site(truth: np.ndarray, side: str) -> dict:
    """Where the hint goes in ``truth`` (float RGB, full size): the edge's points at full size,
    the windows' side in full-size px, and the two hint colours."""
    small = resize_short_side(to_uint8(truth), EDGE_SIDE)
    found = find_edge(lab(small)[..., 0], side=side)
    full = {k: to_full(found[k], small.shape, truth.shape) for k in ("edge", "hint", "beyond")}
    window = WINDOW * min(truth.shape[:2]) / EDGE_SIDE
    hint_xy = {"x": float(np.clip(full["hint"][1], 0, truth.shape[1] - 1)),
               "y": float(np.clip(full["hint"][0], 0, truth.shape[0] - 1))}
    return {**full, "window": window, "step": found["step"], "hint_xy": hint_xy,
            "colours": {"red": RED, "true": true_colour(lab(truth), full["hint"], window)}}


def predicted_ab(colorizer: Colorizer):
    """uint8 photo (1, H, W, 3) and hint table (1, K, 6) -> the ab (H, W, 2, Lab units) that the
    colorize path (:func:`koala.inference.colorize_pixels`) joins with L: the same pieces, stopped
    before the join and its gamut clipping."""
    network, size, multiple = colorizer.network_fn(), colorizer.image_size, colorizer.multiple
    saturation = float(colorizer.saturation)

    @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3], tf.uint8),
                                  tf.TensorSpec([1, None, 6], tf.float32)])
    def run(pixels: tf.Tensor, table: tf.Tensor) -> tf.Tensor:
        l_small = working_l(pixels, size, multiple)
        ab_small = network(l_small, **side_inputs(l_small, tf.shape(pixels)[1:3], saturation, table))
        return tf.image.resize(tf.cast(ab_small, tf.float32), tf.shape(pixels)[1:3])[0] * saturation * AB_NORM

    def call(pixels: np.ndarray, hints: list[dict] | None) -> np.ndarray:
        table = colorizer.hint_table(hints, (pixels.shape[1], pixels.shape[0]))
        return run(tf.constant(pixels[None]), tf.constant(table[None])).numpy()

    return call


def distance(ab: np.ndarray, other: np.ndarray) -> np.ndarray:
    """|Δab| per pixel of two (H, W, 2) arrays."""
    return np.hypot(*np.moveaxis(ab - other, -1, 0))


def figures(delta: np.ndarray, where: dict, prefix: str = "") -> dict:
    """own, beyond, leak (beyond / own, None when own < MIN_OWN) and whole of one |Δab| map."""
    own = box_mean(delta, where["hint"], where["window"])
    beyond = box_mean(delta, where["beyond"], where["window"])
    return {f"{prefix}own": round(own, 2), f"{prefix}beyond": round(beyond, 2),
            f"{prefix}leak": round(beyond / own, 3) if own >= MIN_OWN else None,
            f"{prefix}whole": round(float(delta.mean()), 2)}


def measure(models: dict[str, Colorizer], ab_of: dict, path: str, side: str) -> tuple[dict, dict]:
    """One photo's figures per model and hint colour, and what its picture row needs."""
    truth = load_rgb(path)
    pixels = to_uint8(truth)
    where = site(truth, side)
    record = {"photo": f"{Path(path).parent.name}/{Path(path).name}",
              "hint": {**{k: round(v, 1) for k, v in where["hint_xy"].items()}, **where["colours"]},
              "edge": {"x": round(float(where["edge"][1]), 1), "y": round(float(where["edge"][0]), 1)},
              "beyond": {"x": round(float(where["beyond"][1]), 1), "y": round(float(where["beyond"][0]), 1)},
              "step_L": round(where["step"], 1), "models": {}}
    pictures = {"truth": truth, "where": where, "results": {}, "heat": {}}
    for label, colorizer in models.items():
        automatic_ab, automatic_shown = ab_of[label](pixels, None), lab(colorizer.colorize(pixels))[..., 1:]
        record["models"][label] = {}
        for name, colour in where["colours"].items():
            hint = [{**where["hint_xy"], "color": colour}]
            hinted = colorizer.colorize(pixels, hints=hint)
            delta = distance(ab_of[label](pixels, hint), automatic_ab)
            shown = distance(lab(hinted)[..., 1:], automatic_shown)
            record["models"][label][name] = {**figures(delta, where), **figures(shown, where, "shown_")}
            if name == "red":
                pictures["results"][label], pictures["heat"][label] = hinted / 255.0, delta
    return record, pictures


def summary(records: list[dict], labels: list[str]) -> dict:
    """Medians over photos per model and hint colour (leak over the photos that have one), and for
    each model after the first, on how many photos its leak is below the first model's."""
    out = {}
    for label in labels:
        out[label] = {}
        for name in ("red", "true"):
            rows = [r["models"][label][name] for r in records]
            leaks = [row["leak"] for row in rows if row["leak"] is not None]
            shown_leaks = [row["shown_leak"] for row in rows if row["shown_leak"] is not None]
            out[label][name] = {"median_leak": round(float(np.median(leaks)), 3) if leaks else None,
                                "median_shown_leak": round(float(np.median(shown_leaks)), 3) if shown_leaks else None,
                                "median_beyond": round(float(np.median([row["beyond"] for row in rows])), 2),
                                "median_own": round(float(np.median([row["own"] for row in rows])), 2),
                                "median_whole": round(float(np.median([row["whole"] for row in rows])), 2),
                                "photos": len(rows), "with_leak": len(leaks)}
            if label != labels[0]:  # photo by photo against the first model, where both have a leak
                pairs = [(r["models"][label][name]["leak"], r["models"][labels[0]][name]["leak"]) for r in records]
                pairs = [(mine, first) for mine, first in pairs if mine is not None and first is not None]
                out[label][name][f"lower_leak_than_{labels[0]}"] = f"{sum(m < f for m, f in pairs)}/{len(pairs)}"
    return out


def outline(image: np.ndarray, centre: np.ndarray, side: float, colour: tuple) -> None:
    """Draw the square of ``side`` px at ``centre`` (row, col) on ``image`` in place, 1 px wide."""
    lo = np.clip(np.floor(centre - side / 2 + 0.5).astype(int) - 1, 0, np.array(image.shape[:2]) - 1)
    hi = np.clip(np.floor(centre + side / 2 + 0.5).astype(int), 0, np.array(image.shape[:2]) - 1)
    image[lo[0]:hi[0] + 1, [lo[1], hi[1]]] = colour
    image[[lo[0], hi[0]], lo[1]:hi[1] + 1] = colour


def heat_map(delta: np.ndarray, where: dict) -> np.ndarray:
    """|Δab| as a colour map up to ``HEAT_MAX``, the two windows outlined."""
    image = colormaps["inferno"](np.clip(delta / HEAT_MAX, 0, 1))[..., :3]
    outline(image, where["hint"], where["window"], (1.0, 1.0, 1.0))
    outline(image, where["beyond"], where["window"], (0.0, 1.0, 1.0))
    return image


def picture_row(record: dict, pictures: dict) -> tuple[str, list[np.ndarray]]:
    where, labels = pictures["where"], list(pictures["results"])
    hint = [{**where["hint_xy"], "color": RED}]
    leaks = ", ".join(f"{label} {record['models'][label]['red']['leak']}" for label in labels)
    cells = [pictures["truth"], with_dots(gray_baseline(pictures["truth"]), hint),
             *pictures["results"].values(), *(heat_map(pictures["heat"][label], where) for label in labels)]
    folder, name = record["photo"].split("/")
    return f"{folder}/{Path(name).stem[:20]}\nred leak: {leaks}", cells


def shown(records: list[dict], show: list[str] | None, labels: list[str]) -> list[int]:
    """Indices of the photos in the picture: those named in ``show`` (a name, its stem, or
    folder/name), else the ``SHOW`` with the highest mean red leak over the models."""
    if show:
        found = [i for name in show for i, r in enumerate(records)
                 if name in (r["photo"], r["photo"].split("/")[-1], Path(r["photo"]).stem)]
        missing = [name for name in show if not any(name in (r["photo"], r["photo"].split("/")[-1],
                                                            Path(r["photo"]).stem) for r in records)]
        if missing:
            raise ValueError(f"--show: no measured photo named {', '.join(map(repr, missing))}")
        return list(dict.fromkeys(found))

    def mean_leak(record: dict) -> float:
        leaks = [record["models"][label]["red"]["leak"] for label in labels]
        return -1.0 if None in leaks else float(np.mean(leaks))

    return sorted(range(len(records)), key=lambda i: mean_leak(records[i]), reverse=True)[:SHOW]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", required=True, metavar="LABEL=MODEL",
                        help="a bundled name, run folder or .keras file, labelled (repeat)")
    parser.add_argument("--data", action="append", required=True, help="a folder of photos (repeat)")
    parser.add_argument("--photos", type=int, default=30, help="per folder, at even steps (default 30)")
    parser.add_argument("--side", choices=SIDES, default="mid",
                        help="which side of the edge gets the hint (default: the one nearer mid-grey)")
    parser.add_argument("--show", nargs="+", help=f"photos in the picture (default the {SHOW} highest-leak)")
    parser.add_argument("--out", default="reports/issue31/hint-leak", help="writes OUT.json and OUT.jpg")
    args = parser.parse_args()
    models = {label: Colorizer.load(model) for label, model in map(parse_labelled, args.model)}
    refused = [label for label, colorizer in models.items() if not colorizer.takes_hints]
    if refused:
        raise SystemExit(f"--model: {', '.join(refused)} take(s) no hints")
    ab_of = {label: predicted_ab(colorizer) for label, colorizer in models.items()}
    paths = [p for folder in args.data for p in evenly_spaced(list_images(folder), args.photos)]
    records, pictures = [], []
    for i, path in enumerate(paths, 1):
        record, picture = measure(models, ab_of, path, args.side)
        records.append(record)
        pictures.append(picture)
        print(f"{i}/{len(paths)} {record['photo']}: " + "  ".join(
            f"{label} red {m['red']['leak']} true {m['true']['leak']}" for label, m in record["models"].items()),
            flush=True)
    labels = list(models)
    report = {"models": dict(map(parse_labelled, args.model)), "data": args.data, "photos_per_folder": args.photos,
              "settings": {"edge_side": EDGE_SIDE, "sigma": SIGMA, "offset": OFFSET, "window": WINDOW,
                           "side": args.side, "red": RED, "min_own": MIN_OWN},
              "summary": summary(records, labels), "per_photo": records}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    rows = [picture_row(records[i], pictures[i]) for i in shown(records, args.show, labels)]
    titles = ["truth", "gray + red hint", *(f"{label} hinted" for label in labels),
              *(f"{label} |Δab| pred. (0-{HEAT_MAX:.0f})" for label in labels)]
    draw_image_grid(rows, titles, out.with_suffix(".jpg"), cell=(2.3, 1.9), title_size=10, dpi=90)
    print(f"\nmedians over photos; |Δab| in Lab units, of the predicted ab (shown leak: of the output's colours)")
    print(f"{'model':<10} {'hint':<5} {'leak':>6} {'beyond':>7} {'own':>6} {'whole':>6} {'shown leak':>10} "
          f"{'photos':>7}  lower leak than {labels[0]}")
    for label, by_colour in report["summary"].items():
        for name, s in by_colour.items():
            print(f"{label:<10} {name:<5} {s['median_leak']!s:>6} {s['median_beyond']:>7} {s['median_own']:>6} "
                  f"{s['median_whole']:>6} {s['median_shown_leak']!s:>10} "
                  f"{s['with_leak']:>3}/{s['photos']}  {s.get(f'lower_leak_than_{labels[0]}', '')}")
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.jpg')} ({len(rows)} photos)")


if __name__ == "__main__":
    main()
