"""The PSNR-colourfulness frontier: a model scored along its colour knobs, beside gray.

PSNR alone rewards grey and sepia; colourfulness alone rewards vivid wrong guesses. So a model is
judged by the curve it traces as its colour knobs move (``saturation`` scales the predicted ab;
``temperature`` is the annealed-mean temperature of models that predict a colour distribution),
always beside the grayscale baseline (ab = 0), overall and per source (the first-level
sub-folders of the photo folder)::

    koala evaluate --model default --data photos/val --sweep 0.8,1,1.2,1.4 --out frontier.json

writes ``frontier.json`` (:func:`sweep_report`) and ``frontier.png`` (:func:`plot_frontier`), through
:func:`koala.evaluation.evaluate.write_report`.
The network runs once per photo and temperature; each saturation only rescales its ab.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable

import tensorflow as tf
from matplotlib.figure import Figure

from koala.color import TEMPERATURE, l_ab_to_rgb, rgb_to_l
from koala.evaluation.evaluate import gray_baseline, image_scores, photos_at_size, summarise
from koala.images import group_by_source, list_images, write_figure
from koala.inference import Colorizer, predict_ab
from koala.knobs import check_saturation, check_temperature


def point_metrics(rows: list[dict]) -> dict[str, float]:
    """The frontier's numbers for a group of per-image scores (:func:`koala.evaluation.evaluate.image_scores`)."""
    s = summarise(rows)
    return {"psnr": s["psnr"], "ssim": s["ssim"], "colourfulness_ratio": s["colourfulness_ratio"],
            "auc": s["auc"], "ab_mse": s["ab_mse"], "images": len(rows)}


def check_groups(groups: dict[str, list[str]] | None, sources: list[str]) -> None:
    """Refuse a group that names a source the data lacks: it would score nothing, silently (a typo,
    or a split file whose photos sit under other folder names than the group's)."""
    for name, members in (groups or {}).items():
        missing = [m for m in members if m not in sources]
        if missing:
            raise ValueError(f"group {name}: no source {', '.join(missing)} in the data "
                             f"(its sources: {', '.join(sorted(sources))})")


def scored_photos(data: str, limit: int | None, groups: dict[str, list[str]] | None
                  ) -> tuple[list[str], dict[str, str]]:
    """The photos of ``data`` to score (the first ``limit``) and each one's source
    (:func:`koala.images.group_by_source`, named from all of ``data``: the first few photos of a
    folder may all lie in one source), once every group's sources are known to be there."""
    listed = list_images(data)
    source = {path: name for name, group in group_by_source(listed, data).items() for path in group}
    check_groups(groups, sorted(set(source.values())))
    paths = listed[:limit]
    return paths, {path: source[path] for path in paths}


def grouped(rows: list[dict], sources: list[str], groups: dict[str, list[str]] | None = None) -> dict:
    """Overall metrics plus ``sources``: the same per source (when there is more than one), and
    ``groups``: the same over each named group of sources (e.g. the general-photo sources)."""
    out = point_metrics(rows)
    names = sorted(set(sources))
    if len(names) > 1:
        out["sources"] = {name: point_metrics([r for r, s in zip(rows, sources) if s == name]) for name in names}
    for name, members in (groups or {}).items():
        picked = [r for r, s in zip(rows, sources) if s in members]
        if picked:
            out.setdefault("groups", {})[name] = point_metrics(picked)
    return out


def _ab_function(colorizer: Colorizer, temperature: float | None):
    """Normalised L (1, H, W, 1) -> normalised ab at full resolution, traced once for any size."""
    network = dataclasses.replace(colorizer, temperature=temperature).network_fn()
    size, multiple = colorizer.image_size, colorizer.multiple
    return tf.function(lambda l_full: predict_ab(network, l_full, size, multiple),
                       input_signature=[tf.TensorSpec([1, None, None, 1], tf.float32)])


def check_temperatures(colorizer: Colorizer, temperatures: list[float], label: str) -> None:
    """Temperatures only mean something for models that predict a colour distribution, and
    within :data:`koala.knobs.TEMPERATURE_RANGE`."""
    if temperatures and not colorizer.predicts_distribution:
        raise ValueError(f"temperature sweep: {label} predicts ab directly; temperature applies only to "
                         "models that predict a colour distribution (zhang16)")
    for t in temperatures:
        check_temperature(t, "temperatures")


