"""Deep Koalarization: parameter count, any-size inference, what the .keras file holds, the training
hooks, with the tiny stand-in extractor (InceptionResNetV2 is never built here); the shared checks
every model passes are in test_models.py."""
from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from conftest import TINY_DIM

from data_tools.embed import main as embed_main
from koala import config as config_lib
from koala.color import rgb_to_l
from koala.data.embeddings import EmbeddingCache
from koala.inference import Colorizer, predict_ab
from koala.models import extractors, get_model, trainable_params
from koala.models.koalarization import FusionLayer, Koalarization
from koala.training import build_datasets

TINY_ARGS = {"extractor": "tiny", "extractor_weights": "none"}
TINY_META = {"model": "koalarization", "model_args": TINY_ARGS, "image_size": 32, "multiple": 8}


def smooth_photos(count: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """Float RGB (count, size, size, 3) of smooth colour blobs: learnable and different."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 1, (count, 3, 3, 3)).astype(np.float32)
    return tf.image.resize(coarse, (size, size), method="bilinear").numpy()


def test_paper_parameter_count_without_building_the_extractor(monkeypatch):
    def refuse(weights):
        raise AssertionError("the trainable network must not build the extractor")

    for name in ("inception_resnet_v2", "resnet50"):
        spec = extractors.EXTRACTORS[name]
        monkeypatch.setitem(extractors.EXTRACTORS, name, dataclasses.replace(spec, build=refuse))
    model = get_model("koalarization")
    assert trainable_params(model) == 6_573_794
    assert model.get_layer("embedding").batch_shape == (None, 1000)
    # ResNet50's pooled 2048 features only widen the fusion's 1x1 convolution.
    assert trainable_params(get_model("koalarization", extractor="resnet50")) == 6_573_794 + 1048 * 256


def test_fusion_tiles_the_embedding_over_any_grid():
    layer = FusionLayer()
    features = np.random.default_rng(0).normal(size=(2, 5, 9, 3)).astype(np.float32)
    embedding = np.arange(16, dtype=np.float32).reshape(2, 8)
    out = np.asarray(layer([features, embedding]))
    assert out.shape == (2, 5, 9, 11)
    np.testing.assert_array_equal(out[..., :3], features)
    np.testing.assert_array_equal(out[1, 4, 8, 3:], embedding[1])
    assert np.all(out[0, :, :, 3:] == embedding[0])
    assert FusionLayer.from_config(layer.get_config()).get_config() == layer.get_config()


def test_non_square_photo_through_predict_ab_and_colorizer(tiny):
    model = get_model("koalarization", **TINY_ARGS)
    colorizer = Colorizer(model, image_size=32, multiple=8, metadata=TINY_META)
    rgb = smooth_photos(1, seed=1)[0]
    photo = tf.image.resize(rgb[None], (40, 72)).numpy()[0]
    l_full = rgb_to_l(photo[None])
    ab = predict_ab(colorizer.network_fn(), l_full, 32, 8)
    assert ab.shape == (1, 40, 72, 2) and np.all(np.abs(ab) <= 1)
    out = colorizer.colorize((photo * 255).astype(np.uint8))
    assert out.shape == (40, 72, 3) and out.dtype == np.uint8
    # The embedding really comes from the photo: another photo's embedding changes the colours.
    network = colorizer.network_fn()
    small = tf.image.resize(l_full, (32, 56))
    other = model({"L": small, "embedding": tf.ones([1, TINY_DIM]) * 5.0})
    assert not np.allclose(network(small), other, atol=1e-4)


def test_wrong_embedding_size_is_refused(tiny):
    model = get_model("koalarization")  # expects Inception's 1000 numbers
    with pytest.raises(ValueError, match="model expects 1000-d embeddings, extractor tiny gives 8"):
        Colorizer(model, 32, 8, metadata=TINY_META).network_fn()


def test_keras_file_holds_the_network_and_its_extractor_arguments_only(tmp_path, tiny):
    model = get_model("koalarization", **TINY_ARGS)
    path = tmp_path / "koalarization.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    assert isinstance(loaded, Koalarization) and (loaded.extractor, loaded.extractor_weights) == ("tiny", "none")
    assert trainable_params(loaded) == trainable_params(model)
    assert path.stat().st_size < 30_000_000  # the trainable network only, no 55M-parameter extractor


def test_training_data_carries_embeddings_of_the_same_augmented_l_or_from_the_cache(tmp_path, tiny):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, rgb in enumerate(smooth_photos(4, size=48)):
        Image.fromarray((rgb * 255).astype(np.uint8)).save(folder / f"p{i}.png")
    cfg = config_lib.from_dict({"model": "koalarization", "model_args": TINY_ARGS,
                                "data": {"train": str(folder), "val": str(folder), "image_size": 32, "batch_size": 2},
                                "train": {"steps_per_epoch": 2}})
    train, val = build_datasets(cfg)
    inputs, ab = next(iter(train))
    extractor = extractors.get_extractor("tiny", None)
    np.testing.assert_allclose(inputs["embedding"], extractor(inputs["L"]), atol=1e-5)
    assert inputs["L"].shape == (2, 32, 32, 1) and ab.shape == (2, 32, 32, 2)
    # With a cache, the same photos come with the cached rows (val: centre crops in file order).
    cache = tmp_path / "cache.h5"
    assert embed_main([str(folder), str(cache), "--extractor", "tiny", "--weights", "none"]) == 0
    cfg.data.embeddings = str(cache)
    _, val = build_datasets(cfg)
    inputs, _ = next(iter(val))
    np.testing.assert_array_equal(inputs["embedding"], EmbeddingCache.open(cache).embeddings[:2])
    assert not np.allclose(inputs["embedding"][0], inputs["embedding"][1])
    cfg.data.embeddings = str(tmp_path / "missing.h5")
    with pytest.raises(ValueError, match="missing.h5: no such embedding cache"):
        build_datasets(cfg)


def test_extractor_sees_gray_rgb_in_its_own_preprocessing(tiny, tmp_path):
    extractor = extractors.build_extractor("tiny", "none")
    l_norm = tf.constant([[[[0.5]], [[-0.5]]]])  # one white and one black pixel (L 100 and L 0)
    prepared = extractor.prepare(tf.transpose(l_norm, (1, 0, 2, 3)))
    assert prepared.shape == (2, 16, 16, 3)
    np.testing.assert_allclose(prepared[0], 1.0, atol=1e-5)  # tiny preprocessing: x / 127.5 - 1
    np.testing.assert_allclose(prepared[1], -1.0, atol=1e-5)
    inception = extractors.EXTRACTORS["inception_resnet_v2"].preprocess(tf.constant([[0.0, 0.0, 0.0], [255.0] * 3]))
    np.testing.assert_allclose(inception, [[-1, -1, -1], [1, 1, 1]], atol=1e-6)
    resnet = extractors.EXTRACTORS["resnet50"].preprocess(tf.constant([[255.0] * 3]))
    np.testing.assert_allclose(resnet, [[255 - 103.939, 255 - 116.779, 255 - 123.68]], atol=1e-3)


def test_random_weights_are_seeded_and_fingerprinted(tiny, tmp_path):
    a, b = extractors.build_extractor("tiny", None), extractors.build_extractor("tiny", "none")
    assert extractors.fingerprint(a.model) == extractors.fingerprint(b.model)
    assert not a.model.trainable and a.model.trainable_weights == []
    a.model.set_weights([w * 2 for w in a.model.get_weights()])
    a.model.save_weights(tmp_path / "x2.weights.h5")
    c = extractors.build_extractor("tiny", str(tmp_path / "x2.weights.h5"))
    assert extractors.fingerprint(c.model) == extractors.fingerprint(a.model) != extractors.fingerprint(b.model)
    with pytest.raises(FileNotFoundError, match="nope.h5: no such weights file"):
        extractors.build_extractor("tiny", "nope.h5")
    with pytest.raises(ValueError, match="unknown extractor 'vgg'"):
        get_model("koalarization", extractor="vgg")


def test_exported_savedmodel_carries_the_extractor(tiny, tmp_path):
    from koala.export import AB_OUTPUT, L_INPUT, L_SIGNATURE, build_archive

    colorizer = Colorizer(get_model("koalarization", **TINY_ARGS), 32, 8, metadata=TINY_META)
    build_archive(colorizer).write_out(str(tmp_path / "export"), verbose=False)
    extractors.get_extractor.cache_clear()  # the SavedModel must not need this process's extractor
    served = tf.saved_model.load(str(tmp_path / "export")).signatures[L_SIGNATURE]
    l_full = tf.random.uniform([1, 40, 72, 1], -0.5, 0.5, seed=0)
    np.testing.assert_allclose(served(**{L_INPUT: l_full})[AB_OUTPUT],
                               predict_ab(colorizer.network_fn(), l_full, 32, 8), atol=1e-6)


OFFLINE_ARGS = {"extractor": "resnet50", "extractor_weights": "none"}  # what runs without a download


@pytest.fixture(scope="module")
def brightness_photos(tmp_path_factory):
    """Photos whose colour follows their brightness (learnable from L alone): 16 at 64 px."""
    from conftest import smooth_colour_image

    folder = tmp_path_factory.mktemp("brightness")
    for i in range(16):
        gray = smooth_colour_image(i, 64, 64).mean(axis=-1, keepdims=True) / 255.0
        rgb = np.concatenate([gray ** 0.6, gray, gray ** 1.8], axis=-1)
        Image.fromarray((rgb * 255).round().astype(np.uint8)).save(folder / f"p{i:02d}.png")
    return folder


def offline_config(photos, out_dir) -> config_lib.Config:
    return config_lib.from_dict({
        "name": "offline", "out_dir": str(out_dir), "model_args": OFFLINE_ARGS,
        "data": {"train": str(photos), "val": str(photos), "image_size": 32, "batch_size": 4},
        "train": {"epochs": 3, "steps_per_epoch": 10, "sample_images": 1},
    }, preset="koalarization")


@pytest.mark.slow
def test_an_unbounded_embedding_is_normalised_inside_the_model(brightness_photos, tmp_path):
    """ResNet-50's pooled features (rows of length ~100) must not swamp the fusion: before any
    training the output is as small as with no embedding at all, and the .keras file holds the
    normalisation (so inference and export need nothing else)."""
    cfg = offline_config(brightness_photos, tmp_path)
    train, _ = build_datasets(cfg)
    inputs, _ = next(iter(train))
    assert np.linalg.norm(inputs["embedding"], axis=1).min() > 10  # the cache and pipeline keep raw rows
    keras.utils.set_random_seed(0)
    model = get_model("koalarization", **OFFLINE_ARGS)
    silent = model({"L": inputs["L"], "embedding": tf.zeros_like(inputs["embedding"])})
    assert float(tf.reduce_mean(tf.abs(model(inputs)))) < 0.05 + float(tf.reduce_mean(tf.abs(silent)))
    model.save(tmp_path / "k.keras")
    loaded = keras.saving.load_model(tmp_path / "k.keras", compile=False)
    assert loaded.get_layer("embedding_l2").__class__.__name__ == "UnitNormalization"
    np.testing.assert_allclose(loaded(inputs), model(inputs), atol=1e-6)
    # The paper's softmax is already bounded: no normalisation there.
    assert "embedding_l2" not in [layer.name for layer in get_model("koalarization").layers]


@pytest.mark.slow
def test_a_tiny_run_with_the_offline_extractor_beats_gray(brightness_photos, tmp_path):
    """At the preset's learning rate (1e-3, MSE) the loss stays below the gray baseline's from the
    first epoch on, and the result scores above gray."""
    from koala.evaluation.evaluate import evaluate
    from koala.training import train

    cfg = offline_config(brightness_photos, tmp_path)
    _, val = build_datasets(cfg)
    gray_loss = float(np.mean(np.concatenate([np.square(ab).reshape(-1) for _, ab in val])))
    run = train(cfg)
    losses = [float(row.split(",")[2]) for row in (run / "history.csv").read_text().splitlines()[1:]]
    assert max(losses) < gray_loss, (losses, gray_loss)
    paths = sorted(str(p) for p in brightness_photos.iterdir())
    report = evaluate(Colorizer.load(run), paths, progress=False, size=32)
    assert report["model"]["psnr"] > report["gray_baseline"]["psnr"] + 3, report["model"]
