"""Building blocks shared by several architectures (one home for each)."""
from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers

from koala.models.widen import widen_into

L_INPUT_NAME = "L"  # stable SavedModel signature key for every model


def with_policy(model: keras.Model, policy: str = "float32") -> keras.Model:
    """``model`` rebuilt under the dtype ``policy`` with the same weights (the model itself when it
    already runs so): a model trained under mixed precision keeps float32 variables, so inference
    can run it in float32 exactly. Needs a model class whose config takes ``dtype`` and passes it
    to every layer, as every registered architecture's does: no global policy is touched."""
    if keras.dtype_policies.serialize(model.dtype_policy) == keras.dtype_policies.serialize(
            keras.dtype_policies.get(policy)):
        return model
    rebuilt = type(model).from_config({**model.get_config(), "dtype": policy})
    rebuilt.set_weights(model.get_weights())
    return rebuilt


def transfer_weights(source: keras.Model, target: keras.Model) -> list[str]:
    """Copy every layer's weights from ``source`` into the layer of ``target`` with the same name
    and weight shapes: a model with new parts (hint inputs, a global branch) starts from a trained
    one, and its new layers keep their initialisation. When namesakes differ in shape, ``target``
    must be a wider version of ``source`` and is set to compute the same function
    (:func:`koala.models.widen.widen_into`). Returns the names of ``target``'s layers with weights
    that got none; a ValueError when nothing matched or a layer cannot be widened."""
    donors = {layer.name: layer for layer in source.layers if layer.weights}
    pairs = [(layer, donors.get(layer.name)) for layer in target.layers if layer.weights]
    if any(donor is not None and _shapes(donor) != _shapes(layer) for layer, donor in pairs):
        return widen_into(source, target)
    untouched, copied = [], 0
    for layer, donor in pairs:
        if donor is not None:
            layer.set_weights(donor.get_weights())
            copied += 1
        else:
            untouched.append(layer.name)
    if not copied:
        raise ValueError(f"no layer of {source.name!r} matches one of {target.name!r} by name and shape")
    return untouched


def average_weights(models: list[keras.Model]) -> keras.Model:
    """A new model of the first's architecture whose every weight is the mean of the ``models``'
    (stochastic weight averaging, Izmailov et al. 2018: epochs of one run at a constant learning
    rate, averaged, sit nearer the middle of the basin than any one of them). A ValueError when the
    models differ in their weights' shapes."""
    shapes = [[tuple(w.shape) for w in model.weights] for model in models]
    if any(s != shapes[0] for s in shapes[1:]):
        raise ValueError(f"cannot average {', '.join(m.name for m in models)}: their weights differ in shape")
    averaged = type(models[0]).from_config(models[0].get_config())
    averaged.set_weights([sum(ws) / len(ws) for ws in zip(*(model.get_weights() for model in models))])
    return averaged


def _shapes(layer: layers.Layer) -> list[tuple]:
    return [tuple(w.shape) for w in layer.weights]


def set_policy(model: keras.Model, dtype) -> None:
    """Give a functional ``model`` the dtype policy ``dtype`` (None: keep the global one it took),
    as keras-hub's backbones do: Keras' Functional constructor drops ``dtype``. The model's own
    policy is what its config saves and what ``compile`` reads (a loss-scale optimizer for
    mixed_float16); its layers get ``dtype`` where they are made."""
    if dtype is not None:
        model.dtype_policy = dtype


def model_config(model: keras.Model) -> dict:
    """The part of an architecture's ``get_config`` that is not its own arguments (as keras-hub's
    backbones): name, trainable and dtype policy."""
    return {"name": model.name, "trainable": model.trainable,
            "dtype": keras.dtype_policies.serialize(model.dtype_policy)}


def l_input(size: int | None = None) -> keras.KerasTensor:
    """The normalised-L input all colorizers share; ``size=None`` accepts any height/width. Inputs
    are float32 under any policy (Keras casts at the first layer), so it takes no ``dtype``."""
    return keras.Input(shape=(size, size, 1), name=L_INPUT_NAME)


