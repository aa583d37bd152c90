"""The quantised ab gamut and its maths (koala.color.gamut), checked against hand-worked values."""
import math

import numpy as np
import pytest
from skimage.color import rgb2lab

from koala.color import (
    GRID,
    ab_bins,
    ab_histogram,
    annealed_mean,
    nearest_bin,
    pixel_weights,
    rebalance_weights,
    smooth_prior,
    soft_encode,
)
from koala.color.gamut import _cube_surface


def bin_index(bins: np.ndarray, a: float, b: float) -> int:
    (index,) = np.flatnonzero((bins[:, 0] == a) & (bins[:, 1] == b))
    return int(index)


@pytest.fixture(scope="module")
def bins():
    return ab_bins()


@pytest.fixture(scope="module")
def srgb_ab():
    """ab of every 8-bit sRGB colour on the cube's surface, by scikit-image (an independent conversion)."""
    return rgb2lab(_cube_surface(256)[None].astype(np.float64))[0, :, 1:]


def test_bins_are_the_grid_points_around_srgb_colours(bins, srgb_ab):
    assert bins.shape == (309, 2) and bins.dtype == np.float32  # the paper has 313; see ab_bins' docstring
    assert np.all(bins % GRID == 0) and len(np.unique(bins, axis=0)) == len(bins)
    # The four grid points around every sRGB colour, by scikit-image: each is a bin (complete),
    # and each bin is one of them (reachable: some colour lies within one grid step of it).
    corners = np.unique(np.floor(srgb_ab / GRID), axis=0).astype(int) * GRID
    around = {(a + da, b + db) for a, b in corners for da in (0, GRID) for db in (0, GRID)}
    assert {tuple(p) for p in bins.astype(int).tolist()} == around


@pytest.mark.parametrize("cell", [(100, -100), (110, 0), (-100, 0), (0, -110), (0, 110), (-90, -50), (100, 100)])
def test_out_of_gamut_cells_are_absent(bins, cell):
    # e.g. (-90, -50) would be a saturated cyan-green no sRGB colour comes near.
    assert not ((bins[:, 0] == cell[0]) & (bins[:, 1] == cell[1])).any()


def test_known_colours_are_in_gamut(bins):
    present = {tuple(p) for p in bins.astype(int).tolist()}
    for a, b in ((0, 0), (80, 70), (-80, 80), (80, -100), (-20, 90)):  # gray, red, green, blue, yellow
        assert (a, b) in present


def test_bins_are_cached_and_read_only(bins):
    assert ab_bins() is bins
    with pytest.raises(ValueError):
        bins[0, 0] = 1.0


def test_user_bins_file_is_loaded_and_validated(tmp_path):
    points = np.array([[0, 0], [10, 0], [0, 10], [-10, 0], [0, -10], [10, 10]], np.float64)
    np.save(tmp_path / "pts_in_hull.npy", points)
    loaded = ab_bins(tmp_path / "pts_in_hull.npy")
    np.testing.assert_array_equal(loaded, points)
    assert loaded.dtype == np.float32
    np.save(tmp_path / "flat.npy", np.zeros(10))
    with pytest.raises(ValueError, match=r"shape \(Q, 2\).*\(10,\)"):
        ab_bins(tmp_path / "flat.npy")
    np.save(tmp_path / "three.npy", np.zeros((10, 3)))
    with pytest.raises(ValueError, match="shape"):
        ab_bins(tmp_path / "three.npy")


def test_soft_encoding_on_a_bin_centre_is_the_hand_worked_gaussian(bins):
    target = soft_encode(np.array([20.0, -30.0]), bins).numpy()
    # The bin itself at distance 0 and its 4 grid neighbours at distance 10: exp(-100 / (2 * 5^2)) = e^-2.
    peak = 1 / (1 + 4 * math.exp(-2))
    assert target[bin_index(bins, 20, -30)] == pytest.approx(peak, abs=1e-6)
    for a, b in ((30, -30), (10, -30), (20, -20), (20, -40)):
        assert target[bin_index(bins, a, b)] == pytest.approx(math.exp(-2) * peak, abs=1e-6)
    assert np.count_nonzero(target) == 5 and target.sum() == pytest.approx(1.0)


