"""Export a colorizer as a SavedModel in TF Serving's layout (``DIR/<version>/``), or as ONNX.

The SavedModel carries the whole colorize path of :mod:`koala.inference` (traced, not
rewritten), so TF Serving, plain TensorFlow and ``koala colorize`` give the same colours:

``serving_default``  ``image_bytes`` (tf.string, N): encoded JPEG/PNG/GIF/BMP, any size, gray or
    colour -> ``png_bytes`` (tf.string, N): the colorized photo as PNG at the input's size. The
    ``_bytes`` suffixes make TF Serving's REST API base64-wrap them as ``{"b64": ...}``.
``colorize_l``  ``L`` (float32, N x H x W x 1, normalised L) -> ``ab`` (float32, N x H x W x 2,
    normalised ab at the same size).

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

from koala.images import apply_umask
from koala.inference import Colorizer, colorize_tensor, predict_ab
from koala.serving import AB_OUTPUT, BYTES_SIGNATURE, IMAGE_INPUT, L_INPUT, L_SIGNATURE, PNG_OUTPUT

FORMATS = ("savedmodel", "onnx")
ONNX_OPSET = 17
ONNX_FILE = "model.onnx"


def decode_rgb(data: tf.Tensor) -> tf.Tensor:
    """Encoded image bytes -> float RGB in [0, 1], (H, W, 3), as :func:`koala.images.load_rgb` does:
    gray is repeated to three channels, transparency composited on white, GIFs give frame one."""
    image = tf.cond(
        tf.io.is_jpeg(data),
        # PIL decodes JPEG with the accurate integer IDCT; TF's default (fast) differs by up to 5 levels.
        lambda: tf.image.convert_image_dtype(tf.io.decode_jpeg(data, dct_method="INTEGER_ACCURATE"), tf.float32),
        lambda: tf.io.decode_image(data, channels=0, dtype=tf.float32, expand_animations=False),
    )
    channels = tf.shape(image)[-1]
    has_alpha = tf.equal(channels % 2, 0)  # gray+alpha or RGBA
    colour = image[..., : channels - tf.cast(has_alpha, tf.int32)]
    alpha = tf.cond(has_alpha, lambda: image[..., -1:], lambda: tf.ones_like(image[..., :1]))
    rgb = tf.broadcast_to(colour, tf.concat([tf.shape(image)[:2], [3]], axis=0))
    return rgb * alpha + (1.0 - alpha)


def encode_png(rgb: tf.Tensor) -> tf.Tensor:
    """Float RGB in [0, 1] -> PNG bytes, rounding as :func:`koala.images.to_uint8` does."""
    return tf.io.encode_png(tf.cast(tf.clip_by_value(tf.round(rgb * 255.0), 0.0, 255.0), tf.uint8))


def build_archive(colorizer: Colorizer) -> keras.export.ExportArchive:
    """An ExportArchive with the two serving signatures, both running the colorizer's own path."""
    network = colorizer.network_fn()
    size, multiple, saturation = colorizer.image_size, colorizer.multiple, colorizer.saturation

    def colorize_one(data: tf.Tensor) -> tf.Tensor:
        rgb = decode_rgb(data)[None]
        return encode_png(colorize_tensor(network, rgb, size, multiple, saturation)[0])

    def serve_bytes(image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        # One photo at a time: a batch may mix sizes, and each keeps its own.
        pngs = tf.map_fn(colorize_one, image_bytes, fn_output_signature=tf.TensorSpec([], tf.string))
        return {PNG_OUTPUT: pngs}

    def serve_l(l_full: tf.Tensor) -> dict[str, tf.Tensor]:
        return {AB_OUTPUT: predict_ab(network, l_full, size, multiple) * saturation}

    archive = keras.export.ExportArchive()
    archive.track(colorizer.network)
    archive.add_endpoint(BYTES_SIGNATURE, serve_bytes, [tf.TensorSpec([None], tf.string, name=IMAGE_INPUT)])
    archive.add_endpoint(L_SIGNATURE, serve_l, [tf.TensorSpec([None, None, None, 1], tf.float32, name=L_INPUT)])
    return archive


def next_version(base: Path) -> int:
    """One more than the highest numeric version folder in ``base`` (1 when there is none)."""
    versions = [int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit()] if base.is_dir() else []
    return max(versions, default=0) + 1


def export(model: str | os.PathLike, out: str | os.PathLike, version: int | None = None,
           fmt: str = "savedmodel") -> Path:
    """Export ``model`` ('default', a run folder or a .keras file) to ``out/<version>/``.

    ``version`` defaults to the next free number; an existing version is never overwritten. The
    folder is written beside its final place and renamed in, so a TF Serving that watches
    ``out`` never loads a half-written version. Returns the version folder.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {FORMATS}")
    if version is not None and version < 1:
        raise ValueError(f"version must be a positive integer; got {version}")
    base = Path(out)
    version = next_version(base) if version is None else version
    target = base / str(version)
    if target.exists():
        raise FileExistsError(f"{target}: version {version} exists (omit --version to use the next free one)")
    colorizer = Colorizer.load(model)
    created = _missing_ancestor(base)  # removed again if the export fails: nothing is left behind
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=base, prefix=f".{version}.", suffix=".tmp"))
    try:
        if fmt == "savedmodel":
            build_archive(colorizer).write_out(str(staging), verbose=False)
        else:
            write_onnx(colorizer, staging / ONNX_FILE)
        (staging / "assets.extra").mkdir(exist_ok=True)
        (staging / "assets.extra" / "koala.json").write_text(json.dumps(colorizer.metadata, indent=2))
        apply_umask(staging)
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
