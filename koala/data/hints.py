"""Simulated colour hints, as Zhang, Zhu et al. 2017 (ideepcolor) train and evaluate with them.

A hint model sees, beside L, three hint channels: the hint's normalised a and b where a hint was
placed (0 elsewhere) and a mask (1 there, 0 elsewhere). In training a person's clicks are
simulated from the true colours (the paper's ``add_color_patches_rand_gt``): the number of hints
per crop is geometric (after each hint another follows with probability 1 - ``STOP_P``, so 1
crop in 8 gets none and the mean is 7), each hint is a square patch of 1 to 9 px whose centre
is drawn from a normal distribution around the crop's centre (sigma a quarter of the side), and
the patch is filled with the mean true ab inside it. Evaluation places a fixed number of
hints the same way, from a seed, so every model sees the same hints.

A person's hints (the CLI, the Python API, the web page, the SavedModel) have one format: a list
of ``{"x": px, "y": px, "color": "#rrggbb", "radius": px}`` (radius optional) in the photo's own
pixel coordinates. The colour's lightness is ignored: the photo gives L, the hint gives a and b.
:func:`parse_hints` checks such a list and turns it into a float array (K, 6) of
:data:`HINT_COLUMNS`, the form every graph takes (the SavedModel's ``hints`` input too), and
:func:`rasterise_hints` paints it into the hint channels at the network's working size, each hint
a square patch (``DEFAULT_PATCH`` px there, or its radius scaled).

All ops are stateless and vectorised over the batch (a batch of 16 crops at 128 px with 64 hint
slots is a few million multiply-adds), so they run inside the tf.data pipeline.

Example::

    table = parse_hints([{"x": 120, "y": 80, "color": "#c02020"}], size=(640, 480))   # (1, 6)
    hints = simulate_hints(ab, seed=tf.constant([0, 1], tf.int64))              # training
    hints = simulate_hints(ab, seed=tf.constant([7, 0], tf.int64), count=10, patch=5)  # 10 hints
"""
from __future__ import annotations

import json
import math
import numbers
import os
import re

import numpy as np
import tensorflow as tf

from koala.color import AB_NORM, lab_to_rgb, rgb_to_lab

STOP_P = 1.0 / 8.0  # ideepcolor's p: the chance that no further hint is added
PATCH_SIZES = (1, 9)  # smallest and largest square patch side in px (ideepcolor's sample_Ps)
MAX_HINTS = 64  # hint slots per crop: a geometric count beyond it (p < 2e-4) is cut here
HINT_CHANNELS = 3  # normalised a, normalised b, mask
HINTS_INPUT_NAME = "hints"
MAX_USER_HINTS = 1000  # hints one photo may carry
DEFAULT_PATCH = 5  # side in px at the working size of a hint without a radius (the paper's evaluation: 5x5)
HINT_COLUMNS = ("x", "y", "radius", "red", "green", "blue")  # radius 0: DEFAULT_PATCH; colour in [0, 1]
HINT_FIELDS = ("x", "y", "color", "radius")
_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")


class HintError(ValueError):
    """A hint list that cannot be used: the message names the hint (its index) and the reason."""


class NoHintInputsError(ValueError):
    """Hints for a model that has no hint inputs; ``reason`` is the message without its ``hints:``."""

    def __init__(self, model: str):
        self.reason = (f"this model ({model}) takes no hints; use a model with hint inputs (the bundled "
                       "default, or one trained with hints: true)")
        super().__init__(f"hints: {self.reason}")


def hint_count(seed: tf.Tensor, batch: tf.Tensor, max_hints: int = MAX_HINTS) -> tf.Tensor:
    """Geometric numbers of hints per crop, P(k) = (1 - STOP_P)^k STOP_P, capped at ``max_hints``."""
    u = tf.random.stateless_uniform([batch], seed, minval=1e-7, maxval=1.0)
    k = tf.floor(tf.math.log(u) / tf.math.log(1.0 - STOP_P))
    return tf.cast(tf.minimum(k, float(max_hints)), tf.int32)


def simulate_hints(ab: tf.Tensor, seed: tf.Tensor, count: int | None = None, patch: int | None = None,
                   max_hints: int = MAX_HINTS) -> tf.Tensor:
    """Hint channels (B, H, W, 3) for normalised ``ab`` (B, H, W, 2) from a stateless ``seed`` (2 ints).

    count: hints per crop (default None: geometric, as in training); patch: patch side in px
    (default None: uniform over ``PATCH_SIZES``). Overlapping patches average their colours.
    """
    ab = tf.convert_to_tensor(ab, tf.float32)
    shape = tf.shape(ab)
    batch, height, width = shape[0], shape[1], shape[2]
    slots = max_hints if count is None else max(int(count), 1)
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 4)
    if count is None:
        active = tf.sequence_mask(hint_count(seeds[0], batch, max_hints), slots, tf.float32)
    else:
        active = tf.fill([batch, slots], 1.0 if count else 0.0)
    if patch is None:
        sizes = tf.random.stateless_uniform([batch, slots], seeds[1], PATCH_SIZES[0], PATCH_SIZES[1] + 1, tf.int32)
    else:
        sizes = tf.fill([batch, slots], int(patch))
    top = _gaussian_start(seeds[2], [batch, slots], height, sizes)
    left = _gaussian_start(seeds[3], [batch, slots], width, sizes)
    rows = _span(top, sizes, height) * active[..., None]  # (B, K, H): 1 on the patch's rows
    cols = _span(left, sizes, width)  # (B, K, W)
    area = tf.cast(sizes * sizes, tf.float32)
    colour = tf.einsum("bkh,bkw,bhwc->bkc", rows, cols, ab) / area[..., None]  # mean ab in each patch
    return _paint(rows, cols, colour)


