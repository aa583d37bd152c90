"""Export a colorizer as a SavedModel in TF Serving's layout (``DIR/<version>/``), or as ONNX.

The SavedModel carries the whole colorize path of :mod:`koala.inference` (traced, not
rewritten), so TF Serving, plain TensorFlow and ``koala colorize`` give the same colours:

``serving_default``  ``image_bytes`` (tf.string, N): encoded JPEG/PNG/GIF/BMP/WebP, gray or colour,
    up to :data:`koala.images.MAX_PIXELS` (larger ones are refused from their header, before
    decoding: InvalidArgument "image has too many pixels"; other bytes: "not an image") -> ``png_bytes`` (tf.string, N): the
    colorized photo as PNG at the input's size, made in bounded memory as ``koala colorize`` does. The
    ``_bytes`` suffixes make TF Serving's REST API base64-wrap them as ``{"b64": ...}``.
``colorize_l``  ``L`` (float32, N x H x W x 1, normalised L) -> ``ab`` (float32, N x H x W x 2,
    normalised ab at the same size).
``colorize_hints``  (models with hint inputs only) ``image_bytes`` as above and ``hints`` (float32,
    N x K x 6: x, y, radius, red, green, blue per hint, in the photo's pixels, colour in [0, 1];
    :func:`koala.data.hints.parse_hints` makes a photo's table) -> ``png_bytes``: the same path as
    ``Colorizer.colorize(photo, hints=...)``. Every photo of a request carries K hints (K may be 0).
``colorize_global``  (models with a global-hint input only) ``image_bytes``, ``hints`` (as above;
    ignored by a model without hint inputs) and ``global_hints`` (float32, N x 310: a reference photo's or a palette's colours,
    ``Colorizer.global_hint(reference=...)`` or :func:`koala.data.global_hints.reference_hint`) ->
    ``png_bytes``: ``Colorizer.colorize(photo, hints=..., reference=...)``.

Saturation: the one baked in applies to every signature; hinted colours still come out as given
(:func:`koala.inference.side_inputs`).

ONNX (through tf2onnx) holds the network alone, ``L`` at a working size -> ``ab``: tf2onnx has no
converter for image decoding/encoding (DecodeImage, EncodePng) nor for the antialiased resize
the colorize path uses, so an ONNX client resizes L and ab itself.

Example::

    koala export --model runs/cunet --out exported/koala        # -> exported/koala/1/
    saved_model_cli show --all --dir exported/koala/1
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import keras
import tensorflow as tf

from koala.images import MAX_PIXELS, make_readable
from koala.data.global_hints import GLOBAL_HINT_SIZE
from koala.data.hints import HINT_COLUMNS
from koala.graphs import PNG_COMPRESSION
from koala.inference import Colorizer, colorize_pixels, predict_ab
from koala.serving import (
    AB_OUTPUT,
    BYTES_SIGNATURE,
    EXPORT_FORMATS,
    GLOBAL_INPUT,
    GLOBAL_SIGNATURE,
    HINTS_INPUT,
    HINTS_SIGNATURE,
    IMAGE_INPUT,
    L_INPUT,
    L_SIGNATURE,
    PNG_OUTPUT,
)

ONNX_OPSET = 17
ONNX_FILE = "model.onnx"
# The model's metadata beside the SavedModel (TF Serving's assets.extra/ is for files it does not load).
METADATA_ASSET = Path("assets.extra") / "koala.json"


HEADER_BYTES = 32
DECODED_FORMATS = "JPEG, PNG, GIF, BMP or WebP"  # what serving_default decodes (header_shape knows them)


def _head(data: tf.Tensor) -> tf.Tensor:
    """The first ``HEADER_BYTES`` bytes of ``data`` as int64 values, zero-padded."""
    head = tf.strings.substr(tf.strings.join([tf.strings.substr(data, 0, HEADER_BYTES), b"\0" * HEADER_BYTES]),
                             0, HEADER_BYTES)
    return tf.cast(tf.io.decode_raw(head, tf.uint8), tf.int64)


def header_shape(data: tf.Tensor) -> tf.Tensor:
    """(height, width) as int64 from the header of a JPEG, PNG, GIF, BMP or WebP, without
    decoding; (0, 0) for anything else (the decoder then gives its own error)."""
    b = _head(data)

    def le(at: int, size: int) -> tf.Tensor:
        return sum(b[at + i] * 256**i for i in range(size))

    def be(at: int, size: int) -> tf.Tensor:
        return sum(b[at + i] * 256 ** (size - 1 - i) for i in range(size))

    def magic(at: int, text: bytes) -> tf.Tensor:
        return tf.reduce_all(tf.equal(b[at : at + len(text)], list(text)))

    def signed32(value: tf.Tensor) -> tf.Tensor:
        return tf.where(value >= 2**31, value - 2**32, value)

    webp_lossless = tf.stack([1 + (b[22] // 64 + b[23] * 4 + (b[24] % 16) * 1024),  # 14-bit fields
                              1 + (b[21] + (b[22] % 64) * 256)])
    shapes = [  # (condition, (height, width)); the first that holds wins
        (magic(0, b"\x89PNG"), tf.stack([be(20, 4), be(16, 4)])),
        (magic(0, b"GIF8"), tf.stack([le(8, 2), le(6, 2)])),
        (magic(0, b"BM"), tf.stack([tf.abs(signed32(le(22, 4))), signed32(le(18, 4))])),
        (magic(0, b"RIFF") & magic(8, b"WEBPVP8X"), tf.stack([1 + le(27, 3), 1 + le(24, 3)])),
        (magic(0, b"RIFF") & magic(8, b"WEBPVP8L"), webp_lossless),
        (magic(0, b"RIFF") & magic(8, b"WEBPVP8 "), tf.stack([le(28, 2) % 16384, le(26, 2) % 16384])),
    ]
    shape = tf.zeros([2], tf.int64)
    for condition, value in reversed(shapes):
        shape = tf.where(condition, value, shape)
    return tf.cond(tf.io.is_jpeg(data), lambda: tf.cast(tf.image.extract_jpeg_shape(data)[:2], tf.int64),
                   lambda: shape)


def decode_pixels(data: tf.Tensor) -> tf.Tensor:
    """Encoded image bytes -> pixels (H, W, C) at 8 bits, as :func:`koala.inference.unit_rgb` takes
    them: GIFs give frame one; JPEG as PIL decodes it (the accurate integer IDCT; TF's default,
    fast one differs by up to 5 levels). 16-bit PNGs are decoded by :func:`colorize_png_bytes`."""
    return tf.cond(
        tf.io.is_jpeg(data),
        lambda: tf.io.decode_jpeg(data, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_image(data, channels=0, dtype=tf.uint8, expand_animations=False),
    )


def colorize_png_bytes(network, data: tf.Tensor, size: int, multiple: int, saturation: float,
                       hints: tf.Tensor | None = None, global_hints: tf.Tensor | None = None) -> tf.Tensor:
    """One encoded photo (and its hint table, K x 6, and its global hint, 310, for a network that
    takes them) -> the colorized PNG at its size, refusing more than ``MAX_PIXELS`` pixels before anything is decoded
    (a small file can claim a huge picture)."""
    shape = header_shape(data)
    image = tf.debugging.Assert(  # TensorFlow's own words would be "Unknown image file format"
        tf.reduce_all(shape > 0),
        [f"not an image: expected the bytes of a {DECODED_FORMATS} file (or its header says 0 pixels)"])
    with tf.control_dependencies([image]):
        limit = tf.debugging.Assert(
            shape[0] * shape[1] <= MAX_PIXELS,
            [f"image has too many pixels (limit {MAX_PIXELS:,}); height and width in its header:", shape])
    head = _head(data)
    sixteen_bit_png = tf.logical_and(tf.reduce_all(tf.equal(head[:4], list(b"\x89PNG"))), tf.equal(head[24], 16))

    def colorize(pixels: tf.Tensor) -> tf.Tensor:
        table = None if hints is None else hints[None]
        wide = None if global_hints is None else global_hints[None]
        return tf.io.encode_png(colorize_pixels(network, pixels[None], size, multiple, saturation, hints=table,
                                                global_hints=wide)[0], compression=PNG_COMPRESSION)

    with tf.control_dependencies([limit]):
        return tf.cond(sixteen_bit_png,
                       lambda: colorize(tf.io.decode_png(data, channels=0, dtype=tf.uint16)),
                       lambda: colorize(decode_pixels(data)))


def build_archive(colorizer: Colorizer) -> keras.export.ExportArchive:
    """An ExportArchive with the serving signatures (one more for models with hint inputs, one more
    for models with a global-hint input), all running the colorizer's own path."""
    network = colorizer.network_fn()
    size, multiple, saturation = colorizer.image_size, colorizer.multiple, colorizer.saturation

    def serve_bytes(image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        # One photo at a time: a batch may mix sizes, and each keeps its own.
        pngs = tf.map_fn(lambda data: colorize_png_bytes(network, data, size, multiple, saturation), image_bytes,
                         fn_output_signature=tf.TensorSpec([], tf.string), parallel_iterations=1)
        return {PNG_OUTPUT: pngs}

    def serve_l(l_full: tf.Tensor) -> dict[str, tf.Tensor]:
        return {AB_OUTPUT: predict_ab(network, l_full, size, multiple) * saturation}

    archive = keras.export.ExportArchive()
    archive.track(colorizer.network)
    archive.add_endpoint(BYTES_SIGNATURE, serve_bytes, [tf.TensorSpec([None], tf.string, name=IMAGE_INPUT)])
    archive.add_endpoint(L_SIGNATURE, serve_l, [tf.TensorSpec([None, None, None, 1], tf.float32, name=L_INPUT)])
    image_spec = tf.TensorSpec([None], tf.string, name=IMAGE_INPUT)
    hints_spec = tf.TensorSpec([None, None, len(HINT_COLUMNS)], tf.float32, name=HINTS_INPUT)
    global_spec = tf.TensorSpec([None, GLOBAL_HINT_SIZE], tf.float32, name=GLOBAL_INPUT)

    def serve_side(image_bytes: tf.Tensor, hints: tf.Tensor | None, global_hints: tf.Tensor | None):
        items = (image_bytes, tf.zeros([tf.shape(image_bytes)[0]]) if hints is None else hints,
                 tf.zeros([tf.shape(image_bytes)[0]]) if global_hints is None else global_hints)
        pngs = tf.map_fn(lambda item: colorize_png_bytes(network, item[0], size, multiple, saturation,
                                                         None if hints is None else item[1],
                                                         None if global_hints is None else item[2]),
                         items, fn_output_signature=tf.TensorSpec([], tf.string), parallel_iterations=1)
        return {PNG_OUTPUT: pngs}

    if colorizer.takes_hints:
        archive.add_endpoint(HINTS_SIGNATURE, lambda image_bytes, hints: serve_side(image_bytes, hints, None),
                             [image_spec, hints_spec])
    if colorizer.takes_global_hints:  # one contract for clients: hints are always an input
        archive.add_endpoint(GLOBAL_SIGNATURE, lambda image_bytes, hints, global_hints: serve_side(
            image_bytes, hints if colorizer.takes_hints else None, global_hints), [image_spec, hints_spec, global_spec])
    return archive


def next_version(base: Path) -> int:
    """One more than the highest numeric version folder in ``base`` (1 when there is none)."""
    versions = [int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit()] if base.is_dir() else []
    return max(versions, default=0) + 1


def export(model: str | os.PathLike, out: str | os.PathLike, version: int | None = None,
           fmt: str = "savedmodel", saturation: float | None = None, temperature: float | None = None) -> Path:
    """Export ``model`` ('default', a run folder or a .keras file) to ``out/<version>/``.

    ``saturation`` and ``temperature`` (default: the model's own settings; hinted colours come out
    as given at any saturation) are baked into the SavedModel's signatures, as TF Serving takes no
    per-request options.

    ``version`` defaults to the next free number; an existing version is never overwritten. The
    folder is written beside its final place and renamed in, so a TF Serving that watches
    ``out`` never loads a half-written version. Returns the version folder.
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {EXPORT_FORMATS}")
    if version is not None and version < 1:
        raise ValueError(f"version must be a positive integer; got {version}")
    base = Path(out)
    version = next_version(base) if version is None else version
    target = base / str(version)
    if target.exists():
        raise FileExistsError(f"{target}: version {version} exists")
    colorizer = Colorizer.load(model, saturation=saturation, temperature=temperature)
    created = _missing_ancestor(base)  # removed again if the export fails: nothing is left behind
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=base, prefix=f".{version}.", suffix=".tmp"))
    try:
        if fmt == "savedmodel":
            build_archive(colorizer).write_out(str(staging), verbose=False)
        else:
            write_onnx(colorizer, staging / ONNX_FILE)
        (staging / METADATA_ASSET).parent.mkdir(exist_ok=True)
        (staging / METADATA_ASSET).write_text(json.dumps(colorizer.metadata, indent=2))
        make_readable(staging)
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created is not None:
            _remove_empty_folders(base, created)
        raise
    return target


def _missing_ancestor(path: Path) -> Path | None:
    """The outermost folder of ``path`` (itself included) that does not exist yet, or None."""
    missing = None
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing = folder
    return missing


def _remove_empty_folders(path: Path, stop: Path) -> None:
    """Remove ``path`` and its parents up to ``stop`` (included) while they are empty."""
    for folder in (path, *path.parents):
        try:
            folder.rmdir()
        except OSError:  # not empty (someone else wrote there meanwhile) or already gone
            return
        if folder == stop:
            return


def write_onnx(colorizer: Colorizer, path: Path) -> None:
    """The network (normalised L at a working size -> normalised ab) as ONNX, through tf2onnx."""
    import tf2onnx  # test/deploy-only dependency

    network = colorizer.network_fn()
    saturation = colorizer.saturation

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32, name=L_INPUT)])
    def colorize_l(l_small):
        return {AB_OUTPUT: tf.identity(tf.cast(network(l_small), tf.float32) * saturation, name=AB_OUTPUT)}

    tf2onnx.convert.from_function(colorize_l, input_signature=colorize_l.input_signature,
                                  opset=ONNX_OPSET, output_path=str(path))
