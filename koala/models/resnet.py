"""ResNet encoders (He, Zhang, Ren & Sun 2016) built by keras-cv's ``ResNetBackbone``, on one channel.

The ResNet-34 U-Net and the ResNet-18 autoencoder take their encoders from keras-cv 0.9's
``ResNetBackbone`` with basic blocks (``block_type="basic_block"``): the 7x7/2 stem with BN, ReLU
and 3x3/2 max pooling, then one stack of basic blocks per ``(filters, blocks)`` stage, the first
stage at stride 1 and the others at stride 2. Its graph is cloned onto koala's normalised-L input,
so its layers (keras-cv's names: ``conv1_conv``, ``v2_stack_0_block1_1_conv``, ...) become the
colorizer's own layers, and a keras-cv preset's weights can be copied into them by name. The
clone remakes each layer from its config under the colorizer's dtype policy: keras-cv 0.9 passes
no ``dtype`` to the backbone's layers (its ``dtype`` argument sets only the backbone model's own
policy), and koala sets no global policy.

Against torchvision's ResNet (which the seed papers use) this differs in what keras-cv inherits
from keras.applications: TensorFlow's "same" padding (asymmetric at stride 2), BatchNormalization
with epsilon 1.001e-5 and momentum 0.99 (torchvision: 1e-5, 0.9), and Keras' own BatchNormalization
rather than koala's fused one. Trainable parameters are the same.

Pretrained starts: ``load_encoder_weights(model, preset)`` copies a keras-cv ``ResNetBackbone``
preset (a name, a ``kaggle://`` handle or a local preset directory) with basic blocks into the
encoder, summing conv1's RGB filters into the one L filter (as Melas-Kyriazi 2018 does with its
Places365 ResNet-18). keras-cv 0.9 publishes ImageNet weights for no basic-block ResNet (its one
ResNet-v1 ImageNet preset, ``resnet50_imagenet``, has bottleneck blocks), so its ``resnet18`` and
``resnet34`` presets give an architecture without weights; a preset directory saved from weights
of one's own (``keras_cv.src.utils.preset_utils.save_to_preset``) loads the same way.
"""
from __future__ import annotations

import keras
import numpy as np

RESNET18_STAGES = ((64, 2), (128, 2), (256, 2), (512, 2))  # (filters, basic blocks) per stage
RESNET34_STAGES = ((64, 3), (128, 4), (256, 6), (512, 3))
STEM_FEATURES = "conv1_relu"  # keras-cv's name for the stem's ReLU output (H/2)
STEM_CONV = "conv1_conv"


def resnet_encoder(inputs: keras.KerasTensor, stages: tuple[tuple[int, int], ...],
                   dtype=None) -> list[keras.KerasTensor]:
    """keras-cv's ResNetBackbone (basic blocks, no input rescaling) built on ``inputs``, every layer
    under the dtype policy ``dtype`` (default None: Keras' global policy).

    keras-cv builds the backbone as a template on an input of the same shape; its graph is then
    cloned onto ``inputs`` with each layer made anew from its config and ``dtype`` (same class,
    name and settings; fresh weights). Returns the stem's ReLU output (H/2) and every stage's
    output (H/4, H/8, ...), deepest last.
    Example: ``resnet_encoder(keras.Input((None, None, 1)), RESNET18_STAGES[:2])`` gives maps at
    H/2, H/4 and H/8 with 64, 64 and 128 channels.
    """
    from keras_cv.models import ResNetBackbone  # keras-cv imports kagglehub: load it when a ResNet is built

    template = ResNetBackbone(
        stackwise_filters=[filters for filters, _ in stages],
        stackwise_blocks=[blocks for _, blocks in stages],
        stackwise_strides=[1] + [2] * (len(stages) - 1),
        include_rescaling=False,
        input_shape=tuple(inputs.shape[1:]),
        block_type="basic_block",
    )

    def remade(layer: keras.layers.Layer) -> keras.layers.Layer:
        return type(layer).from_config({**layer.get_config(), "dtype": dtype})

    backbone = keras.models.clone_model(template, input_tensors=inputs, clone_function=remade)
    names = [STEM_FEATURES, *template.pyramid_level_inputs.values()]
    return [backbone.get_layer(name).output for name in names]


def is_encoder_layer(layer: keras.layers.Layer) -> bool:
    """Whether ``layer`` belongs to the keras-cv encoder (its stem or one of its stacks)."""
    return layer.name.startswith(("conv1_", "pool1_", "v2_stack_"))


def load_encoder_weights(model: keras.Model, preset: str) -> list[str]:
    """Copy the weights of the keras-cv ``ResNetBackbone`` ``preset`` into ``model``'s encoder.

    Layers are matched by name; conv1's RGB kernel is summed over its input channels for the L
    input. Stages the model does not have (the autoencoder keeps two) are skipped. Returns the
    names of the layers that got weights; a ValueError when the preset's blocks do not match.
    Needs the network for a named preset or a ``kaggle://`` handle.
    """
    from keras_cv.models import ResNetBackbone

    source = ResNetBackbone.from_preset(preset, input_shape=(None, None, 3), include_rescaling=False)
    targets = {layer.name: layer for layer in model.layers if is_encoder_layer(layer) and layer.weights}
    stacks = 1 + max(_stack(name) for name in targets)
    donors = [layer for layer in source.layers if layer.weights and _stack(layer.name) < stacks]
    foreign = sorted(layer.name for layer in donors if layer.name not in targets)
    missing = sorted(set(targets) - {layer.name for layer in donors})
    if foreign or missing:
        raise ValueError(f"preset {preset!r} does not fit the encoder of {model.name!r} (basic blocks of "
                         f"the same stages): it has {foreign[:3]} that the encoder lacks and lacks {missing[:3]}")
    for layer in donors:
        weights = layer.get_weights()
        if layer.name == STEM_CONV:
            weights = [np.sum(weights[0], axis=2, keepdims=True)]
        targets[layer.name].set_weights(weights)
    return [layer.name for layer in donors]


def _stack(name: str) -> int:
    """The keras-cv stack a layer belongs to by its name ("v2_stack_2_block1_1_conv": 2); -1 for the stem."""
    return int(name.split("_")[2]) if name.startswith("v2_stack_") else -1