def _gaussian_start(seed: tf.Tensor, shape, side: tf.Tensor, sizes: tf.Tensor) -> tf.Tensor:
    """First row (or column) of each patch: normal around the centre, sigma a quarter of the free
    range, clipped so the patch stays inside (ideepcolor's ``samp='normal'``)."""
    free = tf.cast(side - sizes + 1, tf.float32)
    start = tf.random.stateless_normal(shape, seed, mean=0.0, stddev=1.0) * free / 4.0 + free / 2.0
    return tf.cast(tf.clip_by_value(tf.floor(start), 0.0, free - 1.0), tf.int32)


def _span(start: tf.Tensor, sizes: tf.Tensor, side: tf.Tensor) -> tf.Tensor:
    """(B, K, side) float mask: 1 where start <= i < start + size."""
    i = tf.range(side)[None, None, :]
    return tf.cast((i >= start[..., None]) & (i < (start + sizes)[..., None]), tf.float32)


def parse_hints(value, size: tuple[int, int] | None = None) -> np.ndarray:
    """A person's hints (a list of ``{"x", "y", "color", "radius"}`` objects) -> float32 (K, 6) of
    :data:`HINT_COLUMNS`. With ``size`` (width, height) the positions are checked to lie in the
    photo. Raises :class:`HintError` naming the first bad hint.

    Example: ``parse_hints([{"x": 3, "y": 4, "color": "#ff0000"}], (10, 10))`` -> [[3, 4, 0, 1, 0, 0]].
    """
    if not isinstance(value, list):
        raise HintError(f"hints must be a list of objects; got {type(value).__name__}")
    if len(value) > MAX_USER_HINTS:
        raise HintError(f"too many hints ({len(value):,}; at most {MAX_USER_HINTS:,})")
    rows = [_parse_hint(i, hint) for i, hint in enumerate(value)]
    table = np.asarray(rows, np.float32).reshape(len(rows), len(HINT_COLUMNS))
    if size is not None:
        check_inside(table, size)
    return table


def _parse_hint(index: int, hint) -> list[float]:
    def fail(reason: str):
        raise HintError(f"hint {index}: {reason}")

    if not isinstance(hint, dict):
        fail(f"must be an object with x, y and color; got {_show(hint)}")
    if unknown := sorted(str(key) for key in hint if key not in HINT_FIELDS):
        fail(f"unknown field(s) {', '.join(map(repr, unknown))} (fields: x, y, color, radius)")
    for name in ("x", "y", "color"):
        if name not in hint:
            fail(f"no {name!r}")
    values = {}
    for name in ("x", "y", "radius"):
        number = hint.get(name, 0)
        if isinstance(number, bool) or not isinstance(number, numbers.Real) or not math.isfinite(number):
            fail(f"{name} must be a number; got {_show(number)}")
        values[name] = float(number)
    if "radius" in hint and values["radius"] <= 0:
        fail(f"radius must be above 0 px; got {hint['radius']}")
    colour = hint["color"]
    if not isinstance(colour, str) or not _COLOUR.fullmatch(colour):
        fail(f"color {_show(colour)} is not a colour (write it as #rrggbb)")
    rgb = [int(colour[i:i + 2], 16) / 255.0 for i in (1, 3, 5)]
    return [values["x"], values["y"], values["radius"], *rgb]


