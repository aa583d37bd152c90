"""Shared fixtures: generated photos and tiny models, never ../shared."""
from __future__ import annotations

import os

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


def save_run(folder, model, image_size: int = 32, **extra) -> str:
    """Save ``model`` as a run folder (best checkpoint + metadata) that Colorizer.load accepts."""
    from koala.models import get_spec
    from koala.runs import Run

    run = Run(folder)
    run.path.mkdir(parents=True, exist_ok=True)
    model.save(run.best)
    meta = {"model": model.name, "model_args": {}, "image_size": image_size,
            "multiple": get_spec(model.name).multiple, **extra}
    run.write_metadata(meta)
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
