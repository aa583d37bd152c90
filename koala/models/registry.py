"""The model registry: every architecture behind one name, declared where it is defined.

Each model file decorates its architecture (a ``keras.Model`` subclass, or the factory that builds
one) with :func:`register`, giving its paper, sizes, presets, smoke settings and hooks;
:mod:`koala.models` imports every model file, so importing it fills :data:`MODELS`.

Example::

    @keras.saving.register_keras_serializable(package="koala")
    @register("cunet", paper="Wang et al. 2022 ...", default_size=128, multiple=8,
              presets={}, smoke_args={"base_filters": 8})
    class CUNet(keras.Model): ...

    get_model("cunet", base_filters=32)     # a CUNet; get_spec("cunet").multiple == 8
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import keras

from koala.models.adversarial import AdversarialColorizer


@dataclass(frozen=True)
class ModelSpec:
    """What the rest of koala needs to know about an architecture.

    build: the class (or factory) called with the model arguments. paper: citation.
    default_size: training/working size in px. multiple: the working shape is rounded to a
    multiple of this. output: "ab" when the network returns normalised ab, else the name of what
    it returns (e.g. "logits"). presets: training configs by preset name (plain dicts read by
    :mod:`koala.config`; "model" and "name" filled in). smoke_args: model arguments that make it
    tiny, for smoke runs and the shared tests.
    Optional hooks, for architectures that need more than L -> ab regression:
    make_loss(loss_args, train_source) -> loss (default: ``koala.losses.get_loss(loss, **loss_args)``);
    side_input(model_args, embeddings) -> :class:`koala.data.SideInput`: a second input beside L
    that the training data must carry (``embeddings``: the config's ``data.embeddings`` cache path);
    decode(outputs, temperature) -> normalised ab (for output != "ab");
    inference_network(model, metadata) -> callable L -> network outputs (e.g. compute an
    embedding on the fly from the extractor the run's metadata names);
    targets(model_args) -> None, or a function of the true ab -> the training targets, for a model
    whose outputs are a dict (e.g. {"ab": ab, "bins": ab} for a CU-Net with a distribution head);
    output_losses(model_args, weight, prior) -> None, or ({output: loss}, {output: weight}) for
    the outputs beside "ab" (``weight`` and ``prior``: the config's ``train.distribution_weight``
    and ``train.distribution_prior``).
    """

    name: str
    build: Callable[..., keras.Model]
    paper: str
    default_size: int
    multiple: int
    output: str = "ab"
    presets: dict[str, dict] = field(default_factory=dict)
    smoke_args: dict = field(default_factory=dict)
    make_loss: Callable | None = None
    side_input: Callable | None = None
    decode: Callable | None = None
    inference_network: Callable | None = None
    targets: Callable | None = None
    output_losses: Callable | None = None


MODELS: dict[str, ModelSpec] = {}


def register(name: str, *, paper: str, default_size: int, multiple: int, output: str = "ab",
             presets: dict[str, dict] | None = None, smoke_args: dict | None = None, **hooks):
    """Decorator: add the decorated class or factory to :data:`MODELS` as ``name``; returns it unchanged.

    presets: {preset name: config dict} (default none); each gets ``model: name`` and its own
    name as ``name`` unless it sets them. smoke_args (default {}): tiny model arguments.
    hooks: make_loss, side_input, decode, inference_network, targets, output_losses (see :class:`ModelSpec`).
    """
    def decorate(build):
        if name in MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        taken = {p for spec in MODELS.values() for p in spec.presets}
        clashes = sorted(taken & set(presets or {}))
        if clashes:
            raise ValueError(f"{name}: preset name(s) {clashes} already used by another model")
        full_presets = {key: {"name": key, "model": name, **preset} for key, preset in (presets or {}).items()}
        MODELS[name] = ModelSpec(name, build, paper, default_size, multiple, output, full_presets,
                                 dict(smoke_args or {}), **hooks)
        return build

    return decorate


def get_spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {sorted(MODELS)}")
    return MODELS[name]


def get_model(name: str, **args) -> keras.Model:
    """Build a registered model: ``get_model("cunet", base_filters=32)``."""
    return get_spec(name).build(**args)


def trainable_params(model: keras.Model) -> int:
    """Trainable parameters of the network that colorizes.

    An :class:`AdversarialColorizer` counts its generator only (its critic is a training aid);
    koalarization's frozen extractor is never part of the saved network, so it is never counted.
    """
    network = model.generator if isinstance(model, AdversarialColorizer) else model
    return int(sum(keras.ops.size(w) for w in network.trainable_weights))
