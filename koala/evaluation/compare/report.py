"""`koala compare`'s report: the Markdown table and text (report.md) and the numbers (report.json)."""
from __future__ import annotations

import json
from pathlib import Path

from koala.evaluation import METRICS, PROTOCOL
from koala.evaluation.frontier import markdown_table
from koala.images import write_atomic

TABLE_HEAD = ("model", "params", "train s", "train img/s", "infer img/s")
SHORT = {"colourfulness": "CF", "colourfulness_ratio": "CF ratio", "delta_colourfulness": "ΔCF"}


def _cell(value, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def metric_keys(summary: dict) -> list[str]:
    """The metrics the report holds, in table order."""
    return [k for k in METRICS if k in summary["gray_baseline"]]


def format_table(summary: dict) -> str:
    """The Markdown table: one row per model, then the gray baseline."""
    keys = metric_keys(summary)
    lines = ["| " + " | ".join(TABLE_HEAD + tuple(SHORT.get(k, k) for k in keys)) + " |",
             "|---|" + "---:|" * (len(TABLE_HEAD) - 1 + len(keys))]
    for label, r in summary["models"].items():
        ev = r["evaluation"]
        cells = [f"{label} ({r['arch']})" if label != r["arch"] else label, _cell(r["params"]),
                 _cell(r["train_seconds"], 0), _cell(r["train_images_per_second"], 2),
                 _cell(ev["images_per_second"], 2)]
        lines.append("| " + " | ".join(cells + [_cell(ev["model"][k]) for k in keys]) + " |")
    gray = ["gray baseline", "—", "—", "—", "—"] + [_cell(summary["gray_baseline"][k]) for k in keys]
    lines.append("| " + " | ".join(gray) + " |")
    return "\n".join(lines)


def format_frontier(frontier: dict, png: str) -> list[str]:
    """report.md's Frontier section: the sweep's table and the plot (``png``, relative to report.md)."""
    saturations = ", ".join(f"{s:g}" for s in sorted({p["saturation"] for p in frontier["sweep"]}))
    return ["", "## Frontier", "",
            f"Each model with its predicted ab scaled by {saturations} (saturation; 0 is the gray baseline), "
            f"on the same {frontier['images']} photo(s) at the same size as the table:", "",
            markdown_table(frontier), "", f"PSNR against colourfulness ratio: ![frontier]({png})"]


def format_report(summary: dict, rows: list[tuple[str, str]], frontier: dict | None = None) -> str:
    """report.md's text: the setting, :func:`format_table`, what each column means, the failed
    models, the curves and the grid (``rows``: (photo path, why it is shown)), and with
    ``frontier`` (a :func:`koala.evaluation.frontier.sweep_report`) its Frontier section."""
    b = summary["budget"]
    steps = f"{b['steps_per_epoch']} steps" if b["steps_per_epoch"] else "full passes"
    lines = [
        "# koala compare",
        "",
        f"Scored on {summary['images']} photo(s) of `{summary['data']}` at {summary['size']} x "
        f"{summary['size']} px. Same training budget for every trained model: {b['epochs']} epoch(s) of "
        f"{steps}, batch {b['batch_size']}, {b['image_size']} px crops. Metrics as defined in koala's "
        f"{PROTOCOL} (8-bit results, each beside the gray baseline).",
        "",
        format_table(summary),
        "",
        "Columns: params = trainable parameters; train s = training time (with validation); "
        "train img/s = training images per second (with validation); infer img/s = colorized photos "
        "per second at the scoring size.",
    ]
    lines += [f"- **{SHORT.get(k, k)}**: {METRICS[k]}" for k in metric_keys(summary)]
    if summary.get("fid_extractor"):
        lines.append(f"- fid features: {summary['fid_extractor']}")
    if summary["failed"]:
        lines += ["", "Failed:"] + [f"- {label}: {why}" for label, why in summary["failed"].items()]
    lines += ["", "Training curves: ![curves](curves.png)", "",
              "Gray input | each model | ground truth: ![grid](grid.png)", ""]
    lines += [f"- row {i + 1}: `{Path(path).name}` ({why})" for i, (path, why) in enumerate(rows)]
    if frontier is not None:
        lines += format_frontier(frontier, summary["frontier"]["png"])
    return "\n".join(lines) + "\n"


def write_json(summary: dict, folder: Path) -> None:
    """report.json: every number, the per-image scores and the resolved settings."""
    write_atomic(folder / "report.json", json.dumps(summary, indent=2, default=str).encode(), overwrite=True)


def write_markdown(summary: dict, rows: list[tuple[str, str]], folder: Path, frontier: dict | None = None) -> None:
    """report.md: :func:`format_report`, beside the curves, the grid of ``rows`` and the frontier."""
    write_atomic(folder / "report.md", format_report(summary, rows, frontier).encode(), overwrite=True)
