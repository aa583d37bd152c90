"""The one colorize path, shared by the CLI, the web app and the exported SavedModel.

The network sees L at its working scale (short side = the training size, sides padded to the
model's multiple); the predicted ab is resized back to the photo's size and joined with the
full-resolution L, so the output keeps every detail of the input.

Memory stays bounded for any size up to :data:`koala.images.MAX_PIXELS`: the photo is kept at its
own depth (1-3 bytes a pixel), and the full-resolution work (L, and L joined with the upsampled
ab into RGB) is done in stripes of ``STRIPE_PIXELS``, so no float32 copy of the whole photo is
ever made: the network's input is shrunk from L stripe by stripe (along the rows, then once
along the columns; the antialiased resize is separable).

A model with hint inputs (:mod:`koala.data.hints`) takes a person's colour hints: the hint table
(K, 6), in the photo's own pixels, is one more input of the traced graph, painted into the hint
channels at the working size; with no hints (K = 0) it colorizes automatically.
"""
from __future__ import annotations

import dataclasses
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from koala.color import l_ab_to_rgb, rgb_to_l
from koala.data.global_hints import GLOBAL_HINTS_INPUT_NAME
from koala.data.hints import (
    HINT_COLUMNS,
    HINTS_INPUT_NAME,
    NoHintInputsError,
    check_inside,
    parse_hints,
    rasterise_hints,
)
from koala.images import MAX_PIXELS, load_pixels
from koala.knobs import check_saturation, check_temperature
from koala.models import get_spec
from koala.models.layers import ab_of, with_policy
from koala.runs import model_metadata, resolve_model

MAX_WORKING_SIDE_FACTOR = 4  # panoramas: the long side is capped at this many working sizes
STRIPE_PIXELS = 1 << 19  # full-resolution pixels per step: ~50 MB of float32 temporaries at any size
CALL_PIXELS = 1 << 22  # photos of one size colorized in one graph call, up to this many pixels in all
Hints = list | np.ndarray | None  # a person's hints ({"x", "y", "color", "radius"} objects) or their table
Photo = np.ndarray | str | os.PathLike | bytes | Image.Image  # what Colorizer.colorize takes


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


def unit_rgb(pixels: tf.Tensor) -> tf.Tensor:
    """Pixels (..., C): uint8, uint16 or float in [0, 1]; gray, gray+alpha, RGB or RGBA -> float
    RGB in [0, 1], (..., 3), transparency composited on white (as :func:`koala.images.load_pixels`)."""
    image = tf.cast(pixels, tf.float32)
    if pixels.dtype.is_integer:
        image = image / float(pixels.dtype.max)
    channels = tf.shape(image)[-1]
    has_alpha = tf.equal(channels % 2, 0)  # gray+alpha or RGBA
    colour = image[..., : channels - tf.cast(has_alpha, tf.int32)]
    alpha = tf.cond(has_alpha, lambda: image[..., -1:], lambda: tf.ones_like(image[..., :1]))
    rgb = tf.broadcast_to(colour, tf.concat([tf.shape(image)[:-1], [3]], axis=0))
    return rgb * alpha + (1.0 - alpha)


def _by_stripes(fn: Callable[[tf.Tensor, tf.Tensor], tf.Tensor], height: tf.Tensor, rows: tf.Tensor,
                dtype: tf.DType, channels: int) -> tf.Tensor:
    """``fn(start, stop)`` (N, rows, W, channels) for consecutive row ranges, joined along the rows.
    One stripe at a time (``parallel_iterations=1``), so temporaries exist for one stripe only."""
    count = (height + rows - 1) // rows

    def body(i, stripes):
        start = i * rows
        stripe = fn(start, tf.minimum(start + rows, height))
        return i + 1, stripes.write(i, tf.transpose(stripe, [1, 0, 2, 3]))  # rows first, to concatenate

    stripes = tf.TensorArray(dtype, size=count, infer_shape=False, element_shape=[None, None, None, channels])
    _, stripes = tf.while_loop(lambda i, _: i < count, body, [tf.constant(0), stripes], parallel_iterations=1)
    return tf.transpose(stripes.concat(), [1, 0, 2, 3])  # no copy for one photo: only a size-1 axis moves


