"""Training: one run folder per config, with Keras ``fit`` or koala's multi-worker loop.

:func:`train` is the entry point (``koala train``, ``koala compare`` and the tests call it).
It creates the ``train.strategy`` first (multiworker must precede any other TensorFlow op) and
hands over to :mod:`koala.training.fit` or, under ``multiworker`` where Keras ``fit`` fails, to
:mod:`koala.training.multiworker`. The pieces both share (precision, datasets, compiled model,
callbacks) are in :mod:`koala.training.setup`; koala's callbacks in :mod:`koala.training.callbacks`.

Example::

    from koala import config
    from koala.training import train

    run_folder = train(config.load(preset="smoke"))
"""
from __future__ import annotations

from pathlib import Path

from koala import config as config_lib
from koala.training.fit import train_fit
from koala.training.multiworker import train_multiworker
from koala.training.setup import build_datasets, compile_model, get_strategy, resolve_jit, resolve_precision

__all__ = ["build_datasets", "compile_model", "get_strategy", "resolve_jit", "resolve_precision", "train"]


def train(cfg: config_lib.Config, overwrite: bool = False) -> Path:
    """Train ``cfg`` into ``cfg.run_dir`` (resuming if a backup is there); returns the folder.
    ``overwrite`` trains again over a finished run (default: refuse)."""
    strategy = get_strategy(cfg.train.strategy)  # first: multiworker must precede any other TF op
    if cfg.train.strategy == "multiworker":
        run, _ = train_multiworker(cfg, strategy, overwrite)
    else:
        run = train_fit(cfg, strategy, overwrite)
    return run.path
