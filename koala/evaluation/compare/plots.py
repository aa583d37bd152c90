"""`koala compare`'s pictures: training curves (curves.png) and the image grid (grid.png).

:func:`draw_image_grid` is the grid itself (one row of images per photo, titled columns), also
used by ``scripts/model_card_grid.py``.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from matplotlib.figure import Figure

from koala.evaluation.evaluate import gray_baseline, load_at_size
from koala.images import write_figure


def draw_image_grid(rows: Iterable[tuple[str, list[np.ndarray]]], titles: list[str], path: str | Path,
                    cell: tuple[float, float] = (1.8, 1.9), title_size: float = 8, label_size: float = 6,
                    dpi: int = 100) -> None:
    """One row per (label, float RGB images) of ``rows``, one column per title: images clipped to
    [0, 1] without axes, the titles over the first row, each row's label on its left.
    ``cell``: inches per column and per row."""
    rows = list(rows)
    fig = Figure(figsize=(cell[0] * len(titles), cell[1] * len(rows)))
    axes = fig.subplots(len(rows), len(titles), squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c, image in enumerate(images):
            axes[r, c].imshow(np.clip(image, 0, 1))
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
            if r == 0:
                axes[r, c].set_title(titles[c], fontsize=title_size)
        axes[r, 0].set_ylabel(label, fontsize=label_size)
    fig.tight_layout()
    write_figure(fig, path, dpi)


def grid_rows(paths: list[str], results: dict, samples: int) -> list[tuple[str, str]]:
    """(path, why) rows of the image grid: ``samples`` photos evenly spaced over the list, then
    each model's worst and best photo by PSNR; a photo chosen twice appears once."""
    rows: dict[str, list[str]] = {}
    if samples > 0:
        for i in sorted(set(np.linspace(0, len(paths) - 1, min(samples, len(paths))).round().astype(int))):
            rows.setdefault(paths[i], []).append("sample")
    for label, r in results.items():
        scores = [p["psnr"] for p in r["evaluation"]["per_image"]]
        rows.setdefault(paths[int(np.argmin(scores))], []).append(f"worst {label}")
        rows.setdefault(paths[int(np.argmax(scores))], []).append(f"best {label}")
    return [(path, ", ".join(why)) for path, why in rows.items()]


def plot_grid(rows: list[tuple[str, str]], colorizers: dict, size: int, path: Path) -> None:
    """gray | each model | truth for every (photo path, why) row, at the scoring size."""

    def images(image_path: str) -> list[np.ndarray]:
        true = load_at_size(image_path, size)
        return [gray_baseline(true), *(c.colorize_float(true) for c in colorizers.values()), true]

    draw_image_grid((("\n".join([Path(image_path).stem, *why.split(", ")]), images(image_path))
                     for image_path, why in rows), ["gray input", *colorizers, "ground truth"], path)


def plot_curves(histories: dict[str, dict[str, list[float]]], path: Path) -> None:
    """Loss and validation loss per epoch, one panel per model (losses differ between models);
    ``histories``: label -> the columns of its training history."""
    fig = Figure(figsize=(3.2 * len(histories), 2.8))
    axes = fig.subplots(1, len(histories), squeeze=False)
    for ax, (label, history) in zip(axes[0], histories.items()):
        for key in ("loss", "val_loss"):
            if history.get(key):
                epochs = np.arange(1, len(history[key]) + 1)
                ax.plot(epochs, history[key], marker="o", label=key)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("epoch")
        if history:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "no training history", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    write_figure(fig, path, dpi=100)
