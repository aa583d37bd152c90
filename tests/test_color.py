import numpy as np
import pytest
import tensorflow as tf
from skimage import color, data

from koala.color import join_lab, lab_to_rgb, rgb_to_lab, split_lab


def random_rgb(n: int = 4096, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rgb = rng.random((n, 3))
    corners = np.array(np.meshgrid([0, 1], [0, 1], [0, 1])).reshape(3, -1).T
    near_linear_segment = np.array([[0.04, 0.04, 0.04], [0.0031, 0.0031, 0.0031], [0.05, 0.0, 0.9]])
    return np.concatenate([corners, near_linear_segment, rgb]).astype(np.float32)


@pytest.mark.parametrize("pixels", [random_rgb(), data.astronaut().reshape(-1, 3)[::7] / 255.0,
                                    data.coffee().reshape(-1, 3)[::11] / 255.0])
def test_rgb_to_lab_matches_skimage(pixels):
    ours = rgb_to_lab(np.asarray(pixels, np.float32)).numpy()
    reference = color.rgb2lab(np.asarray(pixels, np.float64)[None])[0]
    assert np.abs(ours - reference).max() < 0.01


def test_lab_to_rgb_matches_skimage_including_out_of_gamut():
    rng = np.random.default_rng(1)
    lab = np.stack([rng.uniform(0, 100, 5000), rng.uniform(-110, 110, 5000), rng.uniform(-110, 110, 5000)], -1)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reference = color.lab2rgb(lab[None])[0]
    assert np.abs(lab_to_rgb(lab.astype(np.float32)).numpy() - reference).max() < 1e-4


def test_round_trip_rgb_lab_rgb():
    rgb = random_rgb(seed=2)
    assert np.abs(lab_to_rgb(rgb_to_lab(rgb)).numpy() - rgb).max() < 1e-4


def test_known_colours():
    lab = rgb_to_lab(np.array([[1, 1, 1], [0, 0, 0], [1, 0, 0]], np.float32)).numpy()
    np.testing.assert_allclose(lab[0], [100, 0, 0], atol=0.01)
    np.testing.assert_allclose(lab[1], [0, 0, 0], atol=0.01)
    np.testing.assert_allclose(lab[2], [53.24, 80.09, 67.20], atol=0.02)


def test_split_and_join_are_inverse_and_normalised():
    lab = rgb_to_lab(random_rgb(seed=3))
    l_norm, ab_norm = split_lab(lab)
    assert -0.5 - 1e-6 <= l_norm.numpy().min() and l_norm.numpy().max() <= 0.5 + 1e-6
    assert np.abs(ab_norm.numpy()).max() <= 1.0
    np.testing.assert_allclose(join_lab(l_norm, ab_norm).numpy(), lab.numpy(), atol=1e-4)


def test_normalisation_of_known_colours():
    """Zhang et al.'s normalisation, by hand: L in [0, 100] -> (L - 50) / 100, ab / 110. White
    is L 0.5 and black -0.5 with no colour; pure red is scikit-image's Lab (53.24, 80.09, 67.20)
    -> (0.0324, 0.7281, 0.6109)."""
    rgb = np.array([[1, 1, 1], [0, 0, 0], [1, 0, 0]], np.float64)
    lab = color.rgb2lab(rgb[None])[0]
    l_norm, ab_norm = split_lab(tf.constant(lab, tf.float32))
    np.testing.assert_allclose(l_norm.numpy()[:, 0], [0.5, -0.5, 0.0324], atol=1e-4)
    np.testing.assert_allclose(ab_norm.numpy(), [[0, 0], [0, 0], [0.7281, 0.6109]], atol=1e-4)


def test_conversions_trace_into_a_graph():
    fn = tf.function(lambda x: lab_to_rgb(rgb_to_lab(x)), input_signature=[tf.TensorSpec([None, None, 3])])
    rgb = random_rgb(64, seed=4)[:64].reshape(8, 8, 3)
    np.testing.assert_allclose(fn(rgb).numpy(), rgb, atol=1e-4)


def test_gradients_are_finite_at_black():
    x = tf.Variable(np.zeros((2, 3), np.float32))
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(rgb_to_lab(x))
    assert np.isfinite(tape.gradient(y, x).numpy()).all()
