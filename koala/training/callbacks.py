"""Keras callbacks of koala's own: what Keras does not already have."""
from __future__ import annotations

import csv
import io
import os
import time
from pathlib import Path

import keras
import numpy as np

from koala.color import l_ab_to_rgb
from koala.images import write_atomic, write_figure
from koala.runs import Run, save_model_atomic


class BestCheckpoint(keras.callbacks.ModelCheckpoint):
    """The run's best checkpoint: the epoch of lowest val_loss over the whole run, across kills and
    restarts.

    Each time it saves, the epoch (from 1) and its val_loss go into the run's metadata
    (``best_epoch``, ``best_val_loss``). A resumed run starts from the recorded value, not from
    infinity, so an epoch after a restart replaces the checkpoint only when it beats every earlier
    epoch. The file is written beside its place and renamed in: a kill never leaves half a model.
    """

    def __init__(self, run: Run):
        self.run = run
        best = run.read_metadata().get("best_val_loss")
        partial = run.best.with_name(f".{run.best.name}.partial.keras")
        super().__init__(str(partial), monitor="val_loss", save_best_only=True, initial_value_threshold=best)

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        before = self.best
        super().on_epoch_end(epoch, logs)
        if self.best is not None and self.best != before:
            os.replace(self.filepath, self.run.best)
            self.run.update_metadata(best_epoch=epoch + 1, best_val_loss=float(self.best))


class EpochCheckpoints(keras.callbacks.Callback):
    """Every ``every``-th epoch's model in the run's checkpoints/ (``train.keep_every``), beside the
    best one: the epoch of lowest val_loss is not always the best colour, and a long run is chosen
    by scoring these on the frontier. Written atomically; a re-run epoch replaces its file."""

    def __init__(self, run: Run, every: int):
        super().__init__()
        self.run = run
        self.every = every

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if (epoch + 1) % self.every == 0:
            self.run.checkpoints.mkdir(parents=True, exist_ok=True)
            save_model_atomic(self.model, self.run.checkpoint(epoch + 1), overwrite=True)


class EpochHistory(keras.callbacks.CSVLogger):
    """history.csv, one row per epoch counted from 1 (as Keras' progress lines, ``samples/`` and
    ``best_epoch``), each epoch once.

    ``keep``: None starts a new file; a number keeps the rows of epochs up to it and appends after
    them. A run killed after an epoch was recorded but before its backup was saved trains that
    epoch again: its earlier row is dropped, not repeated.
    """

    def __init__(self, path: str | os.PathLike, keep: int | None = None):
        super().__init__(str(path), append=keep is not None)
        self.keep = keep

    def on_train_begin(self, logs=None) -> None:
        path = Path(self.filename)
        if self.keep is not None and path.is_file():
            with open(path, newline="") as f:
                rows = list(csv.reader(f))
            kept = rows[:1] + [row for row in rows[1:] if row and int(float(row[0])) <= self.keep]
            text = io.StringIO()
            csv.writer(text).writerows(kept if len(kept) > 1 else [])
            write_atomic(path, text.getvalue().encode(), overwrite=True)
        super().on_train_begin(logs)

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        super().on_epoch_end(epoch + 1, logs)


class RunClock(keras.callbacks.Callback):
    """Keeps the run metadata's ``epochs_run`` (epochs the run has finished, over every process),
    ``train_seconds`` and ``cpu_seconds`` (wall-clock and process CPU time spent on them, all threads,
    input pipeline included, summed over every process: a restart adds to them; the part of an
    epoch cut short by a kill is not counted) up to date after every epoch.

    ``cpu_budget`` (seconds, default None): stop after the epoch at which the run's CPU time
    reaches it, so architectures are compared at equal compute whatever else the machine runs.
    """

    def __init__(self, run: Run, cpu_budget: float | None = None):
        super().__init__()
        self.run = run
        self.cpu_budget = cpu_budget
        self._mark = self._cpu_mark = 0.0

    def on_train_begin(self, logs=None) -> None:
        self._mark, self._cpu_mark = time.perf_counter(), time.process_time()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        now, cpu_now = time.perf_counter(), time.process_time()
        meta = self.run.read_metadata()
        seconds = meta.get("train_seconds", 0.0) + (now - self._mark)
        cpu = meta.get("cpu_seconds", 0.0) + (cpu_now - self._cpu_mark)
        self.run.update_metadata(epochs_run=epoch + 1, train_seconds=seconds, cpu_seconds=cpu)
        self._mark, self._cpu_mark = now, cpu_now
        if self.cpu_budget is not None and cpu >= self.cpu_budget:
            print(f"cpu budget reached: {cpu:.0f} of {self.cpu_budget:.0f} CPU seconds", flush=True)
            self.model.stop_training = True


class SampleGrid(keras.callbacks.Callback):
    """After each epoch, save a gray | predicted | truth grid of fixed validation images.

    Looking at colours is the quickest check that a run is learning more than sepia.
    """

    def __init__(self, inputs, ab_batch: np.ndarray, folder: str | os.PathLike, to_ab=None):
        """inputs: the model's input batch (L, or a dict with "L" and extra inputs);
        ab_batch: the true normalised ab; to_ab: turns the model's outputs into ab."""
        super().__init__()
        self.inputs = inputs
        self.l_batch = np.asarray(inputs["L"] if isinstance(inputs, dict) else inputs)
        self.ab_batch = np.asarray(ab_batch)
        self.folder = Path(folder)
        self.to_ab = to_ab or (lambda out: out)

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        from matplotlib.figure import Figure

        pred_ab = np.asarray(self.to_ab(self.model.predict(self.inputs, verbose=0)))
        rows = [
            l_ab_to_rgb(self.l_batch, np.zeros_like(self.ab_batch)).numpy(),
            l_ab_to_rgb(self.l_batch, pred_ab).numpy(),
            l_ab_to_rgb(self.l_batch, self.ab_batch).numpy(),
        ]
        n = len(self.l_batch)
        fig = Figure(figsize=(2 * n, 6))
        axes = fig.subplots(3, n, squeeze=False)
        for r, (title, images) in enumerate(zip(("gray", "predicted", "truth"), rows)):
            for c in range(n):
                axes[r, c].imshow(images[c])
                axes[r, c].axis("off")
            axes[r, 0].set_title(title, loc="left", fontsize=9)
        fig.suptitle(f"epoch {epoch + 1}")
        write_figure(fig, self.folder / f"epoch_{epoch + 1:03d}.png", dpi=80)
