"""koala: grayscale photo colorization with Keras 3 (train, compare, export, serve)."""
from __future__ import annotations

__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy, so `koala --help` and data tools do not pay TensorFlow's import time.
    if name == "Colorizer":
        from koala.inference import Colorizer

        return Colorizer
    raise AttributeError(name)


__all__ = ["Colorizer", "__version__"]
