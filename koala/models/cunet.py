"""CU-Net: a U-Net with dilated convolutions for colorization.

Wang, Chen & Tian (2022), "Colorization of images using U-Net with dilated convolutions",
Symmetry 14(11):2295, as reimplemented by the seed projects.

Encoder: three stages of two 3x3 convolutions, each followed by 2x2 *average* pooling.
Bottleneck: instead of deeper downsampling, four 3x3 convolutions with growing dilation
rates widen the receptive field at H/8. Decoder: 2x2 transposed convolutions
upsample, the encoder features of the same scale are concatenated, two 3x3 convolutions
follow; a 1x1 convolution with tanh gives normalised ab.

Deviations: the paper's width is 64 at the first stage; ``base_filters`` sets it (the bundled
model uses 16 to train on a CPU). ``activation`` and ``batch_norm`` keep the seeds' choices
(ReLU with batch normalisation) as defaults but are options, as the seeds varied them; the
bundled model drops batch normalisation, which costs training time on a CPU (the bundled
configuration trains at 47 images/s with it and 62 without, 1.3x, with data in memory in float32
without XLA, as measured for issue 11; about 3x with XLA on). The dilation rates are an argument,
by default 2, 4, 8, 8 rather than the seeds' 2, 4, 8, 16: at 128 px the H/8 map is 16 px wide, so a
rate of 16 only sees padding (the bundled models use 2, 4, 8, 8 too).
Input sides must be multiples of 8; :mod:`koala.inference` rounds the working shape to that.

Two options, both off by default and both starting as the plain network (their last layer is
zero-initialised, so a trained CU-Net's weights carry over exactly, :func:`transfer_weights`):

* ``hints``: user-guided colorization (Zhang, Zhu et al. 2017, "Real-Time User-Guided Image
  Colorization with Learned Deep Priors"): a second input of three channels (hint a, hint b,
  mask; :mod:`koala.data.hints`) whose 3x3 convolution is added to the first one on L, as the
  paper feeds hints beside L at the first layer (a convolution over concatenated channels is that
  sum). Without hints (all zeros) it is an automatic colorizer.
* ``global_context`` (a width, 0 = off): a global branch as Iizuka, Simo-Serra & Ishikawa 2016
  ("Let there be Color!") fuse into every position: two stride-2 3x3 convolutions on the
  bottleneck, global average pooling, a dense layer of this width, and a dense projection added
  to the bottleneck features everywhere (Iizuka et al. concatenate and mix with a 1x1
  convolution; adding a projection is the same map, split). The whole scene (grass, sky,
  a stadium) can then inform each region's colour. Deviation: Iizuka's global network is deeper
  (four stride-2 convolutions and three dense layers at 224 px); this one is sized for a CPU.
* ``global_hints``: ideepcolor's global hints network (Zhang, Zhu et al. 2017, sec. 3.3): an
  input of a photo-wide ab distribution over the 309 gamut bins plus a "given" flag
  (:mod:`koala.data.global_hints`: a reference photo's colours or a palette), two dense layers
  (ideepcolor's 1x1 convolutions on a 1x1 map) whose zero-initialised projection is added
  everywhere to the encoder's output, before the dilated bottleneck. Deviation: ideepcolor's
  network has four 512-wide layers; this one is as wide as the bottleneck.

A third option adds an output rather than an input, and leaves the ab output as it was:

* ``distribution``: ideepcolor's colour distribution head: logits over the 309 bins at 1/4 of the
  working size (``LOGITS_STRIDE``; ideepcolor's and Zhang et al. 2016's resolution), a 1x1
  convolution on the decoder's features at that scale, trained by cross-entropy on soft-encoded
  targets beside the ab regression (:func:`distribution_losses`). The model then returns
  ``{"ab": ..., "bins": ...}``; :func:`koala.models.layers.ab_of` takes the ab. It gives the
  suggested colours at a point, and a distribution to decode (annealed mean).
"""
from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers

from koala.color import ab_bins, rebalance_weights
from koala.color.prior import load_prior
from koala.data import SideInput
from koala.data.global_hints import GLOBAL_BINS, GLOBAL_HINT_SIZE, GLOBAL_HINTS_INPUT_NAME, simulate_global_hints
from koala.data.hints import HINT_CHANNELS, HINTS_INPUT_NAME, simulate_hints
from koala.losses import LOGITS_STRIDE, RebalancedCrossEntropy
from koala.models.layers import ab_head, ab_of, conv_block, l_input, model_config, norm_act, set_policy
from koala.models.registry import register

DILATION_RATES = (2, 4, 8, 8)  # below the 16 px of the H/8 map at the default 128 px
DOWNSAMPLINGS = 3
GLOBAL_STRIDES = 2  # stride-2 convolutions before the global pooling