def sweep_report(models: dict[str, Colorizer], data: str, saturations: list[float] | None,
                 temperatures: list[float] | None, size: int | None = None, limit: int | None = None,
                 progress: bool = True, groups: dict[str, list[str]] | None = None) -> dict:
    """Score each model in ``models`` (label -> colorizer) at every (temperature, saturation) pair
    on the photos of ``data``, beside the gray baseline.

    saturations: default each model's own; temperatures: default the model's own (only for models
    that predict a colour distribution). size: score at size x size (default: full resolution).
    groups: named groups of sources also scored together (``{"general": ["bsds500", "urban100"]}``).
    Each photo is read, and the gray baseline scored, once for all models. Returns
    ``{"data", "size", "images", "gray_baseline": {...}, "sweep": [points], "skipped"}``: each point
    and the gray entry hold overall metrics (named as in ``koala evaluate``'s report) and the same
    per source (:func:`koala.images.group_by_source`) and per group.
    """
    for s in saturations or []:
        check_saturation(s, "saturations")
    paths, source = scored_photos(data, limit, groups)
    ab_fns, pairs = {}, {}
    for label, colorizer in models.items():
        check_temperatures(colorizer, temperatures or [], label)
        temps = temperatures or [colorizer.temperature]
        ab_fns[label] = {t: _ab_function(colorizer, t) for t in temps}
        pairs[label] = [(t, s) for t in temps for s in saturations or [colorizer.saturation]]
    rows = {(label, t, s): [] for label, ts in pairs.items() for t, s in ts}
    gray_rows, sources, skipped = [], [], []
    for path, true in photos_at_size(paths, size, skipped, progress, desc="sweep"):
        sources.append(source[path])
        gray_rows.append(image_scores(gray_baseline(true), true))
        l_full = rgb_to_l(tf.constant(true[None], tf.float32))
        for label, fns in ab_fns.items():
            for t, ab_fn in fns.items():
                ab = ab_fn(l_full)
                for s in (s for pt, s in pairs[label] if pt == t):
                    rows[(label, t, s)].append(image_scores(l_ab_to_rgb(l_full, ab * s)[0].numpy(), true))
    if not gray_rows:
        raise ValueError("no readable images to evaluate")
    points = []
    for label, colorizer in models.items():
        parameter = "temperature" if temperatures and len({s for _, s in pairs[label]}) == 1 else "saturation"
        for t, s in pairs[label]:
            points.append({"model": label, "parameter": parameter, "value": t if parameter == "temperature" else s,
                           "saturation": s, "temperature": effective_temperature(colorizer, t),
                           **grouped(rows[(label, t, s)], sources, groups)})
    gray = grouped(gray_rows, sources, groups)
    return {"data": str(data), "size": size, "images": gray["images"], "gray_baseline": gray, "sweep": points,
            "skipped": skipped}


def with_current_keys(report: dict) -> dict:
    """A sweep report under the names ``koala evaluate`` uses, so sweeps written before the two
    agreed (``gray`` for ``gray_baseline``, ``cf_ratio`` for ``colourfulness_ratio``) still
    tabulate and plot (in ``koala compare``'s report too)."""
    def renamed(entry: dict) -> dict:  # a metrics entry, its sources and groups
        return {("colourfulness_ratio" if k == "cf_ratio" else k): renamed(v) if isinstance(v, dict) else v
                for k, v in entry.items()}

    out = {("gray_baseline" if k == "gray" else k): v for k, v in report.items()}
    return {**out, "gray_baseline": renamed(out["gray_baseline"]), "sweep": [renamed(p) for p in out["sweep"]]}


def read_report(path: str | Path) -> dict:
    """A sweep report from its JSON file, under the current keys (:func:`with_current_keys`); a
    ValueError naming the file when it cannot be read or is not JSON."""
    try:
        return with_current_keys(json.loads(Path(path).read_text()))
    except OSError as e:
        raise ValueError(f"{path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON ({e})") from None


def merge_reports(reports: list[tuple[dict, dict[str, str]]]) -> dict:
    """Sweeps of the same photos, run at different times, as one report to tabulate and plot
    together: each (report, {model: label}) gives its points of those models under those labels
    (an empty mapping: every model as it is named). A ValueError when the photos or their gray
    baselines differ, or two curves would share a label."""
    first = with_current_keys(reports[0][0])
    sweep, labels = [], set()
    for report, rename in reports:
        report = with_current_keys(report)
        if (report["data"], report["images"], report.get("size")) != (first["data"], first["images"], first.get("size")):
            raise ValueError(f"cannot merge sweeps of different photos: {report['data']} ({report['images']}) "
                             f"and {first['data']} ({first['images']})")
        if abs(report["gray_baseline"]["psnr"] - first["gray_baseline"]["psnr"]) > 1e-3:  # float noise across runs
            raise ValueError(f"cannot merge sweeps of {report['data']}: their gray baselines differ")
        points = [{**p, "model": rename.get(p["model"], p["model"])} for p in report["sweep"]
                  if not rename or p["model"] in rename]
        clash = labels & {p["model"] for p in points}
        if clash:
            raise ValueError(f"two curves would be labelled {sorted(clash)[0]!r}: rename one")
        labels |= {p["model"] for p in points}
        sweep += points
    return {**first, "sweep": sweep}