def _bilinear_rows(image: tf.Tensor, out_height: tf.Tensor, start: tf.Tensor, stop: tf.Tensor) -> tf.Tensor:
    """Rows [start, stop) of ``tf.image.resize(image, (out_height, width), "bilinear")`` for images
    (N, h, width, C) that already have their final width: TensorFlow's half-pixel bilinear
    interpolation along the rows, computed for one stripe instead of the whole picture."""
    in_height = tf.shape(image)[1]
    scale = tf.cast(in_height, tf.float32) / tf.cast(out_height, tf.float32)
    y = (tf.cast(tf.range(start, stop), tf.float32) + 0.5) * scale - 0.5
    y_floor = tf.floor(y)
    top = tf.gather(image, tf.maximum(tf.cast(y_floor, tf.int32), 0), axis=1)
    bottom = tf.gather(image, tf.minimum(tf.cast(tf.math.ceil(y), tf.int32), in_height - 1), axis=1)
    return top + (bottom - top) * (y - y_floor)[:, None, None]


def working_l(pixels: tf.Tensor, size: int, multiple: int) -> tf.Tensor:
    """Photos of one size (N, H, W, C; see :func:`unit_rgb`) -> their normalised L at the network's
    working shape (N, h, w, 1), shrunk stripe by stripe so that no full-size float L is made."""
    shape = tf.shape(pixels)
    count, height, width = shape[0], shape[1], shape[2]
    rows = tf.maximum(STRIPE_PIXELS // (count * width), 1)
    small_shape = working_shape(height, width, size, multiple)

    def narrow(start, stop):  # a stripe's L shrunk along its rows only (the resize is separable)
        l_stripe = rgb_to_l(unit_rgb(pixels[:, start:stop]))
        return tf.image.resize(l_stripe, tf.stack([stop - start, small_shape[1]]), antialias=True)

    l_narrow = _by_stripes(narrow, height, rows, tf.float32, 1)  # (N, H, working width, 1): no full-size L
    return tf.image.resize(l_narrow, small_shape, antialias=True)


def join_ab(pixels: tf.Tensor, ab_small: tf.Tensor, saturation: tf.Tensor | float = 1.0,
            out_dtype: tf.DType = tf.uint8) -> tf.Tensor:
    """Photos (N, H, W, C) and normalised ab at any smaller size (N, h, w, 2) -> RGB (N, H, W, 3):
    ab resized bilinearly to the photo's size, scaled by ``saturation`` and joined with the
    photo's own full-resolution L, in stripes of about ``STRIPE_PIXELS``; uint8 (rounded as
    :func:`koala.images.to_uint8`) or float32 in [0, 1]."""
    shape = tf.shape(pixels)
    count, height, width = shape[0], shape[1], shape[2]
    rows = tf.maximum(STRIPE_PIXELS // (count * width), 1)
    ab_wide = tf.image.resize(ab_small, tf.stack([tf.shape(ab_small)[1], width]), method="bilinear")

    def join(start, stop):
        rgb = l_ab_to_rgb(rgb_to_l(unit_rgb(pixels[:, start:stop])),
                          _bilinear_rows(ab_wide, height, start, stop) * saturation)
        if out_dtype == tf.uint8:
            return tf.cast(tf.clip_by_value(tf.round(rgb * 255.0), 0.0, 255.0), tf.uint8)
        return rgb

    return _by_stripes(join, height, rows, out_dtype, 3)


def colorize_pixels(
    network: Callable[..., tf.Tensor], pixels: tf.Tensor, size: int, multiple: int,
    saturation: tf.Tensor | float = 1.0, out_dtype: tf.DType = tf.uint8, hints: tf.Tensor | None = None,
) -> tf.Tensor:
    """Photos of one size (N, H, W, C; see :func:`unit_rgb`) -> colorized RGB (N, H, W, 3), as
    uint8 or float32 in [0, 1]: :func:`working_l`, the network, then :func:`join_ab`. ``hints``: one
    hint table per photo (N, K, 6; :func:`koala.data.hints.parse_hints`) for a network that takes
    them as ``network(l_small, hint_channels)`` (default None: ``network(l_small)``).

    The same colours as resizing ab to full size and joining it with L over the whole picture,
    computed in stripes. Pure TF ops, so :mod:`koala.export` traces this same function into the
    SavedModel.
    """
    l_small = working_l(pixels, size, multiple)
    if hints is None:
        ab_small = network(l_small)
    else:
        ab_small = network(l_small, rasterise_hints(hints, tf.shape(pixels)[1:3], tf.shape(l_small)[1:3]))
    return join_ab(pixels, tf.cast(ab_small, tf.float32), saturation, out_dtype)


def saturation_for(hint_count, saturation, hint_saturation) -> tf.Tensor:
    """The saturation for photos with ``hint_count`` hints each. A model's tuned saturation makes
    up for its caution when it guesses; a hinted colour is a person's own, and scaling it would
    give back a colour they did not pick (and cost 0.9-1.8 dB at 2-50 hints; koala/weights/HINTS.md),
    so photos with hints take ``hint_saturation`` (1: as given)."""
    return tf.where(hint_count > 0, tf.cast(hint_saturation, tf.float32), tf.cast(saturation, tf.float32))


def read_metadata(model_path: Path, network: keras.Model) -> dict:
    """The model's metadata (:func:`koala.runs.model_metadata`), else the registry's defaults for
    its architecture."""
    meta = model_metadata(model_path)
    if meta:
        return meta
    spec = get_spec(network.name)
    return {"model": network.name, "image_size": spec.default_size, "multiple": spec.multiple}


@dataclass
class Colorizer:
    """A loaded model plus what it needs to colorize a photo of any size.

    ``saturation`` and ``temperature`` are checked against :mod:`koala.knobs` whenever a
    Colorizer is made (``load``, ``dataclasses.replace``, a per-call setting), so every entry
    point refuses the same values; a temperature is refused for a model that predicts ab directly.

    Example::

        rgb = Colorizer.load("default").colorize("old_photo.jpg")   # uint8 (H, W, 3)
        vivid = Colorizer.load("default").colorize(PIL.Image.open("old_photo.jpg"), saturation=1.6)
    """

    network: keras.Model
    image_size: int
    multiple: int
    saturation: float = 1.0
    temperature: float | None = None
    metadata: dict | None = None
    hint_saturation: float = 1.0
    # Traced colorize functions, shared by copies made with dataclasses.replace (the web API
    # tunes saturation and temperature per request) so that each is traced once.
    _graphs: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.saturation = check_saturation(self.saturation)
        self.hint_saturation = check_saturation(self.hint_saturation, "hint_saturation")
        if self.temperature is not None:
            if not self.predicts_distribution:
                model = (self.metadata or {}).get("model", self.network.name)
                raise ValueError(f"temperature: {model} predicts ab directly and has no temperature "
                                 "(only models that predict a colour distribution, such as zhang16, take one)")
            self.temperature = check_temperature(self.temperature)

    @classmethod
    def load(
        cls, model: str | os.PathLike = "default", saturation: float | None = None, temperature: float | None = None
    ) -> "Colorizer":
        """Load 'default', a run folder or a .keras file; ``saturation`` scales the predicted
        ab (default: the model's calibrated value, else 1; with hints: its ``hint_saturation``,
        else 1, :func:`saturation_for`; given, it holds with and without hints); ``temperature`` is for models that
        predict a colour distribution (annealed mean; default: the model's tuned value, else the
        architecture's)."""
        path = resolve_model(model)
        network = with_policy(keras.saving.load_model(path, compile=False), "float32")
        meta = read_metadata(path, network)
        return cls(
            network=network,
            image_size=int(meta["image_size"]),
            multiple=int(meta.get("multiple", get_spec(meta["model"]).multiple)),
            saturation=float(meta.get("saturation", 1.0) if saturation is None else saturation),
            temperature=meta.get("temperature") if temperature is None else temperature,
            metadata=meta,
            hint_saturation=float(meta.get("hint_saturation", 1.0) if saturation is None else saturation),
        )

    @property
    def predicts_distribution(self) -> bool:
        """Whether the network predicts a colour distribution that ``temperature`` decodes."""
        return bool(self.metadata) and get_spec(self.metadata["model"]).decode is not None

    @property
    def takes_hints(self) -> bool:
        """Whether the network has hint inputs (:mod:`koala.data.hints`) beside L. A network built
        by subclassing rather than as a graph of layers (ResUNet34) has no symbolic inputs until
        called, and takes L alone."""
        try:
            inputs = self.network.input
        except AttributeError:
            return False
        return isinstance(inputs, dict) and HINTS_INPUT_NAME in inputs

    @property
    def takes_global_hints(self) -> bool:
        """Whether the network has a global-hint input (:mod:`koala.data.global_hints`: a
        reference photo's or a palette's colours)."""
        try:
            inputs = self.network.input
        except AttributeError:
            return False
        return isinstance(inputs, dict) and GLOBAL_HINTS_INPUT_NAME in inputs

    def network_fn(self) -> Callable[..., tf.Tensor]:
        """L at working size -> normalised ab, through the model's inference hooks; a model with
        hint inputs also takes hint channels as a second argument, and one with a global-hint
        input a global hint (N, 310) as a third (default: none)."""
        spec = get_spec(self.metadata["model"]) if self.metadata else None
        call = (spec.inference_network(self.network, self.metadata) if spec and spec.inference_network
                else lambda l_small: ab_of(self.network(l_small, training=False)))
        if spec and spec.decode:
            return lambda *args: spec.decode(call(*args), self.temperature)
        return call

    def hint_table(self, hints: Hints, size: tuple[int, int]) -> np.ndarray:
        """``hints`` (a list of hint objects, or a table from :func:`koala.data.hints.parse_hints`)
        checked against a photo of ``size`` (width, height) and against the model -> (K, 6)."""
        if hints is None:
            return np.zeros((0, len(HINT_COLUMNS)), np.float32)
        if isinstance(hints, np.ndarray):
            table = hints.astype(np.float32).reshape(-1, len(HINT_COLUMNS))
            check_inside(table, size)
        else:
            table = parse_hints(hints, size)
        if len(table) and not self.takes_hints:
            raise NoHintInputsError((self.metadata or {}).get("model", self.network.name))
        return table

    def graph(self, dtype: tf.DType = tf.float32, out_dtype: tf.DType = tf.float32
              ) -> Callable[..., tf.Tensor]:
        """:func:`colorize_pixels` as one graph for photos of any one size (N, H, W, C), with
        saturation as an input (and, for a model with hint inputs, the hint tables, N x K x 6, as a
        third: traced once for any number of hints), for pixels of ``dtype`` (default: float RGB in and out; ``out_dtype``
        tf.string: each photo's PNG bytes, shape (N,), encoded in the graph as the SavedModel does): run
        eagerly, op by op, it is about 4x slower on small photos."""
        key = (id(self.network), self.temperature, self.image_size, self.multiple, dtype, out_dtype)
        if key not in self._graphs:
            network, size, multiple = self.network_fn(), self.image_size, self.multiple
            signature = [tf.TensorSpec([None, None, None, None], dtype), tf.TensorSpec([], tf.float32)]

            def run(pixels: tf.Tensor, saturation: tf.Tensor, hints: tf.Tensor | None = None) -> tf.Tensor:
                if out_dtype == tf.string:  # each photo's PNG, encoded from uint8 as the SavedModel does
                    rgb = colorize_pixels(network, pixels, size, multiple, saturation, hints=hints)
                    return tf.map_fn(tf.io.encode_png, rgb, fn_output_signature=tf.string)
                return colorize_pixels(network, pixels, size, multiple, saturation, out_dtype, hints)

            if self.takes_hints:  # one graph for any number of hints, none included
                signature.append(tf.TensorSpec([None, None, len(HINT_COLUMNS)], tf.float32))
            self._graphs[key] = tf.function(run, input_signature=signature)
        return self._graphs[key]

    def working_graph(self, dtype: tf.DType = tf.uint8) -> Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]]:
        """Photos of one size (N, H, W, C) of ``dtype`` -> (L, ab), both normalised, at the
        working size: the network's input and its output, the first half of :meth:`graph`, for
        callers that treat ab before :meth:`join_graph` (films smooth it over time)."""
        key = ("working", id(self.network), self.temperature, self.image_size, self.multiple, dtype)
        if key not in self._graphs:
            network, size, multiple = self.network_fn(), self.image_size, self.multiple

            def run(pixels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
                l_small = working_l(pixels, size, multiple)
                return l_small, tf.cast(network(l_small), tf.float32)

            self._graphs[key] = tf.function(run, input_signature=[tf.TensorSpec([None, None, None, None], dtype)])
        return self._graphs[key]

    def join_graph(self, dtype: tf.DType = tf.uint8, out_dtype: tf.DType = tf.uint8
                   ) -> Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tf.Tensor]:
        """:func:`join_ab` as one graph: (photos (N, H, W, C) of ``dtype``, normalised ab at the
        working size, saturation) -> RGB of ``out_dtype``, the second half of :meth:`graph`."""
        key = ("join", dtype, out_dtype)
        if key not in self._graphs:
            self._graphs[key] = tf.function(
                lambda pixels, ab_small, saturation: join_ab(pixels, ab_small, saturation, out_dtype),
                input_signature=[tf.TensorSpec([None, None, None, None], dtype),
                                 tf.TensorSpec([None, None, None, 2], tf.float32), tf.TensorSpec([], tf.float32)],
            )
        return self._graphs[key]

    def tuned(self, saturation: float | None = None, temperature: float | None = None) -> "Colorizer":
        """This colorizer with other knob settings (None keeps its own; a saturation holds with
        and without hints), sharing its traced graphs."""
        changes = {k: v for k, v in (("saturation", saturation), ("hint_saturation", saturation),
                                     ("temperature", temperature)) if v is not None}
        return dataclasses.replace(self, **changes) if changes else self

    def _run(self, photos: Sequence[np.ndarray], out_dtype: tf.DType, hints: Sequence[Hints]) -> tf.Tensor:
        """Photos of one size and depth (:func:`as_pixels`), each with its hints (as many each),
        through :meth:`graph` in one call."""
        height, width = photos[0].shape[:2]
        tables = [self.hint_table(h, (width, height)) for h in hints]
        pixels = photos[0][None] if len(photos) == 1 else np.stack(photos)  # one photo: a view, no copy
        pixels = pixels if pixels.ndim == 4 else pixels[..., None]
        graph = self.graph(tf.as_dtype(pixels.dtype), out_dtype)
        extra = [tf.constant(np.stack(tables))] if self.takes_hints else []
        saturation = saturation_for(len(tables[0]), self.saturation, self.hint_saturation)
        return graph(tf.convert_to_tensor(pixels), saturation, *extra)

    def colorize_float(self, rgb: np.ndarray, hints: Hints = None) -> np.ndarray:
        """Float RGB (H, W, 3) in [0, 1] -> colorized float RGB, same size (``hints`` as :meth:`colorize`)."""
        return self._run([np.asarray(rgb, np.float32)], tf.float32, [hints])[0].numpy()

    def colorize(self, image: Photo, saturation: float | None = None, temperature: float | None = None,
                 hints: Hints = None) -> np.ndarray:
        """A photo (path, encoded bytes, PIL image, or uint8/uint16/float array, gray or RGB) -> uint8
        RGB. ``saturation``/``temperature``: for this call only (default: the colorizer's own).

        ``hints`` (models with hint inputs): a list of ``{"x": px, "y": px, "color": "#rrggbb",
        "radius": px}`` in the photo's pixels (radius optional), or their table from
        :func:`koala.data.hints.parse_hints`; a bad hint raises :class:`koala.data.hints.HintError`.
        """
        return self.tuned(saturation, temperature)._run([as_pixels(image)], tf.uint8, [hints])[0].numpy()

    def colorize_png(self, image: Photo, saturation: float | None = None, temperature: float | None = None,
                     hints: Hints = None) -> bytes:
        """:meth:`colorize` as PNG bytes, encoded in the graph: PIL would first copy a big scan
        to 4 bytes a pixel, and TensorFlow's encoder is also faster (24 MP: 3.9 s against 6.6 s).
        The path of ``koala colorize``; ``koala batch colorize`` takes it through :meth:`colorize_pngs`."""
        return self.tuned(saturation, temperature).colorize_pngs([as_pixels(image)], [hints])[0]

    def colorize_pngs(self, photos: Sequence[np.ndarray], hints: Sequence[Hints] | None = None) -> list[bytes]:
        """Decoded photos (:func:`as_pixels`; any sizes) and their hints (default none) -> their
        colorized PNGs, in order. Photos that share a size, depth and number of hints go through the
        graph together, up to ``CALL_PIXELS`` pixels a call (a big scan goes alone), so memory stays
        that of one photo's path however many are given."""
        hints = [None] * len(photos) if hints is None else list(hints)
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, (photo, photo_hints) in enumerate(zip(photos, hints, strict=True)):
            groups[(photo.shape, photo.dtype.str, 0 if photo_hints is None else len(photo_hints))].append(i)
        pngs: list[bytes] = [b""] * len(photos)
        for rows in groups.values():
            height, width = photos[rows[0]].shape[:2]
            per_call = max(1, CALL_PIXELS // (height * width))
            for start in range(0, len(rows), per_call):
                chunk = rows[start : start + per_call]
                encoded = self._run([photos[i] for i in chunk], tf.string, [hints[i] for i in chunk]).numpy()
                for i, png in zip(chunk, encoded):
                    pngs[i] = png
        return pngs


def as_pixels(image: Photo) -> np.ndarray:
    """Any accepted input as pixels for :func:`colorize_pixels`: files, bytes and PIL images through
    :func:`koala.images.load_pixels`; arrays (H, W) or (H, W, 1|3|4) of uint8, uint16 or float in
    [0, 1] keep their depth (a fourth channel is dropped). At most ``MAX_PIXELS`` pixels."""
    if not isinstance(image, np.ndarray):
        return load_pixels(image)
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (1, 3, 4)):
        raise ValueError(f"expected an image array (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got {image.shape}")
    if image.shape[0] * image.shape[1] > MAX_PIXELS:
        raise ValueError(f"too many pixels ({image.shape[1]}x{image.shape[0]}; limit {MAX_PIXELS:,})")
    if np.issubdtype(image.dtype, np.integer) and image.dtype not in (np.uint8, np.uint16):
        image = image.astype(np.float32) / float(np.iinfo(image.dtype).max)
    elif image.dtype not in (np.uint8, np.uint16):
        image = image.astype(np.float32)
    return image[..., :3] if image.ndim == 3 and image.shape[-1] == 4 else image
