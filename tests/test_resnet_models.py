"""ResUNet-34 (plain and adversarial), the ResNet-18 autoencoder, the PatchGAN critic and the SSIM losses
(the shared checks every model passes are in test_models.py)."""
from __future__ import annotations

import csv

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from koala import config as config_lib
from koala.inference import Colorizer
from koala.losses import L1SSIM, MSESSIM, SSIM_WEIGHT, get_loss, l1_ssim, mse_ssim, ssim
from koala.models import get_model, trainable_params
from koala.models.adversarial import AdversarialColorizer
from koala.models.critic import PatchGANCritic
from koala.models.layers import BilinearUpSampling2D
from koala.models.resnet import is_encoder_layer
from tests.conftest import smooth_colour_image

TINY_DECODER = (16, 16, 8, 8, 8)  # keeps the full ResNet-34 encoder, shrinks the rest
TINY_DECODER_ARGS = {"decoder_filters": TINY_DECODER}
TINY_GAN = {"adversarial": True, "decoder_filters": TINY_DECODER, "critic_filters": 8}


def random_l(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.5, 0.5, shape).astype(np.float32)


def test_bilinear_upsampling_matches_keras_and_traces_with_unknown_size():
    x = random_l((2, 5, 7, 3), seed=4)
    ours = BilinearUpSampling2D(2)
    np.testing.assert_allclose(ours(x), keras.layers.UpSampling2D(2, interpolation="bilinear")(x), atol=1e-6)
    traced = tf.function(ours, input_signature=[tf.TensorSpec([None, None, None, 3])])
    assert traced(x).shape == (2, 10, 14, 3)
    assert BilinearUpSampling2D.from_config(ours.get_config()).factor == 2


def encoder_params(model: keras.Model) -> int:
    return sum(int(np.prod(w.shape)) for layer in model.layers if is_encoder_layer(layer)
               for w in layer.trainable_weights)


def test_resnet34_encoder_has_torchvision_parameter_count():
    """torchvision's resnet34 has 21,797,672 parameters; less the classifier (512 x 1000 + 1000
    = 513,000) and conv1's two extra input channels (2 x 7 x 7 x 64 = 6,272) leaves 21,278,400.
    BatchNorm's moving statistics are buffers in PyTorch and non-trainable in Keras, so both count
    only gamma and beta. The encoder is keras-cv's (its layer names); the whole network has the
    24,430,130 trainable parameters it had with the hand-written encoder."""
    model = get_model("resunet34")
    assert encoder_params(model) == 21_797_672 - 513_000 - 6_272 == 21_278_400
    assert trainable_params(model) == 24_430_130
    assert model.get_layer("conv1_conv").kernel.shape == (7, 7, 1, 64)
    assert model.get_layer("v2_stack_3_block3_out").output.shape[-1] == 512
    assert model.get_layer("dec4_skip").input[1] is model.get_layer("conv1_relu").output  # the stem's skip at H/2


def test_resnet18ae_encoder_is_resnet18_up_to_layer2():
    """conv1 (7 x 7 x 1 x 64) + bn1 (128) + layer1 (2 x 73,984) + layer2 (230,144 + 295,424) = 676,800."""
    model = get_model("resnet18ae")
    assert encoder_params(model) == 676_800
    assert trainable_params(model) == 954_434
    assert model.get_layer("v2_stack_1_block2_out").output.shape[1:] == (None, None, 128)
    assert not any(layer.name.startswith("v2_stack_2") for layer in model.layers)
    assert model(np.zeros((1, 64, 96, 1), np.float32)).shape == (1, 64, 96, 2)


def test_encoders_start_from_scratch_without_touching_presets(monkeypatch):
    """encoder_weights=None (the default) builds offline: keras-cv's preset loader is never called."""
    from keras_cv.models import ResNetBackbone

    def offline(*args, **kwargs):
        raise AssertionError("from_preset called")

    monkeypatch.setattr(ResNetBackbone, "from_preset", offline)
    assert get_model("resnet18ae", encoder_weights=None).name == "resnet18ae"
    assert get_model("resunet34", **TINY_DECODER_ARGS, encoder_weights=None).name == "resunet34"


