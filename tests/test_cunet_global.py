"""The CU-Net's global-hint input and colour distribution head, their training data, and sampling
evenly by kind of photo (issue 31)."""
import numpy as np
import pytest
import tensorflow as tf
from skimage.color import rgb2lab

import keras
from koala.color import AB_NORM, ab_bins
from koala.data.global_hints import (
    GLOBAL_HINT_SIZE,
    distribution_from_ab,
    global_hint,
    palette_distribution,
    parse_palette,
    simulate_global_hints,
)
from koala.data.pipeline import grouped_weights
from koala.models import get_model
from koala.models.cunet import distribution_losses, hint_side_input, inference_network, network_inputs
from koala.models.layers import transfer_weights

TINY = {"base_filters": 8, "batch_norm": False}


def nearest_bin_by_hand(ab) -> int:
    return int(np.argmin(((ab_bins() - np.asarray(ab)) ** 2).sum(axis=1)))


def test_a_one_coloured_crop_gives_a_distribution_peaked_at_its_colour():
    ab = np.zeros((1, 16, 16, 2), np.float32)
    ab[...] = (42.0, -31.0)
    dist = distribution_from_ab(tf.constant(ab)).numpy()[0]
    assert dist.shape == (len(ab_bins()),)
    assert dist.sum() == pytest.approx(1.0, abs=1e-5)
    assert int(np.argmax(dist)) == nearest_bin_by_hand((42.0, -31.0))
    # Blurred: a bin two steps (20 units) away still gets some of the mass, a far one none.
    near = nearest_bin_by_hand((42.0 + 20.0, -31.0))
    far = nearest_bin_by_hand((-60.0, 60.0))
    assert dist[near] > 0.01 and dist[far] < 1e-6


def test_training_global_hints_are_given_about_half_the_time_and_empty_otherwise():
    ab = tf.fill([400, 8, 8, 2], 0.3)
    hints = simulate_global_hints(ab, tf.constant([5, 6], tf.int64)).numpy()
    assert hints.shape == (400, GLOBAL_HINT_SIZE)
    given = hints[:, -1]
    assert set(np.unique(given)) == {0.0, 1.0}
    assert 0.4 < given.mean() < 0.6
    assert not hints[given == 0].any()
    np.testing.assert_allclose(hints[given == 1, :-1].sum(axis=1), 1.0, atol=1e-5)


def test_a_palette_peaks_at_its_colours_in_proportion_to_their_weights():
    colours, weights = parse_palette("#c02020:3,#2050a0")
    np.testing.assert_allclose(weights, [0.75, 0.25])
    dist = palette_distribution(colours, weights)
    red = rgb2lab(np.array([[[0xC0, 0x20, 0x20]]], np.uint8))[0, 0, 1:]
    blue = rgb2lab(np.array([[[0x20, 0x50, 0xA0]]], np.uint8))[0, 0, 1:]
    assert int(np.argmax(dist)) == nearest_bin_by_hand(red)
    assert dist[nearest_bin_by_hand(red)] > 2 * dist[nearest_bin_by_hand(blue)] > 0


def test_new_parts_start_as_the_plain_network():
    """Zero-initialised fusion: a hint model's weights carry over and compute the same ab, with or
    without a global hint."""
    plain = get_model("cunet", **TINY, hints=True)
    grown = get_model("cunet", **TINY, hints=True, global_hints=True, distribution=True)
    assert sorted(transfer_weights(plain, grown)) == ["bins_conv", "global_hints_fc1", "global_hints_fc2",
                                                     "global_hints_fuse"]
    l_small = tf.random.uniform([2, 32, 32, 1], -1, 1, seed=1)
    expected = plain({"L": l_small, "hints": tf.zeros([2, 32, 32, 3])})
    some_hint = global_hint(tf.one_hot([3, 200], len(ab_bins())))
    call = inference_network(grown, {})
    np.testing.assert_allclose(call(l_small), expected, atol=1e-6)
    np.testing.assert_allclose(call(l_small, global_hints=some_hint), expected, atol=1e-6)
    assert grown(network_inputs(grown, l_small))["bins"].shape == (2, 8, 8, len(ab_bins()))


def test_options_survive_a_save_and_load(tmp_path):
    model = get_model("cunet", **TINY, global_hints=True, distribution=True)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.get_config()["global_hints"] and loaded.get_config()["distribution"]
    assert sorted(loaded.input) == ["L", "global_hints"]


def test_a_model_with_both_hint_kinds_gets_both_from_its_side_input():
    side = hint_side_input({"hints": True, "global_hints": True})
    made = side.from_target(None, tf.zeros([2, 16, 16, 2]), tf.constant([0, 1], tf.int64))
    assert made["hints"].shape == (2, 16, 16, 3) and made["global_hints"].shape == (2, GLOBAL_HINT_SIZE)
    assert hint_side_input({"global_hints": True}).name == "global_hints"
    assert hint_side_input({}) is None


