"""koala.losses: each loss as a Keras class built by name, its arguments checked, kept in its config
and reaching the trainer's compiled model. (Values: test_resnet_models (SSIM), test_zhang16.)"""
import keras
import numpy as np
import pytest

from koala import config as config_lib
from koala.losses import (
    LOSSES,
    Huber,
    RebalancedCrossEntropy,
    get_loss,
    huber,
    l1,
    l1_ssim,
    loss_arguments,
    mse,
    mse_ssim,
)
from koala.training import compile_model

FUNCTIONS = {"l1": l1, "mse": mse, "huber": huber, "l1_ssim": l1_ssim, "mse_ssim": mse_ssim}
ARGUMENTS = {"l1": {}, "mse": {}, "huber": {"delta": 0.3}, "l1_ssim": {"ssim_weight": 0.5},
             "mse_ssim": {"ssim_weight": 0.5}}


def ab_pair(seed: int = 0):
    rng = np.random.default_rng(seed)
    ab = rng.uniform(-1, 1, (3, 16, 20, 2)).astype(np.float32)
    return ab, np.clip(ab + rng.normal(0, 0.3, ab.shape), -1, 1).astype(np.float32)


def test_every_loss_has_its_arguments_listed():
    assert set(LOSSES) == set(FUNCTIONS) == set(ARGUMENTS)
    assert {name: loss_arguments(name) for name in LOSSES} == {name: sorted(a) for name, a in ARGUMENTS.items()}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_loss_class_is_the_batch_mean_of_its_function_with_its_arguments(name):
    y_true, y_pred = ab_pair()
    loss = get_loss(name, **ARGUMENTS[name])
    expected = np.mean(FUNCTIONS[name](y_true, y_pred, **ARGUMENTS[name]))
    np.testing.assert_allclose(float(loss(y_true, y_pred)), expected, rtol=1e-6)
    assert loss.name == name


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_every_loss_round_trips_through_its_config(name):
    y_true, y_pred = ab_pair(1)
    loss = get_loss(name, **ARGUMENTS[name])
    config = keras.saving.serialize_keras_object(loss)
    assert config["registered_name"] == f"koala>{type(loss).__name__}"
    again = keras.saving.deserialize_keras_object(config)
    assert type(again) is type(loss) and again.get_config() == loss.get_config()
    assert {k: again.get_config()[k] for k in ARGUMENTS[name]} == ARGUMENTS[name]
    np.testing.assert_allclose(float(again(y_true, y_pred)), float(loss(y_true, y_pred)), rtol=1e-6)


def test_rebalanced_cross_entropy_round_trips_and_reads_configs_without_a_stride():
    weights = np.linspace(0.5, 2.0, 309).astype(np.float32)
    loss = RebalancedCrossEntropy(weights, sigma=4.0, neighbours=3)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert again.get_config() == loss.get_config()
    old = {k: v for k, v in loss.get_config().items() if k != "stride"}  # files saved before stride existed
    assert RebalancedCrossEntropy.from_config(old).stride == 4


@pytest.mark.parametrize("name, args, message", [
    ("l1", {"delta": 0.2}, r"loss 'l1' takes no argument\(s\) \['delta'\]; it takes \[\]"),
    ("huber", {"delta": 0.2, "beta": 1, "alpha": 2}, r"loss 'huber' takes no argument\(s\) \['alpha', 'beta'\]; it takes \['delta'\]"),
    ("huber", {"name": "x"}, r"takes no argument\(s\) \['name'\]"),  # Keras' own arguments are not loss_args
    ("focal", {}, r"unknown loss 'focal'; choose from \['huber', 'l1', 'l1_ssim', 'mse', 'mse_ssim'\]"),
    ("huber", {"delta": 0}, "huber's delta must be > 0; got 0"),
    ("mse_ssim", {"ssim_weight": -1}, "mse_ssim's ssim_weight must be >= 0; got -1"),
])
def test_unknown_names_and_arguments_are_one_line_errors(name, args, message):
    with pytest.raises(ValueError, match=message):
        get_loss(name, **args)


def test_compiled_model_with_each_loss_survives_a_keras_file(tmp_path):
    y_true, y_pred = ab_pair(2)
    l_in = keras.Input((None, None, 1), name="L")
    for name in sorted(LOSSES):
        model = keras.Model(l_in, keras.layers.Conv2D(2, 1, name="ab")(l_in))
        model.compile(optimizer="adam", loss=get_loss(name, **ARGUMENTS[name]))
        model.optimizer.build(model.trainable_variables)  # as after fit: the file holds its slots
        model.save(tmp_path / f"{name}.keras")
        loss = keras.saving.load_model(tmp_path / f"{name}.keras").loss
        assert loss.get_config() == model.loss.get_config(), name
        np.testing.assert_allclose(float(loss(y_true, y_pred)), float(model.loss(y_true, y_pred)), rtol=1e-6)


def test_loss_args_reach_the_trainers_loss():
    """train.loss_args changes the compiled model's loss (it used to be ignored for every plain loss)."""
    y_true, y_pred = ab_pair(3)
    values = {}
    for delta in (0.1, 0.5):
        cfg = config_lib.load(preset="smoke", overrides=["train.loss=huber", f"train.loss_args={{delta: {delta}}}"])
        model = compile_model(cfg, [])
        assert isinstance(model.loss, Huber) and model.loss.delta == delta
        values[delta] = float(model.loss(y_true, y_pred))
        np.testing.assert_allclose(values[delta], np.mean(huber(y_true, y_pred, delta)), rtol=1e-6)
    assert values[0.1] != pytest.approx(values[0.5])
