"""What both training loops share: strategy, precision and XLA, datasets, compiled model,
callbacks and the start of a run folder.

:mod:`koala.training.fit` (Keras ``fit``) and :mod:`koala.training.multiworker` (koala's own
loop) build their run from these pieces, so they train the same model on the same data with
the same callbacks.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import keras
import tensorflow as tf

from koala import config as config_lib
from koala.data import make_dataset
from koala.data.sources import data_source
from koala.losses import get_loss
from koala.models import get_model, get_spec
from koala.models.layers import ab_of, transfer_weights
from koala.runs import FinishedRunError, Run, resolve_model
from koala.training.callbacks import BestCheckpoint, EpochCheckpoints, EpochHistory, RunClock, SampleGrid

log = logging.getLogger(__name__)

TENSOR_CORE_CAPABILITY = (7, 0)
# CPU flags (x86: AMX tiles, AVX-512 BF16; Arm: BF16) whose matrix units run bfloat16 natively.
BF16_CPU_FLAGS = frozenset({"amx_bf16", "avx512_bf16", "bf16"})
PRECISIONS, STRATEGIES = config_lib.PRECISIONS, config_lib.STRATEGIES  # the config's choices, checked there too


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


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU's feature flags, from ``/proc/cpuinfo`` (or the given text); empty where it is unreadable."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def resolve_precision(requested: str, capabilities: list[tuple[int, int]], flags: set[str] = frozenset()) -> str:
    """Pick the dtype policy. ``auto``: mixed_float16 on GPUs with tensor cores; on a CPU,
    mixed_bfloat16 where its flags show bfloat16 units (``BF16_CPU_FLAGS``: 2.6x the float32 rate
    for the default CU-Net here, ``scripts/profile_training.py``), float32 elsewhere (emulated
    half precision is several times slower). Explicit choices are honoured."""
    if requested not in PRECISIONS:
        raise ValueError(f"unknown precision {requested!r}; choose from {PRECISIONS}")
    if requested != "auto":
        return requested
    if capabilities:
        return "mixed_float16" if min(capabilities) >= TENSOR_CORE_CAPABILITY else "float32"
    return "mixed_bfloat16" if flags & BF16_CPU_FLAGS else "float32"


def chosen_precision(cfg: config_lib.Config) -> str:
    """``train.precision`` resolved for this machine's GPUs and CPU (see :func:`resolve_precision`)."""
    return resolve_precision(cfg.train.precision, gpu_capabilities(), cpu_flags())


def resolve_jit(requested, capabilities: list[tuple[int, int]]) -> bool:
    """XLA only pays off on a GPU; on this CPU float32 without XLA is fastest."""
    if requested == "auto":
        return bool(capabilities)
    return bool(requested)


def run_metadata(cfg: config_lib.Config, precision: str) -> dict:
    """What inference needs to use a trained model (read back by :mod:`koala.inference`), and the
    precision it was trained in."""
    spec = get_spec(cfg.model)
    return {"model": cfg.model, "model_args": cfg.model_args, "image_size": cfg.data.image_size,
            "multiple": spec.multiple, "precision": precision}


def first_epoch(cfg: config_lib.Config, run: Run, overwrite: bool) -> int:
    """Epochs ``run`` already holds that training goes on from: 0 for a new run, a resumed one
    (BackupAndRestore finds its own place) or ``overwrite``; ``epochs_run`` for a finished run whose
    ``train.epochs`` was raised above its own (it is extended). Any other finished run is refused,
    naming the ways on (:class:`~koala.runs.FinishedRunError`)."""
    if overwrite or run.resuming or not run.best.exists():
        return 0
    saved = run.read_config() if run.config_file.is_file() else None
    done = run.read_metadata().get("epochs_run", 0)
    if saved is not None and done and cfg.train.epochs > saved.train.epochs:
        if (cfg.model, cfg.model_args) != (saved.model, saved.model_args):
            raise FinishedRunError(f"{run.path}: cannot extend a run of {saved.model} {saved.model_args} as "
                                   f"{cfg.model} {cfg.model_args}; train a new one (another name, with "
                                   f"train.init_weights={run.path}) or overwrite it")
        return done
    raise FinishedRunError(
        f"{run.path}: a finished run is there ({done} epoch(s)); to extend it, raise train.epochs above "
        f"{saved.train.epochs if saved else done}; to start a new run from its weights, give it another name "
        f"and train.init_weights={run.path}; to replace it, overwrite it")


