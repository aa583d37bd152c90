"""The colorize path as TensorFlow graphs: the ops from photo pixels to colour, and the traced
functions a :class:`koala.inference.Colorizer` keeps (it loads, checks and serves; this runs).

The network sees L at its working scale (short side = the training size, sides padded to the
model's multiple); the predicted ab is resized back to the photo's size and joined with the
full-resolution L, so the output keeps every detail of the input.

Memory stays bounded for any size up to :data:`koala.images.MAX_PIXELS`: the photo is kept at its
own depth (1-3 bytes a pixel), and the full-resolution work (L, and L joined with the upsampled
ab into RGB) is done in stripes of ``STRIPE_PIXELS``, so no float32 copy of the whole photo is
ever made: the network's input is shrunk from L stripe by stripe (along the rows, then once
along the columns; the antialiased resize is separable).

The functions here are pure TF ops, so :mod:`koala.export` traces the same ones into the
SavedModel. The graph builders (:func:`colorize_graph`, :func:`working_graph`, :func:`join_graph`,
:func:`distribution_graph`) trace each once per setting and keep it in the colorizer's cache,
which copies made by ``Colorizer.tuned`` share.

Example::

    graph = colorize_graph(Colorizer.load("default"), tf.uint8, tf.uint8)
    rgb = graph(tf.constant(photos), tf.constant(1.0))   # photos of one size (N, H, W, C)
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import tensorflow as tf

from koala.color import l_ab_to_rgb, rgb_to_l
from koala.data.global_hints import GLOBAL_HINT_SIZE
from koala.data.hints import HINT_COLUMNS, rasterise_hints
from koala.models.cunet import network_inputs

# koala.inference.Colorizer, one layer up: it calls these builders with itself, so this module
# cannot import it (not even for annotations: tests/test_layers_imports.py counts those too).
Colorizer = Any

MAX_WORKING_SIDE_FACTOR = 4  # panoramas: the long side is capped at this many working sizes
STRIPE_PIXELS = 1 << 19  # full-resolution pixels per step: ~50 MB of float32 temporaries at any size
# zlib level of the PNGs colorize_png(s) and the exported SavedModel write (lossless at any level). On a grainy scan (grain std
# 8) level 1 takes 0.21 CPU-s for 4 MP against 1.55 at zlib's default (6), for a file 1.6% smaller;
# on a smooth one 0.14 against 0.45 s, for twice the bytes. Real scans have grain.
PNG_COMPRESSION = 1
DISTRIBUTION_OUTPUT = "bins"  # the colour distribution head's output (koala.models.cunet)


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


def pixel_l(pixels: tf.Tensor) -> tf.Tensor:
    """Pixels (..., C; see :func:`unit_rgb`) -> normalised L (..., 1): the per-pixel work of
    :func:`working_l`. Gray integer pixels (C = 1) look their L up in a table of every level's
    (:func:`_gray_l`): the same numbers, 6x faster than converting each pixel (a 24 MP scan's L is
    taken twice, 0.35 s each time on 2 cores)."""
    if pixels.dtype.is_integer and pixels.shape[-1] in (None, 1):
        return tf.cond(tf.equal(tf.shape(pixels)[-1], 1), lambda: _gray_l(pixels), lambda: rgb_to_l(unit_rgb(pixels)))
    return rgb_to_l(unit_rgb(pixels))


def _gray_l(pixels: tf.Tensor) -> tf.Tensor:
    """Gray integer pixels (..., 1) -> their normalised L (..., 1), each level converted once. The
    table's size is a run-time value (channels, 1 here, times levels): a constant table would be
    folded by Grappler with other kernels, 1e-7 away from each pixel's own conversion, enough to
    move two pixels in 10^5 by one level."""
    levels = tf.range(tf.shape(pixels)[-1] * (pixels.dtype.max + 1))
    return tf.gather(rgb_to_l(unit_rgb(tf.cast(levels, pixels.dtype)[:, None])), tf.cast(pixels[..., 0], tf.int32))


def pixel_join(pixels: tf.Tensor, ab: tf.Tensor, saturation: tf.Tensor | float, out_dtype: tf.DType) -> tf.Tensor:
    """Pixels (..., C) and their normalised ab (..., 2) -> RGB (..., 3) with ab scaled by
    ``saturation``, uint8 (rounded as :func:`koala.images.to_uint8`) or float32 in [0, 1]: the
    per-pixel work of :func:`join_ab`."""
    rgb = l_ab_to_rgb(pixel_l(pixels), ab * saturation)
    if out_dtype == tf.uint8:
        return tf.cast(tf.clip_by_value(tf.round(rgb * 255.0), 0.0, 255.0), tf.uint8)
    return rgb


# The two compiled by XLA, for films (``fused`` below). On a film's RGB frames the per-pixel work is
# some 30 TensorFlow ops, each a pass over memory: op by op, 70% of a 1080p frame's full-size time.
# Fused into one loop it runs 3-4x faster (a 1080p frame's join 100 -> 30 ms), within one level of
# op by op (a pixel in 10^5 differs, by one). XLA compiles once per pixel type (0.35 s for the two;
# each stripe is padded to STRIPE_PIXELS) and adds 100 MB to the process, which a film repays and a
# photo does not (a gray scan's one channel gains nothing); the exported SavedModel never fuses (TF
# Serving runs without XLA unless told to).
_FUSED = {fn: tf.function(fn, autograph=False, jit_compile=True) for fn in (pixel_l, pixel_join)}


def _pixelwise(fn: Callable[..., tf.Tensor], fused: bool, stripes: list[tf.Tensor], *args: Any) -> tf.Tensor:
    """``fn(*stripes, *args)`` for a per-pixel ``fn`` and stripes (N, rows, W, C_i) of one size;
    ``fused``: by ``fn`` compiled by XLA over the stripes' pixels in a row, padded to
    ``STRIPE_PIXELS`` (so that it compiles once for any size), when a row of them fits."""
    if not fused:
        return fn(*stripes, *args)

    def compiled() -> tf.Tensor:
        shape = tf.shape(stripes[0])[:3]
        count = tf.reduce_prod(shape)
        flat = [tf.pad(tf.reshape(s, tf.stack([count, tf.shape(s)[-1]])), [[0, STRIPE_PIXELS - count], [0, 0]])
                for s in stripes]
        out = _FUSED[fn](*flat, *args)[:count]
        return tf.reshape(out, tf.concat([shape, tf.shape(out)[-1:]], axis=0))

    fits = tf.reduce_prod(tf.shape(stripes[0])[:3]) <= STRIPE_PIXELS
    return tf.cond(fits, compiled, lambda: fn(*stripes, *args))


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


def working_l(pixels: tf.Tensor, size: int, multiple: int, fused: bool = False) -> tf.Tensor:
    """Photos of one size (N, H, W, C; see :func:`unit_rgb`) -> their normalised L at the network's
    working shape (N, h, w, 1), shrunk stripe by stripe so that no full-size float L is made;
    ``fused``: its per-pixel part compiled by XLA (:func:`_pixelwise`; default False: op by op)."""
    shape = tf.shape(pixels)
    count, height, width = shape[0], shape[1], shape[2]
    rows = tf.maximum(STRIPE_PIXELS // (count * width), 1)
    small_shape = working_shape(height, width, size, multiple)

    def narrow(start, stop):  # a stripe's L shrunk along its rows only (the resize is separable)
        l_stripe = _pixelwise(pixel_l, fused, [pixels[:, start:stop]])
        return tf.image.resize(l_stripe, tf.stack([stop - start, small_shape[1]]), antialias=True)

    l_narrow = _by_stripes(narrow, height, rows, tf.float32, 1)  # (N, H, working width, 1): no full-size L
    return tf.image.resize(l_narrow, small_shape, antialias=True)


def join_ab(pixels: tf.Tensor, ab_small: tf.Tensor, saturation: tf.Tensor | float = 1.0,
            out_dtype: tf.DType = tf.uint8, fused: bool = False) -> tf.Tensor:
    """Photos (N, H, W, C) and normalised ab at any smaller size (N, h, w, 2) -> RGB (N, H, W, 3):
    ab resized bilinearly to the photo's size, scaled by ``saturation`` and joined with the
    photo's own full-resolution L, in stripes of about ``STRIPE_PIXELS`` (:func:`pixel_join`);
    ``fused``: as :func:`working_l`'s."""
    shape = tf.shape(pixels)
    count, height, width = shape[0], shape[1], shape[2]
    rows = tf.maximum(STRIPE_PIXELS // (count * width), 1)
    ab_wide = tf.image.resize(ab_small, tf.stack([tf.shape(ab_small)[1], width]), method="bilinear")

    def join(start, stop):
        ab = _bilinear_rows(ab_wide, height, start, stop)
        return _pixelwise(pixel_join, fused, [pixels[:, start:stop], ab], tf.cast(saturation, tf.float32), out_dtype)

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


def global_batch(global_hints, count: int) -> tf.Tensor:
    """Global hints for ``count`` photos: one vector (310,) for all, one per photo (N, 310), or
    None: zeros, "not given"."""
    if global_hints is None:
        return tf.zeros([count, GLOBAL_HINT_SIZE])
    vectors = np.asarray(global_hints, np.float32).reshape(-1, GLOBAL_HINT_SIZE)
    return tf.constant(np.broadcast_to(vectors, (count, GLOBAL_HINT_SIZE)) if len(vectors) == 1 else vectors)


def colorize_graph(colorizer: Colorizer, dtype: tf.DType = tf.float32, out_dtype: tf.DType = tf.float32
                   ) -> Callable[..., tf.Tensor]:
    """:func:`colorize_pixels` as one graph for photos of any one size (N, H, W, C), with
    saturation as an input, then, for a model with hint inputs, the hint tables (N x K x 6:
    traced once for any number of hints) and, for one with a global-hint input, the global
    hints (N x 310), for pixels of ``dtype`` (default: float RGB in and out): run eagerly, op by
    op, it is about 4x slower on small photos."""
    key = (id(colorizer.network), colorizer.temperature, colorizer.image_size, colorizer.multiple, dtype, out_dtype)
    if key not in colorizer._graphs:
        network, size, multiple = colorizer.network_fn(), colorizer.image_size, colorizer.multiple
        signature = [tf.TensorSpec([None, None, None, None], dtype), tf.TensorSpec([], tf.float32)]
        names = []  # the side inputs, in the order the graph takes them
        if colorizer.takes_hints:  # one graph for any number of hints, none included
            signature.append(tf.TensorSpec([None, None, len(HINT_COLUMNS)], tf.float32))
            names.append("hints")
        if colorizer.takes_global_hints:
            signature.append(tf.TensorSpec([None, GLOBAL_HINT_SIZE], tf.float32))
            names.append("global_hints")

        def run(pixels: tf.Tensor, saturation: tf.Tensor, *side: tf.Tensor) -> tf.Tensor:
            return colorize_pixels(network, pixels, size, multiple, saturation, out_dtype, **dict(zip(names, side)))

        colorizer._graphs[key] = tf.function(run, input_signature=signature, autograph=False)
    return colorizer._graphs[key]


def working_graph(colorizer: Colorizer, dtype: tf.DType = tf.uint8) -> Callable[..., tuple[tf.Tensor, tf.Tensor]]:
    """Photos of one size (N, H, W, C) of ``dtype`` (and, for a model with a global-hint input,
    optionally their global hints, N x 310: :meth:`Colorizer.global_hint`) -> (L, ab), both normalised, at
    the working size: the network's input and its output, the first half of :func:`colorize_graph`, for
    callers that treat ab before :func:`join_graph` (films smooth it over time). Its per-pixel work
    is compiled by XLA (``fused``: :func:`working_l`), which a film's many calls repay."""
    key = ("working", id(colorizer.network), colorizer.temperature, colorizer.image_size, colorizer.multiple, dtype)
    if key not in colorizer._graphs:
        network, size, multiple = colorizer.network_fn(), colorizer.image_size, colorizer.multiple
        signature = [tf.TensorSpec([None, None, None, None], dtype)]
        if colorizer.takes_global_hints:
            signature.append(tf.TensorSpec([None, GLOBAL_HINT_SIZE], tf.float32))

        def run(pixels: tf.Tensor, *global_hints: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            l_small = working_l(pixels, size, multiple, fused=True)
            extra = {"global_hints": global_hints[0]} if global_hints else {}
            return l_small, tf.cast(network(l_small, **extra), tf.float32)

        colorizer._graphs[key] = tf.function(run, input_signature=signature, autograph=False)
    graph = colorizer._graphs[key]
    if not colorizer.takes_global_hints:
        return graph
    return lambda pixels, global_hints=None: graph(pixels, global_batch(global_hints, len(pixels)))


def join_graph(colorizer: Colorizer, dtype: tf.DType = tf.uint8, out_dtype: tf.DType = tf.uint8
               ) -> Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tf.Tensor]:
    """:func:`join_ab` as one graph: (photos (N, H, W, C) of ``dtype``, normalised ab at the
    working size, saturation) -> RGB of ``out_dtype``, the second half of :func:`colorize_graph`,
    fused as :func:`working_graph`."""
    key = ("join", dtype, out_dtype)
    if key not in colorizer._graphs:
        colorizer._graphs[key] = tf.function(
            lambda pixels, ab_small, saturation: join_ab(pixels, ab_small, saturation, out_dtype, fused=True),
            input_signature=[tf.TensorSpec([None, None, None, None], dtype),
                             tf.TensorSpec([None, None, None, 2], tf.float32), tf.TensorSpec([], tf.float32)],
            autograph=False,
        )
    return colorizer._graphs[key]


def distribution_graph(colorizer: Colorizer) -> Callable[..., tf.Tensor]:
    """One photo (1, H, W, C) of float RGB, its hint table (1, K, 6) and its global hint (1, 310)
    -> the colour distribution head's probabilities (h, w, 309) at its own scale of the working
    size, traced once. The hints go in as given: the distribution is of true colours and is
    not scaled by the saturation afterwards."""
    key = ("distribution", id(colorizer.network), colorizer.image_size, colorizer.multiple)
    if key not in colorizer._graphs:
        size, multiple, network = colorizer.image_size, colorizer.multiple, colorizer.network

        def run(pixels: tf.Tensor, hints: tf.Tensor, global_hints: tf.Tensor) -> tf.Tensor:
            l_small = working_l(pixels, size, multiple)
            extra = side_inputs(l_small, tf.shape(pixels)[1:3], 1.0, hints if colorizer.takes_hints else None,
                                global_hints if colorizer.takes_global_hints else None)
            logits = network(network_inputs(network, l_small, **extra), training=False)[DISTRIBUTION_OUTPUT]
            return tf.nn.softmax(tf.cast(logits[0], tf.float32), axis=-1)

        colorizer._graphs[key] = tf.function(run, input_signature=[
            tf.TensorSpec([1, None, None, None], tf.float32),
            tf.TensorSpec([1, None, len(HINT_COLUMNS)], tf.float32),
            tf.TensorSpec([1, GLOBAL_HINT_SIZE], tf.float32)], autograph=False)
    return colorizer._graphs[key]
