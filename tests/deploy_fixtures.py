"""Shared helpers and fixtures for the deploy tests (export, TF Serving client, web app, browser).

The bundled default model may not exist yet, so these tests build their own: a 4-filter CU-Net
saved as a run folder (best checkpoint + metadata, as ``koala train`` writes them) whose ab
head is biased towards orange, so its output is clearly coloured (a freshly initialised net
predicts ab near 0, which would make "the result is colourful" untestable).

Import the fixtures into a test module with ``from deploy_fixtures import tiny_model, ...``;
each is built once per session whichever modules use it.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

TINY_SIZE = 32
AB_BIAS = (0.25, 0.35)  # normalised a, b: about +28, +39 Lab units, a warm sepia-orange
PHOTO_SIZE = (48, 40)  # width, height
_BUILT: dict[str, Path] = {}


def make_tiny_model(folder: str | Path) -> Path:
    """Write a run folder's best checkpoint and metadata (as koala.training.setup's ``run_metadata``)
    into ``folder``."""
    import keras

    from koala.models import get_model, get_spec
    from koala.runs import Run

    run = Run(folder)
    run.path.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(0)
    model = get_model("cunet", base_filters=4)
    kernel, _ = model.get_layer("ab_conv").get_weights()
    model.get_layer("ab_conv").set_weights([kernel * 0.1, np.asarray(AB_BIAS, np.float32)])
    model.save(run.best)
    run.write_metadata({"model": "cunet", "model_args": {"base_filters": 4}, "image_size": TINY_SIZE,
                        "multiple": get_spec("cunet").multiple})
    return run.path


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
    """Mean spread between an image's channels: 0 for gray."""
    rgb = rgb.astype(np.int32)
    return float(np.mean(rgb.max(axis=-1) - rgb.min(axis=-1)))


def _once(key: str, tmp_path_factory, build) -> Path:
    if key not in _BUILT:
        _BUILT[key] = build(tmp_path_factory.mktemp(key))
    return _BUILT[key]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A run folder with the tiny orange-biased CU-Net."""
    return _once("tiny-model", tmp_path_factory, make_tiny_model)


@pytest.fixture(scope="session")
def exported(tiny_model, tmp_path_factory) -> Path:
    """The tiny model exported with ``koala export``: the base folder (version 1 inside)."""
    from koala.export import export

    return _once("exported", tmp_path_factory, lambda base: export(tiny_model, base).parent)


@pytest.fixture(scope="session")
def photo_files(tmp_path_factory) -> dict[str, Path]:
    """chelsea as colour/gray JPEG/PNG files, keyed ``colour_jpg.jpg``, ``gray_png.png``, ..."""
    def build(folder: Path) -> Path:
        for gray in (False, True):
            for fmt, ext in (("JPEG", "jpg"), ("PNG", "png")):
                (folder / f"{'gray' if gray else 'colour'}_{ext}.{ext}").write_bytes(encode(photo(gray=gray), fmt))
        return folder

    folder = _once("photos", tmp_path_factory, build)
    return {p.name: p for p in sorted(folder.iterdir())}


def make_tiny_hint_model(folder: str | Path) -> Path:
    """:func:`make_tiny_model` with hint inputs whose first convolution is random rather than zero,
    so hints visibly change the colours (the untrained, zero-initialised one would ignore them)."""
    import keras

    from koala.models import get_model, get_spec
    from koala.runs import Run

    run = Run(folder)
    run.path.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(0)
    model = get_model("cunet", base_filters=4, hints=True)
    kernel, _ = model.get_layer("ab_conv").get_weights()
    model.get_layer("ab_conv").set_weights([kernel * 0.1, np.asarray(AB_BIAS, np.float32)])
    (hint_kernel,) = model.get_layer("hints_conv").get_weights()
    model.get_layer("hints_conv").set_weights([np.random.default_rng(0).normal(0, 20, hint_kernel.shape)])
    model.save(run.best)
    run.write_metadata({"model": "cunet", "model_args": {"base_filters": 4, "hints": True},
                        "image_size": TINY_SIZE, "multiple": get_spec("cunet").multiple})
    return run.path


@pytest.fixture(scope="session")
def tiny_hint_model(tmp_path_factory) -> Path:
    """A run folder with a tiny CU-Net whose colours follow hints (:func:`make_tiny_hint_model`)."""
    return _once("tiny-hint-model", tmp_path_factory, make_tiny_hint_model)


@pytest.fixture(scope="session")
def exported_hints(tiny_hint_model, tmp_path_factory) -> Path:
    """The tiny hint model exported with ``koala export``: the base folder (version 1 inside)."""
    from koala.export import export

    return _once("exported-hints", tmp_path_factory, lambda base: export(tiny_hint_model, base).parent)