def choose(report: dict, margin: float, group_margin: float, source_floor: float) -> dict | None:
    """The shipped colour setting's rule: of a :func:`sweep_report`'s points, the most colourful
    (highest colourfulness ratio) whose PSNR is at least ``margin`` dB above gray overall, at
    least ``group_margin`` dB above it on every group of sources, and at most ``source_floor`` dB
    below it on any source; None when no point qualifies.

    Example: with margin 0.7, group_margin 0.3 and source_floor 0.3, a point +0.9 dB overall whose
    worst source is 0.4 dB below gray is passed over for a greyer one that keeps every source.
    """
    gray = with_current_keys(report)["gray_baseline"]

    def gain(point: dict, kind: str | None = None, name: str | None = None) -> float:
        if kind is None:
            return point["psnr"] - gray["psnr"]
        return point[kind][name]["psnr"] - gray[kind][name]["psnr"]

    def ok(point: dict) -> bool:
        return (gain(point) >= margin
                and all(gain(point, "groups", g) >= group_margin for g in point.get("groups", {}))
                and all(gain(point, "sources", s) >= -source_floor for s in point.get("sources", {})))

    candidates = [p for p in with_current_keys(report)["sweep"] if ok(p)]
    return max(candidates, key=lambda p: p["colourfulness_ratio"]) if candidates else None


def effective_temperature(colorizer: Colorizer, temperature: float | None) -> float | None:
    """The temperature a distribution model decodes with (the paper's when None); None for others."""
    if not colorizer.predicts_distribution:
        return None
    return TEMPERATURE if temperature is None else float(temperature)


def curves(report: dict) -> dict[str, list[dict]]:
    """Sweep points grouped into curves: one per model (and temperature, on a 2-D sweep)."""
    out: dict[str, list[dict]] = {}
    for point in report["sweep"]:
        key = point["model"]
        if point["parameter"] == "saturation" and len({p["temperature"] for p in report["sweep"]
                                                       if p["model"] == point["model"]}) > 1:
            key += f" (T={point['temperature']:g})"
        out.setdefault(key, []).append(point)
    return out


def _panel(ax, report: dict, pick: Callable[[dict], dict | None], title: str) -> None:
    """One PSNR-colourfulness plot of the metrics ``pick`` takes from each entry (overall, one
    source, one group); each point labelled with its setting (s: saturation, T: temperature)."""
    gray = pick(report["gray_baseline"])
    for key, points in curves(report).items():
        metrics = [(pick(p), p) for p in points if pick(p)]
        xs = [m["colourfulness_ratio"] for m, _ in metrics]
        ys = [m["psnr"] for m, _ in metrics]
        (line,) = ax.plot(xs, ys, marker="o", markersize=3, label=key)
        for x, y, (_, p) in zip(xs, ys, metrics):
            ax.annotate(f"{'T' if p['parameter'] == 'temperature' else 's'}={p['value']:g}", (x, y), fontsize=6,
                        color=line.get_color(), xytext=(2, 2), textcoords="offset points")
    ax.axhline(gray["psnr"], color="grey", linestyle="--", linewidth=0.8)
    ax.plot([gray["colourfulness_ratio"]], [gray["psnr"]], marker="*", markersize=10, color="black",
            linestyle="none", label="gray baseline (ab = 0)")
    ax.axvline(1.0, color="grey", linestyle=":", linewidth=0.8)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("colourfulness ratio (output / photos)", fontsize=8)
    ax.set_ylabel("PSNR (dB)", fontsize=8)
    ax.tick_params(labelsize=7)


BETTER = "better: up (closer to the photos) and right (more colour, up to 1)"


