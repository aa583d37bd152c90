"""A run folder and the one place that knows its files.

``koala train`` writes one folder per config (``runs/NAME/``)::

    config.yaml    the training config, as resolved
    koala.json     what inference needs (model, model_args, image_size, multiple), plus the run's
                   record (best_epoch, best_val_loss, epochs_run, train_seconds) and the shipped
                   colour setting (saturation, temperature) written by the tuning scripts
    best.keras     the epoch of lowest val_loss over the whole run
    history.csv    one row per epoch (Keras' CSVLogger)
    samples/       a gray | predicted | truth grid per epoch
    checkpoints/   epoch_NNN.keras, every Nth epoch's model when ``train.keep_every`` is N
    backup/        Keras' BackupAndRestore state while training; gone once the run finished

Everything else asks :class:`Run` for these paths. :func:`resolve_model` turns what a user types
(``default``, ``hints``, a run folder or a ``.keras`` file) into a model file, :func:`model_metadata`
finds that file's metadata, and :func:`bundle` makes a run the model koala ships
(``koala/weights/NAME.keras`` beside ``NAME.json``).

Example::

    run = Run("runs/default")
    if run.finished:
        print(run.read_metadata()["best_val_loss"], run.history()["val_loss"])
"""
from __future__ import annotations

import csv
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from koala import config as config_lib
from koala.images import FILE_MODE, write_atomic

if TYPE_CHECKING:
    import keras

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_MODEL = WEIGHTS_DIR / "default.keras"
# The default takes colour hints, a reference photo or a palette and suggests colours, so "hints"
# and "guided" (the separate models for those until issues 17 and 31 made them the default) name
# the same file.
BUNDLED = {"default": DEFAULT_MODEL, "hints": DEFAULT_MODEL, "guided": DEFAULT_MODEL}
BEST_CHECKPOINT = "best.keras"
KEPT_EPOCHS = "checkpoints"  # the run's folder of every Nth epoch's model (train.keep_every)
RUN_METADATA = "koala.json"
BACKUP_STATE = "training_metadata.json"  # what Keras' BackupAndRestore writes in backup/
LEGACY_MODEL_SUFFIXES = (".h5", ".hdf5")  # Keras 2's HDF5 models, which load_model still reads


class FinishedRunError(FileExistsError):
    """A finished run is where training would write, and cannot simply go on; the message names
    the ways on in config terms (``train.epochs``, ``name``, ``train.init_weights``, ``overwrite``),
    which a front end may follow with its own options for them."""


class Run:
    """A run folder: its files' paths, its metadata and whether it finished or can resume.

    Nothing is created until something is written; ``path`` may not exist yet.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.config_file = self.path / "config.yaml"
        self.metadata_file = self.path / RUN_METADATA
        self.best = self.path / BEST_CHECKPOINT
        self.history_file = self.path / "history.csv"
        self.backup = self.path / "backup"
        self.samples = self.path / "samples"
        self.checkpoints = self.path / KEPT_EPOCHS

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @property
    def finished(self) -> bool:
        """A best checkpoint and no backup: training ended (early stopping or the last epoch)."""
        return self.best.is_file() and not self.backup.exists()

    @property
    def resuming(self) -> bool:
        """A backup is there: training was cut short and starting it again continues it."""
        return self.backup.exists()

    def epochs_done(self) -> int:
        """Epochs the backup holds as finished (0 without one), from BackupAndRestore's record."""
        state = self.backup / BACKUP_STATE
        return json.loads(state.read_text())["epoch"] if state.is_file() else 0

    def checkpoint(self, epoch: int) -> Path:
        """Where ``train.keep_every`` keeps the model of ``epoch`` (counted from 1)."""
        return self.checkpoints / f"epoch_{epoch:03d}.keras"

    def read_metadata(self) -> dict:
        """koala.json (empty when there is none yet)."""
        return json.loads(self.metadata_file.read_text()) if self.metadata_file.is_file() else {}

    def write_metadata(self, meta: dict) -> None:
        """Replace koala.json, atomically: a kill never leaves half a file."""
        write_atomic(self.metadata_file, json.dumps(meta, indent=2).encode(), overwrite=True)

    def update_metadata(self, **fields) -> None:
        """Merge ``fields`` into koala.json (atomically, as :meth:`write_metadata`)."""
        self.write_metadata({**self.read_metadata(), **fields})

    def read_config(self) -> config_lib.Config:
        return config_lib.load(self.config_file)

    def save_config(self, cfg: config_lib.Config) -> None:
        config_lib.save(cfg, self.config_file)

    def history(self) -> dict[str, list[float]]:
        """Columns of history.csv, one value per row that has one (empty when there is none)."""
        if not self.history_file.is_file():
            return {}
        with open(self.history_file) as f:
            rows = list(csv.DictReader(f))
        columns = rows[0] if rows else {}
        return {key: [float(row[key]) for row in rows if row.get(key) not in (None, "")] for key in columns}


