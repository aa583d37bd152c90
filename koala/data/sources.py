"""Where training and evaluation photos come from when a config names no folder."""
from __future__ import annotations

import os
from pathlib import Path

from koala.data.samples import write_sample_photos


def data_source(path: str | list[str]) -> str | list[str]:
    """A configured data path (or list of them), or scikit-image's colour photos (written once under
    ``$KOALA_CACHE``, default ``~/.cache/koala``) when none is given: the smoke preset trains
    without a dataset."""
    if path:
        return path
    cache = Path(os.environ.get("KOALA_CACHE", "~/.cache/koala")).expanduser()
    return write_sample_photos(cache / "skimage-photos")