def frontier_figure(report: dict) -> Figure:
    """PSNR against colourfulness ratio: one curve per model, points labelled with their setting
    (s=saturation, T=temperature), the gray baseline as a star and a dashed line, which way is
    better; then one small panel per group of sources and per source."""
    report = with_current_keys(report)
    gray = report["gray_baseline"]
    panels = [(lambda m, g=g: m.get("groups", {}).get(g), f"group {g} ({gray['groups'][g]['images']})")
              for g in sorted(gray.get("groups", {}))]
    panels += [(lambda m, s=s: m.get("sources", {}).get(s), f"{s} ({gray['sources'][s]['images']})")
               for s in sorted(gray.get("sources", {}))]
    cols = 4
    rows = 1 + (len(panels) + cols - 1) // cols
    fig = Figure(figsize=(3.2 * cols, 3.0 * rows + 1.2))
    main = fig.add_subplot(rows, 2, 1)
    _panel(main, report, lambda m: m, f"all {report['images']} photos of {Path(report['data']).name}")
    main.legend(fontsize=7, loc="best")
    main.annotate(BETTER, xy=(0.98, 0.04), xycoords="axes fraction", ha="right", fontsize=7, color="dimgrey")
    for i, (pick, title) in enumerate(panels):
        _panel(fig.add_subplot(rows, cols, cols + i + 1), report, pick, title)
    fig.tight_layout()
    return fig


def plot_frontier(report: dict, path: str | Path) -> None:
    """:func:`frontier_figure` saved as a PNG (drawn without pyplot: no global backend is switched)."""
    write_figure(frontier_figure(report), path, dpi=110)


def parse_values(text: str | None, option: str,
                 check: Callable[[float, str], float] | None = None) -> list[float] | None:
    """'0.8,1,1.2' -> [0.8, 1.0, 1.2], each through ``check(value, option)`` when given (e.g.
    :func:`koala.knobs.check_saturation`); a clear error naming the option otherwise."""
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{option}: expected comma-separated numbers like 0.8,1,1.2; got {text!r}") from None
    if not values:
        raise ValueError(f"{option}: give at least one value")
    return [check(v, option) for v in values] if check else values


def parse_labelled(item: str) -> tuple[str, str]:
    """'LABEL=MODEL' -> (label, model): the label ends at the first '=', so a model path may hold
    one; MODEL alone (or with an empty label) is its own label.

    Example: ``parse_labelled("stage 3=runs/lr=1e-4")`` is ``("stage 3", "runs/lr=1e-4")``.
    """
    label, _, model = item.partition("=")
    return (label, model) if label and model else (item.lstrip("="), item.lstrip("="))


def parse_groups(items: list[str] | None, option: str = "group") -> dict[str, list[str]]:
    """['general=bsds500,urban100'] -> {'general': ['bsds500', 'urban100']}; a clear error naming
    the option (as the caller calls it) otherwise."""
    groups = {}
    for item in items or []:
        name, _, members = item.partition("=")
        if not name or not members:
            raise ValueError(f"{option}: expected NAME=SOURCE1,SOURCE2; got {item!r}")
        groups[name] = [m for m in members.split(",") if m]
    return groups


def markdown_table(report: dict, sources: list[str] | None = None) -> str:
    """One row per sweep point and the gray baseline: PSNR (and its gain over gray), colourfulness
    ratio, SSIM, AuC; then the same PSNR/CF columns for the given sources or groups of sources
    (default: every group)."""
    report = with_current_keys(report)
    sources = sources if sources is not None else sorted(report["gray_baseline"].get("groups", {}))
    head = ["model", "saturation", "temperature", "PSNR", "vs gray", "CF ratio", "SSIM", "AuC"]
    for s in sources:
        head += [f"{s} PSNR vs gray", f"{s} CF"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 3 + "---:|" * (len(head) - 3)]
    gray = report["gray_baseline"]

    def cells(m: dict) -> list[str]:
        out = [f"{m['psnr']:.2f}", f"{m['psnr'] - gray['psnr']:+.2f}", f"{m['colourfulness_ratio']:.3f}",
               f"{m['ssim']:.4f}", f"{m['auc']:.4f}"]
        for s in sources:
            sm = m.get("groups", {}).get(s) or m.get("sources", {}).get(s)
            sg = gray.get("groups", {}).get(s) or gray.get("sources", {}).get(s)
            out += [f"{sm['psnr'] - sg['psnr']:+.2f}", f"{sm['colourfulness_ratio']:.3f}"] if sm and sg else ["", ""]
        return out

    for p in report["sweep"]:
        t = "" if p["temperature"] is None else f"{p['temperature']:g}"
        lines.append("| " + " | ".join([p["model"], f"{p['saturation']:g}", t, *cells(p)]) + " |")
    lines.append("| " + " | ".join(["gray baseline", "0", "", *cells(gray)]) + " |")
    return "\n".join(lines)
