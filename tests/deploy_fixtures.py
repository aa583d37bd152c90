"""Shared helpers for the deploy tests: a tiny colorizer saved the way `koala train` saves one.

The bundled default model may not exist yet, so these tests build their own: a 4-filter CU-Net
whose ab head is biased towards orange, so its output is clearly coloured (a freshly initialised
net predicts ab near 0, which would make "the result is colourful" untestable).
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

TINY_SIZE = 32
AB_BIAS = (0.25, 0.35)  # normalised a, b: about +28, +39 Lab units, a warm sepia-orange


def make_tiny_model(folder: str | Path) -> Path:
    """Write ``best.keras`` and ``koala.json`` (as koala/training.py's ``run_metadata``) into ``folder``."""
    import keras

    from koala.models import get_model, get_spec

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(0)
    model = get_model("cunet", base_filters=4)
    kernel, _ = model.get_layer("ab_conv").get_weights()
    model.get_layer("ab_conv").set_weights([kernel * 0.1, np.asarray(AB_BIAS, np.float32)])
    model.save(folder / "best.keras")
    spec = get_spec("cunet")
    meta = {"model": "cunet", "model_args": {"base_filters": 4}, "image_size": TINY_SIZE,
            "output": spec.output, "multiple": spec.multiple}
    (folder / "koala.json").write_text(json.dumps(meta, indent=2))
    return folder


def photo(size: tuple[int, int] = (48, 40), gray: bool = False) -> np.ndarray:
    """scikit-image's chelsea, shrunk to ``size`` (width, height): uint8 (H, W, 3) or (H, W)."""
    from skimage import data

    img = Image.fromarray(data.chelsea()).resize(size, Image.BICUBIC)
    return np.asarray(img.convert("L") if gray else img)


def encode(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))
