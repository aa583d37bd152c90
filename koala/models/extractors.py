"""Frozen image classifiers that give koalarization its global embedding, by name.

An extractor sees the gray image the colorizer sees: normalised L mapped back to [0, 255],
replicated to three channels, resized (squashed, as the paper did) to the classifier's input size
and passed through the classifier's own ``preprocess_input``. Weights are ``"imagenet"`` (the
default; Keras downloads them once on the user's machine), ``None`` (random, but seeded so that a
cache, a training run and inference all get the *same* random network: tests and smoke runs), or
the path of a local weights file. :func:`fingerprint` hashes the weights so an embedding cache can
prove which network wrote it.

Example::

    extractor = get_extractor("inception_resnet_v2", "imagenet")
    extractor(l_batch).shape          # (N, 1000): softmax over the ImageNet classes
"""
from __future__ import annotations

import functools
import hashlib
import random
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from koala.color.lab import L_CENT, L_NORM, rgb_to_l

DEFAULT_EXTRACTOR = "inception_resnet_v2"
DEFAULT_WEIGHTS = "imagenet"
RANDOM_WEIGHTS_SEED = 0  # weights=None: every build gives the same network (and fingerprint)
GRAY_MAX = 255.0


EMBEDDING_NORMS = ("none", "l2")


@dataclass(frozen=True)
class ExtractorSpec:
    """build(weights) -> a Keras model from preprocessed (N, size, size, 3) images to (N, dim);
    preprocess: the classifier's own ``preprocess_input`` over [0, 255] RGB; norm: how the
    colorizer normalises the embedding before fusing it (a layer inside the colorizer, so the
    cache keeps raw outputs and an exported model needs nothing else): "none" for a softmax,
    already bounded (the paper's), "l2" (default) for anything else, scaled to unit length."""

    build: Callable[[str | None], keras.Model]
    size: int
    dim: int
    preprocess: Callable[[tf.Tensor], tf.Tensor]
    norm: str = "l2"

    def __post_init__(self):
        if self.norm not in EMBEDDING_NORMS:
            raise ValueError(f"unknown embedding norm {self.norm!r}; choose from {EMBEDDING_NORMS}")


def _inception_resnet_v2(weights: str | None) -> keras.Model:
    """The paper's extractor: the 1000-way softmax of the full classifier."""
    return keras.applications.InceptionResNetV2(include_top=True, weights=weights, input_shape=(299, 299, 3))


def _resnet50(weights: str | None) -> keras.Model:
    """ResNet50 without its classifier, its last 7x7x2048 features average-pooled to 2048 numbers.

    Pooled rather than spatial: the fusion layer tiles one global vector (the paper's design),
    and a pooled row costs 8 KB in the cache instead of 400 KB. Unbounded (rows of length ~100
    with random weights), hence "l2" normalisation in the colorizer.
    """
    return keras.applications.ResNet50(include_top=False, weights=weights, pooling="avg", input_shape=(224, 224, 3))


EXTRACTORS: dict[str, ExtractorSpec] = {
    "inception_resnet_v2": ExtractorSpec(
        _inception_resnet_v2, 299, 1000, keras.applications.inception_resnet_v2.preprocess_input, norm="none"
    ),
    "resnet50": ExtractorSpec(_resnet50, 224, 2048, keras.applications.resnet50.preprocess_input),
}


def get_extractor_spec(name: str) -> ExtractorSpec:
    if name not in EXTRACTORS:
        raise ValueError(f"unknown extractor {name!r}; choose from {sorted(EXTRACTORS)}")
    return EXTRACTORS[name]


def parse_weights(weights: str | None) -> str | None:
    """``"imagenet"``, ``None`` / ``"none"`` (seeded random) or an existing weights file."""
    if weights is None or str(weights).lower() == "none":
        return None
    if weights == "imagenet":
        return weights
    if not Path(weights).is_file():
        raise FileNotFoundError(f"{weights}: no such weights file (give imagenet, none or a path)")
    return str(weights)


def weights_label(weights: str | None) -> str:
    """How a weights setting is written in configs, caches and messages."""
    return "none" if weights is None else str(weights)


