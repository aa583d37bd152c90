"""A hint model scored against the number of hints it is given, as Zhang, Zhu et al. 2017 measure it.

Each photo gets seeded simulated hints, placed as in training (patch centres normal around the
photo's centre, each the mean true colour of its patch; :func:`koala.data.hints.simulate_user_hints`)
at the photo's own size, with patches the size a hint without a radius has at the working size
(:data:`koala.data.hints.DEFAULT_PATCH` px there). They go through the same path as a person's
hints (``Colorizer.colorize_float(photo, hints=...)``). The hints for ``k`` are the first ``k``
of one draw, whatever other counts are asked for, so a photo's curve only ever adds hints and two
curves agree where their counts meet::

    koala evaluate --model hints --data photos/val --hints 0,1,2,5,10,20,50 --out hints.json

writes ``hints.json`` (:func:`hints_report`) and ``hints.png`` (:func:`plot_hints`), through
:func:`koala.evaluation.evaluate.write_report`: PSNR against
the number of hints beside ideepcolor's published curve, absolute and as the gain over no hints
(their photos and ours differ, so the gain is the fairer comparison).
"""
from __future__ import annotations

from pathlib import Path

import tensorflow as tf
from matplotlib.figure import Figure

from koala.data.hints import DEFAULT_PATCH, NoHintInputsError, simulate_user_hints
from koala.evaluation.evaluate import gray_baseline, image_scores, photos_at_size
from koala.evaluation.frontier import grouped, scored_photos
from koala.images import write_figure
from koala.inference import Colorizer, working_shape

# ideepcolor's curve: PSNR (dB) by number of hints, 1000 ImageNet val photos at 256 px.
IDEEPCOLOR_PSNR = {0: 24.43, 1: 25.37, 2: 26.20, 5: 27.39, 10: 28.42, 20: 29.34, 50: 30.42}
IDEEPCOLOR_LABEL = "ideepcolor (Zhang, Zhu et al. 2017; ImageNet val, 256 px)"
SEED_STRIDE = 1_000_003  # photo i of seed s draws from seed s * SEED_STRIDE + i


def photo_patch(colorizer: Colorizer, height: int, width: int) -> int:
    """Side in photo pixels of a hint patch that is ``DEFAULT_PATCH`` px at the working size."""
    small = working_shape(tf.constant(height), tf.constant(width), colorizer.image_size, colorizer.multiple)
    return max(1, round(DEFAULT_PATCH * height / int(small[0])))


def parse_counts(text: str, option: str = "counts") -> list[int]:
    """'0,1,2,5' -> [0, 1, 2, 5]; a clear error naming the option (as the caller calls it) otherwise."""
    try:
        counts = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise ValueError(f"{option}: expected comma-separated numbers of hints like 0,1,2,5,10; got {text!r}") from None
    if not counts or counts[0] < 0:
        raise ValueError(f"{option}: give numbers of hints of 0 or more; got {text!r}")
    return counts


def hints_report(colorizer: Colorizer, data: str, counts: list[int], size: int | None = None,
                 limit: int | None = None, seed: int = 0, progress: bool = True,
                 groups: dict[str, list[str]] | None = None) -> dict:
    """Score ``colorizer`` with each number of hints in ``counts`` on the photos of ``data``, beside
    the gray baseline. size: score at size x size (default: full resolution); seed: of the hints.
    Returns ``{"data", "size", "images", "seed", "gray_baseline", "hints": [{"hints": k, ...metrics}],
    "reference", "skipped"}``; the gray entry (named as in ``koala evaluate``'s and the sweep's
    reports) and each point hold overall metrics, per source and per group
    (:func:`koala.evaluation.frontier.grouped`)."""
    if not colorizer.takes_hints:
        raise NoHintInputsError((colorizer.metadata or {}).get("model", colorizer.network.name))
    paths, source = scored_photos(data, limit, groups)
    rows = {k: [] for k in counts}
    gray_rows, sources, skipped = [], [], []
    for index, (path, true) in enumerate(photos_at_size(paths, size, skipped, progress, desc="hints")):
        sources.append(source[path])
        gray_rows.append(image_scores(gray_baseline(true), true))
        patch = photo_patch(colorizer, *true.shape[:2])
        drawn = simulate_user_hints(true, seed * SEED_STRIDE + index, max(counts), patch) if max(counts) else []
        for k in counts:
            rows[k].append(image_scores(colorizer.colorize_float(true, hints=drawn[:k]), true))
    if not gray_rows:
        raise ValueError("no readable images to evaluate")
    return {"data": str(data), "size": size, "images": len(gray_rows), "seed": seed, "patch": DEFAULT_PATCH,
            "gray_baseline": grouped(gray_rows, sources, groups),
            "hints": [{"hints": k, **grouped(rows[k], sources, groups)} for k in counts],
            "reference": {"label": IDEEPCOLOR_LABEL, "psnr": IDEEPCOLOR_PSNR}, "skipped": skipped}


