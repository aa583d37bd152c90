import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from koala.color import join_lab
from koala.data import Augment, SideInput, augment_geometry, make_dataset


def test_batches_have_the_model_shapes_and_ranges(photo_dir):
    ds = make_dataset(str(photo_dir), 32, 4, training=True, augment=Augment())
    l, ab = next(iter(ds))
    assert l.shape == (4, 32, 32, 1) and ab.shape == (4, 32, 32, 2)
    assert -0.5 - 1e-5 <= l.numpy().min() and l.numpy().max() <= 0.5 + 1e-5
    assert np.abs(ab.numpy()).max() <= 1.0 and np.abs(ab.numpy()).max() > 0.05  # colour is there


def test_validation_batches_are_deterministic_centre_crops(photo_dir):
    ds = make_dataset(str(photo_dir), 32, 12, training=False)
    first, second = next(iter(ds)), next(iter(ds))
    np.testing.assert_array_equal(first[0].numpy(), second[0].numpy())
    assert first[0].shape[0] == 12


def test_training_crops_vary_between_epochs(photo_dir):
    ds = make_dataset(str(photo_dir), 32, 12, training=True, augment=Augment(), seed=1)
    a = np.sort(next(iter(ds))[0].numpy().ravel())
    b = np.sort(next(iter(ds))[0].numpy().ravel())
    assert not np.allclose(a, b)


def square_on_gray(size: int = 64) -> np.ndarray:
    """Mid-gray background with a red square: chroma is high exactly where L is the red's L."""
    img = np.full((size, size, 3), 0.2, np.float32)
    img[16:44, 20:48] = [1.0, 0.0, 0.0]
    return img


def test_augmentation_moves_l_and_ab_together():
    augment = Augment(flip=True, rotation=30, zoom=0.2, shear=0.1, shift=0.15)
    batch = tf.constant(np.stack([square_on_gray()] * 8))
    from koala.data import rgb_to_pair

    l, ab = rgb_to_pair(tf.clip_by_value(augment_geometry(batch, augment, tf.constant([3, 4], tf.int64)), 0, 1))
    lab = join_lab(l, ab).numpy()
    red_by_l = lab[..., 0] > 40  # red L is 53, the background's 21
    red_by_ab = np.hypot(lab[..., 1], lab[..., 2]) > 40
    iou = (red_by_l & red_by_ab).sum() / (red_by_l | red_by_ab).sum()
    assert iou > 0.9
    moved = [not np.array_equal(red_by_l[i], red_by_l[0]) for i in range(1, 8)]
    assert any(moved)  # the draws differ between images


def test_no_augmentation_is_the_identity_and_a_flip_is_an_exact_mirror():
    rng = np.random.default_rng(0)
    batch = tf.constant(rng.uniform(0, 1, (16, 12, 10, 3)).astype(np.float32))
    seed = tf.constant([1, 2], tf.int64)
    still = Augment(flip=False, rotation=0, zoom=0, shear=0, shift=0)
    np.testing.assert_allclose(augment_geometry(batch, still, seed).numpy(), batch.numpy(), atol=1e-6)
    flipped = augment_geometry(batch, Augment(rotation=0, zoom=0, shear=0, shift=0), seed).numpy()
    mirrored = [np.allclose(out, img[:, ::-1], atol=1e-6) for out, img in zip(flipped, batch.numpy())]
    same = [np.allclose(out, img, atol=1e-6) for out, img in zip(flipped, batch.numpy())]
    assert all(m or s for m, s in zip(mirrored, same)) and 0 < sum(mirrored) < 16


def test_bad_files_are_skipped_not_fatal(photo_dir, tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"nope")
    paths = [str(photo_dir / "photo_00.png"), str(tmp_path / "broken.jpg"), str(photo_dir / "photo_01.png")]
    ds = make_dataset(paths, 32, 8, training=False)
    assert next(iter(ds))[0].shape[0] == 2
    assert int(ds.cardinality()) == 1  # the readable ones counted: Keras knows when a pass ends