@dataclass
class Extractor:
    """A frozen classifier plus the gray-image preparation its inputs need."""

    name: str
    weights: str | None
    model: keras.Model
    size: int
    preprocess: Callable[[tf.Tensor], tf.Tensor]

    def __post_init__(self):
        # Traced once: on a CPU a traced call is ~1.5x faster than eager and needs a fifth of the memory.
        self._embed = tf.function(
            lambda images: tf.cast(self.model(images, training=False), tf.float32),
            input_signature=[tf.TensorSpec([None, self.size, self.size, 3], tf.float32)],
        )

    @property
    def dim(self) -> int:
        return int(self.model.output_shape[-1])

    def embed_prepared(self, images) -> tf.Tensor:
        """Batches from :meth:`prepare` (N, size, size, 3) -> embeddings (N, dim), float32."""
        return self._embed(tf.convert_to_tensor(images, tf.float32))

    def prepare(self, l_norm: tf.Tensor) -> tf.Tensor:
        """Normalised L (N, H, W, 1) -> the classifier's preprocessed gray RGB (N, size, size, 3)."""
        gray = (tf.cast(l_norm, tf.float32) * L_NORM + L_CENT) * (GRAY_MAX / L_NORM)
        gray = tf.image.resize(tf.clip_by_value(gray, 0.0, GRAY_MAX), (self.size, self.size), antialias=True)
        return self.preprocess(tf.repeat(gray, 3, axis=-1))

    def prepare_rgb(self, rgb: np.ndarray) -> np.ndarray:
        """One decoded photo, float RGB (H, W, 3) in [0, 1], as this extractor's input (size, size, 3):
        what every cache writer feeds :meth:`embed_prepared`, so their rows agree."""
        return self.prepare(rgb_to_l(tf.convert_to_tensor(rgb[None], tf.float32)))[0].numpy()

    def __call__(self, l_norm: tf.Tensor) -> tf.Tensor:
        """Normalised L (N, H, W, 1) of any size -> embeddings (N, dim), float32."""
        return self.embed_prepared(self.prepare(l_norm))


@contextmanager
def _seeded_python_random(seed: int):
    """Keras draws unseeded initializers' seeds from Python's ``random``: fix it, then restore it."""
    state = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(state)


def build_extractor(
    name: str = DEFAULT_EXTRACTOR, weights: str | None = DEFAULT_WEIGHTS, spec: ExtractorSpec | None = None
) -> Extractor:
    """A fresh frozen extractor; ``weights``: "imagenet", None/"none" or a weights file path.

    ``spec`` (default: the registry's entry for ``name``) lets a process build an extractor that
    another one looked up: Beam workers get it with the pipeline, not from their own registry."""
    spec = spec or get_extractor_spec(name)
    weights = parse_weights(weights)
    try:
        with _seeded_python_random(RANDOM_WEIGHTS_SEED):
            model = spec.build(weights)
    except Exception as e:  # Keras reports a failed download as a bare Exception
        if weights == "imagenet" and "URL fetch failure" in str(e):
            raise ValueError(f"cannot download the ImageNet weights of {name} ({e}); without internet give "
                             "weights none (seeded random, no download) or the path of a weights file") from None
        raise
    model.trainable = False
    if model.output_shape[-1] != spec.dim:
        raise ValueError(f"extractor {name!r} gives {model.output_shape[-1]} numbers, its spec says {spec.dim}")
    return Extractor(name, weights, model, spec.size, spec.preprocess)


@functools.lru_cache(maxsize=2)
def get_extractor(name: str = DEFAULT_EXTRACTOR, weights: str | None = DEFAULT_WEIGHTS) -> Extractor:
    """Like :func:`build_extractor`, but built once per (name, weights) in this process:
    inference asks for it on every photo and InceptionResNetV2 takes seconds to build."""
    return build_extractor(name, weights)


def fingerprint(model: keras.Model) -> str:
    """sha256 over every weight array's shape, dtype and bytes, in the model's order.

    Names are left out: Keras numbers them per session, the values are what matter.
    """
    digest = hashlib.sha256()
    for weight in model.weights:
        array = np.ascontiguousarray(keras.ops.convert_to_numpy(weight))
        digest.update(f"{array.shape}{array.dtype}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()
