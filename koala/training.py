"""Training with Keras `fit` and Keras callbacks: one run folder per config.

A run folder holds ``config.yaml``, ``koala.json`` (what inference needs), ``best.keras``,
``history.csv``, ``samples/`` and, while training, ``backup/``: start the same config again
after a crash or a kill and it resumes from the last finished epoch.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import keras
import tensorflow as tf

from koala import config as config_lib
from koala.callbacks import BestCheckpoint, RunClock, SampleGrid
from koala.data import make_dataset
from koala.data.samples import write_sample_photos
from koala.inference import resolve_model_path
from koala.distributed import get_strategy, train_multiworker
from koala.losses import get_loss
from koala.models import get_model, get_spec

log = logging.getLogger(__name__)

TENSOR_CORE_CAPABILITY = (7, 0)
BF16_CAPABILITY = (8, 0)


def gpu_capabilities() -> list[tuple[int, int]]:
    """Compute capabilities of the visible GPUs (empty on a CPU-only machine)."""
    caps = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        caps.append(tuple(details.get("compute_capability", (0, 0))))
    return caps


def resolve_precision(requested: str, capabilities: list[tuple[int, int]]) -> str:
    """Pick the dtype policy. ``auto``: float32 on CPU (mixed precision is several times slower there),
    mixed_float16 on GPUs with tensor cores. Explicit choices are honoured."""
    choices = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
    if requested not in choices:
        raise ValueError(f"unknown precision {requested!r}; choose from {choices}")
    if requested != "auto":
        return requested
    if capabilities and min(capabilities) >= TENSOR_CORE_CAPABILITY:
        return "mixed_float16"
    return "float32"


def resolve_jit(requested, capabilities: list[tuple[int, int]]) -> bool:
    """XLA only pays off on a GPU; on this CPU float32 without XLA is fastest."""
    if requested == "auto":
        return bool(capabilities)
    return bool(requested)


def data_source(path: str) -> str:
    """A configured data path, or scikit-image's colour photos when none is given."""
    if path:
        return path
    cache = Path(os.environ.get("KOALA_CACHE", "~/.cache/koala")).expanduser()
    return write_sample_photos(cache / "skimage-photos")


def run_metadata(cfg: config_lib.Config) -> dict:
    """What inference needs to use a trained model: read back by :mod:`koala.inference`."""
    spec = get_spec(cfg.model)
    return {"model": cfg.model, "model_args": cfg.model_args, "image_size": cfg.data.image_size,
            "output": spec.output, "multiple": spec.multiple}


def build_datasets(cfg: config_lib.Config):
    """Train and validation datasets: batches of (L, ab), or ({"L", <side input>}, ab) for a model
    whose spec asks for a side input (koalarization: its embedding, from ``data.embeddings`` or
    computed on the fly)."""
    d, t = cfg.data, cfg.train
    spec = get_spec(cfg.model)
    side = spec.side_input(cfg.model_args, d.embeddings) if spec.side_input else None
    train = make_dataset(data_source(d.train), d.image_size, d.batch_size, training=True,
                         augment=d.augment, cache=d.cache, seed=t.seed,
                         max_images=d.max_train_images, repeat=t.steps_per_epoch is not None,
                         source_balance=d.source_balance, side_input=side)
    val = make_dataset(data_source(d.val), d.image_size, d.batch_size, training=False,
                       cache=d.cache, max_images=d.max_val_images, side_input=side)
    return train, val


def make_callbacks(cfg: config_lib.Config, val, resuming: bool) -> list[keras.callbacks.Callback]:
    """Keras' callbacks plus koala's. Order matters at each epoch's end: everything that records
    the epoch (best.keras, koala.json, history.csv) runs before BackupAndRestore marks it done,
    so a kill in between re-runs the epoch rather than losing its record. On resume the checkpoint
    measures against the best val_loss of the whole run (early stopping's patience starts again:
    under multiworker training every worker must take the same decision, and only the chief has
    the run's record)."""
    t, run = cfg.train, cfg.run_dir
    spec = get_spec(cfg.model)
    inputs, ab_batch = next(iter(val.unbatch().batch(t.sample_images)))
    to_ab = (lambda out: spec.decode(out, None)) if spec.decode else None
    return [
        keras.callbacks.TerminateOnNaN(),
        BestCheckpoint(run),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=t.early_stopping_patience,
                                      restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=t.reduce_lr_factor,
                                          patience=t.reduce_lr_patience, min_lr=t.min_learning_rate),
        keras.callbacks.CSVLogger(str(run / "history.csv"), append=resuming),
        SampleGrid(inputs, ab_batch.numpy(), run / "samples", to_ab),
        RunClock(run),
        # Two states kept: a kill while the latest is being written resumes from the one before.
        keras.callbacks.BackupAndRestore(str(run / "backup"), double_checkpoint=True),
    ]


def compile_model(cfg: config_lib.Config, capabilities) -> keras.Model:
    spec = get_spec(cfg.model)
    model = get_model(cfg.model, **cfg.model_args)
    if cfg.train.init_weights:
        model.load_weights(str(resolve_model_path(cfg.train.init_weights)))
    loss = (spec.make_loss(cfg.train.loss_args, data_source(cfg.data.train)) if spec.make_loss
            else get_loss(cfg.train.loss, **cfg.train.loss_args))
    model.compile(
        optimizer=keras.optimizers.Adam(cfg.train.learning_rate),
        loss=loss,
        jit_compile=resolve_jit(cfg.train.jit_compile, capabilities),
    )
    return model


def train(cfg: config_lib.Config, overwrite: bool = False) -> Path:
    """Train ``cfg`` into ``cfg.run_dir`` (resuming if a backup is there); returns the folder."""
    strategy = get_strategy(cfg.train.strategy)  # first: multiworker must precede any other TF op
    if cfg.train.strategy == "multiworker":  # Keras fit fails there: koala.distributed's own loop
        return train_multiworker(cfg, strategy, overwrite)[0]
    run = cfg.run_dir
    resuming = (run / "backup").exists()
    if (run / "best.keras").exists() and not resuming and not overwrite:
        raise FileExistsError(f"{run}: a finished run is there; choose another name or use --overwrite")
    keras.utils.set_random_seed(cfg.train.seed)
    capabilities = gpu_capabilities()
    keras.mixed_precision.set_dtype_policy(resolve_precision(cfg.train.precision, capabilities))
    train_ds, val_ds = build_datasets(cfg)  # data and model first: a bad start leaves no run folder
    with strategy.scope():
        model = compile_model(cfg, capabilities)
    created = not run.exists()
    run.mkdir(parents=True, exist_ok=True)
    try:
        config_lib.save(cfg, run / "config.yaml")
        if resuming:
            state = run / "backup" / "training_metadata.json"  # BackupAndRestore's record
            done = json.loads(state.read_text())["epoch"] if state.is_file() else 0
            print(f"resuming {run} from epoch {done + 1} ({done} of {cfg.train.epochs} finished)", flush=True)
        else:
            (run / "koala.json").write_text(json.dumps(run_metadata(cfg), indent=2))
        # shuffle=False: the dataset shuffles itself (Keras would only warn that it ignores the flag)
        model.fit(train_ds, validation_data=val_ds, epochs=cfg.train.epochs, steps_per_epoch=cfg.train.steps_per_epoch,
                  shuffle=False, callbacks=make_callbacks(cfg, val_ds, resuming), verbose=2)
    except BaseException:
        if created and not (run / "best.keras").exists():  # nothing worth keeping or resuming
            shutil.rmtree(run, ignore_errors=True)
        raise
    return run
