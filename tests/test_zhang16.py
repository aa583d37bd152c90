"""Zhang et al. 2016: the network and decoding (koala.models.zhang16), its rebalanced loss
(koala.losses), the ab prior (koala.color.prior) and the prior tool (the shared checks every
model passes are in test_models.py)."""
import logging
import math

import keras
import numpy as np
import pytest
from conftest import save_run, smooth_colour_image

from data_tools import ab_prior
from koala import config as config_lib
from koala.color import AB_NORM, ab_bins, ab_histogram, rebalance_weights, rgb_to_lab
from koala.data import rgb_to_pair
from koala.inference import Colorizer
from koala.models import get_model, get_spec, trainable_params
from koala.color.prior import estimate_prior, load_prior
from koala.losses import RebalancedCrossEntropy, rebalanced_cross_entropy
from koala.models.zhang16 import Zhang16, decode, make_loss

Q = 309
RED, BLUE = (0.8, 0.15, 0.1), (0.1, 0.2, 0.8)  # L about 47 and 30: the colour follows from L


def bin_index(a: float, b: float) -> int:
    bins = ab_bins()
    (index,) = np.flatnonzero((bins[:, 0] == a) & (bins[:, 1] == b))
    return int(index)


def two_colour_images(n: int = 8, size: int = 32, seed: int = 0) -> np.ndarray:
    """Float RGB (n, size, size, 3): red left of a random vertical split, blue right of it."""
    rng = np.random.default_rng(seed)
    images = np.empty((n, size, size, 3), np.float32)
    for i, split in enumerate(rng.integers(size // 4, 3 * size // 4, n)):
        images[i, :, :split], images[i, :, split:] = RED, BLUE
    return images


def constant_ab(a: float, b: float, size: int = 8) -> np.ndarray:
    return np.broadcast_to(np.array([a, b], np.float32) / AB_NORM, (1, size, size, 2)).copy()


def test_registry_and_presets():
    spec = get_spec("zhang16")
    assert (spec.output, spec.multiple, spec.default_size) == ("logits", 8, 256)
    assert spec.make_loss is make_loss and spec.decode is decode
    small = config_lib.load(preset="zhang16_small")
    assert (small.model, small.model_args, small.data.image_size) == ("zhang16", {"width": 0.5}, 128)
    paper = config_lib.load(preset="zhang16")
    assert (paper.data.image_size, paper.data.batch_size, paper.train.learning_rate) == (176, 40, 3e-5)


def test_non_square_input_gives_logits_at_a_quarter_resolution():
    model = Zhang16(width=0.125)
    out = model(np.zeros([2, 48, 80, 1], np.float32))
    assert tuple(out.shape) == (2, 12, 20, Q) and out.dtype == "float32"
    assert model.inputs[0].name == "L"
    assert model.get_layer("conv1_2").strides == (2, 2) and model.get_layer("conv1_1").strides == (1, 1)
    assert model.get_layer("conv5_3").dilation_rate == (2, 2) and model.get_layer("conv7_1").dilation_rate == (1, 1)
    assert model.get_layer("conv4_1").filters == 64 and model.get_layer("conv8_3").filters == 32


def test_full_width_has_the_papers_size():
    # 32.2 M trainable parameters, as the authors' network (with 313 bins: 32.24 M).
    assert trainable_params(get_model("zhang16")) == 32_234_357
    assert trainable_params(get_model("zhang16", width=0.5)) == 8_082_005
    with pytest.raises(ValueError, match="width"):
        Zhang16(width=0)


def test_loss_with_matching_logits_is_the_entropy_of_the_hand_worked_target():
    target_bin = bin_index(20, -30)
    p0 = 1 / (1 + 4 * math.exp(-2))  # the bin, and its 4 neighbours at distance 10 (sigma 5)
    p1 = math.exp(-2) * p0
    entropy = -(p0 * math.log(p0) + 4 * p1 * math.log(p1))
    logits = np.full((1, 2, 2, Q), -30.0, np.float32)
    for (a, b), p in {(20, -30): p0, (30, -30): p1, (10, -30): p1, (20, -20): p1, (20, -40): p1}.items():
        logits[..., bin_index(a, b)] = math.log(p)
    y_true = constant_ab(20, -30)
    uniform = np.ones(Q, np.float32)
    assert float(rebalanced_cross_entropy(y_true, logits, uniform)[0]) == pytest.approx(entropy, rel=1e-4)
    # Each pixel is scaled by the weight of its nearest bin.
    weights = uniform.copy()
    weights[target_bin] = 3.0
    assert float(rebalanced_cross_entropy(y_true, logits, weights)[0]) == pytest.approx(3 * entropy, rel=1e-4)
    # Uniform logits cost log(Q) whatever the target.
    flat = rebalanced_cross_entropy(y_true, np.zeros((1, 2, 2, Q), np.float32), uniform)
    assert float(flat[0]) == pytest.approx(math.log(Q), rel=1e-5)


def test_target_is_average_pooled_to_the_logits_resolution():
    logits = np.random.default_rng(3).normal(size=(1, 2, 2, Q)).astype(np.float32)
    weights = np.random.default_rng(4).uniform(0.5, 2, Q).astype(np.float32)
    # Columns alternate between (10, -30) and (30, -30): each 4x4 block averages to (20, -30).
    striped = constant_ab(10, -30)
    striped[:, :, 1::2, 0] = 30 / AB_NORM
    np.testing.assert_allclose(rebalanced_cross_entropy(striped, logits, weights),
                               rebalanced_cross_entropy(constant_ab(20, -30), logits, weights), rtol=1e-5)


def test_keras_loss_wrapper_round_trips_and_checks_its_weights():
    weights = np.linspace(0.5, 2.0, Q).astype(np.float32)
    loss = RebalancedCrossEntropy(weights)
    again = RebalancedCrossEntropy.from_config(loss.get_config())
    y_true, logits = constant_ab(-40, 50), np.random.default_rng(5).normal(size=(1, 2, 2, Q)).astype(np.float32)
    assert float(again(y_true, logits)) == pytest.approx(float(loss(y_true, logits)))
    assert float(loss(y_true, logits)) == pytest.approx(float(rebalanced_cross_entropy(y_true, logits, weights)[0]))
    with pytest.raises(ValueError, match="309 weights"):
        RebalancedCrossEntropy(np.ones(10))


def test_decode_is_the_annealed_mean_upsampled_four_times():
    logits = np.full((1, 3, 5, Q), -20.0, np.float32)
    logits[..., bin_index(40, -60)] = 0.0
    ab = decode(logits, 1e-3).numpy()
    assert ab.shape == (1, 12, 20, 2)
    np.testing.assert_allclose(ab * AB_NORM, np.broadcast_to([40.0, -60.0], ab.shape), atol=1e-3)
    # Uniform logits: the mean of all bins, whatever the temperature.
    mean = ab_bins().mean(0) / AB_NORM
    np.testing.assert_allclose(decode(np.zeros((1, 2, 2, Q), np.float32)).numpy()[0, 0, 0], mean, atol=1e-6)
    with pytest.raises(ValueError, match="309 ab bins"):
        decode(np.zeros((1, 2, 2, 10), np.float32))


def test_prior_of_known_pixels_and_the_prior_tool(tmp_path):
    images = two_colour_images(4, size=32)
    for i, img in enumerate(images):
        keras.utils.save_img(tmp_path / f"p{i}.png", img * 255, scale=False)
    prior = estimate_prior(sorted(str(p) for p in tmp_path.glob("*.png")), size=32)
    expected = ab_histogram(rgb_to_lab(images)[..., 1:], ab_bins()).numpy()
    np.testing.assert_allclose(prior, expected / expected.sum(), atol=2e-3)  # PNG rounding moves few pixels
    assert np.count_nonzero(prior > 0.01) == 2  # red and blue
    out = tmp_path / "prior.npy"
    assert ab_prior.main([str(tmp_path), str(out), "--size", "32"]) == 0
    np.testing.assert_allclose(load_prior(out), prior, atol=1e-6)
    assert ab_prior.main([str(tmp_path), str(out)]) == 2  # exists: not overwritten without --overwrite
    np.save(tmp_path / "short.npy", np.ones(5))
    with pytest.raises(ValueError, match="309 non-negative probabilities"):
        load_prior(tmp_path / "short.npy")


def test_make_loss_uses_the_configured_prior_or_estimates_one(photo_dir, tmp_path, caplog):
    prior = np.random.default_rng(6).uniform(0, 1, Q).astype(np.float32)
    np.save(tmp_path / "prior.npy", prior)
    cfg = config_lib.load(preset="zhang16_small", overrides=[f"train.loss_args={{prior: {tmp_path / 'prior.npy'}}}"])
    expected = rebalance_weights(prior / prior.sum(), ab_bins()).numpy()
    np.testing.assert_allclose(make_loss(cfg.train.loss_args, str(photo_dir)).class_weights, expected, rtol=1e-5)
    lam = make_loss({**cfg.train.loss_args, "prior_lambda": 0.9}, str(photo_dir)).class_weights
    np.testing.assert_allclose(lam, rebalance_weights(prior / prior.sum(), ab_bins(), lam=0.9).numpy(), rtol=1e-5)
    bad = config_lib.load(preset="zhang16_small", overrides=["train.loss_args={gamma: 2}"])
    with pytest.raises(ValueError, match=r"loss 'zhang16' takes no argument\(s\) \['gamma'\]; it takes \['prior', 'prior_lambda'\]"):
        make_loss(bad.train.loss_args, str(photo_dir))
    quick = config_lib.load(preset="zhang16_small", overrides=[f"data.train={photo_dir}"])
    with caplog.at_level(logging.WARNING):
        weights = np.array(make_loss(quick.train.loss_args, quick.data.train).class_weights)
    assert "no train.loss_args.prior" in caplog.text
    photos = estimate_prior(sorted(str(p) for p in photo_dir.glob("*.png")))
    assert float((photos * weights).sum()) == pytest.approx(1.0, rel=1e-4)


def test_compiled_model_keeps_its_rebalanced_loss_in_the_keras_file(tmp_path):
    weights = np.linspace(0.5, 2.0, Q).astype(np.float32)
    model = Zhang16(width=0.125)
    model.compile(optimizer="adam", loss=RebalancedCrossEntropy(weights, sigma=4.0))
    model.optimizer.build(model.trainable_variables)
    model.save(tmp_path / "z.keras")
    loss = keras.saving.load_model(tmp_path / "z.keras").loss
    assert isinstance(loss, RebalancedCrossEntropy) and loss.sigma == 4.0 and loss.stride == 4
    np.testing.assert_allclose(loss.class_weights, weights, rtol=1e-6)


@pytest.fixture(scope="module")
def trained_tiny():
    """A width-0.125 zhang16 trained on red/blue images, and its loss history."""
    keras.utils.set_random_seed(0)
    l, ab = (t.numpy() for t in rgb_to_pair(two_colour_images(8)))
    prior = ab_histogram(ab * AB_NORM, ab_bins()).numpy()
    model = Zhang16(width=0.125)
    for layer in model.layers:  # batch-norm averages that 40 steps can settle (Keras' default: 0.99)
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.5
    loss = RebalancedCrossEntropy(rebalance_weights(prior, ab_bins()))
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=loss)
    history = model.fit(l, ab, batch_size=8, epochs=40, verbose=0, shuffle=False)
    return model, history.history["loss"]


@pytest.mark.slow
def test_training_a_tiny_model_halves_the_weighted_loss(trained_tiny):
    _, losses = trained_tiny
    assert losses[-1] <= 0.5 * losses[0], losses[::8]


@pytest.mark.slow
def test_colorize_with_the_trained_tiny_model(trained_tiny, tmp_path):
    model, _ = trained_tiny
    run = save_run(tmp_path / "run", model, image_size=32)
    photo = (two_colour_images(1, size=56, seed=9)[0, :44] * 255).astype(np.uint8)  # 44 x 56
    rgb = Colorizer.load(run).colorize(photo)
    assert rgb.shape == (44, 56, 3) and rgb.dtype == np.uint8
    # It learned the colours from L: red (true b = 49) left of the split, blue (b = -80) right of it.
    split = int(np.argmax(photo[0, :, 2] > 128))
    b = rgb_to_lab(rgb / 255.0).numpy()[..., 2]
    assert b[:, : split - 4].mean() > 10 and b[:, split + 4 :].mean() < -40
    vivid = Colorizer.load(run, temperature=1e-2).colorize(photo)
    assert not np.array_equal(vivid, rgb)  # the temperature reaches decode


@pytest.mark.slow
def test_koala_train_and_colorize_through_the_hooks(photo_dir, tmp_path, caplog):
    from koala.training import train

    overrides = [f"data.train={photo_dir}", f"data.val={photo_dir}", f"out_dir={tmp_path}", "name=z",
                 "model_args={width: 0.125}", "data.image_size=32", "data.batch_size=4", "data.max_val_images=4",
                 "train.epochs=1", "train.steps_per_epoch=2", "train.sample_images=2"]
    with caplog.at_level(logging.WARNING):
        run = train(config_lib.load(preset="zhang16_small", overrides=overrides))
    assert "estimating the ab prior" in caplog.text  # no prior file given
    assert (run / "best.keras").is_file() and (run / "samples" / "epoch_001.png").is_file()
    colorizer = Colorizer.load(run)
    assert colorizer.metadata["model"] == "zhang16" and colorizer.predicts_distribution  # logits, decoded
    photo = smooth_colour_image(3, height=37, width=53)
    assert colorizer.colorize(photo).shape == (37, 53, 3)
