"""What both training loops share: strategy, precision and XLA, datasets, compiled model,
callbacks and the start of a run folder.

:mod:`koala.training.fit` (Keras ``fit``) and :mod:`koala.training.multiworker` (koala's own
loop) build their run from these pieces, so they train the same model on the same data with
the same callbacks.
"""
from __future__ import annotations

import logging
import os

import keras
import tensorflow as tf

from koala import config as config_lib
from koala.data import make_dataset
from koala.data.sources import data_source
from koala.losses import get_loss
from koala.models import get_model, get_spec
from koala.runs import Run, resolve_model
from koala.training.callbacks import BestCheckpoint, RunClock, SampleGrid

log = logging.getLogger(__name__)

TENSOR_CORE_CAPABILITY = (7, 0)
STRATEGIES = ("default", "mirrored", "multiworker")


def get_strategy(name: str) -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy for ``train.strategy``: default | mirrored | multiworker.

    ``multiworker`` reads the cluster from ``TF_CONFIG`` and must be created before any other
    TensorFlow op runs in the process (collective ops are configured at start-up).
    """
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose from {list(STRATEGIES)}")
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if not os.environ.get("TF_CONFIG"):
            log.warning("strategy multiworker without TF_CONFIG: training as a one-worker cluster")
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


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


def run_metadata(cfg: config_lib.Config) -> dict:
    """What inference needs to use a trained model: read back by :mod:`koala.inference`."""
    spec = get_spec(cfg.model)
    return {"model": cfg.model, "model_args": cfg.model_args, "image_size": cfg.data.image_size,
            "multiple": spec.multiple}


def check_not_finished(run: Run, overwrite: bool) -> None:
    """Refuse to train over a finished run unless told to."""
    if run.best.exists() and not run.resuming and not overwrite:
        raise FileExistsError(f"{run.path}: a finished run is there")


def start_run(cfg: config_lib.Config, run: Run) -> None:
    """Write the config and, for a new run, its metadata; say where a resumed run goes on from."""
    run.path.mkdir(parents=True, exist_ok=True)
    run.save_config(cfg)
    if run.resuming:
        done = run.epochs_done()
        print(f"resuming {run.path} from epoch {done + 1} ({done} of {cfg.train.epochs} finished)", flush=True)
    else:
        run.write_metadata(run_metadata(cfg))


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


def prepare(cfg: config_lib.Config, strategy: tf.distribute.Strategy
            ) -> tuple[tf.data.Dataset, tf.data.Dataset, keras.Model]:
    """Seed, dtype policy, train and validation datasets, and the model compiled inside
    ``strategy.scope()``: the same start for both training loops."""
    keras.utils.set_random_seed(cfg.train.seed)
    capabilities = gpu_capabilities()
    keras.mixed_precision.set_dtype_policy(resolve_precision(cfg.train.precision, capabilities))
    train_ds, val_ds = build_datasets(cfg)
    with strategy.scope():
        model = compile_model(cfg, capabilities)
    return train_ds, val_ds, model


def make_callbacks(cfg: config_lib.Config, run: Run, val) -> list[keras.callbacks.Callback]:
    """Keras' callbacks plus koala's, writing into ``run``. Order matters at each epoch's end:
    everything that records the epoch (best checkpoint, metadata, history) runs before
    BackupAndRestore marks it done, so a kill in between re-runs the epoch rather than losing its
    record. On resume (a backup in ``run``) the history is appended to and the checkpoint measures
    against the best val_loss of the whole run (early stopping's patience starts again: under
    multiworker training every worker must take the same decision, and only the chief has the
    run's record)."""
    t = cfg.train
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
        keras.callbacks.CSVLogger(str(run.history_file), append=run.resuming),
        SampleGrid(inputs, ab_batch.numpy(), run.samples, to_ab),
        RunClock(run),
        # Two states kept: a kill while the latest is being written resumes from the one before.
        keras.callbacks.BackupAndRestore(str(run.backup), double_checkpoint=True),
    ]


def compile_model(cfg: config_lib.Config, capabilities) -> keras.Model:
    """The configured model (starting from ``train.init_weights`` if given), compiled with its loss."""
    spec = get_spec(cfg.model)
    model = get_model(cfg.model, **cfg.model_args)
    if cfg.train.init_weights:
        model.load_weights(str(resolve_model(cfg.train.init_weights)))
    loss = (spec.make_loss(cfg.train.loss_args, data_source(cfg.data.train)) if spec.make_loss
            else get_loss(cfg.train.loss, **cfg.train.loss_args))
    model.compile(
        optimizer=keras.optimizers.Adam(cfg.train.learning_rate),
        loss=loss,
        jit_compile=resolve_jit(cfg.train.jit_compile, capabilities),
    )
    return model