def resolve_model(spec: str | os.PathLike) -> Path:
    """``default`` or ``hints`` -> that bundled model; a run folder -> its best checkpoint; else the
    file itself."""
    if str(spec) in BUNDLED:
        path = BUNDLED[str(spec)]
        if not path.is_file():
            raise FileNotFoundError(f"{spec}: the bundled model {path.name} is not installed (koala/weights/ "
                                    f"has no {path.name}; give a run folder or a .keras file instead)")
        return path
    path = Path(spec)
    if path.is_dir():
        path = Run(path).best
    if not path.is_file():
        raise FileNotFoundError(f"{spec}: no such model (give 'default', 'hints', a run folder or a .keras file)")
    if path.suffix.lower() not in LEGACY_MODEL_SUFFIXES and not zipfile.is_zipfile(path):
        raise ValueError(f"{spec}: not a Keras model file (a .keras file is a zip archive; "
                         "give 'default', 'hints', a run folder or a .keras file)")
    return path


def model_metadata(model_path: str | os.PathLike) -> dict:
    """The metadata of a model file: its run's koala.json (also for a kept epoch in the run's
    checkpoints/), or ``<stem>.json`` beside a bundled model; empty when there is none (inference
    then falls back to the registry's defaults)."""
    model_path = Path(model_path)
    run = model_path.parent.parent if model_path.parent.name == KEPT_EPOCHS else model_path.parent
    for candidate in (Run(run).metadata_file, model_path.with_suffix(".json")):
        if candidate.is_file():
            return json.loads(candidate.read_text())
    return {}


def as_registered(network: "keras.Model", metadata: dict) -> "keras.Model":
    """``network`` as the class its architecture registers (``metadata``'s model and model_args),
    so that ``load_model`` alone rebuilds it: a model saved as a plain ``Functional`` (before the
    architectures were classes) gets a rebuilt network with its weights copied layer by layer, by
    name. Returned as it is when it already is that class."""
    from koala.models import get_model

    rebuilt = get_model(metadata["model"], **metadata.get("model_args", {}))
    if type(rebuilt) is type(network):
        return network
    for layer in rebuilt.layers:
        layer.set_weights(network.get_layer(layer.name).get_weights())
    return rebuilt


def save_model_atomic(network: "keras.Model", path: str | os.PathLike, overwrite: bool = False) -> None:
    """Save a ``.keras`` file so that a kill never leaves half of one; an existing file is kept
    unless ``overwrite`` (FileExistsError)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: exists")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".keras")
    os.close(fd)
    try:
        network.save(tmp)
        os.chmod(tmp, FILE_MODE)  # mkstemp's 0600 would hide the bundled model from other users
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def bundle(run: Run, name: str = "default", weights_dir: str | os.PathLike = WEIGHTS_DIR,
           overwrite: bool = False, stopped: bool = False) -> Path:
    """Ship a finished run: its best model, as its registered class and without optimizer state,
    as ``weights_dir/NAME.keras`` (the file a bundled model's name resolves to: ``hints`` is the
    default's), and its metadata beside it (where :func:`model_metadata` looks). ``stopped``: also
    the best so far of a run that was stopped and can resume (a long run across sessions; its
    backup is left as it is). Existing files are kept unless ``overwrite``. Returns the model's
    path."""
    import keras

    import koala.models  # noqa: F401  registers the architectures' classes, which load_model looks up

    if not (run.finished or (stopped and run.best.is_file())):
        raise FileNotFoundError(f"{run.path}: no finished run to bundle ({run.best.name} missing or still training)")
    target = Path(weights_dir) / (BUNDLED[name].name if name in BUNDLED else f"{name}.keras")
    metadata_file = target.with_suffix(".json")
    if not overwrite and (target.exists() or metadata_file.exists()):
        raise FileExistsError(f"{target if target.exists() else metadata_file}: exists")
    meta = run.read_metadata()
    network = as_registered(keras.saving.load_model(run.best, compile=False), meta)
    save_model_atomic(network, target, overwrite=overwrite)
    write_atomic(metadata_file, (json.dumps(meta, indent=2) + "\n").encode(), overwrite=overwrite)
    return target
