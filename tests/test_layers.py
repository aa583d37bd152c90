"""koala.models.layers: the fused batch normalisation matches Keras' own; weights averaged over epochs."""
import keras
import numpy as np
import pytest

from koala.models import get_model
from koala.models.layers import FusedBatchNormalization, average_weights


def pair(momentum: float = 0.9):
    fused = FusedBatchNormalization(momentum=momentum, epsilon=1e-3)
    plain = keras.layers.BatchNormalization(momentum=momentum, epsilon=1e-3)
    for layer in (fused, plain):
        layer.build((None, 6, 5, 3))
    rng = np.random.default_rng(0)
    weights = [rng.uniform(0.5, 2, 3), rng.normal(size=3), rng.normal(size=3), rng.uniform(0.5, 2, 3)]
    for layer in (fused, plain):
        layer.set_weights([w.astype(np.float32) for w in weights])
    return fused, plain


def test_training_step_matches_keras_batch_norm():
    fused, plain = pair()
    x = np.random.default_rng(1).normal(2.0, 3.0, (4, 6, 5, 3)).astype(np.float32)
    np.testing.assert_allclose(fused(x, training=True), plain(x, training=True), atol=2e-4)
    np.testing.assert_allclose(fused.moving_mean.numpy(), plain.moving_mean.numpy(), atol=1e-5)
    # The fused kernel averages the unbiased batch variance into the moving variance.
    n = 4 * 6 * 5
    batch_var = x.reshape(-1, 3).var(axis=0)
    expected = plain.moving_variance.numpy() + 0.1 * batch_var * (n / (n - 1) - 1)
    np.testing.assert_allclose(fused.moving_variance.numpy(), expected, rtol=1e-4)


def test_inference_is_keras_batch_norm():
    fused, plain = pair()
    x = np.random.default_rng(2).normal(size=(2, 6, 5, 3)).astype(np.float32)
    np.testing.assert_allclose(fused(x, training=False), plain(x, training=False), atol=1e-6)


def test_round_trip_through_a_keras_file(tmp_path):
    inputs = keras.Input((8, 8, 2))
    model = keras.Model(inputs, FusedBatchNormalization(name="bn")(inputs))
    model.compile("sgd", "mse")
    model.fit(np.random.rand(8, 8, 8, 2), np.random.rand(8, 8, 8, 2), epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.get_layer("bn"), FusedBatchNormalization)
    x = np.random.rand(2, 8, 8, 2).astype(np.float32)
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)
    assert not np.allclose(model.get_layer("bn").moving_mean.numpy(), 0)  # training moved the statistics


def test_epochs_are_averaged_weight_by_weight(tmp_path):
    models = [get_model("cunet", base_filters=4, batch_norm=False, hints=True) for _ in range(3)]
    averaged = average_weights(models)
    assert type(averaged) is type(models[0]) and averaged is not models[0]
    for got, *each in zip(averaged.get_weights(), *(m.get_weights() for m in models)):
        np.testing.assert_allclose(got, np.mean(each, axis=0), atol=1e-6)
    assert not np.allclose(averaged.get_weights()[0], models[0].get_weights()[0])  # a new point, not the first
    averaged.save(tmp_path / "average.keras")  # a model like any other: it loads as its architecture
    assert type(keras.saving.load_model(tmp_path / "average.keras", compile=False)) is type(models[0])
    with pytest.raises(ValueError, match="differ in shape"):
        average_weights([models[0], get_model("cunet", base_filters=8, batch_norm=False, hints=True)])
