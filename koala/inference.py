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
channels at the working size; with no hints (K = 0) it colorizes automatically. Each hint's ab is
divided by the saturation on the way in, and the output is scaled by it: the model's tuned
saturation then applies to the automatic colours everywhere, while a hinted colour still comes
out as given (:func:`side_inputs`).

A model with a global-hint input (:mod:`koala.data.global_hints`) takes a reference photo's or a
palette's colours as one vector per photo, (N, 310); without one it gets zeros ("not given").
A model with a colour distribution head also suggests colours at a point (:meth:`Colorizer.suggest`).
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

from koala.color import ab_bins, l_ab_to_rgb, lab_to_rgb, rgb_to_l, rgb_to_lab
from koala.data.global_hints import (
    GLOBAL_HINT_SIZE,
    GLOBAL_HINTS_INPUT_NAME,
    GlobalHintError,
    NoGlobalHintInputsError,
    palette_hint,
    reference_hint,
)
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
from koala.models.cunet import network_inputs
from koala.models.layers import ab_of, with_policy
from koala.runs import model_metadata, resolve_model

MAX_WORKING_SIDE_FACTOR = 4  # panoramas: the long side is capped at this many working sizes
STRIPE_PIXELS = 1 << 19  # full-resolution pixels per step: ~50 MB of float32 temporaries at any size
CALL_PIXELS = 1 << 22  # photos of one size colorized in one graph call, up to this many pixels in all
Hints = list | np.ndarray | None  # a person's hints ({"x", "y", "color", "radius"} objects) or their table
Photo = np.ndarray | str | os.PathLike | bytes | Image.Image  # what Colorizer.colorize takes
Palette = str | Sequence | None  # "#c02020:2,#2050a0", or a list of "#rrggbb" or (colour, weight)
DISTRIBUTION_OUTPUT = "bins"  # the colour distribution head's output (koala.models.cunet)
SUGGEST_K = 8  # suggested colours at a point, by default
MERGE_RADIUS = 15.0  # a*b* units: bins this close to a likelier one (its 8 neighbours) merge into it


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


def side_inputs(l_small: tf.Tensor, photo_shape: tf.Tensor, saturation: tf.Tensor | float = 1.0,
                hints: tf.Tensor | None = None, global_hints: tf.Tensor | None = None) -> dict[str, tf.Tensor]:
    """The network's inputs beside L at the working size, as keyword arguments of
    :meth:`Colorizer.network_fn`: ``hints`` (hint tables N x K x 6 in the photo's pixels) painted
    into hint channels with each hint's ab divided by ``saturation``, and ``global_hints`` (N, 310)
    as they are; None leaves an input out.

    Why divide: a model's tuned saturation makes up for its caution where it guesses, and the
    output is scaled by it everywhere; a hint asking for ab / saturation comes out, scaled, as the
    colour a person picked. Scaling the whole photo down to 1 instead (koala before issue 28) dulled
    everything else the moment one hint was placed."""
    extra = {}
    if hints is not None:
        channels = rasterise_hints(hints, photo_shape, tf.shape(l_small)[1:3])
        scale = tf.cast(saturation, tf.float32)
        extra["hints"] = tf.concat([tf.math.divide_no_nan(channels[..., :2], scale), channels[..., 2:]], axis=-1)
    if global_hints is not None:
        extra["global_hints"] = tf.convert_to_tensor(global_hints, tf.float32)
    return extra


