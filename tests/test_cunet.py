"""CU-Net's own options (the shared checks every model passes are in test_models.py)."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from koala.inference import predict_ab
from koala.models import get_model, get_spec, trainable_params
from koala.models.cunet import CUNet


@pytest.mark.parametrize("options", [{}, {"batch_norm": False, "activation": "leaky_relu"}])
def test_any_photo_shape_through_the_inference_path(options):
    model = get_model("cunet", base_filters=4, **options)
    for height, width in ((37, 53), (200, 90)):
        ab = predict_ab(model, tf.zeros([1, height, width, 1]), size=32, multiple=8).numpy()
        assert ab.shape == (1, height, width, 2) and np.abs(ab).max() <= 1.0


def test_keras_file_keeps_every_argument(tmp_path):
    model = get_model("cunet", base_filters=4, activation="leaky_relu", dilation_rates=(2, 3, 4, 5))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", compile=False)
    assert isinstance(loaded, CUNet)
    assert (loaded.base_filters, loaded.activation, loaded.batch_norm, loaded.dilation_rates) == (
        4, "leaky_relu", True, (2, 3, 4, 5))
    x = np.random.default_rng(0).uniform(-0.5, 0.5, (2, 40, 24, 1)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))


def test_width_sets_the_parameter_count():
    assert trainable_params(get_model("cunet", base_filters=8)) * 3 < trainable_params(get_model("cunet", base_filters=16))


def test_default_dilation_rates_see_the_bottleneck_map_at_the_default_size():
    """A 3x3 convolution of rate r reaches r pixels away: at 128 px the H/8 map is 16 px wide, so
    a rate of 16 would see only padding."""
    model = get_model("cunet", base_filters=4)
    assert model.dilation_rates == (2, 4, 8, 8)
    assert max(model.dilation_rates) < get_spec("cunet").default_size // 8