def test_encoder_weights_come_from_a_keras_cv_preset(tmp_path):
    """A preset directory saved from an RGB ResNet-18 (what kaggle:// handles and preset names
    resolve to after download): the first two stages land by name, conv1's RGB kernel is summed
    for L, and the decoder keeps its initialisation. A bottleneck ResNet is refused."""
    from keras_cv.models import ResNetBackbone
    from keras_cv.src.utils.preset_utils import save_to_preset

    keras.utils.set_random_seed(1)
    rgb = ResNetBackbone(stackwise_filters=[64, 128, 256, 512], stackwise_blocks=[2, 2, 2, 2],
                         stackwise_strides=[1, 2, 2, 2], include_rescaling=False, block_type="basic_block")
    save_to_preset(rgb, str(tmp_path / "resnet18"))
    keras.utils.set_random_seed(2)
    scratch = get_model("resnet18ae")
    keras.utils.set_random_seed(2)
    model = get_model("resnet18ae", encoder_weights=str(tmp_path / "resnet18"))
    rgb_kernel = rgb.get_layer("conv1_conv").kernel.numpy()
    np.testing.assert_allclose(model.get_layer("conv1_conv").kernel,
                               rgb_kernel[:, :, :1] + rgb_kernel[:, :, 1:2] + rgb_kernel[:, :, 2:], rtol=1e-6)
    for name in ("v2_stack_0_block1_1_conv", "v2_stack_1_block1_0_bn", "v2_stack_1_block2_2_conv"):
        for ours, theirs in zip(model.get_layer(name).get_weights(), rgb.get_layer(name).get_weights()):
            np.testing.assert_array_equal(ours, theirs)
    for ours, before in zip(model.get_layer("dec1_conv").get_weights(), scratch.get_layer("dec1_conv").get_weights()):
        np.testing.assert_array_equal(ours, before)

    bottleneck = ResNetBackbone(stackwise_filters=[8, 8], stackwise_blocks=[1, 1], stackwise_strides=[1, 2],
                                include_rescaling=False, block_type="block")
    save_to_preset(bottleneck, str(tmp_path / "bottleneck"))
    with pytest.raises(ValueError, match="basic blocks.*v2_stack_0_block1_0_conv"):
        get_model("resnet18ae", encoder_weights=str(tmp_path / "bottleneck"))


def test_patchgan_critic_shape_and_size():
    critic = PatchGANCritic()
    logits = critic([np.zeros((2, 64, 96, 1), np.float32), np.zeros((2, 64, 96, 2), np.float32)])
    assert logits.shape == (2, 8, 12, 1)
    assert trainable_params(critic) == 2_768_705 - 3 * 4 * 4 * 64  # pix2pix's 6-channel count, 3 channels here


def test_resunet34_rejects_wrong_decoder_depth():
    with pytest.raises(ValueError, match="5 widths"):
        get_model("resunet34", decoder_filters=(64, 32))


def test_ssim_losses_on_known_values():
    rng = np.random.default_rng(0)
    ab = rng.uniform(-1, 1, (3, 24, 32, 2)).astype(np.float32)
    noisy = np.clip(ab + rng.normal(0, 0.3, ab.shape), -1, 1).astype(np.float32)
    np.testing.assert_allclose(l1_ssim(ab, ab), 0.0, atol=1e-6)
    np.testing.assert_allclose(mse_ssim(ab, ab), 0.0, atol=1e-6)
    np.testing.assert_allclose(ssim(ab, noisy), tf.image.ssim(ab, noisy, max_val=2.0), atol=1e-5)
    # Flat images 0.5 apart: SSIM is the luminance term C1 / (0.25 + C1), C1 = (0.01 * 2)^2.
    flat = np.full((1, 16, 16, 2), 0.5, np.float32)
    c1 = (0.01 * 2.0) ** 2
    np.testing.assert_allclose(l1_ssim(flat, np.zeros_like(flat)), 0.5 + 1e-3 * (1 - c1 / (0.25 + c1)), rtol=1e-6)
    np.testing.assert_allclose(mse_ssim(flat, np.zeros_like(flat)), 0.25 + 1e-3 * (1 - c1 / (0.25 + c1)), rtol=1e-6)
    # The SSIM term only adds: structure lost by noise costs extra on top of L1.
    l1 = np.mean(np.abs(ab - noisy), axis=(1, 2, 3))
    assert SSIM_WEIGHT == 1e-3 and np.all(l1_ssim(ab, noisy).numpy() > l1)
    assert isinstance(get_loss("l1_ssim"), L1SSIM) and isinstance(get_loss("mse_ssim"), MSESSIM)
    np.testing.assert_allclose(get_loss("l1_ssim")(ab, noisy), np.mean(l1_ssim(ab, noisy)), rtol=1e-6)
    np.testing.assert_allclose(get_loss("mse_ssim")(ab, noisy), np.mean(mse_ssim(ab, noisy)), rtol=1e-6)