def test_a_finite_pass_is_not_reported_as_running_out_of_data(photo_dir):
    import warnings

    import keras

    train = make_dataset(str(photo_dir), 16, 4, training=True)
    val = make_dataset(str(photo_dir), 16, 5, training=False)
    assert (int(train.cardinality()), int(val.cardinality())) == (3, 3)
    model = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Conv2D(2, 1)])
    model.compile(loss="mae")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(train, validation_data=val, epochs=2, verbose=0)
    assert not [w for w in caught if "ran out of data" in str(w.message)]


def test_small_and_grayscale_and_16bit_inputs_load(tmp_path):
    Image.fromarray(np.full((12, 20, 3), 128, np.uint8)).save(tmp_path / "tiny.png")
    Image.fromarray((np.arange(40 * 40).reshape(40, 40) * 40).astype(np.uint16)).save(tmp_path / "deep.png")
    l, ab = next(iter(make_dataset(str(tmp_path), 32, 2, training=False)))
    assert l.shape == (2, 32, 32, 1)
    assert np.abs(ab.numpy()).max() < 0.01  # gray in, gray target


def test_empty_source_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no images found"):
        make_dataset(str(tmp_path), 32, 2, training=True)


@pytest.fixture(scope="module")
def uneven_sources(tmp_path_factory):
    """big/: 12 red photos; small/: 2 blue ones."""
    root = tmp_path_factory.mktemp("uneven")
    for name, colour, count in (("big", (200, 40, 40), 12), ("small", (40, 40, 200), 2)):
        (root / name).mkdir()
        for i in range(count):
            Image.fromarray(np.full((20, 20, 3), colour, np.uint8)).save(root / name / f"{i}.png")
    return root


@pytest.mark.parametrize("balance, share", [(0.0, 2 / 14), (0.5, 2**0.5 / (2**0.5 + 12**0.5)), (1.0, 0.5)])
def test_source_balance_evens_out_sources(uneven_sources, balance, share):
    ds = make_dataset(str(uneven_sources), 16, 50, training=True, repeat=True, source_balance=balance, seed=3)
    blue = [float(np.mean(ab.numpy()[..., 1] < 0, axis=(1, 2)).mean()) for _, ab in ds.take(8)]
    assert np.mean(blue) == pytest.approx(share, abs=0.07)


def test_source_balance_needs_an_endless_stream(uneven_sources):
    with pytest.raises(ValueError, match="source_balance needs train.steps_per_epoch"):
        make_dataset(str(uneven_sources), 16, 4, training=True, source_balance=0.5)
    with pytest.raises(ValueError, match=r"must be in \[0, 1\]"):
        make_dataset(str(uneven_sources), 16, 4, training=True, repeat=True, source_balance=2)


def test_the_colour_check_looks_at_every_source(tmp_path, monkeypatch):
    """A first source of gray scans must not hide the colour photos of the next one."""
    from koala.data import pipeline

    monkeypatch.setattr(pipeline, "GRAY_CHECK_PHOTOS", 2)
    for name, colour, count in (("a_gray", (90, 90, 90), 4), ("b_colour", (200, 40, 40), 4)):
        (tmp_path / name).mkdir()
        for i in range(count):
            Image.fromarray(np.full((20, 20, 3), colour, np.uint8)).save(tmp_path / name / f"{i}.png")
    for options in ({"source_balance": 0.5}, {"cache": False}):
        ds = make_dataset(str(tmp_path), 16, 4, training=True, repeat=True, **options)
        assert next(iter(ds))[1].shape == (4, 16, 16, 2)


def rows_by_path(table: dict[str, float]) -> SideInput:
    """A per-photo side input that looks each photo's row up by its path."""
    return SideInput("embedding", per_photo=lambda paths, source: np.array([[table[p]] for p in paths], np.float32))