def gains(report: dict) -> dict[int, float]:
    """PSNR gain over no hints per number of hints (needs 0 among the counts)."""
    base = {p["hints"]: p["psnr"] for p in report["hints"]}.get(0)
    return {} if base is None else {p["hints"]: p["psnr"] - base for p in report["hints"]}


def markdown_table(report: dict) -> str:
    """One row per number of hints: ours (PSNR, gain over no hints, SSIM, colourfulness ratio)
    beside ideepcolor's PSNR and gain; the gray baseline last."""
    ours, theirs = gains(report), IDEEPCOLOR_PSNR
    lines = ["| hints | PSNR | gain over 0 hints | SSIM | CF ratio | ideepcolor PSNR | ideepcolor gain |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for p in report["hints"]:
        k = p["hints"]
        gain = f"{ours[k]:+.2f}" if k in ours else ""
        ref = f"{theirs[k]:.2f} | {theirs[k] - theirs[0]:+.2f}" if k in theirs else " | "
        lines.append(f"| {k} | {p['psnr']:.2f} | {gain} | {p['ssim']:.4f} | {p['colourfulness_ratio']:.3f} | {ref} |")
    gray = report["gray_baseline"]
    lines.append(f"| gray baseline | {gray['psnr']:.2f} |  | {gray['ssim']:.4f} | {gray['colourfulness_ratio']:.3f} |  |  |")
    return "\n".join(lines)


def plot_hints(report: dict, path: str | Path) -> None:
    """Two panels, the number of hints on a log(1 + k) axis: PSNR, and PSNR gain over no hints;
    ours (overall and per source, thin) beside ideepcolor's published curve."""
    fig = Figure(figsize=(10, 4))
    absolute, gain = fig.subplots(1, 2)
    ref_k = sorted(IDEEPCOLOR_PSNR)
    ours_k = [p["hints"] for p in report["hints"]]
    for ax, relative in ((absolute, False), (gain, True)):
        ref = [IDEEPCOLOR_PSNR[k] - (IDEEPCOLOR_PSNR[0] if relative else 0.0) for k in ref_k]
        ax.plot(ref_k, ref, marker="s", color="grey", linestyle="--", label=IDEEPCOLOR_LABEL)
        base = {p["hints"]: p["psnr"] for p in report["hints"]}.get(0, 0.0) if relative else 0.0
        ax.plot(ours_k, [p["psnr"] - base for p in report["hints"]], marker="o", color="C0",
                label=f"ours: {report['images']} photos of {Path(report['data']).name}")
        for i, name in enumerate(sorted(report["gray_baseline"].get("sources", {}))):
            points = [(p["hints"], p["sources"][name]["psnr"]) for p in report["hints"]]
            zero = dict(points).get(0, 0.0) if relative else 0.0
            ax.plot([k for k, _ in points], [v - zero for _, v in points], linewidth=0.7, alpha=0.6,
                    color=f"C{i + 1}", label=name)
        if not relative:
            ax.axhline(report["gray_baseline"]["psnr"], color="black", linestyle=":", linewidth=0.8, label="gray baseline (ours)")
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xticks(sorted(set(ref_k) | set(ours_k)))
        ax.set_xticklabels([str(k) for k in sorted(set(ref_k) | set(ours_k))])
        ax.set_xlabel("simulated hints per photo")
        ax.set_ylabel("PSNR gain over no hints (dB)" if relative else "PSNR (dB)")
        ax.set_title("gain over no hints" if relative else "PSNR", fontsize=10)
        ax.grid(alpha=0.3)
    absolute.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    write_figure(fig, path, dpi=110)
