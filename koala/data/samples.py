"""Colour photos that ship with scikit-image: training data for smoke runs and tests, no download."""
from __future__ import annotations

from pathlib import Path

from PIL import Image

COLOUR_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry")


def write_sample_photos(folder: str | Path) -> str:
    """Write scikit-image's colour photos as PNGs into ``folder`` (once) and return it."""
    from skimage import data

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in COLOUR_PHOTOS:
        path = folder / f"{name}.png"
        if not path.exists():
            Image.fromarray(getattr(data, name)()[..., :3]).save(path)
    return str(folder)