@keras.saving.register_keras_serializable(package="koala")
class FusedBatchNormalization(layers.BatchNormalization):
    """Keras' BatchNormalization, trained with TensorFlow's fused kernel.

    Keras 3 normalises with separate moment, subtract and scale ops on TensorFlow (keras-core
    #225), which costs training speed on CPUs; ``tf.compat.v1.nn.fused_batch_norm`` does the batch
    statistics, normalisation and moving-average update in one kernel (``scripts/profile_training.py``
    measures it). Inference, other axes and other ranks use Keras' own code, and the
    variables and config are Keras', so weights move freely between the two. One difference: the
    fused kernel's moving variance takes the unbiased batch variance (n / (n - 1) larger).
    """

    def call(self, inputs, training=None, mask=None):
        if training is not True or len(inputs.shape) != 4 or self.axis not in (-1, 3) or mask is not None:
            return super().call(inputs, training=training, mask=mask)
        ones = tf.ones([inputs.shape[-1]], tf.float32)
        y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs,
            tf.cast(self.gamma, tf.float32) if self.scale else ones,
            tf.cast(self.beta, tf.float32) if self.center else 0.0 * ones,
            mean=self.moving_mean,
            variance=self.moving_variance,
            epsilon=self.epsilon,
            is_training=True,
            exponential_avg_factor=1.0 - self.momentum,
        )
        self.moving_mean.assign(mean)
        self.moving_variance.assign(variance)
        return y


def normalization(name: str, dtype=None, **kwargs) -> layers.Layer:
    """The batch normalisation every koala model uses (:class:`FusedBatchNormalization`).

    ``dtype`` here and in the blocks below: the layers' dtype policy (a policy, its name or its
    serialised form; default None: Keras' global policy), passed to every layer as keras-hub does."""
    return FusedBatchNormalization(name=name, dtype=dtype, **kwargs)


def activation(kind: str, name: str, dtype=None) -> layers.Layer:
    if kind == "leaky_relu":
        return layers.LeakyReLU(negative_slope=0.2, name=name, dtype=dtype)
    return layers.Activation(kind, name=name, dtype=dtype)


def conv_block(
    x,
    filters: int,
    name: str,
    act: str = "relu",
    batch_norm: bool = True,
    dilation: int = 1,
    strides: int = 1,
    kernel_size: int = 3,
    dtype=None,
):
    """Conv -> (BatchNorm) -> activation, with stable layer names."""
    x = layers.Conv2D(
        filters, kernel_size, strides=strides, dilation_rate=dilation, padding="same",
        use_bias=not batch_norm, name=f"{name}_conv", dtype=dtype,
    )(x)
    return norm_act(x, name, act, batch_norm, dtype)


def norm_act(x, name: str, act: str = "relu", batch_norm: bool = True, dtype=None):
    """(BatchNorm) -> activation after a block's convolution(s), with conv_block's layer names."""
    if batch_norm:
        x = normalization(f"{name}_bn", dtype)(x)
    return activation(act, f"{name}_{act}", dtype)(x)


def ab_of(outputs):
    """The normalised ab among a network's outputs: the output itself, or its "ab" entry for a
    network that also returns other things (a colour distribution)."""
    return outputs["ab"] if isinstance(outputs, dict) else outputs


def ab_head(x, name: str = "ab", dtype=None):
    """1x1 convolution (under ``dtype``) to two channels with tanh: normalised ab, kept in float32
    under mixed precision."""
    x = layers.Conv2D(2, 1, padding="same", name=f"{name}_conv", dtype=dtype)(x)
    return layers.Activation("tanh", dtype="float32", name=name)(x)


@keras.saving.register_keras_serializable(package="koala")
class BilinearUpSampling2D(layers.Layer):
    """x``factor`` bilinear upsampling (as ``UpSampling2D(interpolation="bilinear")``, half-pixel
    centres) that also traces with unknown height and width.

    Keras 3.15's own layer checks ``size[0] <= 0`` in Python (keras-team/keras PR #22079), which
    fails in a graph where the size is symbolic: validation batches of any shape, exported
    SavedModels. TensorFlow op: koala runs on the TF backend.
    """

    def __init__(self, factor: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.factor = int(factor)

    def call(self, x):
        size = tf.shape(x)[1:3] * self.factor
        return tf.cast(tf.image.resize(x, size, method="bilinear"), x.dtype)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return n, None if h is None else h * self.factor, None if w is None else w * self.factor, c

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}
