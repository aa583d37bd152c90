"""What every registered model must pass, with its smoke arguments: shapes at a multiple of its
``multiple`` and through the inference path's padding, the output range, the ``.keras`` round trip
(same class, same config, identical outputs) and overfitting a toy batch. Plus the registry itself
and the bundled default model. Model-specific tests stay in test_<model>.py."""
from __future__ import annotations

import inspect
import threading
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from koala import config as config_lib
from koala.color import ab_bins
from koala.inference import Colorizer, predict_ab
from koala.losses import RebalancedCrossEntropy, get_loss
from koala.models import MODELS, get_model, get_spec, trainable_params
from koala.models.adversarial import AdversarialColorizer
from koala.models.cunet import CUNet, network_inputs
from koala.models.koalarization import EMBEDDING_INPUT_NAME
from koala.models.layers import ab_of
from koala.runs import resolve_model

# Every registered model with its smoke arguments, and the adversarial mode of resunet34.
CASES = {name: (name, spec.smoke_args) for name, spec in MODELS.items()}
CASES["resunet34_gan"] = ("resunet34", {**MODELS["resunet34"].smoke_args, "adversarial": True, "critic_filters": 8})


# The full ResNet-34 encoder (24M parameters) and koalarization's ResNet-50 extractor take tens of
# seconds a test on 2 cores: their cases run in the whole suite (make test), not in make test-quick.
HEAVY_CASES = {"resunet34", "resunet34_gan", "koalarization"}


@pytest.fixture(scope="module", params=[pytest.param(name, marks=pytest.mark.slow) if name in HEAVY_CASES else name
                                        for name in CASES])
def case(request):
    """(registry name, model arguments, model): each built once for the module."""
    name, args = CASES[request.param]
    keras.utils.set_random_seed(0)
    return name, args, get_model(name, **args)


def inputs_for(model: keras.Model, l_batch: np.ndarray, seed: int = 0):
    """The network's inputs for a batch of L: a fixed random embedding beside L for fusion models."""
    if isinstance(getattr(model, "input", None), dict):  # an adversarial wrapper has no input of its own
        dim = model.input[EMBEDDING_INPUT_NAME].shape[-1]
        embedding = np.random.default_rng(seed).normal(size=(len(l_batch), dim)).astype(np.float32)
        return {"L": l_batch, EMBEDDING_INPUT_NAME: embedding}
    return l_batch


def as_ab(name: str, outputs) -> np.ndarray:
    spec = get_spec(name)
    return np.asarray(spec.decode(outputs, None) if spec.decode else outputs)


def random_l(shape, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.5, 0.5, shape).astype(np.float32)


def test_shapes_at_a_multiple_and_output_range(case):
    name, _, model = case
    spec = get_spec(name)
    height, width = 3 * spec.multiple, 5 * spec.multiple  # not square, and not a power of two
    outputs = model(inputs_for(model, random_l((2, height, width, 1))), training=False)
    if spec.output == "logits":
        assert tuple(outputs.shape) == (2, height // 4, width // 4, len(ab_bins()))
    ab = as_ab(name, outputs)
    assert ab.shape == (2, height, width, 2) and ab.dtype == np.float32
    assert np.isfinite(ab).all() and np.abs(ab).max() <= 1.0


@pytest.mark.parametrize("height, width", [(37, 53), (90, 41)])
def test_inference_path_pads_any_photo_size(case, height, width):
    name, args, model = case
    multiple = get_spec(name).multiple
    network = Colorizer(model, 32, multiple, metadata={"model": name, "model_args": args}).network_fn()
    seen = []

    def spy(l_small):
        seen.append(tuple(l_small.shape[1:3]))
        return network(l_small)

    ab = predict_ab(spy, tf.constant(random_l((1, height, width, 1))), size=32, multiple=multiple).numpy()
    assert ab.shape == (1, height, width, 2)
    assert np.isfinite(ab).all() and np.abs(ab).max() <= 1.0
    assert seen and all(side % multiple == 0 for side in seen[0])


def test_keras_round_trip_gives_the_same_class_config_and_outputs(case, tmp_path):
    name, _, model = case
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False)  # nothing but the file
    assert type(loaded) is type(model) and loaded.name == name
    assert loaded.get_config() == model.get_config()
    x = inputs_for(model, random_l((2, 64, 96, 1), seed=1))
    np.testing.assert_array_equal(loaded(x, training=False), model(x, training=False))
    if isinstance(model, AdversarialColorizer):
        assert type(loaded.generator) is type(model.generator) and type(loaded.critic) is type(model.critic)
        ab = np.tanh(random_l((2, 64, 96, 2), seed=2))
        np.testing.assert_array_equal(loaded.critic([x, ab]), model.critic([x, ab]))
    clone = type(model).from_config(model.get_config())
    assert clone.get_config() == model.get_config()