def test_a_side_input_rides_with_its_photo_beside_the_plain_l_and_ab(tmp_path):
    """Same (L, ab) as without the side input, and each photo's own row, through a dropped bad file
    and the training shuffle. The photos are smaller than the crop, so a training crop is the whole
    (enlarged) photo: the same pixels as its validation crop, whatever the random draw."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(7):
        coarse = rng.integers(0, 256, (3, 3, 3), dtype=np.uint8)
        Image.fromarray(coarse).resize((16, 16), Image.BILINEAR).save(tmp_path / f"p{i}.png")
        paths.append(str(tmp_path / f"p{i}.png"))
    (tmp_path / "bad.png").write_bytes(b"")
    paths.insert(2, str(tmp_path / "bad.png"))
    side = rows_by_path({p: float(i) for i, p in enumerate(paths)})
    good = [i for i, p in enumerate(paths) if not p.endswith("bad.png")]

    val_plain = list(make_dataset(paths, 32, 3, training=False))
    val_side = list(make_dataset(paths, 32, 3, training=False, side_input=side))
    assert len(val_side) == len(val_plain) == 3
    for (l, ab), (inputs, ab_side) in zip(val_plain, val_side):
        assert sorted(inputs) == ["L", "embedding"]
        np.testing.assert_array_equal(inputs["L"], l)
        np.testing.assert_array_equal(ab_side, ab)
    assert np.concatenate([x["embedding"] for x, _ in val_side])[:, 0].tolist() == good  # file order
    l_of = {int(row): l for x, _ in val_side for row, l in zip(x["embedding"][:, 0], x["L"])}

    train_plain = make_dataset(paths, 32, 2, training=True, seed=5)
    train_side = make_dataset(paths, 32, 2, training=True, seed=5, side_input=side)
    seen = []
    for (l, ab), (inputs, ab_side) in zip(train_plain, train_side):
        np.testing.assert_array_equal(inputs["L"], l)  # the same seeded shuffle
        np.testing.assert_array_equal(ab_side, ab)
        for row, l_photo in zip(inputs["embedding"][:, 0], inputs["L"]):
            np.testing.assert_array_equal(l_photo, l_of[int(row)])
            seen.append(int(row))
    assert len(seen) == 6 and set(seen) <= set(good) and seen != sorted(seen)


def test_a_side_input_follows_its_photo_through_source_balancing(uneven_sources):
    paths = sorted(str(p) for p in uneven_sources.rglob("*.png"))
    side = rows_by_path({p: -1.0 if "/small/" in p else 1.0 for p in paths})
    ds = make_dataset(paths, 16, 20, training=True, repeat=True, source_balance=1.0, seed=3, side_input=side)
    for inputs, ab in ds.take(3):
        blue = np.mean(ab.numpy()[..., 1], axis=(1, 2)) < 0
        np.testing.assert_array_equal(inputs["embedding"][:, 0] < 0, blue)
        assert 0 < blue.sum() < 20


def test_validation_hints_do_not_follow_the_global_seed(photo_dir):
    # The seed each batch's from_target gets, as a side input: on validation data the same on every
    # pass and under any global seed (train.seed), so runs with other seeds compare their val loss.
    seed_of = SideInput("seed", from_target=lambda l_norm, ab, seed: tf.cast(seed, tf.float32))

    def seeds(global_seed: int, training: bool) -> list[list[float]]:
        keras.utils.set_random_seed(global_seed)
        ds = make_dataset(str(photo_dir), 32, 2, training=training, seed=4, side_input=seed_of)
        return [x["seed"].numpy().tolist() for x, _ in ds]

    val = seeds(1, training=False)
    assert val == seeds(2, training=False) == seeds(1, training=False) and len(val) >= 2
    assert len({tuple(s) for s in val}) == len(val)  # a new seed each batch
    assert seeds(1, training=True) != seeds(2, training=True)  # training crops' hints follow train.seed


def test_a_side_input_from_l_is_computed_from_the_batch_l(photo_dir):
    total = SideInput("total", from_l=lambda l_norm: tf.reduce_sum(l_norm, axis=[1, 2]))
    inputs, ab = next(iter(make_dataset(str(photo_dir), 32, 4, training=True, augment=Augment(), side_input=total)))
    assert inputs["L"].shape == (4, 32, 32, 1) and ab.shape == (4, 32, 32, 2)
    np.testing.assert_allclose(inputs["total"], tf.reduce_sum(inputs["L"], axis=[1, 2]), rtol=1e-6)


def test_a_side_input_needs_one_source_and_a_row_per_photo(photo_dir):
    with pytest.raises(ValueError, match="give exactly one of per_photo, from_l and from_target"):
        SideInput("embedding")
    two_rows = SideInput("embedding", per_photo=lambda paths, source: np.zeros([2, 4]))
    with pytest.raises(ValueError, match=r"2 rows for \d+ photos"):
        make_dataset(str(photo_dir), 16, 2, training=False, side_input=two_rows)
