import numpy as np
import pytest
import tensorflow as tf

from koala.inference import predict_ab
from koala.losses import get_loss
from koala.models import get_model, trainable_params


@pytest.mark.parametrize("options", [{}, {"batch_norm": False, "activation": "leaky_relu"}])
def test_any_photo_shape_through_the_inference_path(options):
    model = get_model("cunet", base_filters=4, **options)
    for height, width in ((37, 53), (200, 90)):
        ab = predict_ab(model, tf.zeros([1, height, width, 1]), size=32, multiple=8).numpy()
        assert ab.shape == (1, height, width, 2) and np.abs(ab).max() <= 1.0


def test_keras_round_trip_gives_identical_outputs(tmp_path):
    import keras

    model = get_model("cunet", base_filters=4, dilation_rates=(2, 3, 4, 5))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", compile=False)
    x = np.random.default_rng(0).uniform(-0.5, 0.5, (2, 40, 24, 1)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
    rebuilt = keras.Model.from_config(loaded.get_config())
    rebuilt.set_weights(model.get_weights())
    np.testing.assert_allclose(rebuilt.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_width_sets_the_parameter_count():
    assert trainable_params(get_model("cunet", base_filters=8)) * 3 < trainable_params(get_model("cunet", base_filters=16))


def learnable_pairs(n: int = 8, size: int = 32, seed: int = 0):
    """L images whose ab is a fixed function of L and position: a task a colorizer can learn."""
    rng = np.random.default_rng(seed)
    l = rng.uniform(-0.5, 0.5, (n, 1, 1, 1)) * np.linspace(0.2, 1, size)[None, :, None, None]
    l = np.broadcast_to(l, (n, size, size, 1)).astype(np.float32)
    ab = np.concatenate([np.tanh(3 * l), np.broadcast_to(np.linspace(-0.4, 0.4, size)[None, None, :, None],
                                                         (n, size, size, 1))], axis=-1).astype(np.float32)
    return l, ab


def test_overfits_a_handful_of_images():
    import keras

    keras.utils.set_random_seed(0)
    l, ab = learnable_pairs()
    model = get_model("cunet", base_filters=8, batch_norm=False)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=get_loss("l1"))
    history = model.fit(l, ab, batch_size=4, epochs=40, verbose=0).history["loss"]
    assert history[-1] < 0.5 * history[0]