def test_mixed_precision_survives_the_keras_file(tmp_path):
    """Built with dtype mixed_float16, loaded in a float32 process: the layers compute in float16
    again (the policy is in the model's config and given to each layer), the ab head stays float32."""
    name = "cunet"
    get_model(name, **get_spec(name).smoke_args, dtype="mixed_float16").save(tmp_path / "mixed.keras")
    loaded = keras.saving.load_model(tmp_path / "mixed.keras", compile=False)
    assert loaded.dtype_policy.name == "mixed_float16"
    assert loaded.get_layer("enc0a_conv").compute_dtype == "float16"
    assert loaded.get_layer("ab").compute_dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"


def policies(model: keras.Model) -> set[str]:
    """The dtype policies of a model's layers, its float32 output heads left out."""
    return {layer.dtype_policy.name for layer in model.layers
            if not isinstance(layer, keras.layers.InputLayer) and layer.name not in ("ab", "bins")}


@pytest.mark.parametrize("name", ["cunet", "resnet18ae"])
def test_two_threads_build_under_two_policies_at_once(name):
    """No global policy is set while a model is built (issue 30): two threads build the same
    architecture under different policies, each pausing half way through its build until the
    other has started, and each model gets its own policy in every layer."""
    halfway = threading.Barrier(2, timeout=600)
    results, errors = {}, []
    made = keras.layers.Conv2D.__init__

    def conv_init(self, *args, **kwargs):
        made(self, *args, **kwargs)
        if kwargs.get("name") in ("enc0a_conv", "conv1_conv"):  # each build's first convolution
            halfway.wait()  # both builds are now under way: a global policy would be the last one set

    def worker(policy):
        try:
            results[policy] = get_model(name, **get_spec(name).smoke_args, dtype=policy)
        except Exception as error:  # noqa: BLE001  (reported by the assertion below)
            errors.append(error)
            halfway.abort()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keras.layers.Conv2D, "__init__", conv_init)
        threads = [threading.Thread(target=worker, args=(p,)) for p in ("mixed_bfloat16", "float32")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not errors, errors
    assert results["mixed_bfloat16"].dtype_policy.name == "mixed_bfloat16"
    assert policies(results["mixed_bfloat16"]) == {"mixed_bfloat16"}
    assert results["float32"].dtype_policy.name == "float32"
    assert policies(results["float32"]) == {"float32"}
    assert keras.config.dtype_policy().name == "float32"


def learnable_pairs(n: int = 4, size: int = 32, seed: int = 0):
    """Smooth random L, and ab an affine function of L at each pixel: learnable by any colorizer."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    ls = []
    for _ in range(n):
        f, phase = rng.uniform(1, 3, 3), rng.uniform(0, 6, 2)
        ls.append(0.45 * np.sin(3 * f[0] * xx + 2 * f[1] * yy + phase[0]) * np.cos(2 * f[2] * yy + phase[1]))
    l_batch = np.float32(ls)[..., None]
    return l_batch, np.concatenate([1.6 * l_batch, 0.2 - 0.5 * l_batch], axis=-1)


def training_loss(name: str):
    """The loss the model trains with: L1 on ab, or the rebalanced cross-entropy (uniform weights) on logits."""
    if get_spec(name).output == "logits":
        return RebalancedCrossEntropy(np.ones(len(ab_bins()), np.float32))
    return get_loss("l1")


# Adam's rate for the toy batch; koalarization learns faster at its preset's 1e-3 (0.37 of the first
# loss after 30 steps, 0.67 at 3e-3), the rest at 3e-3.
OVERFIT_LEARNING_RATE = {"koalarization": 1e-3}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_overfits_a_toy_batch(name):
    """30 steps on 4 images of 32 px halve the loss: gradients reach the whole network."""
    arch, args = CASES[name]
    keras.utils.set_random_seed(0)
    model = get_model(arch, **args)
    l_batch, ab = learnable_pairs()
    x = inputs_for(model, l_batch)
    model.compile(optimizer=keras.optimizers.Adam(OVERFIT_LEARNING_RATE.get(arch, 3e-3)), loss=training_loss(arch))
    history = model.fit(x, ab, batch_size=4, epochs=30, verbose=0, shuffle=False).history["loss"]
    assert np.isfinite(history).all() and history[-1] < 0.5 * history[0], history[::5]


def test_registry_entries_are_complete():
    for name, spec in MODELS.items():
        assert spec.name == name and spec.paper and spec.default_size % spec.multiple == 0
        accepted = inspect.signature(spec.build).parameters
        assert set(spec.smoke_args) <= set(accepted), name
        for preset, values in spec.presets.items():
            assert set(values.get("model_args", {})) <= set(accepted), preset
            cfg = config_lib.load(preset=preset)  # every model preset is a valid config
            assert (cfg.model, cfg.name) == (name, preset)
    with pytest.raises(ValueError, match="unknown model 'vgg'; choose from"):
        get_spec("vgg")


def test_config_presets_come_from_the_model_files():
    from koala.models import resunet34, zhang16

    assert {"default", "smoke"} | set(resunet34.PRESETS) | set(zhang16.PRESETS) <= set(config_lib.presets())
    gan = config_lib.presets()["resunet34_gan"]
    assert gan["model"] == "resunet34" and gan["model_args"] == {"adversarial": True, "adv_weight": 0.01}


def test_trainable_params_counts_what_colorizes():
    """Counted by hand: a 3x3 conv 1 -> 4 without bias (36), BatchNormalization's gamma and beta
    (8; its moving statistics are not trained), a frozen 1x1 conv (20, not counted) and a 1x1 conv
    4 -> 2 with bias (10): 54. An adversarial wrapper counts its generator only."""
    from koala.models.critic import PatchGANCritic

    l_in = keras.Input((None, None, 1), name="L")
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(l_in)
    x = keras.layers.BatchNormalization()(x)
    frozen = keras.layers.Conv2D(4, 1)
    frozen.trainable = False
    generator = keras.Model(l_in, keras.layers.Conv2D(2, 1, activation="tanh", name="ab")(frozen(x)))
    assert trainable_params(generator) == 36 + 8 + 10
    assert generator.count_params() == 36 + 8 + 8 + 20 + 10
    assert trainable_params(AdversarialColorizer(generator, PatchGANCritic(4))) == 54


# The bundled default (koala/weights/default.keras: since issue 31 a 32-filter CU-Net with hint and
# global-hint inputs and a distribution head): the network without hints on a fixed 40 x 56 input,
# and `koala colorize` on a bundled sample. A new default changes these: print them again with the
# model's first outputs when it is packaged.
DEFAULT_NETWORK_SUM = 422.5509338378906
DEFAULT_NETWORK_PICKS = [  # ab[0, ::13, ::17]
    [[0.010925, 0.063355], [-0.002669, 0.048432], [0.042441, 0.064574], [0.012020, 0.097069]],
    [[0.046470, 0.136613], [0.039854, 0.172702], [0.060436, 0.158372], [0.040630, 0.179468]],
    [[0.042993, 0.185747], [0.051175, 0.154002], [0.041998, 0.183771], [0.047737, 0.162024]],
    [[0.010319, 0.084933], [0.011632, 0.037035], [0.004074, 0.112284], [0.019382, 0.067737]],
]
CHELSEA_PICKS = [  # rgb[::60, ::90] of koala/samples/chelsea_gray.png, 300 x 451
    [[144, 120, 94], [147, 129, 100], [116, 100, 74], [130, 115, 94], [142, 128, 96], [38, 28, 20]],
    [[204, 187, 161], [155, 137, 107], [119, 105, 82], [128, 114, 91], [144, 127, 97], [124, 102, 79]],
    [[167, 143, 114], [148, 124, 94], [38, 31, 22], [160, 139, 113], [160, 143, 119], [117, 93, 67]],
    [[131, 110, 76], [98, 84, 61], [110, 93, 61], [178, 158, 127], [119, 105, 84], [134, 108, 84]],
    [[113, 93, 67], [149, 126, 103], [118, 95, 65], [75, 59, 43], [155, 134, 107], [193, 170, 147]],
]
CHELSEA_MEAN = 112.22328652377433
CHELSEA = Path(__file__).parents[1] / "koala" / "samples" / "chelsea_gray.png"


def fixed_l() -> np.ndarray:
    l_batch = np.linspace(-0.5, 0.5, 40 * 56, dtype=np.float32).reshape(1, 40, 56, 1)
    return l_batch * np.cos(np.arange(56, dtype=np.float32) / 5)[None, None, :, None]


@pytest.mark.slow
def test_bundled_default_still_loads_and_colorizes_the_same():
    colorizer = Colorizer.load("default")
    assert colorizer.takes_hints and Colorizer.load("hints").network.count_params() == colorizer.network.count_params()
    l_batch = tf.constant(fixed_l())
    ab = colorizer.network_fn()(l_batch).numpy()  # no hints: empty hint channels
    np.testing.assert_allclose(ab[0, ::13, ::17], DEFAULT_NETWORK_PICKS, atol=2e-6)
    assert float(ab.sum()) == pytest.approx(DEFAULT_NETWORK_SUM, abs=1e-3)
    rgb = colorizer.colorize(str(CHELSEA))
    assert rgb.shape == (300, 451, 3)
    assert np.abs(rgb[::60, ::90].astype(int) - CHELSEA_PICKS).max() <= 1
    assert float(rgb.mean()) == pytest.approx(CHELSEA_MEAN, abs=0.01)
    # Its weights load into the CUNet class its metadata describes: layer names are unchanged.
    network = CUNet(**colorizer.metadata["model_args"])
    network.load_weights(resolve_model("default"))
    np.testing.assert_array_equal(ab_of(network(network_inputs(network, l_batch), training=False)), ab)
