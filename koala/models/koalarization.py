"""Deep Koalarization: an encoder-decoder fused with a classifier's global embedding.

Baldassarre, Gonzalez Moran & Rodes-Guirao (2017), "Deep Koalarization: Image Colorization using
CNNs and Inception-ResNet-v2" (arXiv:1712.03400).

Encoder: eight 3x3 ReLU convolutions (64 s2, 128, 128 s2, 256, 256 s2, 512, 512, 256) take L to
H/8 x W/8 x 256. Fusion: the image's global embedding (by default the 1000-way softmax of a frozen
Inception-ResNet-v2 fed the gray image at 299 px) is tiled over every H/8 x W/8 position,
concatenated, and mixed by a 1x1 ReLU convolution to 256. An extractor whose output is not a
softmax (ResNet-50's pooled features, rows of length ~100) has its embedding scaled to unit length
first, by a ``UnitNormalization`` layer named "embedding_l2" inside the network (the extractor's
``norm``). Unnormalised, it swamps the fusion: with random ResNet-50 weights on 32 px photos the
untrained network's mean |ab| is about 0.3 (0.0001 with a zero embedding), and at the preset's
learning rate the first epoch's loss is five times the gray baseline's (tests/test_koalarization.py).
Decoder: 3x3 ReLU convolutions 128, x2 nearest upsampling, 64, 64, x2, 32, then 2 with tanh, x2:
normalised ab at full size. 6,573,794 trainable parameters with a 1000-d embedding.

The saved ``.keras`` model is only this trainable network, with inputs {"L": (H, W, 1),
"embedding": (D,)}; the 55M-parameter extractor is rebuilt at inference from the ``extractor`` and
``extractor_weights`` model arguments (kept in the run's metadata and in the network's config).
Training takes embeddings from an HDF5 cache (``data.embeddings``, built once by ``python -m
data_tools.embed``, as the paper computed them once per image) or, without one, computes them on the
fly from the same augmented L.

Deviations: the paper trains at 224 px and feeds Inception 299 px; here the working size is the
config's ``image_size`` (default 224) and any H, W that are multiples of 8 work, since the fusion
tiles over whatever grid the encoder gives. The paper's loss is MSE (the ``koalarization`` preset).
"""
from __future__ import annotations

import keras
from keras import layers, ops

from koala.data import SideInput
from koala.data.embeddings import EmbeddingCache
from koala.models.extractors import (
    DEFAULT_EXTRACTOR,
    DEFAULT_WEIGHTS,
    Extractor,
    fingerprint,
    get_extractor,
    get_extractor_spec,
    parse_weights,
    weights_label,
)
from koala.models.layers import conv_block, l_input, model_config, set_policy
from koala.models.registry import register

ENCODER = ((64, 2), (128, 1), (128, 2), (256, 1), (256, 2), (512, 1), (512, 1), (256, 1))  # (filters, stride)
FUSION_FILTERS = 256
DECODER = (128, "up", 64, 64, "up", 32)  # 3x3 ReLU convolutions and x2 upsamplings before the ab head
EMBEDDING_INPUT_NAME = "embedding"

PRESETS = {
    "koalarization": {  # Baldassarre et al. 2017: 224 px, MSE, Adam 1e-3, Inception-ResNet-v2 embedding
        "model_args": {"extractor": "inception_resnet_v2", "extractor_weights": "imagenet"},
        "data": {"image_size": 224},
        "train": {"loss": "mse", "learning_rate": 1e-3},
    },
}


@keras.saving.register_keras_serializable(package="koala")
class FusionLayer(layers.Layer):
    """Tile a global embedding (N, D) over a feature map (N, h, w, C) of any size and concatenate:
    (N, h, w, C + D)."""

    def call(self, inputs):
        features, embedding = inputs
        embedding = ops.cast(embedding, features.dtype)[:, None, None, :]
        tiled = embedding * ops.ones_like(features[..., :1])  # broadcasts to the dynamic h x w
        return ops.concatenate([features, tiled], axis=-1)

    def compute_output_shape(self, input_shapes):
        features, embedding = input_shapes
        return (*features[:-1], features[-1] + embedding[-1])


def extractor_from_args(model_args: dict) -> Extractor:
    """The (cached) frozen extractor that a run's ``model_args`` name."""
    return get_extractor(
        model_args.get("extractor", DEFAULT_EXTRACTOR),
        parse_weights(model_args.get("extractor_weights", DEFAULT_WEIGHTS)),
    )


