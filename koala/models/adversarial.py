"""Adversarial training of any L -> ab colorizer against a conditional PatchGAN critic, inside ``fit``.

The wrapper is a ``keras.Model`` whose ``call`` is the generator's, so ``koala colorize``, the
sample grid and export use it like any colorizer, while ``train_step`` runs one pix2pix step:
generator loss = reconstruction (the configured loss, e.g. l1_ssim) + adv_weight * adversarial,
critic loss = 0.5 * (BCE(real patches, 1) + BCE(fake patches, 0)) (Isola et al. 2017).
Both are computed from one forward pass and applied together, as TensorFlow's pix2pix tutorial does.

Logs: ``loss`` is the reconstruction loss alone (so ``val_loss``, from ``test_step``, ranks
checkpoints by colour error, not by how well the generator fools the critic), ``adv_loss`` the
generator's adversarial BCE and ``critic_loss`` the critic's.

``compile`` takes what ``koala.training`` passes (optimizer, loss, jit_compile) and adds the
critic's optimizer: Adam at the generator's initial learning rate with beta_1 = 0.5 (pix2pix),
unless ``critic_optimizer`` is given. ReduceLROnPlateau changes only the generator's rate.
Tested with the default (single-device) distribution strategy.
"""
from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from koala.losses import get_loss

ADV_WEIGHT = 0.01  # pix2pix weighs L1 by 100 against an adversarial weight of 1
CRITIC_BETA_1 = 0.5


def _bce(target: float, logits):
    return ops.mean(ops.binary_crossentropy(ops.full_like(logits, target), logits, from_logits=True))


@keras.saving.register_keras_serializable(package="koala")
class AdversarialColorizer(keras.Model):
    """A colorizer (``generator``, L -> ab) trained with a ``critic`` ([L, ab] -> patch logits).

    adv_weight: weight of the adversarial term in the generator's loss (default 0.01).

    Example::

        gan = AdversarialColorizer(ResUNet34(), PatchGANCritic(), adv_weight=0.01)
        gan.compile(optimizer=keras.optimizers.Adam(2e-4), loss="l1_ssim")
        gan.fit(train_ds, validation_data=val_ds)   # (L, ab) batches
    """

    def __init__(self, generator: keras.Model, critic: keras.Model, adv_weight: float = ADV_WEIGHT, **kwargs):
        kwargs.setdefault("name", generator.name)
        super().__init__(**kwargs)
        self.generator = generator
        self.critic = critic
        self.adv_weight = float(adv_weight)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.adv_tracker = keras.metrics.Mean(name="adv_loss")
        self.critic_tracker = keras.metrics.Mean(name="critic_loss")
        self.reconstruction_loss = None
        self.critic_optimizer = None
        self.built = True  # both networks are built; BackupAndRestore requires a built model

    def call(self, inputs, training: bool = False):
        return self.generator(inputs, training=training)

    def compile(self, optimizer="adam", loss="l1_ssim", critic_optimizer=None, **kwargs):
        """Compile for ``fit``: ``loss`` is the reconstruction loss, a :data:`koala.losses.LOSSES`
        name (built with its defaults) or a ``keras.losses.Loss`` (e.g. ``get_loss("huber", delta=0.2)``):
        both go into the ``.keras`` file and come back with it."""
        unsupported = sorted(k for k in ("metrics", "weighted_metrics", "loss_weights") if kwargs.get(k))
        if unsupported:
            raise ValueError(f"AdversarialColorizer reports loss, adv_loss and critic_loss only; got {unsupported}")
        if isinstance(loss, str):
            loss = get_loss(loss)
        if not isinstance(loss, keras.losses.Loss):
            raise ValueError(f"AdversarialColorizer's loss must be a koala loss name or a keras.losses.Loss; got {loss!r}")
        super().compile(optimizer=optimizer, **kwargs)
        self.reconstruction_loss = loss
        if critic_optimizer is None:
            learning_rate = float(ops.convert_to_numpy(self.optimizer.learning_rate))
            critic_optimizer = keras.optimizers.Adam(learning_rate, beta_1=CRITIC_BETA_1, name="critic_adam")
        critic_optimizer = keras.optimizers.get(critic_optimizer)
        if self.dtype_policy.name == "mixed_float16" and not isinstance(
            critic_optimizer, keras.optimizers.LossScaleOptimizer
        ):
            critic_optimizer = keras.optimizers.LossScaleOptimizer(critic_optimizer, name="critic_loss_scale")
        self.critic_optimizer = critic_optimizer
        # Built now, on their own variables, so BackupAndRestore and load_weights find every slot.
        self.optimizer.build(self.generator.trainable_variables)
        self.critic_optimizer.build(self.critic.trainable_variables)

    @property
    def metrics(self):
        return [self.loss_tracker, self.adv_tracker, self.critic_tracker]

    def train_step(self, data):
        l_batch, ab_true, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as gen_tape, tf.GradientTape() as critic_tape:
            ab_fake = self.generator(l_batch, training=True)
            real_logits = self.critic([l_batch, ab_true], training=True)
            fake_logits = self.critic([l_batch, ab_fake], training=True)
            reconstruction = self.reconstruction_loss(ab_true, ab_fake)
            adversarial = _bce(1.0, fake_logits)
            gen_loss = reconstruction + self.adv_weight * adversarial
            critic_loss = 0.5 * (_bce(1.0, real_logits) + _bce(0.0, fake_logits))
            gen_scaled = self.optimizer.scale_loss(gen_loss)
            critic_scaled = self.critic_optimizer.scale_loss(critic_loss)
        gen_vars = self.generator.trainable_variables
        critic_vars = self.critic.trainable_variables
        self.optimizer.apply(gen_tape.gradient(gen_scaled, gen_vars), gen_vars)
        self.critic_optimizer.apply(critic_tape.gradient(critic_scaled, critic_vars), critic_vars)
        self.loss_tracker.update_state(reconstruction)
        self.adv_tracker.update_state(adversarial)
        self.critic_tracker.update_state(critic_loss)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        l_batch, ab_true, _ = keras.utils.unpack_x_y_sample_weight(data)
        ab_pred = self.generator(l_batch, training=False)
        self.loss_tracker.update_state(self.reconstruction_loss(ab_true, ab_pred))
        return {"loss": self.loss_tracker.result()}

    def get_config(self):
        return {
            **super().get_config(),
            "generator": keras.saving.serialize_keras_object(self.generator),
            "critic": keras.saving.serialize_keras_object(self.critic),
            "adv_weight": self.adv_weight,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        generator = keras.saving.deserialize_keras_object(config.pop("generator"))
        critic = keras.saving.deserialize_keras_object(config.pop("critic"))
        return cls(generator, critic, **config)

    def get_compile_config(self):
        return {
            "optimizer": keras.saving.serialize_keras_object(self.optimizer),
            "loss": keras.saving.serialize_keras_object(self.reconstruction_loss),
            "critic_optimizer": keras.saving.serialize_keras_object(self.critic_optimizer),
        } if self.compiled else {}

    def compile_from_config(self, config):
        self.compile(**keras.saving.deserialize_keras_object(config))


