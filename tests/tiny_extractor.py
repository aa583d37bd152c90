"""A 16-px, 8-number stand-in for Inception-ResNet-v2, so koalarization tests run in seconds."""
from __future__ import annotations

import keras
import pytest

from koala.models import extractors

TINY_NAME = "tiny"
TINY_SIZE = 16
TINY_DIM = 8


def _build_tiny(weights: str | None) -> keras.Model:
    if weights == "imagenet":
        raise ValueError("the tiny test extractor has no imagenet weights")
    inputs = keras.Input((TINY_SIZE, TINY_SIZE, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(TINY_DIM)(x), name="tiny")
    if weights is not None:
        model.load_weights(weights)
    return model


TINY = extractors.ExtractorSpec(_build_tiny, TINY_SIZE, TINY_DIM, lambda x: x / 127.5 - 1.0)


@pytest.fixture
def tiny(monkeypatch):
    """Register the tiny extractor for one test (and forget cached extractors around it)."""
    extractors.get_extractor.cache_clear()
    monkeypatch.setitem(extractors.EXTRACTORS, TINY_NAME, TINY)
    yield TINY_NAME
    extractors.get_extractor.cache_clear()