@pytest.mark.slow
def test_the_global_hint_and_the_distribution_head_learn_a_toy_task():
    """Flat gray crops that are either red or blue: only the global hint can tell which, and the
    distribution head must put its mass on the right bin."""
    red, blue = np.array([55.0, 35.0]), np.array([5.0, -45.0])
    rng = np.random.default_rng(0)
    is_red = rng.random(96) < 0.5
    ab = np.where(is_red[:, None, None, None], red, blue) * np.ones((96, 32, 32, 2)) / AB_NORM
    l_norm = rng.normal(0.0, 0.02, (96, 32, 32, 1))
    hints = global_hint(distribution_from_ab(tf.constant(ab * AB_NORM, tf.float32))).numpy()
    keras.utils.set_random_seed(0)
    model = get_model("cunet", **TINY, global_hints=True, distribution=True)
    extra, weights = distribution_losses({"distribution": True}, 0.1)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss={"ab": "mae", **extra},
                  loss_weights={"ab": 1.0, **weights})
    model.fit({"L": l_norm, "global_hints": hints}, {"ab": ab, "bins": ab}, batch_size=16, epochs=25, verbose=0)
    out = model({"L": l_norm[:8], "global_hints": hints[:8]})
    mean_ab = out["ab"].numpy().mean(axis=(1, 2)) * AB_NORM
    for i in range(8):
        truth = red if is_red[i] else blue
        assert np.abs(mean_ab[i] - truth).max() < 12, (i, mean_ab[i], truth)
        centre_bin = int(np.argmax(out["bins"][i, 4, 4]))
        assert np.abs(ab_bins()[centre_bin] - truth).max() <= 10, (i, ab_bins()[centre_bin], truth)


def test_kinds_are_evened_out_before_sources():
    sources = ["a/faces", "b/stanford40", "a/roads", "b/houses"]
    counts = [300, 100, 400, 100]
    weights = grouped_weights(sources, counts, {"people": ["faces", "stanford40"], "scenes": ["houses"]}, 1.0)
    # balance 1: three kinds (people, scenes, roads as its own) equally, sources equally within each.
    np.testing.assert_allclose(weights, [1 / 6, 1 / 6, 1 / 3, 1 / 3])
    # balance 0: still every kind equally (roads' 400 photos do not outweigh the 100 houses), the
    # sources within a kind by their photos.
    weights = grouped_weights(sources, counts, {"people": ["faces", "stanford40"], "scenes": ["houses"]}, 0.0)
    np.testing.assert_allclose(weights, [1 / 4, 1 / 12, 1 / 3, 1 / 3])


def test_a_kind_naming_an_unknown_source_is_one_line():
    with pytest.raises(ValueError, match=r"data.groups.people: no source 'nobody'"):
        grouped_weights(["a/faces"], [3], {"people": ["nobody"]}, 0.5)


def test_train_only_freezes_every_other_layer_and_the_new_head_learns_alone():
    from koala import config as config_lib
    from koala.training import compile_model

    cfg = config_lib.load(preset="smoke", overrides=[
        "model_args={base_filters: 4, batch_norm: false, global_hints: true, distribution: true}",
        "train.train_only=[bins_]", "train.learning_rate=0.01"])
    model = compile_model(cfg, [])
    assert {w.path.split("/")[0] for w in model.trainable_weights} == {"bins_conv"}
    frozen = model.get_layer("ab_conv").get_weights()[0].copy()
    head = model.get_layer("bins_conv").get_weights()[1].copy()
    ab = np.full((4, 16, 16, 2), 0.3, np.float32)
    l_norm = np.random.default_rng(0).uniform(-1, 1, (4, 16, 16, 1)).astype(np.float32)
    model.fit({"L": l_norm, "global_hints": np.zeros((4, GLOBAL_HINT_SIZE), np.float32)},
              {"ab": ab, "bins": ab}, epochs=2, verbose=0)
    np.testing.assert_array_equal(model.get_layer("ab_conv").get_weights()[0], frozen)
    assert np.abs(model.get_layer("bins_conv").get_weights()[1] - head).max() > 1e-3


def test_train_only_naming_no_layer_is_refused():
    from koala import config as config_lib
    from koala.training import compile_model

    cfg = config_lib.load(preset="smoke", overrides=["model_args={base_filters: 4, batch_norm: false}",
                                                     "train.train_only=[nothing_]"])
    with pytest.raises(ValueError, match=r"config.train.train_only: no layer of cunet starts with \['nothing_'\]"):
        compile_model(cfg, [])


def test_the_bundled_default_follows_a_reference_and_suggests_colours():
    from koala import runs
    from koala.inference import Colorizer

    assert runs.resolve_model("guided") == runs.resolve_model("default")  # guided's name since issue 31
    guided = Colorizer.load("default")
    assert guided.takes_global_hints and guided.takes_hints and guided.suggests
    photo = (np.linspace(0.2, 0.8, 96 * 128).reshape(96, 128) * 255).astype(np.uint8)
    blue = np.zeros((32, 32, 3), np.uint8)
    blue[...] = (40, 80, 200)
    b_auto = rgb2lab(guided.colorize(photo))[..., 2].mean()
    b_blue = rgb2lab(guided.colorize(photo, reference=blue))[..., 2].mean()
    assert b_blue < b_auto - 10, (b_auto, b_blue)
    suggestions = guided.suggest(photo, x=64, y=48, k=8)
    assert 1 <= len(suggestions) <= 8
    probabilities = [s["probability"] for s in suggestions]
    assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1.0 + 1e-6
