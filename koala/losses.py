"""Losses over normalised ab: pure functions plus the name lookup that configs use."""
from __future__ import annotations

import keras
from keras import ops


def l1(y_true, y_pred):
    """Mean absolute error: the median of the plausible colours, less greyed than MSE's mean."""
    return ops.mean(ops.abs(y_true - y_pred), axis=(1, 2, 3))


def mse(y_true, y_pred):
    return ops.mean(ops.square(y_true - y_pred), axis=(1, 2, 3))


def huber(y_true, y_pred, delta: float = 0.1):
    err = ops.abs(y_true - y_pred)
    quad = ops.minimum(err, delta)
    return ops.mean(0.5 * quad**2 / delta + (err - quad), axis=(1, 2, 3))


LOSSES = {"l1": l1, "mse": mse, "huber": huber}


def get_loss(name: str):
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose from {sorted(LOSSES)}")
    return LOSSES[name]
