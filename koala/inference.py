"""The one colorize path, shared by the CLI, the web app and the exported SavedModel.

:class:`Colorizer` loads a model, checks its knobs, hints and global hints, and serves the entry
points (colorize, its PNG and float forms, suggest); what runs inside TensorFlow, the path from
pixels to colour and the traced graphs, is :mod:`koala.graphs` (its functions are importable
from here too). The network sees L at its working scale and the predicted ab is joined with the
full-resolution L, so the output keeps every detail of the input.

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

from koala import graphs
from koala.color import ab_bins, lab_to_rgb, rgb_to_lab
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
)
from koala.graphs import (  # noqa: F401  (the colorize path's functions, importable from here as before)
    DISTRIBUTION_OUTPUT,
    colorize_pixels,
    join_ab,
    predict_ab,
    side_inputs,
    unit_rgb,
    working_l,
    working_shape,
)
from koala.images import as_pixels, encode_png
from koala.knobs import check_saturation, check_temperature
from koala.models import get_spec
from koala.models.layers import ab_of, with_policy
from koala.runs import model_metadata, resolve_model

CALL_PIXELS = 1 << 22  # photos of one size colorized in one graph call, up to this many pixels in all
Hints = list | np.ndarray | None  # a person's hints ({"x", "y", "color", "radius"} objects) or their table
Photo = np.ndarray | str | os.PathLike | bytes | Image.Image  # what Colorizer.colorize takes
Palette = str | Sequence | None  # "#c02020:2,#2050a0", or a list of "#rrggbb" or (colour, weight)
SUGGEST_K = 8  # suggested colours at a point, by default
MERGE_RADIUS = 15.0  # a*b* units: bins this close to a likelier one (its 8 neighbours) merge into it


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

    def _input_names(self) -> set[str]:
        """The network's named inputs (none beside L for one that takes L alone). A network built
        by subclassing rather than as a graph of layers (ResUNet34) has no symbolic inputs until
        called, and takes L alone."""
        try:
            inputs = self.network.input
        except AttributeError:
            return set()
        return set(inputs) if isinstance(inputs, dict) else set()

    @property
    def takes_hints(self) -> bool:
        """Whether the network has hint inputs (:mod:`koala.data.hints`) beside L."""
        return HINTS_INPUT_NAME in self._input_names()

    @property
    def takes_global_hints(self) -> bool:
        """Whether the network has a global-hint input (:mod:`koala.data.global_hints`: a
        reference photo's or a palette's colours)."""
        return GLOBAL_HINTS_INPUT_NAME in self._input_names()

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
        """The whole colorize path as one traced graph (:func:`koala.graphs.colorize_graph`)."""
        return graphs.colorize_graph(self, dtype, out_dtype)

    def working_graph(self, dtype: tf.DType = tf.uint8) -> Callable[..., tuple[tf.Tensor, tf.Tensor]]:
        """Its first half, photos -> (L, ab) at the working size (:func:`koala.graphs.working_graph`)."""
        return graphs.working_graph(self, dtype)

    def join_graph(self, dtype: tf.DType = tf.uint8, out_dtype: tf.DType = tf.uint8
                   ) -> Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tf.Tensor]:
        """Its second half, photos and ab -> RGB (:func:`koala.graphs.join_graph`)."""
        return graphs.join_graph(self, dtype, out_dtype)

    def tuned(self, saturation: float | None = None, temperature: float | None = None) -> "Colorizer":
        """This colorizer with other knob settings (None keeps its own), sharing its traced graphs."""
        changes = {k: v for k, v in (("saturation", saturation), ("temperature", temperature)) if v is not None}
        return dataclasses.replace(self, **changes) if changes else self

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
        """:meth:`colorize` as PNG bytes (:func:`koala.images.encode_png`, deflated on every core).
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
                rgb = self._run([photos[i] for i in chunk], tf.uint8, [hints[i] for i in chunk],
                                [global_hints[i] for i in chunk]).numpy()
                for i, pixels in zip(chunk, rgb):
                    pngs[i] = encode_png(pixels, graphs.PNG_COMPRESSION)
        return pngs

    def distribution_graph(self) -> Callable[..., tf.Tensor]:
        """The colour distribution head's probabilities for one photo (:func:`koala.graphs.distribution_graph`)."""
        return graphs.distribution_graph(self)

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
                             "use the bundled default or a model trained with distribution: true")
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
