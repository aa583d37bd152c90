"""koala.evaluation.metrics on hand-checked values."""
import keras
import numpy as np
import pytest

from koala.evaluation import metrics
from koala.color import ab_bins


def constant_ab(a: float, b: float, n: int = 1, side: int = 4) -> np.ndarray:
    return np.broadcast_to(np.array([a, b], np.float64), (n, side, side, 2)).copy()


def test_psnr_and_ssim_on_rgb():
    true = np.full((2, 16, 16, 3), 0.6)
    assert metrics.psnr(np.full_like(true, 0.5), true) == pytest.approx([20.0, 20.0], abs=1e-4)  # mse 0.01
    rng = np.random.default_rng(0)
    noisy = rng.uniform(0, 1, (1, 16, 16, 3))
    assert metrics.ssim(noisy, noisy)[0] == pytest.approx(1.0, abs=1e-6)
    assert metrics.ssim(np.clip(noisy + 0.2, 0, 1), noisy)[0] < 0.95


def test_ssim_matches_scikit_image_on_a_large_photo():
    """3000 x 2000 px: tf.image.ssim's float32 mean was off by 1.5e-3 here."""
    from skimage.metrics import structural_similarity

    from conftest import smooth_colour_image

    true = smooth_colour_image(0, 2000, 3000) / 255.0
    noise = np.random.default_rng(0).normal(0, 0.03, true.shape)
    pred = np.round(np.clip(true * 0.9 + 0.05 + noise, 0, 1) * 255) / 255  # 8-bit, as evaluate scores
    want = structural_similarity(pred, true, data_range=1.0, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False)
    assert metrics.ssim(pred[None], true[None])[0] == pytest.approx(want, abs=1e-6)


def test_ssim_of_small_images_uses_a_window_of_their_size():
    import tensorflow as tf

    rng = np.random.default_rng(1)
    true = rng.uniform(0, 1, (2, 7, 9, 3))
    pred = np.clip(true + rng.normal(0, 0.1, true.shape), 0, 1)
    want = tf.image.ssim(tf.constant(pred, tf.float32), tf.constant(true, tf.float32), 1.0, filter_size=7,
                         filter_sigma=1.5).numpy()
    np.testing.assert_allclose(metrics.ssim(pred, true), want, atol=1e-5)


def test_ab_mse_is_on_normalised_ab():
    pred, true = constant_ab(11, -11), constant_ab(0, 0)
    assert metrics.ab_mse(pred, true) == pytest.approx([0.01])  # (11/110)^2 in both channels
    with pytest.raises(ValueError, match="ab of shape"):
        metrics.ab_mse(np.zeros((1, 4, 4, 3)), np.zeros((1, 4, 4, 3)))


def test_r2_pools_pixels_and_matches_its_definition():
    true = np.zeros((1, 1, 2, 2))
    true[0, 0, :, 0] = [10.0, 30.0]  # a: mean 20, SST 200; b: no variance
    assert metrics.ab_r2(np.zeros_like(true), true) == pytest.approx(1 - 1000 / 200)  # gray: -4
    assert metrics.ab_r2(true, true) == pytest.approx(1.0)
    means = np.zeros_like(true)
    means[..., 0] = 20.0
    assert metrics.ab_r2(means, true) == pytest.approx(0.0)
    # Terms of images of different sizes add up to the R^2 of all their pixels together.
    rng = np.random.default_rng(1)
    small, big = rng.normal(0, 20, (1, 3, 5, 2)), rng.normal(5, 30, (1, 6, 4, 2))
    pred_small, pred_big = small + rng.normal(0, 5, small.shape), big + rng.normal(0, 5, big.shape)
    pooled = metrics.r2_from_terms(np.concatenate([metrics.r2_terms(pred_small, small), metrics.r2_terms(pred_big, big)]))
    flat = lambda x: x.reshape(1, 1, -1, 2)  # noqa: E731
    together = metrics.ab_r2(np.concatenate([flat(pred_small), flat(pred_big)], 2),
                             np.concatenate([flat(small), flat(big)], 2))
    assert pooled == pytest.approx(together, rel=1e-12)


def test_auc_of_the_cumulative_ab_error():
    true = constant_ab(0, 0, n=3)
    pred = np.stack([constant_ab(0, 0)[0], constant_ab(18, 24)[0], constant_ab(200, 0)[0]])  # errors 0, 30, 200
    np.testing.assert_allclose(metrics.ab_auc(pred, true), [1.0, 120.5 / 150, 0.0])
    half = constant_ab(0, 0)
    half[0, :2] = [120.0, 160.0]  # half the pixels off by 200, half exact: the curve is 0.5 from t = 0
    assert metrics.ab_auc(half, constant_ab(0, 0))[0] == pytest.approx(0.5)
    curve = metrics.ab_error_curve(pred, true)
    assert curve.shape == (3, 151) and curve[1, 29] == 0 and curve[1, 30] == 1