def hint_side_input(model_args: dict, embeddings: str | None = None) -> SideInput | None:
    """Training data for a model with hint inputs: simulated local hints and/or global hints
    beside L, from each crop's true colours (none for a plain CU-Net)."""
    local, wide = bool(model_args.get("hints")), bool(model_args.get("global_hints"))
    if not (local or wide):
        return None

    def inputs(l_norm, ab, seed):
        seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2)
        made = {HINTS_INPUT_NAME: simulate_hints(ab, seeds[0])} if local else {}
        return {**made, GLOBAL_HINTS_INPUT_NAME: simulate_global_hints(ab, seeds[1])} if wide else made

    name = HINTS_INPUT_NAME if local else GLOBAL_HINTS_INPUT_NAME
    return SideInput(name, from_target=inputs if wide else lambda l_norm, ab, seed: simulate_hints(ab, seed))


def network_inputs(model: keras.Model, l_small, hints=None, global_hints=None):
    """The inputs ``model`` takes for L at the working size: L alone for a plain CU-Net, else a
    dict in which absent hints are empty (zero) channels and an absent global hint is zeros."""
    names = model.input if isinstance(model.input, dict) else {}
    if not names:
        return l_small
    shape = keras.ops.shape(l_small)
    inputs = {"L": l_small}
    if HINTS_INPUT_NAME in names:
        inputs[HINTS_INPUT_NAME] = (keras.ops.zeros((shape[0], shape[1], shape[2], HINT_CHANNELS), dtype=l_small.dtype)
                                    if hints is None else hints)
    if GLOBAL_HINTS_INPUT_NAME in names:
        inputs[GLOBAL_HINTS_INPUT_NAME] = (keras.ops.zeros((shape[0], GLOBAL_HINT_SIZE), dtype=l_small.dtype)
                                           if global_hints is None else global_hints)
    return inputs


def inference_network(model: keras.Model, metadata: dict):
    """L (and optionally hint channels and a global hint) -> ab: what the model does not get is
    given empty, so a hint model colorizes automatically without hints."""
    def call(l_small, hints=None, global_hints=None):
        return ab_of(model(network_inputs(model, l_small, hints, global_hints), training=False))

    return call


def targets(model_args: dict):
    """What the training targets are for these model arguments: ab for the ab output, and ab
    again for the distribution head (its loss soft-encodes it); None: ab alone."""
    if not model_args.get("distribution"):
        return None
    return lambda ab: {"ab": ab, "bins": ab}


def distribution_losses(model_args: dict, weight: float, prior: str = "") -> tuple[dict, dict] | None:
    """The distribution head's loss and its weight beside the ab loss, as Keras' ``compile`` takes
    them ({"bins": loss}, {"bins": weight}); None without the head. ``prior``: the path of an ab
    prior (``data_tools.ab_prior``) to rebalance the cross-entropy by, as Zhang et al. 2016 do
    (default "": every bin weighs 1, as ideepcolor trains its head)."""
    if not model_args.get("distribution"):
        return None
    weights = rebalance_weights(load_prior(prior), ab_bins()) if prior else [1.0] * GLOBAL_BINS
    return {"bins": RebalancedCrossEntropy(weights, stride=LOGITS_STRIDE)}, {"bins": float(weight)}


def first_block(l_in, hints_in, filters: int, activation: str, batch_norm: bool, dtype=None):
    """The first 3x3 convolution on L, plus one on the hint channels (zero-initialised) if any."""
    x = layers.Conv2D(filters, 3, padding="same", use_bias=not batch_norm, name="enc0a_conv", dtype=dtype)(l_in)
    if hints_in is not None:
        h = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer="zeros",
                          name="hints_conv", dtype=dtype)(hints_in)
        x = layers.Add(name="enc0a_hints", dtype=dtype)([x, h])
    return norm_act(x, "enc0a", activation, batch_norm, dtype)


def global_branch(x, width: int, activation: str, batch_norm: bool, dtype=None):
    """Bottleneck features plus a projection of their global summary (zero-initialised)."""
    channels = x.shape[-1]
    g = x
    for i in range(GLOBAL_STRIDES):
        g = conv_block(g, channels, f"global{i}", activation, batch_norm, strides=2, dtype=dtype)
    g = layers.GlobalAveragePooling2D(name="global_pool", dtype=dtype)(g)
    g = layers.Dense(width, activation="relu", name="global_fc", dtype=dtype)(g)
    g = layers.Dense(channels, kernel_initializer="zeros", name="global_fuse", dtype=dtype)(g)
    g = layers.Reshape((1, 1, channels), name="global_map", dtype=dtype)(g)
    return layers.Add(name="global_add", dtype=dtype)([x, g])


def global_hints_branch(x, global_in, activation: str, dtype=None):
    """Encoder features plus a projection of the global hint (zero-initialised), everywhere."""
    channels = x.shape[-1]
    g = layers.Dense(channels, activation=activation, name="global_hints_fc1", dtype=dtype)(global_in)
    g = layers.Dense(channels, activation=activation, name="global_hints_fc2", dtype=dtype)(g)
    g = layers.Dense(channels, kernel_initializer="zeros", name="global_hints_fuse", dtype=dtype)(g)
    g = layers.Reshape((1, 1, channels), name="global_hints_map", dtype=dtype)(g)
    return layers.Add(name="global_hints_add", dtype=dtype)([x, g])