def start_run(cfg: config_lib.Config, run: Run, extend_from: int = 0) -> None:
    """Write the config and, for a new run, its metadata; say where a resumed or extended run goes
    on from (``extend_from``: the epochs of a finished run being extended)."""
    run.path.mkdir(parents=True, exist_ok=True)
    if run.resuming:
        done = run.epochs_done()
        print(f"resuming {run.path} from epoch {done + 1} ({done} of {cfg.train.epochs} finished)", flush=True)
    elif extend_from:
        best = run.read_metadata().get("best_epoch")
        print(f"extending the finished run {run.path} from epoch {extend_from + 1} to {cfg.train.epochs}, "
              f"starting from the weights of its best epoch ({best}) and the config's learning rate", flush=True)
    else:
        run.write_metadata(run_metadata(cfg, chosen_precision(cfg)))
    run.save_config(cfg)


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
                         source_balance=d.source_balance, side_input=side, kinds=d.groups or None)
    val = make_dataset(data_source(d.val), d.image_size, d.batch_size, training=False,
                       cache=d.cache, max_images=d.max_val_images, side_input=side)
    to_targets = spec.targets(cfg.model_args) if spec.targets else None
    if to_targets:  # a model with outputs beside ab (a distribution head) learns each from ab
        train, val = (ds.map(lambda x, ab: (x, to_targets(ab))) for ds in (train, val))
    return train, val


def prepare(cfg: config_lib.Config, strategy: tf.distribute.Strategy, run: Run,
            extend_from: int = 0) -> tuple[tf.data.Dataset, tf.data.Dataset, keras.Model]:
    """Seed, dtype policy, train and validation datasets, and the model compiled inside
    ``strategy.scope()``: the same start for both training loops. Its weights: ``run``'s best
    checkpoint when a finished run is extended (``extend_from`` epochs), none to load when ``run``
    resumes (its backup holds every weight), else ``train.init_weights``."""
    keras.utils.set_random_seed(cfg.train.seed)
    capabilities = gpu_capabilities()
    precision = chosen_precision(cfg)
    print(f"precision: {precision}" + (" (auto)" if cfg.train.precision == "auto" else ""), flush=True)
    train_ds, val_ds = build_datasets(cfg)
    with strategy.scope():
        model = compile_model(cfg, capabilities, precision, run.best if extend_from else "", run.resuming)
    return train_ds, val_ds, model


def make_callbacks(cfg: config_lib.Config, run: Run, val, extend_from: int = 0) -> list[keras.callbacks.Callback]:
    """Keras' callbacks plus koala's, writing into ``run``. Order matters at each epoch's end:
    everything that records the epoch (best checkpoint, metadata, history) runs before
    BackupAndRestore marks it done, so a kill in between re-runs the epoch rather than losing its
    record. On resume (a backup in ``run``) the history is appended to and the checkpoint measures
    against the best val_loss of the whole run (early stopping's patience starts again: under
    multiworker training every worker must take the same decision, and only the chief has the
    run's record). ``extend_from``: the epochs of a finished run being extended, kept likewise."""
    t = cfg.train
    spec = get_spec(cfg.model)
    inputs, ab_batch = next(iter(val.unbatch().batch(t.sample_images)))
    to_ab = (lambda out: spec.decode(out, None)) if spec.decode else ab_of
    kept = [EpochCheckpoints(run, t.keep_every)] if t.keep_every else []
    return [
        keras.callbacks.TerminateOnNaN(),
        BestCheckpoint(run),
        *kept,
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=t.early_stopping_patience,
                                      restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=t.reduce_lr_factor,
                                          patience=t.reduce_lr_patience, min_lr=t.min_learning_rate),
        EpochHistory(run.history_file, keep=extend_from or (run.epochs_done() if run.resuming else None)),
        SampleGrid(inputs, ab_of(ab_batch).numpy(), run.samples, to_ab),
        RunClock(run, t.cpu_budget),
        # Two states kept: a kill while the latest is being written resumes from the one before.
        keras.callbacks.BackupAndRestore(str(run.backup), double_checkpoint=True),
    ]