def tiny_gan(adv_weight: float) -> AdversarialColorizer:
    """A one-conv generator and a tiny PatchGAN: the wrapper's logic without ResNet's cost."""
    keras.utils.set_random_seed(0)
    l_in = keras.Input((None, None, 1), name="L")
    generator = keras.Model(l_in, keras.layers.Conv2D(2, 3, padding="same", activation="tanh", name="ab")(l_in),
                            name="tiny")
    return AdversarialColorizer(generator, PatchGANCritic(4), adv_weight=adv_weight)


def test_gan_step_without_adversarial_weight_is_plain_reconstruction_training():
    """adv_weight=0: one train_step moves the generator exactly as Keras' own step with l1_ssim."""
    l_batch, ab = position_and_l_coloured(n=4, size=16)
    gan = tiny_gan(0.0)
    plain = keras.Model.from_config(gan.generator.get_config())
    plain.set_weights(gan.generator.get_weights())
    gan.compile(optimizer=keras.optimizers.SGD(0.5), loss="l1_ssim")
    plain.compile(optimizer=keras.optimizers.SGD(0.5), loss=l1_ssim)
    critic_before = [w.numpy().copy() for w in gan.critic.trainable_weights]
    logs = gan.train_on_batch(l_batch, ab, return_dict=True)
    plain.train_on_batch(l_batch, ab)
    for ours, reference in zip(gan.generator.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(ours, reference, atol=1e-6)
    assert any(not np.allclose(a, w.numpy()) for a, w in zip(critic_before, gan.critic.trainable_weights))
    assert set(logs) == {"loss", "adv_loss", "critic_loss"}


def test_gan_adversarial_term_changes_the_generator_step():
    l_batch, ab = position_and_l_coloured(n=4, size=16)
    steps = []
    for weight in (0.0, 1.0):
        gan = tiny_gan(weight)
        gan.compile(optimizer=keras.optimizers.SGD(0.5), loss="l1_ssim")
        gan.train_on_batch(l_batch, ab)
        steps.append(gan.generator.get_weights()[0])
    assert not np.allclose(steps[0], steps[1])


def test_gan_compile_state_survives_keras_file(tmp_path):
    l_batch, ab = position_and_l_coloured(n=4, size=16)
    gan = tiny_gan(0.1)
    gan.compile(optimizer=keras.optimizers.Adam(1e-3), loss="l1_ssim")
    gan.train_on_batch(l_batch, ab)
    gan.save(tmp_path / "gan.keras")
    loaded = keras.saving.load_model(tmp_path / "gan.keras")
    assert isinstance(loaded.reconstruction_loss, L1SSIM) and loaded.adv_weight == 0.1
    assert int(loaded.critic_optimizer.iterations) == 1
    np.testing.assert_allclose(loaded.critic_optimizer.variables[-1], gan.critic_optimizer.variables[-1])
    with pytest.raises(ValueError, match="metrics"):
        tiny_gan(0.1).compile(optimizer="adam", loss="l1", metrics=["mae"])
    with pytest.raises(ValueError, match="koala loss name or a keras.losses.Loss"):
        tiny_gan(0.1).compile(optimizer="adam", loss=l1_ssim)


def test_gan_keeps_its_loss_arguments_and_reads_files_that_name_the_loss(tmp_path):
    """A configured loss (with its arguments) survives the .keras file; files written when the
    wrapper stored the loss by name (e.g. "l1_ssim") still compile on load."""
    l_batch, ab = position_and_l_coloured(n=4, size=16)
    gan = tiny_gan(0.1)
    gan.compile(optimizer=keras.optimizers.Adam(1e-3), loss=get_loss("l1_ssim", ssim_weight=0.5))
    gan.train_on_batch(l_batch, ab)
    gan.save(tmp_path / "gan.keras")
    assert keras.saving.load_model(tmp_path / "gan.keras").reconstruction_loss.ssim_weight == 0.5
    by_name = tiny_gan(0.1)
    by_name.compile_from_config({**gan.get_compile_config(), "loss": "l1_ssim"})
    assert isinstance(by_name.reconstruction_loss, L1SSIM) and by_name.reconstruction_loss.ssim_weight == SSIM_WEIGHT


def position_and_l_coloured(n: int = 8, size: int = 32, seed: int = 0):
    """Smooth random L; a is proportional to L, b a top-to-bottom gradient: learnable exactly."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    ls, abs_ = [], []
    for _ in range(n):
        f, phase = rng.uniform(1, 3, 3), rng.uniform(0, 6, 2)
        l = 0.45 * np.sin(3 * f[0] * xx + 2 * f[1] * yy + phase[0]) * np.cos(2 * f[2] * yy + phase[1])
        ls.append(l[..., None])
        abs_.append(np.stack([1.6 * l, yy - 0.5], axis=-1))
    return np.float32(ls), np.float32(abs_)


@pytest.mark.slow
def test_gan_trains_through_koala_train_and_colorizes(photo_dir, tmp_path, monkeypatch):
    """`koala train` with the adversarial preset: fit with koala's callbacks, both networks learn,
    val_loss is the generator's l1_ssim, and `koala colorize --model RUN_DIR` uses the result."""
    from koala import training
    from koala.cli import main
    from koala.training import setup

    initial = {}
    compile_model = setup.compile_model

    def spy(cfg, *args):
        model = compile_model(cfg, *args)
        initial["model"] = model
        initial["generator"] = [w.numpy().copy() for w in model.generator.trainable_weights]
        initial["critic"] = [w.numpy().copy() for w in model.critic.trainable_weights]
        return model

    monkeypatch.setattr(setup, "compile_model", spy)  # what both training loops call
    cfg = config_lib.from_dict({
        "name": "gan", "out_dir": str(tmp_path / "runs"),
        "model_args": {**TINY_GAN, "adv_weight": 0.05},
        "data": {"train": str(photo_dir), "val": str(photo_dir), "image_size": 32, "batch_size": 4,
                 "max_val_images": 4},
        "train": {"epochs": 2, "steps_per_epoch": 3, "sample_images": 2},
    }, preset="resunet34_gan")
    run = training.train(cfg)

    model = initial["model"]
    assert isinstance(model, AdversarialColorizer) and model.adv_weight == 0.05
    for part in ("generator", "critic"):
        after = getattr(model, part).trainable_weights
        assert any(not np.allclose(a, w.numpy()) for a, w in zip(initial[part], after)), f"{part} did not learn"

    rows = list(csv.DictReader((run / "history.csv").open()))
    assert {"loss", "adv_loss", "critic_loss", "val_loss"} <= set(rows[0])
    assert all(float(r["critic_loss"]) > 0 for r in rows)
    best = keras.saving.load_model(run / "best.keras", compile=False)
    _, val = training.build_datasets(cfg)
    l_val, ab_val = next(iter(val))  # one batch: 4 images
    val_loss = float(np.mean(l1_ssim(ab_val, best(l_val, training=False))))
    assert min(float(r["val_loss"]) for r in rows) == pytest.approx(val_loss, rel=1e-4)

    photo = tmp_path / "old.png"
    Image.fromarray(smooth_colour_image(99, 45, 70)).save(photo)
    assert main(["colorize", str(photo), "-o", str(tmp_path / "out"), "--model", str(run)]) == 0
    colorized = np.asarray(Image.open(tmp_path / "out" / "old.png"))
    assert colorized.shape == (45, 70, 3)
    assert Colorizer.load(run).multiple == 32
