"""koala: grayscale photo colorization with Keras 3 (train, compare, export, serve)."""
from __future__ import annotations

import os
import sys
import tempfile

__version__ = "0.1.0"


def import_tensorflow(verbose: bool = False) -> None:
    """Import TensorFlow and Keras, keeping their start-up lines (absl, oneDNN, CUDA) off the screen
    unless ``verbose``: those are written to file descriptor 2 by C++ code, twice, before any
    logging setting applies, so only capturing the descriptor silences them. The capture is shown
    if the import fails. Nothing is done when TensorFlow is already imported."""
    if "tensorflow" in sys.modules or verbose:
        import keras  # noqa: F401
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import keras  # noqa: F401
            import tensorflow as tf

            tf.config.list_physical_devices("GPU")  # CUDA's own start-up lines, once
        except Exception:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def __getattr__(name: str):
    # Lazy, so `koala --help` and data tools do not pay TensorFlow's import time; quiet, as the CLI.
    if name == "Colorizer":
        import_tensorflow()
        from koala.inference import Colorizer

        return Colorizer
    raise AttributeError(name)


__all__ = ["Colorizer", "__version__", "import_tensorflow"]
