"""The multi-worker training loop (``train.strategy: multiworker``).

``default`` (one device) and ``mirrored`` (every local GPU, ``tf.distribute.MirroredStrategy``)
train with Keras ``fit`` (:mod:`koala.training.fit`). ``multiworker`` (several hosts,
``MultiWorkerMirroredStrategy``, cluster from ``TF_CONFIG``) cannot: Keras 3's ``fit`` fails under that strategy
(tensorflow/tensorflow#72388, keras-team/keras#20585; here it stops with "Attempt to convert a
value (PerReplica...)"). :func:`custom_fit` is the way through: a ``tf.function`` step that calls
``strategy.run`` on the model's own ``compute_loss`` and ``optimizer.apply`` (the optimizer sums
the gradients across workers), driven by the same Keras callbacks through
``keras.callbacks.CallbackList``, so checkpoints, early stopping, learning-rate reduction,
history and backups behave as with ``fit``. See docs/distributed.md.

Every worker runs the same callbacks, so that they take the same decisions (early stopping,
learning-rate reduction) from the same all-reduced logs; only the chief writes to the run folder,
the others write to a temporary folder that is deleted at the end, as TensorFlow's multi-worker
guide does. The sample grid predicts on each worker alone (:class:`LocalPredict`).
"""
from __future__ import annotations

import shutil
import tempfile

import keras
import tensorflow as tf

from koala import config as config_lib
from koala.runs import Run
from koala.training.callbacks import SampleGrid
from koala.training.setup import first_epoch, make_callbacks, prepare, start_run


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True for the worker that writes: the "chief" task, else worker 0 (or no cluster at all)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    cluster = resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in cluster


def _per_example_loss(model: keras.Model):
    """The compiled loss as a function returning one value per example (for exact validation
    means over uneven, possibly empty per-worker batches)."""
    loss = model.loss
    if isinstance(loss, keras.losses.Loss):
        return loss.call
    if callable(loss):
        return loss
    return keras.losses.get(loss)


def sync_from_chief(model: keras.Model, strategy: tf.distribute.Strategy, chief: bool, initial_epoch: int) -> int:
    """Give every worker the chief's weights, optimizer state and starting epoch.

    After a resume only the chief's callbacks may have found a backup (non-chief workers write
    elsewhere), so every worker flattens its state into one vector, the non-chief ones zeroed,
    and one all-reduce sum hands the chief's state to all. Returns the chief's initial epoch.
    """
    variables = list(model.weights) + list(model.optimizer.variables)
    mask = tf.constant(1.0 if chief else 0.0, tf.float64)
    epoch = tf.constant([float(initial_epoch)], tf.float64)

    def local_state():  # float64 holds every float32 and every step count exactly
        flat = [tf.reshape(tf.cast(v, tf.float64), [-1]) for v in variables]
        return tf.concat(flat + [epoch], axis=0) * mask

    state = strategy.reduce("SUM", strategy.run(local_state), axis=None)
    offset = 0
    for variable in variables:
        size = int(tf.size(variable))
        variable.assign(tf.reshape(tf.cast(state[offset:offset + size], variable.dtype), variable.shape))
        offset += size
    return int(round(float(state[-1])))


def _make_steps(model: keras.Model, strategy: tf.distribute.Strategy):
    """The compiled train and validation steps over distributed batches."""
    optimizer = model.optimizer
    scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    per_example = _per_example_loss(model)

    def replica_train(x, y):
        with tf.GradientTape() as tape:
            pred = model(x, training=True)
            loss = model.compute_loss(x, y, pred, training=True)  # already divided by the replica count
            scaled_loss = optimizer.scale_loss(loss) if scaled else loss
        grads = tape.gradient(scaled_loss, model.trainable_variables)
        if scaled:
            # Skip the step on every worker if any worker overflowed: LossScaleOptimizer checks
            # only its local gradients, and workers that disagree would drift apart.
            bad = tf.add_n([tf.reduce_sum(tf.cast(~tf.math.is_finite(g), tf.float32)) for g in grads if g is not None])
            bad = tf.distribute.get_replica_context().all_reduce("SUM", bad)
            grads = [g if g is None else tf.where(bad > 0, tf.fill(tf.shape(g), tf.constant(float("nan"), g.dtype)), g)
                     for g in grads]
        optimizer.apply(grads, model.trainable_variables)
        return loss

    def replica_val(x, y):
        values = tf.cast(per_example(y, model(x, training=False)), tf.float32)
        return tf.reduce_sum(values), tf.cast(tf.size(values), tf.float32)

    @tf.function
    def train_step(batch):
        return strategy.reduce("SUM", strategy.run(replica_train, args=batch), axis=None)

    @tf.function
    def val_step(batch):
        total, count = strategy.run(replica_val, args=batch)
        return strategy.reduce("SUM", total, axis=None), strategy.reduce("SUM", count, axis=None)

    return train_step, val_step


class LocalPredict:
    """The model, as a callback sees it, with a ``predict`` that runs on this worker alone.

    Keras' ``predict`` under MultiWorkerMirroredStrategy splits the batch across workers and
    gathers the outputs with collective ops; a sample grid of a few fixed images needs none of
    that (and two workers gathering a two-image batch stalled in our tests).
    """

    def __init__(self, model: keras.Model):
        object.__setattr__(self, "_model", model)

    def predict(self, x, verbose: int = 0, **kwargs):
        return keras.ops.convert_to_numpy(self._model(x, training=False))

    def __getattr__(self, name):
        return getattr(self._model, name)

    def __setattr__(self, name, value):  # e.g. stop_training: set it on the real model
        setattr(self._model, name, value)


