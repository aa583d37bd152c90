"""The model registry: every architecture behind one name.

``get_model(name, **args)`` builds a Keras model whose input is normalised L (named "L")
and whose output is described by its :class:`ModelSpec` ("ab": normalised ab in [-1, 1]).
Importing this package imports every model file, and each registers itself
(:func:`koala.models.registry.register`); the order here is the order of ``MODELS``.
"""
from __future__ import annotations

from koala.models import cunet, koalarization, resunet34, resnet18ae, zhang16  # noqa: F401  (they register)
from koala.models.registry import MODELS, ModelSpec, get_model, get_spec, register, trainable_params

__all__ = ["MODELS", "ModelSpec", "get_model", "get_spec", "register", "trainable_params"]