def test_soft_encoding_halfway_between_two_bins_splits_evenly(bins):
    target = soft_encode(np.array([5.0, 0.0]), bins, k=2).numpy()
    assert target[bin_index(bins, 0, 0)] == pytest.approx(0.5)
    assert target[bin_index(bins, 10, 0)] == pytest.approx(0.5)


def test_soft_encodings_sum_to_one_and_peak_at_the_nearest_bin(bins):
    ab = np.random.default_rng(0).uniform(-80, 80, size=(4, 6, 2)).astype(np.float32)
    target = soft_encode(ab, bins).numpy()
    assert target.shape == (4, 6, len(bins))
    np.testing.assert_allclose(target.sum(-1), 1.0, atol=1e-6)
    assert ((target > 0).sum(-1) == 5).all()
    nearest = np.linalg.norm(ab[..., None, :] - bins, axis=-1).argmin(-1)
    np.testing.assert_array_equal(target.argmax(-1), nearest)


def test_far_outside_the_gamut_the_encoding_is_still_a_distribution(bins):
    target = soft_encode(np.array([300.0, 300.0]), bins).numpy()
    assert np.isfinite(target).all() and target.sum() == pytest.approx(1.0)


def test_uniform_prior_gives_weight_one_everywhere(bins):
    weights = rebalance_weights(np.full(len(bins), 1.0 / len(bins)), bins).numpy()
    np.testing.assert_allclose(weights, 1.0, rtol=1e-5)


def test_weights_have_expectation_one_and_boost_rare_colours(bins):
    prior = np.random.default_rng(1).gamma(0.3, size=len(bins))
    prior[:40] = 0.0  # colours never seen
    prior /= prior.sum()
    weights = rebalance_weights(prior, bins).numpy()
    assert float((prior * weights).sum()) == pytest.approx(1.0, rel=1e-5)
    assert np.isfinite(weights).all() and weights.min() > 0
    # Without smoothing the order of the weights is exactly the reverse order of the prior.
    raw = rebalance_weights(prior, bins, sigma=0).numpy()
    assert np.all(np.diff(raw[np.argsort(prior)]) <= 1e-6)


def test_weights_by_hand_without_smoothing(bins):
    """Worked by hand for Q bins (Q = 309, a multiple of 3), a third of them seen.
    lam = 0.5, prior 3/Q on the seen third and 0 elsewhere: the mix is 2/Q and 0.5/Q, so weights
    are 1 : 4; the expected weight under the prior, (1/3) * 3 * w_seen, is 1: w_seen = 1, w_unseen = 4.
    lam = 0, prior 2/Q on a third and 0.5/Q on the rest: weights 1/2 : 2 (expectation
    (1/3) * 2 * 1/2 + (2/3) * 0.5 * 2 = 1). lam = 1 ignores the prior: all 1."""
    q = len(bins)
    assert q % 3 == 0
    seen = np.arange(q) < q // 3
    weights = rebalance_weights(np.where(seen, 3.0 / q, 0.0), bins, lam=0.5, sigma=0).numpy()
    np.testing.assert_allclose(weights, np.where(seen, 1.0, 4.0), rtol=1e-5)
    common = np.where(seen, 2.0 / q, 0.5 / q)
    np.testing.assert_allclose(rebalance_weights(common, bins, lam=0.0, sigma=0).numpy(), np.where(seen, 0.5, 2.0),
                               rtol=1e-5)
    np.testing.assert_allclose(rebalance_weights(common, bins, lam=1.0).numpy(), 1.0, rtol=1e-5)


