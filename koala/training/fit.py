"""Training with Keras ``fit`` (strategies ``default`` and ``mirrored``): one run folder per config.

Start the same config again after a crash or a kill and it resumes from the last finished epoch
(the run folder's backup, see :class:`koala.runs.Run`).
"""
from __future__ import annotations

import shutil

import tensorflow as tf

from koala import config as config_lib
from koala.runs import Run
from koala.training.setup import first_epoch, make_callbacks, prepare, start_run


def train_fit(cfg: config_lib.Config, strategy: tf.distribute.Strategy, overwrite: bool = False) -> Run:
    """Train ``cfg`` with ``fit`` under ``strategy`` into its run folder (resuming if a backup is
    there, extending a finished run whose ``train.epochs`` was raised). A start that fails before
    any epoch was saved leaves no run folder behind."""
    run = Run(cfg.run_dir)
    extend_from = first_epoch(cfg, run, overwrite)
    # data and model first: a bad start leaves no run folder
    train_ds, val_ds, model = prepare(cfg, strategy, run, extend_from)
    created = not run.path.exists()
    try:
        start_run(cfg, run, extend_from)
        # shuffle=False: the dataset shuffles itself (Keras would only warn that it ignores the flag)
        model.fit(train_ds, validation_data=val_ds, epochs=cfg.train.epochs, steps_per_epoch=cfg.train.steps_per_epoch,
                  initial_epoch=extend_from, shuffle=False, callbacks=make_callbacks(cfg, run, val_ds, extend_from),
                  verbose=2)
    except BaseException:
        if created and not run.best.exists():  # nothing worth keeping or resuming
            shutil.rmtree(run.path, ignore_errors=True)
        raise
    return run
