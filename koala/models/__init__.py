"""The model registry: every architecture behind one name.

``get_model(name, **config)`` builds a Keras model whose input is normalised L (named "L")
and whose output is described by its :class:`ModelSpec` ("ab": normalised ab in [-1, 1]).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import keras

from koala.models import koalarization, zhang16
from koala.models.adversarial import generator_params
from koala.models.cunet import build_cunet
from koala.models.resnet18ae import build_resnet18ae
from koala.models.resunet34 import build_resunet34


@dataclass(frozen=True)
class ModelSpec:
    """What the rest of koala needs to know about an architecture.

    build: the builder. paper: citation. default_size: training/working size in px.
    multiple: the working shape is rounded to a multiple of this. output: "ab" when the
    network returns normalised ab, else the name of what it returns (e.g. "logits").
    Optional hooks, for architectures that need more than L -> ab regression:
    make_loss(cfg) -> loss fn (default: ``koala.losses.get_loss(cfg.train.loss)``);
    side_input(model_args, embeddings) -> koala.data.SideInput: a second input beside L that
    the training data must carry (``embeddings``: the config's ``data.embeddings`` cache path);
    decode(outputs, temperature) -> normalised ab (for output != "ab");
    inference_network(model, metadata) -> callable L -> network outputs (e.g. compute an
    embedding on the fly); the count of trainable parameters ``koala models`` shows may
    come from count_params(model).
    """

    build: Callable[..., keras.Model]
    paper: str
    default_size: int
    multiple: int
    output: str = "ab"
    make_loss: Callable | None = None
    side_input: Callable | None = None
    decode: Callable | None = None
    inference_network: Callable | None = None
    count_params: Callable | None = None


MODELS: dict[str, ModelSpec] = {
    "cunet": ModelSpec(
        build_cunet,
        "Wang, Chen & Tian 2022, Colorization of images using U-Net with dilated convolutions (Symmetry)",
        default_size=128,
        multiple=8,
    ),
    "koalarization": ModelSpec(
        koalarization.build_koalarization,
        "Baldassarre, Gonzalez Moran & Rodes-Guirao 2017, Deep Koalarization: Image Colorization "
        "using CNNs and Inception-ResNet-v2 (arXiv:1712.03400)",
        default_size=224,  # the paper's encoder size; the extractor resizes to its own (299 for Inception)
        multiple=8,
        side_input=koalarization.side_input,
        inference_network=koalarization.inference_network,
        count_params=koalarization.count_params,
    ),
    "resunet34": ModelSpec(
        build_resunet34,
        "He et al. 2016 (ResNet-34 encoder) + Ronneberger et al. 2015 (U-Net decoder); adversarial "
        "mode: Isola et al. 2017, pix2pix PatchGAN (CVPR)",
        default_size=256,
        multiple=32,
        count_params=generator_params,  # adversarial mode: the generator, not the critic
    ),
    "resnet18ae": ModelSpec(
        build_resnet18ae,
        "Melas-Kyriazi 2018, Image Colorization with Convolutional Neural Networks (ResNet-18 autoencoder)",
        default_size=224,
        multiple=8,
    ),
    "zhang16": ModelSpec(
        zhang16.build_zhang16,
        "Zhang, Isola & Efros 2016, Colorful Image Colorization (ECCV, arXiv:1603.08511)",
        default_size=256,  # the authors' test size; they trained on 176 px crops (the zhang16 preset)
        multiple=8,  # three stride-2 blocks
        output="logits",
        make_loss=zhang16.make_loss,
        decode=zhang16.decode,
    ),
}


def get_spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {sorted(MODELS)}")
    return MODELS[name]


def get_model(name: str, **config) -> keras.Model:
    """Build a registered model: ``get_model("cunet", base_filters=32)``."""
    return get_spec(name).build(**config)


def trainable_params(model: keras.Model) -> int:
    return int(sum(keras.ops.size(w) for w in model.trainable_weights))


__all__ = ["MODELS", "ModelSpec", "get_model", "get_spec", "trainable_params"]