def test_smoothing_spreads_a_single_colour_to_its_neighbours_by_the_gaussian(bins):
    delta = np.zeros(len(bins))
    delta[bin_index(bins, 0, 0)] = 1.0
    smoothed = smooth_prior(delta, bins).numpy()
    centre = smoothed[bin_index(bins, 0, 0)]
    for a, b in ((10, 0), (-10, 0), (0, 10), (0, -10)):
        assert smoothed[bin_index(bins, a, b)] / centre == pytest.approx(math.exp(-2), rel=1e-4)
    assert smoothed.sum() == pytest.approx(1.0)


def test_bad_priors_are_refused(bins):
    with pytest.raises(ValueError, match="one probability per bin"):
        rebalance_weights(np.ones(10), bins)
    with pytest.raises(ValueError, match="non-negative"):
        rebalance_weights(-np.ones(len(bins)), bins)
    with pytest.raises(ValueError, match="lam"):
        rebalance_weights(np.ones(len(bins)), bins, lam=1.5)


def test_nearest_bin_is_the_closest_centre_by_brute_force(bins):
    ab = np.random.default_rng(5).uniform(-100, 100, (3, 7, 2))
    want = np.linalg.norm(ab[..., None, :] - bins.astype(np.float64), axis=-1).argmin(-1)
    np.testing.assert_array_equal(nearest_bin(ab, bins).numpy(), want)
    assert nearest_bin(np.array([[21.0, -39.0]]), bins).numpy()[0] == bin_index(bins, 20, -40)


def test_pixel_weight_is_the_weight_of_the_nearest_bin(bins):
    weights = np.arange(len(bins), dtype=np.float32)
    ab = np.array([[[22.0, -28.0], [-3.0, 4.0]]])
    got = pixel_weights(ab, bins, weights).numpy()
    np.testing.assert_array_equal(got, [[bin_index(bins, 20, -30), bin_index(bins, 0, 0)]])


def test_histogram_counts_pixels_by_nearest_bin(bins):
    ab = np.array([[1.0, 2.0], [-2.0, 3.0], [48.0, 52.0]])
    counts = ab_histogram(ab, bins).numpy()
    assert counts.sum() == 3
    assert counts[bin_index(bins, 0, 0)] == 2 and counts[bin_index(bins, 50, 50)] == 1


def test_annealed_mean_goes_from_the_mode_to_the_mean(bins):
    logits = np.random.default_rng(2).normal(size=(3, len(bins))).astype(np.float32)
    logits[:, 17] += 5.0  # one clear mode
    mode = annealed_mean(logits, bins, temperature=1e-3).numpy()
    assert (logits.argmax(-1) == 17).all()
    np.testing.assert_allclose(mode, np.repeat(bins[17:18], 3, axis=0), atol=1e-3)
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    np.testing.assert_allclose(annealed_mean(logits, bins, temperature=1.0).numpy(), probs @ bins, rtol=1e-4, atol=1e-3)
    # The paper's T lies in between: closer to the mode than the mean is.
    paper = annealed_mean(logits, bins).numpy()
    assert np.all(np.linalg.norm(paper - mode, axis=-1) < np.linalg.norm(probs @ bins - mode, axis=-1))


def test_annealed_mean_of_two_equal_bins_is_their_midpoint(bins):
    logits = np.full(len(bins), -50.0, np.float32)
    logits[[bin_index(bins, 0, 0), bin_index(bins, 40, 20)]] = 0.0
    for temperature in (1e-2, 0.38, 1.0):
        np.testing.assert_allclose(annealed_mean(logits, bins, temperature).numpy(), [20.0, 10.0], atol=1e-3)
    with pytest.raises(ValueError, match="temperature"):
        annealed_mean(logits, bins, temperature=0.0)


FIRST_CALL_TRACED = """
import tensorflow as tf
from koala.color import ab_bins
traced = tf.function(lambda: tf.constant(ab_bins())[:2])  # a fresh process: nothing cached yet
print(traced().numpy().tolist() == ab_bins()[:2].tolist(), len(ab_bins()))
"""


def test_bins_can_first_be_computed_inside_a_traced_function():
    """A new process's first use of the bins may be inside a traced graph (colorize, export)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", FIRST_CALL_TRACED], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "309"]