def bins_head(x, name: str = "bins", dtype=None):
    """1x1 convolution (under ``dtype``) to logits over the 309 ab bins, kept in float32 under
    mixed precision."""
    x = layers.Conv2D(GLOBAL_BINS, 1, padding="same", name=f"{name}_conv", dtype=dtype)(x)
    return layers.Activation("linear", dtype="float32", name=name)(x)


@keras.saving.register_keras_serializable(package="koala")
@register(
    "cunet",
    paper="Wang, Chen & Tian 2022, Colorization of images using U-Net with dilated convolutions (Symmetry)",
    default_size=128,
    multiple=8,
    smoke_args={"base_filters": 8, "batch_norm": False},
    side_input=hint_side_input,
    inference_network=inference_network,
    targets=targets,
    output_losses=distribution_losses,
)
class CUNet(keras.Model):
    """CU-Net. ``base_filters`` (default 64) doubles at each of the 3 downsamplings;
    ``activation`` (default "relu"; or "leaky_relu", or any Keras activation) and ``batch_norm``
    (default True) apply to every 3x3 convolution; ``dilation_rates`` (default 2, 4, 8, 8) are
    the bottleneck's four dilated convolutions; ``input_size``: fixed side, or None (default) for
    any multiple of 8. ``hints``, ``global_context``, ``global_hints`` and ``distribution``: the
    options in the module's docstring (default off).

    Example: ``CUNet(base_filters=16)(np.zeros([1, 64, 64, 1]))`` has shape (1, 64, 64, 2).
    """

    def __init__(
        self,
        base_filters: int = 64,
        activation: str = "relu",
        batch_norm: bool = True,
        dilation_rates: tuple[int, ...] = DILATION_RATES,
        input_size: int | None = None,
        hints: bool = False,
        global_context: int = 0,
        global_hints: bool = False,
        distribution: bool = False,
        name: str = "cunet",
        dtype=None,
        **kwargs,
    ):
        l_in = l_input(input_size)
        hints_in = keras.Input(shape=(input_size, input_size, HINT_CHANNELS), name=HINTS_INPUT_NAME) if hints else None
        global_in = keras.Input(shape=(GLOBAL_HINT_SIZE,), name=GLOBAL_HINTS_INPUT_NAME) if global_hints else None
        x, skips = l_in, []
        for stage in range(DOWNSAMPLINGS):
            filters = base_filters * 2**stage
            if stage == 0:
                x = first_block(l_in, hints_in, filters, activation, batch_norm, dtype)
            else:
                x = conv_block(x, filters, f"enc{stage}a", activation, batch_norm, dtype=dtype)
            x = conv_block(x, filters, f"enc{stage}b", activation, batch_norm, dtype=dtype)
            skips.append(x)
            x = layers.AveragePooling2D(2, name=f"enc{stage}_pool", dtype=dtype)(x)
        if global_hints:
            x = global_hints_branch(x, global_in, activation, dtype)
        bottleneck = base_filters * 2**DOWNSAMPLINGS
        for i, rate in enumerate(dilation_rates):
            x = conv_block(x, bottleneck, f"dil{i}_r{rate}", activation, batch_norm, dilation=rate, dtype=dtype)
        if global_context:
            x = global_branch(x, global_context, activation, batch_norm, dtype)
        for stage in reversed(range(DOWNSAMPLINGS)):
            filters = base_filters * 2**stage
            x = layers.Conv2DTranspose(filters, 2, strides=2, padding="same", name=f"dec{stage}_up", dtype=dtype)(x)
            x = layers.Concatenate(name=f"dec{stage}_skip", dtype=dtype)([x, skips[stage]])
            x = conv_block(x, filters, f"dec{stage}a", activation, batch_norm, dtype=dtype)
            x = conv_block(x, filters, f"dec{stage}b", activation, batch_norm, dtype=dtype)
            if distribution and 2**stage == LOGITS_STRIDE:
                logits = bins_head(x, dtype=dtype)
        extra = {HINTS_INPUT_NAME: hints_in, GLOBAL_HINTS_INPUT_NAME: global_in}
        extra = {key: value for key, value in extra.items() if value is not None}
        inputs = {"L": l_in, **extra} if extra else l_in
        outputs = {"ab": ab_head(x, dtype=dtype), "bins": logits} if distribution else ab_head(x, dtype=dtype)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)
        set_policy(self, dtype)
        self.base_filters = base_filters
        self.activation = activation
        self.batch_norm = batch_norm
        self.dilation_rates = tuple(dilation_rates)
        self.input_size = input_size
        self.hints = bool(hints)
        self.global_context = int(global_context)
        self.global_hints = bool(global_hints)
        self.distribution = bool(distribution)

    def get_config(self) -> dict:
        return {**model_config(self), "base_filters": self.base_filters, "activation": self.activation,
                "batch_norm": self.batch_norm, "dilation_rates": list(self.dilation_rates),
                "input_size": self.input_size, "hints": self.hints, "global_context": self.global_context,
                "global_hints": self.global_hints, "distribution": self.distribution}
