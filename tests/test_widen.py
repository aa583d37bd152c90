"""Function-preserving widening (Net2Net): a trained CU-Net's weights in a wider CU-Net that
computes the same colours, whose new channels then learn apart from the ones they copy, and
which ``train.init_weights`` reaches."""
import keras
import numpy as np
import pytest
from conftest import save_run

from koala import config as config_lib
from koala.models import get_model
from koala.models.widen import widen_into
from koala.training import compile_model

L_BATCH = np.random.default_rng(1).uniform(-0.5, 0.5, (2, 24, 32, 1)).astype(np.float32)
HINTS = np.random.default_rng(2).uniform(-0.3, 0.3, (2, 24, 32, 3)).astype(np.float32)


def narrow_cunet(seed: int = 0, **args) -> keras.Model:
    """A 4-filter CU-Net with every weight moved off its initialisation (zero biases and
    zero-initialised hint and fusion layers would hide a wrong copy), batch-norm variances kept
    positive; the same whatever ran before."""
    keras.utils.set_random_seed(seed)
    model = get_model("cunet", base_filters=4, **args)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = [w + rng.normal(0, 0.1, w.shape).astype(np.float32) for w in layer.get_weights()]
        if isinstance(layer, keras.layers.BatchNormalization):
            weights[3] = np.abs(weights[3]) + 0.5
        layer.set_weights(weights)
    return model


def inputs_for(model: keras.Model):
    return {"L": L_BATCH, "hints": HINTS} if model.hints else L_BATCH


@pytest.mark.parametrize("args", [{"batch_norm": False, "hints": True, "global_context": 8},
                                  {"batch_norm": True}], ids=["hints-global", "batch-norm"])
def test_a_wider_cunet_computes_what_the_narrow_one_does(args):
    narrow = narrow_cunet(**args)
    wide = get_model("cunet", base_filters=7, **args)
    assert widen_into(narrow, wide) == []
    assert wide.count_params() > 2.5 * narrow.count_params()
    expected = narrow(inputs_for(narrow), training=False).numpy()
    assert np.ptp(expected) > 0.05  # colours that vary, not a flat answer that a wrong copy could match
    np.testing.assert_allclose(wide(inputs_for(wide), training=False).numpy(), expected, atol=2e-5)
    # Batch statistics too: a copied channel's mean and variance are its original's.
    np.testing.assert_allclose(wide(inputs_for(wide), training=True).numpy(),
                               narrow(inputs_for(narrow), training=True).numpy(), atol=2e-5)


def test_new_channels_learn_apart_from_the_ones_they_copy():
    narrow = narrow_cunet(batch_norm=False)
    wide = get_model("cunet", base_filters=6, batch_norm=False)
    widen_into(narrow, wide)
    first = wide.get_layer("enc0a_conv")
    kernel = first.get_weights()[0].reshape(-1, 6)
    copied = [int(np.flatnonzero((kernel[:, :4] == kernel[:, [new]]).all(axis=0))[0]) for new in (4, 5)]
    target = np.tanh(np.concatenate([L_BATCH, -L_BATCH], axis=-1) * 3)  # a toy colouring of L
    wide.compile(optimizer=keras.optimizers.Adam(3e-3), loss="mae")
    before = wide.evaluate(L_BATCH, target, verbose=0)
    wide.fit(L_BATCH, target, epochs=40, verbose=0)
    assert wide.evaluate(L_BATCH, target, verbose=0) < 0.9 * before  # it learns from where it was
    kernel = first.get_weights()[0].reshape(-1, 6)
    for new, original in zip((4, 5), copied):
        assert np.abs(kernel[:, new] - kernel[:, original]).max() > 1e-4  # the symmetry is broken


def test_init_weights_widens_a_narrower_run(tmp_path, capsys):
    narrow = narrow_cunet(batch_norm=False)
    run = save_run(tmp_path / "narrow", narrow, model_args={"base_filters": 4, "batch_norm": False})
    cfg = config_lib.load(preset="smoke", overrides=["model_args={base_filters: 8, batch_norm: false}",
                                                     f"train.init_weights={run}"])
    wide = compile_model(cfg, [])
    assert wide.get_layer("enc0a_conv").filters == 8
    np.testing.assert_allclose(wide.predict(L_BATCH, verbose=0), narrow.predict(L_BATCH, verbose=0), atol=2e-5)
    assert "computing the same function (Net2Net)" in capsys.readouterr().out


def test_a_narrower_target_is_refused_naming_the_layer(tmp_path):
    wide = get_model("cunet", base_filters=8, batch_norm=False)
    run = save_run(tmp_path / "wide", wide, model_args={"base_filters": 8, "batch_norm": False})
    cfg = config_lib.load(preset="smoke", overrides=["model_args={base_filters: 4, batch_norm: false}",
                                                     f"train.init_weights={run}"])
    with pytest.raises(ValueError, match=r"train.init_weights .*best.keras: enc0a_conv: .* is not a narrower version of it"):
        compile_model(cfg, [])