def start_from(model: keras.Model, init_weights: str) -> None:
    """Load ``init_weights`` (a model name, run folder or .keras file) into ``model`` layer by layer
    (:func:`koala.models.layers.transfer_weights`): the same architecture loads whole; one with
    new parts (hint inputs, a global branch) keeps those at their initialisation, and says so; a
    wider one (more ``base_filters``) starts as the same function (Net2Net), and says so."""
    path = resolve_model(init_weights)
    source = keras.saving.load_model(path, compile=False)
    try:
        untouched = transfer_weights(source, model)
    except ValueError as error:
        raise ValueError(f"train.init_weights {path}: {error}") from None
    if model.count_params() != source.count_params() and not untouched:
        print(f"init_weights {path}: widened from {source.count_params():,} to {model.count_params():,} "
              "parameters, computing the same function (Net2Net)", flush=True)
    if untouched:
        print(f"init_weights {path}: new layers keep their initialisation: {', '.join(untouched)}", flush=True)


def freeze_except(model: keras.Model, prefixes: list[str]) -> None:
    """Freeze every layer of ``model`` whose name starts with none of ``prefixes``; a prefix that
    names no layer is a ValueError (a typo would freeze the whole network)."""
    names = [layer.name for layer in model.layers if layer.weights]
    unmatched = [p for p in prefixes if not any(name.startswith(p) for name in names)]
    if unmatched:
        raise ValueError(f"config.train.train_only: no layer of {model.name} starts with {unmatched}")
    for layer in model.layers:
        layer.trainable = any(layer.name.startswith(p) for p in prefixes)
    print(f"training only {sum(layer.trainable for layer in model.layers if layer.weights)} of "
          f"{len(names)} layers with weights ({', '.join(p + '*' for p in prefixes)})", flush=True)


def compile_model(cfg: config_lib.Config, capabilities, precision: str = "float32",
                  weights: str | os.PathLike = "", resuming: bool = False) -> keras.Model:
    """The configured model under the dtype policy ``precision`` (starting from ``weights``, else
    ``train.init_weights`` if given and not ``resuming``: a resumed run may be on a machine
    without its starting model), compiled with its loss. The policy is the model's own (in its
    config, so a checkpoint loads back with it), given to each of its layers: Keras' global policy
    is never set."""
    spec = get_spec(cfg.model)
    model = get_model(cfg.model, **cfg.model_args, dtype=precision)
    start = weights or ("" if resuming else cfg.train.init_weights)
    if start:
        start_from(model, str(start))
    if cfg.train.train_only:
        freeze_except(model, cfg.train.train_only)
    loss = (spec.make_loss(cfg.train.loss_args, data_source(cfg.data.train)) if spec.make_loss
            else get_loss(cfg.train.loss, **cfg.train.loss_args))
    weights = None
    extra = (spec.output_losses(cfg.model_args, cfg.train.distribution_weight, cfg.train.distribution_prior)
             if spec.output_losses else None)
    if extra:  # outputs beside ab, each with its loss and weight (ab's is 1)
        loss, weights = {"ab": loss, **extra[0]}, {"ab": 1.0, **extra[1]}
    model.compile(
        optimizer=keras.optimizers.Adam(cfg.train.learning_rate),
        loss=loss,
        loss_weights=weights,
        jit_compile=resolve_jit(cfg.train.jit_compile, capabilities),
    )
    return model
