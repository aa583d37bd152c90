"""The model side of user hints and of the scene-aware CU-Net: simulated hints as ideepcolor's
training draws them, CU-Net's hint input and global branch starting from a trained CU-Net, a hint
model that learns to use hints, several datasets trained on together, and the CPU budget."""
import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from koala import config as config_lib
from koala.data import make_dataset
from koala.data.hints import STOP_P, hint_count, simulate_hints
from koala.images import source_groups
from koala.models import get_model
from koala.models.layers import transfer_weights
from koala.runs import Run
from koala.training import train

CUNET = {"base_filters": 8, "batch_norm": False}


def test_hint_counts_are_geometric_as_in_ideepcolor():
    counts = hint_count(tf.constant([3, 4], tf.int64), tf.constant(20000)).numpy()
    assert np.mean(counts == 0) == pytest.approx(STOP_P, abs=0.01)  # 1 crop in 8 without hints
    assert np.mean(counts) == pytest.approx((1 - STOP_P) / STOP_P, rel=0.05)  # mean 7


def test_a_hint_is_a_square_of_the_mean_true_colour():
    rng = np.random.default_rng(0)
    ab = rng.uniform(-0.5, 0.5, (3, 24, 20, 2)).astype(np.float32)
    hints = simulate_hints(ab, tf.constant([1, 2], tf.int64), count=1, patch=3).numpy()
    for image, channels in zip(ab, hints):
        rows, cols = np.nonzero(channels[..., 2])
        assert len(rows) == 9 and np.ptp(rows) == 2 and np.ptp(cols) == 2  # one 3x3 patch
        top, left = rows.min(), cols.min()
        expected = image[top:top + 3, left:left + 3].mean(axis=(0, 1))
        np.testing.assert_allclose(channels[top, left, :2], expected, atol=1e-6)
        outside = channels[..., 2] == 0
        assert not channels[outside].any()  # no colour where there is no hint


def test_hints_gather_around_the_centre_and_come_from_the_seed():
    ab = tf.zeros([200, 64, 64, 2])
    seed = tf.constant([5, 6], tf.int64)
    mask = simulate_hints(ab, seed, count=1, patch=1).numpy()[..., 2]
    ys, xs = np.nonzero(mask.sum(axis=0))
    weights = mask.sum(axis=0)[ys, xs]
    assert np.average(ys, weights=weights) == pytest.approx(31.5, abs=2.5)
    centre = np.mean(np.abs(np.nonzero(mask)[1] - 31.5) < 16)  # within one sigma (a quarter of 64): 68%
    assert 0.6 < centre < 0.8
    np.testing.assert_array_equal(simulate_hints(ab, seed, count=1, patch=1).numpy()[..., 2], mask)


def test_hint_and_global_parts_start_as_the_trained_cunet():
    plain = get_model("cunet", **CUNET)
    plain.set_weights([np.random.default_rng(i).normal(0, 0.2, w.shape).astype("float32")
                       for i, w in enumerate(plain.get_weights())])
    both = get_model("cunet", **CUNET, hints=True, global_context=16)
    new = transfer_weights(plain, both)
    assert set(new) == {"hints_conv", "global0_conv", "global1_conv", "global_fc", "global_fuse"}
    l_batch = np.random.default_rng(1).uniform(-0.5, 0.5, (2, 32, 40, 1)).astype(np.float32)
    empty = np.zeros((2, 32, 40, 3), np.float32)
    np.testing.assert_allclose(both({"L": l_batch, "hints": empty}).numpy(), plain(l_batch).numpy(), atol=1e-6)


def test_the_options_survive_the_keras_file(tmp_path):
    model = get_model("cunet", **CUNET, hints=True, global_context=16)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", compile=False)
    assert loaded.hints and loaded.global_context == 16
    inputs = {"L": np.zeros((1, 16, 16, 1), np.float32), "hints": np.ones((1, 16, 16, 3), np.float32)}
    np.testing.assert_allclose(loaded(inputs).numpy(), model(inputs).numpy(), atol=1e-6)


def flat_colour_photos(folder, count: int = 16):
    """Photos of one flat colour each (random hue, same brightness): L says nothing about the
    colour, so only hints can tell it."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        angle = rng.uniform(0, 2 * np.pi)
        rgb = np.clip(128 + 90 * np.array([np.cos(angle), np.cos(angle - 2.1), np.cos(angle + 2.1)]), 0, 255)
        Image.fromarray(np.full((40, 40, 3), rgb, np.uint8)).save(folder / f"flat_{i:02d}.png")
    return folder


@pytest.mark.slow
def test_a_hint_model_learns_to_use_hints(tmp_path):
    photos = flat_colour_photos(tmp_path / "flat")
    cfg = config_lib.load(preset="smoke", overrides=[
        f"data.train={photos}", f"data.val={photos}", f"out_dir={tmp_path}", "name=hints",
        "model_args={base_filters: 8, batch_norm: false, hints: true}", "data.image_size=32",
        "data.batch_size=8", "train.learning_rate=0.003", "train.epochs=8", "train.steps_per_epoch=25",
        "data.augment={rotation: 0, zoom: 0, shear: 0, shift: 0}"])
    model = keras.saving.load_model(Run(train(cfg)).best, compile=False)
    l_batch, ab = next(iter(make_dataset(str(photos), 32, 16, training=False)))
    with_hints = simulate_hints(ab, tf.constant([0, 9], tf.int64), count=5, patch=3)
    error_with = np.abs(model({"L": l_batch, "hints": with_hints}).numpy() - ab).mean()
    error_without = np.abs(model({"L": l_batch, "hints": tf.zeros_like(with_hints)}).numpy() - ab).mean()
    assert error_with < 0.5 * error_without, (error_with, error_without)


def two_datasets(root):
    """a/train/{x, y} and b/train/{x}: 2 + 2 + 4 photos."""
    for dataset, source, count in (("a", "x", 2), ("a", "y", 2), ("b", "x", 4)):
        folder = root / dataset / "train" / source
        folder.mkdir(parents=True)
        for i in range(count):
            Image.fromarray(np.full((20, 20, 3), (200, 40 * i, 40), np.uint8)).save(folder / f"{i}.png")
    return [str(root / "a" / "train"), str(root / "b" / "train")]


def test_several_datasets_keep_their_own_sources(tmp_path):
    roots = two_datasets(tmp_path)
    groups = source_groups(roots)
    assert {name: len(paths) for name, paths in groups.items()} == {"a/train/x": 2, "a/train/y": 2, "b/train/x": 4}
    assert list(source_groups(roots[1])) == ["x"]
    cfg = config_lib.load(preset="smoke", overrides=[f"data.train=[{roots[0]}, {roots[1]}]"])
    assert cfg.data.train == roots
    ds = make_dataset(roots, 16, 8, training=True, repeat=True, source_balance=1.0)
    assert next(iter(ds))[0].shape == (8, 16, 16, 1)
    with pytest.raises(ValueError, match="config.data.train: expected a string or a list of strings"):
        config_lib.load(preset="smoke", overrides=["data.train=[1, 2]"])


def test_a_cpu_budget_stops_the_run_and_is_recorded(photo_dir, tmp_path):
    cfg = config_lib.load(preset="smoke", overrides=[
        f"data.train={photo_dir}", f"data.val={photo_dir}", f"out_dir={tmp_path}", "train.epochs=5",
        "train.cpu_budget=0.001"])
    meta = Run(train(cfg)).read_metadata()
    assert meta["epochs_run"] == 1 and meta["cpu_seconds"] > 0
