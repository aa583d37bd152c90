"""The one colorize path, shared by the CLI, the web app and the exported SavedModel.

The network sees L at its working scale (short side = the training size, sides padded to the
model's multiple); the predicted ab is resized back to the photo's size and joined with the
full-resolution L, so the output keeps every detail of the input.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from koala.color import TEMPERATURE, colorize_lab, rgb_to_l
from koala.images import load_rgb, to_uint8
from koala.models import get_spec

WEIGHTS_DIR = Path(__file__).parent / "weights"
MAX_WORKING_SIDE_FACTOR = 4  # panoramas: the long side is capped at this many working sizes


def working_shape(height: tf.Tensor, width: tf.Tensor, size: int, multiple: int) -> tf.Tensor:
    """Shape the network runs at: short side ``size``, long side capped, aspect kept."""
    h, w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    scale = size / tf.minimum(h, w)
    cap = float(size * MAX_WORKING_SIDE_FACTOR)
    new = tf.minimum(tf.stack([h, w]) * scale, cap)
    return tf.maximum(tf.cast(tf.round(new / multiple), tf.int32), 1) * multiple


def predict_ab(
    network: Callable[[tf.Tensor], tf.Tensor], l_full: tf.Tensor, size: int, multiple: int
) -> tf.Tensor:
    """Normalised ab at full resolution for a batch of normalised L, shape (N, H, W, 1).

    Pure TF ops, so :mod:`koala.export` traces this same function into the SavedModel.
    """
    shape = tf.shape(l_full)
    small = tf.image.resize(l_full, working_shape(shape[1], shape[2], size, multiple), antialias=True)
    ab_small = tf.cast(network(small), tf.float32)
    return tf.image.resize(ab_small, shape[1:3], method="bilinear")


def colorize_tensor(
    network: Callable[[tf.Tensor], tf.Tensor], rgb: tf.Tensor, size: int, multiple: int, saturation: float = 1.0
) -> tf.Tensor:
    """RGB in [0, 1] (N, H, W, 3; colour or gray) -> colorized RGB in [0, 1], same size."""
    l_full = rgb_to_l(rgb)
    ab = predict_ab(network, l_full, size, multiple) * saturation
    return colorize_lab(l_full, ab)


def resolve_model_path(model: str | os.PathLike) -> Path:
    """``default`` -> the bundled weights; a run folder -> its best.keras; else the file itself."""
    if str(model) == "default":
        return WEIGHTS_DIR / "default.keras"
    path = Path(model)
    if path.is_dir():
        path = path / "best.keras"
    if not path.is_file():
        raise FileNotFoundError(f"{model}: no such model (give 'default', a run folder or a .keras file)")
    return path


def read_metadata(model_path: Path, network: keras.Model) -> dict:
    """The model's koala.json (run folder) or <stem>.json (bundled), else registry defaults."""
    for candidate in (model_path.parent / "koala.json", model_path.with_suffix(".json")):
        if candidate.is_file():
            return json.loads(candidate.read_text())
    spec = get_spec(network.name)
    return {"model": network.name, "image_size": spec.default_size, "output": spec.output, "multiple": spec.multiple}


@dataclass
class Colorizer:
    """A loaded model plus what it needs to colorize a photo of any size.

    Example::

        rgb = Colorizer.load("default").colorize("old_photo.jpg")   # uint8 (H, W, 3)
    """

    network: keras.Model
    image_size: int
    multiple: int
    saturation: float = 1.0
    temperature: float | None = None
    metadata: dict | None = None
    # Traced colorize functions, shared by copies made with dataclasses.replace (the web API
    # tunes saturation and temperature per request) so that each is traced once.
    _graphs: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def load(
        cls, model: str | os.PathLike = "default", saturation: float | None = None, temperature: float | None = None
    ) -> "Colorizer":
        """Load 'default', a run folder or a .keras file; ``saturation`` scales the predicted
        ab (default: the model's calibrated value, else 1); ``temperature`` is for models that
        predict a colour distribution (annealed mean; default: the model's tuned value, else the
        architecture's)."""
        path = resolve_model_path(model)
        network = keras.saving.load_model(path, compile=False)
        meta = read_metadata(path, network)
        return cls(
            network=network,
            image_size=int(meta["image_size"]),
            multiple=int(meta.get("multiple", get_spec(meta["model"]).multiple)),
            saturation=float(meta.get("saturation", 1.0) if saturation is None else saturation),
            temperature=meta.get("temperature") if temperature is None else temperature,
            metadata=meta,
        )

    @property
    def predicts_distribution(self) -> bool:
        """Whether the network predicts a colour distribution that ``temperature`` decodes."""
        return bool(self.metadata) and get_spec(self.metadata["model"]).decode is not None

    @property
    def default_temperature(self) -> float:
        """The temperature used when none is set: the paper's annealed-mean value."""
        return TEMPERATURE

    def network_fn(self) -> Callable[[tf.Tensor], tf.Tensor]:
        """L at working size -> normalised ab, through the model's inference hooks."""
        spec = get_spec(self.metadata["model"]) if self.metadata else None
        call = (spec.inference_network(self.network, self.metadata) if spec and spec.inference_network
                else lambda l_small: self.network(l_small, training=False))
        if spec and spec.decode:
            return lambda l_small: spec.decode(call(l_small), self.temperature)
        return call

    def graph(self) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
        """:func:`colorize_tensor` as one graph for any image size (saturation is an input):
        run eagerly, op by op, it is about 4x slower on small photos."""
        key = (id(self.network), self.temperature, self.image_size, self.multiple)
        if key not in self._graphs:
            network, size, multiple = self.network_fn(), self.image_size, self.multiple
            self._graphs[key] = tf.function(
                lambda rgb, saturation: colorize_tensor(network, rgb, size, multiple, saturation),
                input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32), tf.TensorSpec([], tf.float32)],
            )
        return self._graphs[key]

    def colorize_float(self, rgb: np.ndarray) -> np.ndarray:
        """Float RGB (H, W, 3) in [0, 1] -> colorized float RGB, same size."""
        out = self.graph()(tf.convert_to_tensor(rgb[None], tf.float32), tf.constant(self.saturation, tf.float32))
        return out[0].numpy()

    def colorize(self, image: np.ndarray | str | os.PathLike | bytes) -> np.ndarray:
        """A photo (path, encoded bytes, or uint8/float array, gray or RGB) -> uint8 RGB."""
        return to_uint8(self.colorize_float(as_float_rgb(image)))


def as_float_rgb(image: np.ndarray | str | os.PathLike | bytes) -> np.ndarray:
    """Any accepted input as float32 RGB in [0, 1]: arrays may be gray (H, W) or (H, W, 1|3|4)."""
    if not isinstance(image, np.ndarray):
        return load_rgb(image)
    array = image.astype(np.float32)
    if np.issubdtype(image.dtype, np.integer):
        array /= float(np.iinfo(image.dtype).max)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3, 4):
        raise ValueError(f"expected an image array (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got {image.shape}")
    return np.repeat(array, 3, axis=-1) if array.shape[-1] == 1 else array[..., :3]
