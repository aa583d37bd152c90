"""Shared fixtures: generated photos and tiny models, never ../shared.

Helpers are imported from here (``from conftest import save_run``); fixtures need no import. The
deploy tests (export, TF Serving client, web app, browser) share a tiny CU-Net whose ab head is
biased towards orange, so its output is clearly coloured (a freshly initialised net predicts ab
near 0, which would make "the result is colourful" untestable).
"""
from __future__ import annotations

import io
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest
from PIL import Image


def smooth_colour_image(seed: int, height: int = 48, width: int = 64) -> np.ndarray:
    """A uint8 RGB photo stand-in: smooth colour gradients plus a bright disc."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    channels = [np.clip(0.5 + 0.45 * np.sin(rng.uniform(2, 6) * xx + rng.uniform(2, 6) * yy + rng.uniform(0, 6)), 0, 1)
                for _ in range(3)]
    img = np.stack(channels, axis=-1)
    cy, cx = rng.uniform(0.3, 0.7, 2)
    img[(yy - cy * height / max(height, width)) ** 2 + (xx - cx * width / max(height, width)) ** 2 < 0.02] = rng.uniform(0, 1, 3)
    return (img * 255).round().astype(np.uint8)


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory):
    """A folder of 12 generated colour photos (PNG)."""
    folder = tmp_path_factory.mktemp("photos")
    for i in range(12):
        Image.fromarray(smooth_colour_image(i)).save(folder / f"photo_{i:02d}.png")
    return folder


def save_run(folder, model, image_size: int = 32, model_args: dict | None = None, **extra) -> str:
    """Save ``model`` as a run folder (best checkpoint, and the metadata ``koala train`` writes,
    by its own :func:`koala.training.setup.run_metadata`) that Colorizer.load accepts."""
    from koala import config as config_lib
    from koala.runs import Run
    from koala.training.setup import run_metadata

    run = Run(folder)
    run.path.mkdir(parents=True, exist_ok=True)
    model.save(run.best)
    cfg = config_lib.from_dict({"model": model.name, "model_args": model_args or {}, "data": {"image_size": image_size}})
    run.write_metadata({**run_metadata(cfg, "float32"), **extra})
    return str(folder)


@pytest.fixture(scope="session")
def constant_ab_run(tmp_path_factory):
    """A tiny CU-Net whose output is the constant normalised ab (0.3, -0.2), as a run folder."""
    from koala.models import get_model

    model = get_model("cunet", base_filters=4, batch_norm=False)
    head = model.get_layer("ab_conv")
    kernel, _ = head.get_weights()
    head.set_weights([np.zeros_like(kernel), np.arctanh(np.array([0.3, -0.2], np.float32))])
    return save_run(tmp_path_factory.mktemp("runs") / "constant", model)


# --- The deploy tests' tiny model and photos --------------------------------------------------------

TINY_SIZE = 32
AB_BIAS = (0.25, 0.35)  # normalised a, b: about +28, +39 Lab units, a warm sepia-orange
PHOTO_SIZE = (48, 40)  # width, height
HINT_MODEL_SATURATION = 1.5  # the tiny hint model's tuned saturation


def photo(size: tuple[int, int] = PHOTO_SIZE, gray: bool = False) -> np.ndarray:
    """scikit-image's chelsea, shrunk to ``size`` (width, height): uint8 (H, W, 3) or (H, W)."""
    from skimage import data

    img = Image.fromarray(data.chelsea()).resize(size, Image.BICUBIC)
    return np.asarray(img.convert("L") if gray else img)


def encode(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def decode(data: bytes) -> np.ndarray:
    """PNG/JPEG bytes -> uint8 RGB array."""
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler & Suesstrunk's colourfulness M of one uint8 RGB image (0 for gray; on their scale 15
    is slightly, 33 moderately and 59 quite colourful): koala's evaluation metric, which
    tests/test_metrics.py checks by hand."""
    from koala.evaluation.metrics import colourfulness as hasler_suesstrunk

    return float(hasler_suesstrunk(np.asarray(rgb, np.float64)[None] / 255.0)[0])


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A run folder with the tiny orange-biased CU-Net (4 filters, working size 32)."""
    import keras

    from koala.models import get_model

    keras.utils.set_random_seed(0)
    model = get_model("cunet", base_filters=4)
    kernel, _ = model.get_layer("ab_conv").get_weights()
    model.get_layer("ab_conv").set_weights([kernel * 0.1, np.asarray(AB_BIAS, np.float32)])
    return Path(save_run(tmp_path_factory.mktemp("tiny-model"), model, TINY_SIZE, {"base_filters": 4}))