def test_bin_accuracy_with_given_and_default_bins():
    bins = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    true = np.zeros((1, 1, 2, 2))
    pred = np.array([[[[1.0, 1.0], [9.0, 0.0]]]])  # first stays in bin (0, 0), second moves to (10, 0)
    assert metrics.bin_accuracy(pred, true, bins) == pytest.approx([0.5])
    rng = np.random.default_rng(2)
    ab = rng.uniform(-60, 60, (2, 5, 5, 2))
    assert metrics.bin_accuracy(ab, ab).tolist() == [1.0, 1.0]
    assert metrics.nearest_bin(constant_ab(21, -39), ab_bins())[0, 0, 0] == np.flatnonzero(
        (ab_bins() == [20, -40]).all(axis=1))[0]


def test_coarse_colour_is_grey_or_a_hue_sector():
    ab = np.array([[[[0, 0], [5, 5], [50, 0], [35, 35], [0, 50], [-50, 0], [0, -50], [50, -19], [50, -22]]]], float)
    assert metrics.coarse_colour(ab)[0, 0].tolist() == [0, 0, 1, 2, 3, 5, 7, 1, 8]
    pred = np.array([[[[40, 10], [10, 40]]]], float)
    true = np.array([[[[40, -10], [40, 10]]]], float)  # same red sector; yellow vs red
    assert metrics.coarse_accuracy(pred, true) == pytest.approx([0.5])


def test_colourfulness_its_ratio_and_delta():
    red_green = np.zeros((1, 2, 2, 3))
    red_green[0, 0, :, 0] = 1.0
    red_green[0, 1, :, 1] = 1.0
    # rg = +-255 (std 255, mean 0), yb = 127.5 everywhere: M = 255 + 0.3 * 127.5
    assert metrics.colourfulness(red_green) == pytest.approx([293.25])
    gray = np.full_like(red_green, 0.4)
    assert metrics.colourfulness(gray) == pytest.approx([0.0])
    assert metrics.delta_colourfulness(gray, red_green) == pytest.approx([-293.25])
    assert metrics.colourfulness_ratio(np.concatenate([gray, red_green]), np.concatenate([red_green, red_green])) \
        == pytest.approx(0.5)


def test_frechet_distance_of_known_gaussians():
    stats_a = (np.array([0.0, 0.0]), np.diag([4.0, 9.0]))
    stats_b = (np.array([3.0, 4.0]), np.eye(2))
    assert metrics.frechet_distance(stats_a, stats_b) == pytest.approx(30.0)
    rng = np.random.default_rng(3)
    features = rng.normal(size=(50, 6))
    mean, cov = metrics.feature_statistics(features)
    np.testing.assert_allclose(cov, np.cov(features.T))
    assert metrics.frechet_distance((mean, cov), (mean, cov)) == pytest.approx(0.0, abs=1e-6)
    # Fewer samples than features: singular covariances still give a finite, non-negative distance.
    few = metrics.feature_statistics(rng.normal(size=(3, 8)))
    assert 0.0 <= metrics.frechet_distance(few, metrics.feature_statistics(rng.normal(1.0, 1.0, (3, 8)))) < 1e3


def test_frechet_distance_refuses_a_large_imaginary_part():
    """As pytorch-fid: a covariance that is not positive semi-definite gives sqrt(-1) on the diagonal."""
    not_a_covariance = (np.zeros(2), np.diag([1.0, -1.0]))
    with pytest.raises(ValueError, match=r"imaginary part of 1 \(more than 0.001\)"):
        metrics.frechet_distance(not_a_covariance, (np.zeros(2), np.eye(2)))


def tiny_feature_model() -> keras.Model:
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(7))(inputs)
    return keras.Model(inputs, x)  # spatial output: the extractor averages it to (N, 4)


def test_frechet_with_a_pluggable_extractor_is_reproducible(tmp_path):
    model = tiny_feature_model()
    extractor = metrics.FeatureExtractor(model, 16)
    rng = np.random.default_rng(4)
    photos, other = rng.uniform(0, 1, (8, 24, 24, 3)), rng.uniform(0, 0.5, (8, 24, 24, 3))
    assert extractor(photos).shape == (8, 4)

    def distance():
        return metrics.frechet_distance(metrics.feature_statistics(extractor(photos)),
                                        metrics.feature_statistics(extractor(other)))

    first = distance()
    assert first > 0 and abs(distance() - first) <= 1e-6 * max(1.0, first)
    model.save(tmp_path / "features.keras")
    loaded = metrics.load_feature_extractor(str(tmp_path / "features.keras"))
    assert loaded.size == 16 and np.allclose(loaded(photos), extractor(photos), atol=1e-6)
    with pytest.raises(FileNotFoundError, match="inception_v3"):
        metrics.load_feature_extractor(str(tmp_path / "missing.keras"))


@pytest.mark.slow
def test_inception_extractor_builds_without_downloads():
    extractor = metrics.inception_extractor(weights="none", size=75)
    features = extractor(np.random.default_rng(5).uniform(0, 1, (2, 40, 40, 3)))
    assert features.shape == (2, 2048) and np.all(np.isfinite(features))
    again = metrics.inception_extractor(weights=None, size=75)  # seeded: the same random network
    np.testing.assert_allclose(again(np.full((1, 40, 40, 3), 0.5)), extractor(np.full((1, 40, 40, 3), 0.5)), atol=1e-5)