def colorize_pixels(
    network: Callable[..., tf.Tensor], pixels: tf.Tensor, size: int, multiple: int,
    saturation: tf.Tensor | float = 1.0, out_dtype: tf.DType = tf.uint8, hints: tf.Tensor | None = None,
    global_hints: tf.Tensor | None = None,
) -> tf.Tensor:
    """Photos of one size (N, H, W, C; see :func:`unit_rgb`) -> colorized RGB (N, H, W, 3), as
    uint8 or float32 in [0, 1]: :func:`working_l`, the network, then :func:`join_ab`. ``hints``: one
    hint table per photo (N, K, 6; :func:`koala.data.hints.parse_hints`), ``global_hints``: one
    global hint per photo (N, 310), for a network that takes them (:func:`side_inputs`; default
    None: ``network(l_small)``).

    The same colours as resizing ab to full size and joining it with L over the whole picture,
    computed in stripes. Pure TF ops, so :mod:`koala.export` traces this same function into the
    SavedModel.
    """
    l_small = working_l(pixels, size, multiple)
    ab_small = network(l_small, **side_inputs(l_small, tf.shape(pixels)[1:3], saturation, hints, global_hints))
    return join_ab(pixels, tf.cast(ab_small, tf.float32), saturation, out_dtype)


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
        like = colorizer.colorize("old_photo.jpg", reference="summer.jpg")    # models with global hints
        picks = colorizer.suggest("old_photo.jpg", x=120, y=80)   # models with a distribution head
    """

    network: keras.Model
    image_size: int
    multiple: int
    saturation: float = 1.0
    temperature: float | None = None
    metadata: dict | None = None
    source: str | None = None  # what it was loaded from ('default', a run folder, a file), for messages
    # Traced colorize functions, shared by copies made with dataclasses.replace (the web API
    # tunes saturation and temperature per request) so that each is traced once.
    _graphs: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.saturation = check_saturation(self.saturation)
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
        ab (default: the model's calibrated value, else 1; hinted colours come out as given at any
        saturation, :func:`side_inputs`); ``temperature`` is for models that predict a colour
        distribution (annealed mean; default: the model's tuned value, else the architecture's)."""
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
            source=str(model),
        )

    @property
    def name(self) -> str:
        """The model as messages name it: its architecture and what it was loaded from."""
        model = (self.metadata or {}).get("model", self.network.name)
        return f"{model}, {self.source}" if self.source else model

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

    @property
    def suggests(self) -> bool:
        """Whether the network has a colour distribution head (an output named "bins" over
        :func:`koala.color.ab_bins`), which :meth:`suggest` reads."""
        outputs = self.network.output if hasattr(self.network, "output") else None
        return isinstance(outputs, dict) and DISTRIBUTION_OUTPUT in outputs

    def network_fn(self) -> Callable[..., tf.Tensor]:
        """L at working size -> normalised ab, through the model's inference hooks; a model with
        hint inputs also takes the keyword ``hints`` (hint channels), and one with a global-hint
        input ``global_hints`` (N, 310) (default: none)."""
        spec = get_spec(self.metadata["model"]) if self.metadata else None
        call = (spec.inference_network(self.network, self.metadata) if spec and spec.inference_network
                else lambda l_small: ab_of(self.network(l_small, training=False)))
        if spec and spec.decode:
            return lambda *args, **kwargs: spec.decode(call(*args, **kwargs), self.temperature)
        return call

    def global_hint(self, reference: Photo | None = None, palette: Palette = None,
                    reference_name: str | None = None) -> np.ndarray | None:
        """The global hint (310,) of a ``reference`` photo (a path, bytes, a PIL image or an array of
        a colour photo; errors name it ``reference_name``, default its path) or a ``palette``
        (:func:`koala.data.global_hints.parse_palette`), checked; None without either. Raises :class:`koala.data.global_hints.GlobalHintError` for both at
        once, a bad reference or palette, or a model without a global-hint input."""
        if reference is None and palette is None:
            return None
        if reference is not None and palette is not None:
            raise GlobalHintError("reference/palette: give a reference or a palette, not both")
        if not self.takes_global_hints:
            raise NoGlobalHintInputsError(self.name)
        return reference_hint(reference, reference_name) if reference is not None else palette_hint(palette)

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
        saturation as an input, then, for a model with hint inputs, the hint tables (N x K x 6:
        traced once for any number of hints) and, for one with a global-hint input, the global
        hints (N x 310), for pixels of ``dtype`` (default: float RGB in and out; ``out_dtype``
        tf.string: each photo's PNG bytes, shape (N,), encoded in the graph as the SavedModel does): run
        eagerly, op by op, it is about 4x slower on small photos."""
        key = (id(self.network), self.temperature, self.image_size, self.multiple, dtype, out_dtype)
        if key not in self._graphs:
            network, size, multiple = self.network_fn(), self.image_size, self.multiple
            signature = [tf.TensorSpec([None, None, None, None], dtype), tf.TensorSpec([], tf.float32)]
            names = []  # the side inputs, in the order the graph takes them
            if self.takes_hints:  # one graph for any number of hints, none included
                signature.append(tf.TensorSpec([None, None, len(HINT_COLUMNS)], tf.float32))
                names.append("hints")
            if self.takes_global_hints:
                signature.append(tf.TensorSpec([None, GLOBAL_HINT_SIZE], tf.float32))
                names.append("global_hints")

            def run(pixels: tf.Tensor, saturation: tf.Tensor, *side: tf.Tensor) -> tf.Tensor:
                extra = dict(zip(names, side))
                if out_dtype == tf.string:  # each photo's PNG, encoded from uint8 as the SavedModel does
                    rgb = colorize_pixels(network, pixels, size, multiple, saturation, **extra)
                    return tf.map_fn(tf.io.encode_png, rgb, fn_output_signature=tf.string)
                return colorize_pixels(network, pixels, size, multiple, saturation, out_dtype, **extra)

            self._graphs[key] = tf.function(run, input_signature=signature)
        return self._graphs[key]

    def working_graph(self, dtype: tf.DType = tf.uint8) -> Callable[..., tuple[tf.Tensor, tf.Tensor]]:
        """Photos of one size (N, H, W, C) of ``dtype`` (and, for a model with a global-hint input,
        optionally their global hints, N x 310: :meth:`global_hint`) -> (L, ab), both normalised, at
        the working size: the network's input and its output, the first half of :meth:`graph`, for
        callers that treat ab before :meth:`join_graph` (films smooth it over time)."""
        key = ("working", id(self.network), self.temperature, self.image_size, self.multiple, dtype)
        if key not in self._graphs:
            network, size, multiple = self.network_fn(), self.image_size, self.multiple
            signature = [tf.TensorSpec([None, None, None, None], dtype)]
            if self.takes_global_hints:
                signature.append(tf.TensorSpec([None, GLOBAL_HINT_SIZE], tf.float32))

            def run(pixels: tf.Tensor, *global_hints: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
                l_small = working_l(pixels, size, multiple)
                extra = {"global_hints": global_hints[0]} if global_hints else {}
                return l_small, tf.cast(network(l_small, **extra), tf.float32)

            self._graphs[key] = tf.function(run, input_signature=signature)
        graph = self._graphs[key]
        if not self.takes_global_hints:
            return graph
        return lambda pixels, global_hints=None: graph(pixels, self._global_batch(global_hints, len(pixels)))

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
        """This colorizer with other knob settings (None keeps its own), sharing its traced graphs."""
        changes = {k: v for k, v in (("saturation", saturation), ("temperature", temperature)) if v is not None}
        return dataclasses.replace(self, **changes) if changes else self

    def _global_batch(self, global_hints, count: int) -> tf.Tensor:
        """Global hints for ``count`` photos: one vector (310,) for all, one per photo (N, 310), or
        None: zeros, "not given"."""
        if global_hints is None:
            return tf.zeros([count, GLOBAL_HINT_SIZE])
        vectors = np.asarray(global_hints, np.float32).reshape(-1, GLOBAL_HINT_SIZE)
        return tf.constant(np.broadcast_to(vectors, (count, GLOBAL_HINT_SIZE)) if len(vectors) == 1 else vectors)

    def _run(self, photos: Sequence[np.ndarray], out_dtype: tf.DType, hints: Sequence[Hints],
             global_hints: Sequence[np.ndarray | None] | None = None) -> tf.Tensor:
        """Photos of one size and depth (:func:`as_pixels`), each with its hints (as many each)
        and its global hint (:meth:`global_hint`, or None), through :meth:`graph` in one call."""
        height, width = photos[0].shape[:2]
        tables = [self.hint_table(h, (width, height)) for h in hints]
        pixels = photos[0][None] if len(photos) == 1 else np.stack(photos)  # one photo: a view, no copy
        pixels = pixels if pixels.ndim == 4 else pixels[..., None]
        graph = self.graph(tf.as_dtype(pixels.dtype), out_dtype)
        extra = [tf.constant(np.stack(tables))] if self.takes_hints else []
        global_hints = [None] * len(photos) if global_hints is None else list(global_hints)
        if any(g is not None for g in global_hints) and not self.takes_global_hints:
            raise NoGlobalHintInputsError(self.name)
        if self.takes_global_hints:
            zeros = np.zeros(GLOBAL_HINT_SIZE, np.float32)
            extra.append(tf.constant(np.stack([zeros if g is None else g for g in global_hints])))
        return graph(tf.convert_to_tensor(pixels), tf.constant(self.saturation, tf.float32), *extra)

    def colorize_float(self, rgb: np.ndarray, hints: Hints = None, reference: Photo | None = None,
                       palette: Palette = None) -> np.ndarray:
        """Float RGB (H, W, 3) in [0, 1] -> colorized float RGB, same size (``hints``, ``reference``
        and ``palette`` as :meth:`colorize`)."""
        return self._run([np.asarray(rgb, np.float32)], tf.float32, [hints],
                         [self.global_hint(reference, palette)])[0].numpy()

    def colorize(self, image: Photo, saturation: float | None = None, temperature: float | None = None,
                 hints: Hints = None, reference: Photo | None = None, palette: Palette = None) -> np.ndarray:
        """A photo (path, encoded bytes, PIL image, or uint8/uint16/float array, gray or RGB) -> uint8
        RGB. ``saturation``/``temperature``: for this call only (default: the colorizer's own).

        ``hints`` (models with hint inputs): a list of ``{"x": px, "y": px, "color": "#rrggbb",
        "radius": px}`` in the photo's pixels (radius optional), or their table from
        :func:`koala.data.hints.parse_hints`; a bad hint raises :class:`koala.data.hints.HintError`.

        ``reference`` or ``palette`` (models with a global-hint input): colour it like this colour
        photo (a path, bytes, a PIL image or an array), or with these colours ("#c02020,#2050a0",
        weights after a colon, or a list); :meth:`global_hint` says what it refuses.
        """
        tuned = self.tuned(saturation, temperature)
        return tuned._run([as_pixels(image)], tf.uint8, [hints], [self.global_hint(reference, palette)])[0].numpy()

    def colorize_png(self, image: Photo, saturation: float | None = None, temperature: float | None = None,
                     hints: Hints = None, reference: Photo | None = None, palette: Palette = None) -> bytes:
        """:meth:`colorize` as PNG bytes, encoded in the graph: PIL would first copy a big scan
        to 4 bytes a pixel, and TensorFlow's encoder is also faster (24 MP: 3.9 s against 6.6 s).
        The path of ``koala colorize``; ``koala batch colorize`` takes it through :meth:`colorize_pngs`."""
        return self.tuned(saturation, temperature).colorize_pngs(
            [as_pixels(image)], [hints], [self.global_hint(reference, palette)])[0]

    def colorize_pngs(self, photos: Sequence[np.ndarray], hints: Sequence[Hints] | None = None,
                      global_hints: Sequence[np.ndarray | None] | None = None) -> list[bytes]:
        """Decoded photos (:func:`as_pixels`; any sizes), their hints and their global hints
        (:meth:`global_hint`; default none) -> their colorized PNGs, in order. Photos that share a
        size, depth and number of hints go through the graph together, up to ``CALL_PIXELS``
        pixels a call (a big scan goes alone), so memory stays that of one photo's path however
        many are given."""
        hints = [None] * len(photos) if hints is None else list(hints)
        global_hints = [None] * len(photos) if global_hints is None else list(global_hints)
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, (photo, photo_hints) in enumerate(zip(photos, hints, strict=True)):
            groups[(photo.shape, photo.dtype.str, 0 if photo_hints is None else len(photo_hints))].append(i)
        pngs: list[bytes] = [b""] * len(photos)
        for rows in groups.values():
            height, width = photos[rows[0]].shape[:2]
            per_call = max(1, CALL_PIXELS // (height * width))
            for start in range(0, len(rows), per_call):
                chunk = rows[start : start + per_call]
                encoded = self._run([photos[i] for i in chunk], tf.string, [hints[i] for i in chunk],
                                    [global_hints[i] for i in chunk]).numpy()
                for i, png in zip(chunk, encoded):
                    pngs[i] = png
        return pngs

    def distribution_graph(self) -> Callable[..., tf.Tensor]:
        """One photo (1, H, W, C) of float RGB, its hint table (1, K, 6) and its global hint (1, 310)
        -> the colour distribution head's probabilities (h, w, 309) at its own scale of the working
        size, traced once. The hints go in as given: the distribution is of true colours and is
        not scaled by the saturation afterwards."""
        key = ("distribution", id(self.network), self.image_size, self.multiple)
        if key not in self._graphs:
            size, multiple, network = self.image_size, self.multiple, self.network

            def run(pixels: tf.Tensor, hints: tf.Tensor, global_hints: tf.Tensor) -> tf.Tensor:
                l_small = working_l(pixels, size, multiple)
                extra = side_inputs(l_small, tf.shape(pixels)[1:3], 1.0, hints if self.takes_hints else None,
                                    global_hints if self.takes_global_hints else None)
                logits = network(network_inputs(network, l_small, **extra), training=False)[DISTRIBUTION_OUTPUT]
                return tf.nn.softmax(tf.cast(logits[0], tf.float32), axis=-1)

            self._graphs[key] = tf.function(run, input_signature=[
                tf.TensorSpec([1, None, None, None], tf.float32),
                tf.TensorSpec([1, None, len(HINT_COLUMNS)], tf.float32),
                tf.TensorSpec([1, GLOBAL_HINT_SIZE], tf.float32)])
        return self._graphs[key]

    def suggest(self, image: Photo, x: float, y: float, k: int = SUGGEST_K, hints: Hints = None,
                reference: Photo | None = None, palette: Palette = None, reference_name: str | None = None
                ) -> list[dict]:
        """The ``k`` likeliest colours at pixel (``x``, ``y``) of a photo, most likely first:
        ``[{"color": "#rrggbb", "probability": p}, ...]``, as ideepcolor's palette at a click
        (models with a colour distribution head). The head's probabilities there (bilinear between
        its cells), bins merged greedily into likelier ones within ``MERGE_RADIUS`` a*b* units
        (each merged colour the probability-weighted mean of its bins), shown at the photo's own
        lightness at that point. ``hints``, ``reference`` and ``palette`` as :meth:`colorize`
        (``reference_name`` as :meth:`global_hint`)."""
        return self.suggest_points(image, [(x, y)], k, hints, reference, palette, reference_name)[0]

    def suggest_points(self, image: Photo, points: Sequence[tuple[float, float]], k: int = SUGGEST_K,
                       hints: Hints = None, reference: Photo | None = None, palette: Palette = None,
                       reference_name: str | None = None) -> list[list[dict]]:
        """:meth:`suggest` at several points (x, y) of one photo, the network run once."""
        if not self.suggests:
            raise ValueError(f"suggest: this model ({self.name}) has no colour distribution head; "
                             "use a model trained with distribution: true")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"suggest: k must be a whole number of 1 or more; got {k!r}")
        pixels = as_pixels(image)
        height, width = pixels.shape[:2]
        for x, y in points:
            for name, value, side in (("x", x, width), ("y", y, height)):
                if not 0 <= value < side:
                    raise ValueError(f"suggest: {name}={value:g} is outside the photo ({width} x {height} px: "
                                     f"0 <= {name} < {side})")
        table = self.hint_table(hints, (width, height))
        vector = self.global_hint(reference, palette, reference_name)
        rgb = unit_rgb(tf.convert_to_tensor(pixels if pixels.ndim == 3 else pixels[..., None]))
        probabilities = self.distribution_graph()(
            rgb[None], tf.constant(table[None]),
            tf.constant((np.zeros(GLOBAL_HINT_SIZE, np.float32) if vector is None else vector)[None])).numpy()
        found = []
        for x, y in points:
            at = bilinear_at(probabilities, (y + 0.5) / height, (x + 0.5) / width)
            lightness = float(rgb_to_lab(rgb[int(y), int(x)][None])[0, 0])
            found.append(merged_colours(at, ab_bins(), lightness, int(k)))
        return found


def bilinear_at(grid: np.ndarray, row: float, col: float) -> np.ndarray:
    """The values of ``grid`` (h, w, C) at a point given as fractions (row, col) of its height and
    width, bilinear between cell centres (edges clamped), as TensorFlow's half-pixel resize samples."""
    h, w = grid.shape[:2]
    y, x = np.clip(row * h - 0.5, 0, h - 1), np.clip(col * w - 0.5, 0, w - 1)
    y0, x0 = int(np.floor(y)), int(np.floor(x))
    y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
    fy, fx = y - y0, x - x0
    top = grid[y0, x0] * (1 - fx) + grid[y0, x1] * fx
    bottom = grid[y1, x0] * (1 - fx) + grid[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def merged_colours(probabilities: np.ndarray, bins: np.ndarray, lightness: float, k: int,
                   radius: float = MERGE_RADIUS) -> list[dict]:
    """Probabilities over ab ``bins`` (Q,) -> the ``k`` likeliest colours at ``lightness`` (L*):
    the likeliest bin left takes every bin left within ``radius`` a*b* units, its colour the
    probability-weighted mean ab; colours that show as the same #rrggbb are merged too."""
    left = np.ones(len(bins), bool)
    found: dict[str, float] = {}
    for i in np.argsort(-probabilities, kind="stable"):
        if not left[i]:
            continue
        near = left & (np.linalg.norm(bins - bins[i], axis=-1) <= radius)
        left &= ~near
        mass = float(probabilities[near].sum())
        ab = (probabilities[near, None] * bins[near]).sum(axis=0) / max(mass, 1e-12)
        rgb = lab_to_rgb(tf.constant([[lightness, ab[0], ab[1]]], tf.float32)).numpy()[0]
        colour = "#%02x%02x%02x" % tuple(np.clip(np.rint(rgb * 255), 0, 255).astype(int))
        found[colour] = found.get(colour, 0.0) + mass
        if len(found) == k:
            break
    ranked = sorted(found.items(), key=lambda item: -item[1])[:k]
    return [{"color": colour, "probability": round(p, 6)} for colour, p in ranked]


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