@pytest.fixture(scope="session")
def exported(tiny_model, tmp_path_factory) -> Path:
    """The tiny model exported with ``koala export``: the base folder (version 1 inside)."""
    from koala.export import export

    return export(tiny_model, tmp_path_factory.mktemp("exported")).parent


@pytest.fixture(scope="session")
def tiny_hint_model(tmp_path_factory) -> Path:
    """The tiny model with hint inputs whose first convolution is random rather than zero, so hints
    visibly change the colours (the untrained, zero-initialised one would ignore them). Its tuned
    saturation is 1.5, as the bundled hint model's is 1.3: photos with hints take 1 instead."""
    import keras

    from koala.models import get_model

    keras.utils.set_random_seed(0)
    model = get_model("cunet", base_filters=4, hints=True)
    kernel, _ = model.get_layer("ab_conv").get_weights()
    model.get_layer("ab_conv").set_weights([kernel * 0.1, np.asarray(AB_BIAS, np.float32)])
    (hint_kernel,) = model.get_layer("hints_conv").get_weights()
    model.get_layer("hints_conv").set_weights([np.random.default_rng(0).normal(0, 20, hint_kernel.shape)])
    return Path(save_run(tmp_path_factory.mktemp("tiny-hint-model"), model, TINY_SIZE,
                         {"base_filters": 4, "hints": True}, saturation=HINT_MODEL_SATURATION))


@pytest.fixture(scope="session")
def exported_hints(tiny_hint_model, tmp_path_factory) -> Path:
    """The tiny hint model exported with ``koala export``: the base folder (version 1 inside)."""
    from koala.export import export

    return export(tiny_hint_model, tmp_path_factory.mktemp("exported-hints")).parent


@pytest.fixture(scope="session")
def loaded(exported):
    """The exported tiny model, loaded with ``tf.saved_model.load``."""
    import tensorflow as tf

    return tf.saved_model.load(str(exported / "1"))


@pytest.fixture(scope="session")
def colorizer(tiny_model):
    """The tiny model's :class:`koala.inference.Colorizer`."""
    from koala.inference import Colorizer

    return Colorizer.load(tiny_model)


@pytest.fixture(scope="session")
def photo_files(tmp_path_factory) -> dict[str, Path]:
    """chelsea as colour/gray JPEG/PNG files, keyed ``colour_jpg.jpg``, ``gray_png.png``, ..."""
    folder = tmp_path_factory.mktemp("photos")
    for gray in (False, True):
        for fmt, ext in (("JPEG", "jpg"), ("PNG", "png")):
            (folder / f"{'gray' if gray else 'colour'}_{ext}.{ext}").write_bytes(encode(photo(gray=gray), fmt))
    return {p.name: p for p in sorted(folder.iterdir())}


# --- A 16-px, 8-number stand-in for koalarization's extractors, so its tests run in seconds ---------

TINY_EXTRACTOR = "tiny"
TINY_EXTRACTOR_SIZE = 16
TINY_DIM = 8


def _build_tiny_extractor(weights: str | None):
    import keras

    if weights == "imagenet":
        raise ValueError("the tiny test extractor has no imagenet weights")
    inputs = keras.Input((TINY_EXTRACTOR_SIZE, TINY_EXTRACTOR_SIZE, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(TINY_DIM)(x), name="tiny")
    if weights is not None:
        model.load_weights(weights)
    return model


@pytest.fixture
def tiny(monkeypatch):
    """Register the tiny extractor for one test (and forget cached extractors around it); its name."""
    from koala.models import extractors

    spec = extractors.ExtractorSpec(_build_tiny_extractor, TINY_EXTRACTOR_SIZE, TINY_DIM, lambda x: x / 127.5 - 1.0)
    extractors.get_extractor.cache_clear()
    monkeypatch.setitem(extractors.EXTRACTORS, TINY_EXTRACTOR, spec)
    yield TINY_EXTRACTOR
    extractors.get_extractor.cache_clear()


@pytest.fixture(scope="session")
def toy_global_model(request, tmp_path_factory) -> Path:
    """A tiny CU-Net with hints, global hints and a colour distribution head, trained briefly on
    the toy world of tests/toy_global.py (red or blue squares on green); tuned saturation 1.2.
    Training takes a minute of CPU, so the run folder is kept in pytest's cache, under a key of
    the sources that make it (:func:`toy_global.toy_key`): a change to either trains it again."""
    from koala.runs import Run
    from toy_global import toy_key, train_toy_model

    cache = request.config.cache
    folder = (cache.mkdir(f"toy-global-{toy_key()}") if cache is not None
              else tmp_path_factory.mktemp("toy-global"))
    if not Run(folder).best.exists():
        train_toy_model(folder)
    return Path(folder)