def _show(value) -> str:
    """A value as JSON would write it (Python's repr for what JSON cannot hold), cut to 40 characters."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def read_hints(path: str | os.PathLike, size: tuple[int, int] | None = None) -> np.ndarray:
    """A hints file (JSON, :func:`parse_hints`'s list) -> its table, checked against a photo of
    ``size`` (width, height) when given. Errors name the file."""
    try:
        data = open(path, "rb").read()
    except OSError as e:
        raise HintError(f"{path}: cannot read ({e.strerror or e})") from None
    return hints_from_json(data, path, size)


def hints_from_json(data: str | bytes, source: str | os.PathLike, size: tuple[int, int] | None = None) -> np.ndarray:
    """:func:`read_hints` for a file's contents (a file on any filesystem); errors name ``source``."""
    try:
        value = json.loads(data)
    except ValueError as e:  # UnicodeDecodeError included
        raise HintError(f"{source}: not JSON ({e})") from None
    try:
        return parse_hints(value, size)
    except HintError as e:
        raise HintError(f"{source}: {e}") from None


def check_inside(table: np.ndarray, size: tuple[int, int]) -> None:
    """Raise :class:`HintError` for the first hint of ``table`` (K, 6) outside a photo of ``size``
    (width, height)."""
    for i, (x, y) in enumerate(np.asarray(table)[:, :2]):
        for name, value, side in (("x", x, size[0]), ("y", y, size[1])):
            if not 0 <= value < side:
                raise HintError(f"hint {i}: {name}={value:g} is outside the photo "
                                f"({size[0]} x {size[1]} px: 0 <= {name} < {side})")


def rasterise_hints(table: tf.Tensor, photo_shape: tf.Tensor, working_shape: tf.Tensor,
                    patch: int = DEFAULT_PATCH) -> tf.Tensor:
    """Hint tables (N, K, 6) in the photo's pixels -> hint channels (N, h, w, 3) at the working
    shape (h, w): normalised a and b of each hint's colour over its square patch (``patch`` px, or
    ``2 * round(radius * scale) + 1``), a mask of 1 there. Overlapping patches average their colours,
    as :func:`simulate_hints` does. TF ops, so the exported SavedModel runs this same code.
    """
    table = tf.convert_to_tensor(table, tf.float32)
    height, width = working_shape[0], working_shape[1]
    scale = tf.cast(working_shape, tf.float32) / tf.cast(photo_shape, tf.float32)  # (2,) rows, cols
    half = tf.where(table[..., 2] > 0, tf.round(table[..., 2] * tf.reduce_mean(scale)), float(patch // 2))
    sizes = 2 * tf.cast(half, tf.int32) + 1

    def start(column: int, axis: int, side: tf.Tensor) -> tf.Tensor:
        centre = tf.clip_by_value(tf.floor((table[..., column] + 0.5) * scale[axis]), 0.0,
                                  tf.cast(side - 1, tf.float32))
        return tf.cast(centre - half, tf.int32)

    rows = _span(start(1, 0, height), sizes, height)
    cols = _span(start(0, 1, width), sizes, width)
    ab = rgb_to_lab(table[..., 3:6])[..., 1:] / AB_NORM
    return _paint(rows, cols, ab)


def simulate_user_hints(rgb: np.ndarray, seed: int, count: int, patch: int) -> list[dict]:
    """``count`` hints for a photo (RGB (H, W, 3): float in [0, 1], uint8 or uint16) as a person
    would give them, drawn as in training: patch centres normal
    around the photo's centre (:func:`_gaussian_start`), each hint the mean true colour of its
    ``patch`` x ``patch`` px square (mean Lab, shown as #rrggbb) at the photo's own size. For
    scoring a model through the same path as a person's hints (``koala evaluate --hints``). The
    first ``k`` of ``count`` hints are the ``k`` hints of the same seed, so curves drawn up to
    different numbers of hints agree where they overlap.
    """
    rgb = np.asarray(rgb)
    if np.issubdtype(rgb.dtype, np.integer):  # uint8 or uint16 pixels
        rgb = rgb / float(np.iinfo(rgb.dtype).max)
    height, width = rgb.shape[:2]
    patch = max(1, min(patch, height, width))
    seeds = tf.random.experimental.stateless_split(tf.constant([seed, 0], tf.int64), 2)
    sizes = tf.fill([1, count], patch)
    top = _gaussian_start(seeds[0], [1, count], height, sizes)
    left = _gaussian_start(seeds[1], [1, count], width, sizes)
    rows, cols = _span(top, sizes, height), _span(left, sizes, width)
    lab = rgb_to_lab(tf.constant(rgb[None], tf.float32))
    mean = tf.einsum("bkh,bkw,bhwc->bkc", rows, cols, lab)[0] / float(patch * patch)
    colours = np.round(lab_to_rgb(mean).numpy() * 255).astype(int)
    return [{"x": int(x) + patch // 2, "y": int(y) + patch // 2, "color": "#%02x%02x%02x" % tuple(c)}
            for x, y, c in zip(left.numpy()[0], top.numpy()[0], colours)]


def _paint(rows: tf.Tensor, cols: tf.Tensor, colour: tf.Tensor) -> tf.Tensor:
    """Patches given by row and column masks (B, K, H) and (B, K, W), filled with ``colour``
    (B, K, 2) -> hint channels (B, H, W, 3); overlaps average."""
    cover = tf.einsum("bkh,bkw->bhw", rows, cols)
    painted = tf.einsum("bkh,bkw,bkc->bhwc", rows, cols, colour) / tf.maximum(cover, 1.0)[..., None]
    return tf.concat([painted, tf.cast(cover > 0, tf.float32)[..., None]], axis=-1)