def side_input(model_args: dict, embeddings: str | None = None) -> SideInput:
    """The embedding the network takes beside L, for :func:`koala.data.make_dataset`: the rows of the
    HDF5 cache at ``embeddings`` (checked against the extractor and weights ``model_args`` name; every
    photo must be in it), or without one (default) computed on the fly from each batch's augmented L
    by that extractor (exact, but the extractor runs every step)."""
    extractor = extractor_from_args(model_args)
    if not embeddings:
        return SideInput(EMBEDDING_INPUT_NAME, from_l=extractor)
    cache = EmbeddingCache.open(embeddings)
    cache.check(extractor.name, weights_label(extractor.weights), fingerprint(extractor.model))
    return SideInput(EMBEDDING_INPUT_NAME, per_photo=cache.lookup)


def inference_network(model: keras.Model, metadata: dict):
    """L at working size -> ab: the embedding is computed on the fly from that L by the extractor
    the run's metadata names."""
    extractor = extractor_from_args(metadata.get("model_args") or {})
    expected = model.get_layer(EMBEDDING_INPUT_NAME).batch_shape[-1]
    if extractor.dim != expected:
        raise ValueError(f"model expects {expected}-d embeddings, extractor {extractor.name} gives {extractor.dim}")
    return lambda l_small: model({"L": l_small, EMBEDDING_INPUT_NAME: extractor(l_small)}, training=False)


@keras.saving.register_keras_serializable(package="koala")
@register(
    "koalarization",
    paper="Baldassarre, Gonzalez Moran & Rodes-Guirao 2017, Deep Koalarization: Image Colorization "
    "using CNNs and Inception-ResNet-v2 (arXiv:1712.03400)",
    default_size=224,  # the paper's encoder size; the extractor resizes to its own (299 for Inception)
    multiple=8,
    presets=PRESETS,
    smoke_args={"extractor": "resnet50", "extractor_weights": "none"},  # no download
    side_input=side_input,
    inference_network=inference_network,
)
class Koalarization(keras.Model):
    """The trainable network, inputs {"L": (H, W, 1), "embedding": (D,)} -> normalised ab.

    ``extractor`` (default "inception_resnet_v2") sets the embedding size D and its normalisation
    without building the classifier; ``extractor_weights`` (default "imagenet"; "none" or a file
    path) is kept with the arguments and used where embeddings are computed (the file is checked
    when the extractor is built, so the network loads without it). ``input_size``: fixed side, or
    None (default) for any multiple of 8.

    Example: ``Koalarization()({"L": np.zeros([1, 64, 96, 1]), "embedding": np.zeros([1, 1000])})``
    has shape (1, 64, 96, 2).
    """

    def __init__(self, extractor: str = DEFAULT_EXTRACTOR, extractor_weights: str | None = DEFAULT_WEIGHTS,
                 input_size: int | None = None, name: str = "koalarization", dtype=None, **kwargs):
        spec = get_extractor_spec(extractor)
        l_in = l_input(input_size)
        embedding = keras.Input(shape=(spec.dim,), name=EMBEDDING_INPUT_NAME)
        fused = embedding
        if spec.norm == "l2":
            fused = layers.UnitNormalization(dtype="float32", name="embedding_l2")(embedding)
        x = l_in
        for i, (filters, stride) in enumerate(ENCODER):
            x = conv_block(x, filters, f"enc{i}", batch_norm=False, strides=stride, dtype=dtype)
        x = FusionLayer(name="fusion", dtype=dtype)([x, fused])
        x = conv_block(x, FUSION_FILTERS, "fusion_mix", batch_norm=False, kernel_size=1, dtype=dtype)
        for i, step in enumerate(DECODER):
            if step == "up":
                x = layers.UpSampling2D(2, name=f"dec{i}_up", dtype=dtype)(x)
            else:
                x = conv_block(x, step, f"dec{i}", batch_norm=False, dtype=dtype)
        x = layers.Conv2D(2, 3, padding="same", name="ab_conv", dtype=dtype)(x)
        x = layers.Activation("tanh", dtype="float32", name="ab_tanh")(x)
        ab = layers.UpSampling2D(2, dtype="float32", name="ab")(x)
        super().__init__(inputs={"L": l_in, EMBEDDING_INPUT_NAME: embedding}, outputs=ab, name=name, **kwargs)
        set_policy(self, dtype)
        self.extractor = extractor
        self.extractor_weights = extractor_weights
        self.input_size = input_size

    def get_config(self) -> dict:
        return {**model_config(self), "extractor": self.extractor, "extractor_weights": self.extractor_weights,
                "input_size": self.input_size}