def _distribute(strategy: tf.distribute.Strategy, dataset: tf.data.Dataset):
    """Each worker keeps its share of every global batch (consecutive per-replica slices)."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return strategy.experimental_distribute_dataset(dataset.with_options(options))


def custom_fit(
    model: keras.Model,
    strategy: tf.distribute.Strategy,
    train_ds: tf.data.Dataset,
    val_ds: tf.data.Dataset | None = None,
    epochs: int = 1,
    steps_per_epoch: int | None = None,
    callbacks: list[keras.callbacks.Callback] = (),
    chief: bool = True,
    verbose: int = 2,
    initial_epoch: int = 0,
) -> keras.callbacks.History:
    """``model.fit`` for any strategy, MultiWorkerMirroredStrategy included.

    ``model`` must be compiled inside ``strategy.scope()``; ``train_ds`` yields global batches
    (drop_remainder, and repeated when ``steps_per_epoch`` is given); ``val_ds``'s loss is the
    exact mean over its examples on every worker. Logs ``loss`` and ``val_loss`` as ``fit`` does;
    a ``LossScaleOptimizer`` (``mixed_float16``) scales the loss and skips overflowing steps on
    all workers together. Models with their own ``train_step`` (adversarial training) are refused.
    Every worker calls it with the same arguments; ``chief`` (default True) shows the progress
    bar (``verbose``, default 2: one line per epoch) and gives its state to the others at the start.
    ``initial_epoch`` (default 0) is where training starts unless a backup says otherwise.

    Example::

        with strategy.scope():
            model = get_model("cunet"); model.compile(optimizer="adam", loss=koala.losses.l1)
        history = custom_fit(model, strategy, train_ds, val_ds, epochs=3, callbacks=[...])
    """
    if type(model).train_step is not keras.Model.train_step:
        raise ValueError(f"{type(model).__name__} has its own train_step; the multi-worker loop supports "
                         "plain compiled models only (train it with strategy default or mirrored)")
    train_step, val_step = _make_steps(model, strategy)
    dist_train = _distribute(strategy, train_ds)
    dist_val = _distribute(strategy, val_ds) if val_ds is not None else None
    callback_list = keras.callbacks.CallbackList(
        list(callbacks), add_history=True, add_progbar=chief and verbose > 0, model=model,
        verbose=verbose, epochs=epochs, steps=steps_per_epoch,
    )
    with strategy.scope():  # every worker needs the same optimizer variables before the sync
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
    for callback in callback_list.callbacks:
        if isinstance(callback, SampleGrid):
            callback.set_model(LocalPredict(model))
    model.stop_training = False
    model._initial_epoch = None
    callback_list.on_train_begin()
    initial_epoch = sync_from_chief(model, strategy, chief, model._initial_epoch or initial_epoch)
    iterator = iter(dist_train) if steps_per_epoch else None
    logs = {}
    for epoch in range(initial_epoch, epochs):
        callback_list.on_epoch_begin(epoch)
        total, steps = 0.0, 0
        batches = range(steps_per_epoch) if steps_per_epoch else dist_train
        for item in batches:
            batch = next(iterator) if steps_per_epoch else item
            callback_list.on_train_batch_begin(steps)
            total += float(train_step(batch))
            steps += 1
            logs = {"loss": total / steps}
            callback_list.on_train_batch_end(steps - 1, logs)
            if model.stop_training:
                break
        if dist_val is not None:
            val_total, val_count = 0.0, 0.0
            for batch in dist_val:
                batch_total, batch_count = val_step(batch)
                val_total, val_count = val_total + float(batch_total), val_count + float(batch_count)
            logs["val_loss"] = val_total / max(val_count, 1.0)
        callback_list.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callback_list.on_train_end(logs)
    return model.history


def train_multiworker(cfg: config_lib.Config, strategy: tf.distribute.Strategy,
                      overwrite: bool = False) -> tuple[Run, keras.Model]:
    """``koala train`` under MultiWorkerMirroredStrategy: same run folder, same callbacks, the
    custom loop instead of ``fit``. Run the same config on every worker (each with its
    ``TF_CONFIG``); returns the chief's run and the trained model."""
    chief = is_chief(strategy)
    run = Run(cfg.run_dir)
    scratch, extend_from = None, 0
    if chief:
        extend_from = first_epoch(cfg, run, overwrite)
        start_run(cfg, run, extend_from)
        write_run = run
    else:  # TensorFlow's pattern: non-chief workers write to a throw-away folder
        scratch = tempfile.mkdtemp(prefix="koala-worker-")
        write_run = Run(scratch)
    try:
        train_ds, val_ds, model = prepare(cfg, strategy, run, extend_from)
        with strategy.scope():
            callbacks = make_callbacks(cfg, write_run, val_ds, extend_from)
        # Only the chief knows extend_from; custom_fit hands its starting epoch and weights to all.
        custom_fit(model, strategy, train_ds, val_ds, cfg.train.epochs, cfg.train.steps_per_epoch, callbacks,
                   chief=chief, initial_epoch=extend_from)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return run, model
