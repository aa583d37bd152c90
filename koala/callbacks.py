"""Keras callbacks of koala's own: what Keras does not already have."""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from koala.color import colorize_lab


class SampleGrid(keras.callbacks.Callback):
    """After each epoch, save a gray | predicted | truth grid of fixed validation images.

    Looking at colours is the quickest check that a run is learning more than sepia.
    """

    def __init__(self, inputs, ab_batch: np.ndarray, folder: str | Path, to_ab=None):
        """inputs: the model's input batch (L, or a dict with "L" and extra inputs);
        ab_batch: the true normalised ab; to_ab: turns the model's outputs into ab."""
        super().__init__()
        self.inputs = inputs
        self.l_batch = np.asarray(inputs["L"] if isinstance(inputs, dict) else inputs)
        self.ab_batch = np.asarray(ab_batch)
        self.folder = Path(folder)
        self.to_ab = to_ab or (lambda out: out)

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        pred_ab = np.asarray(self.to_ab(self.model.predict(self.inputs, verbose=0)))
        rows = [
            colorize_lab(self.l_batch, np.zeros_like(self.ab_batch)).numpy(),
            colorize_lab(self.l_batch, pred_ab).numpy(),
            colorize_lab(self.l_batch, self.ab_batch).numpy(),
        ]
        n = len(self.l_batch)
        fig, axes = plt.subplots(3, n, figsize=(2 * n, 6), squeeze=False)
        for r, (title, images) in enumerate(zip(("gray", "predicted", "truth"), rows)):
            for c in range(n):
                axes[r, c].imshow(images[c])
                axes[r, c].axis("off")
            axes[r, 0].set_title(title, loc="left", fontsize=9)
        fig.suptitle(f"epoch {epoch + 1}")
        self.folder.mkdir(parents=True, exist_ok=True)
        fig.savefig(self.folder / f"epoch_{epoch + 1:03d}.png", dpi=80)
        plt.close(fig)
