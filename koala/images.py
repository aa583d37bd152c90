"""Reading and writing image files: one place for decoding, validation and atomic writes.

Every entry point (CLI, training data, web app) reads photos through :func:`load_rgb`, so a
broken file gets the same one-line reason everywhere.
"""
from __future__ import annotations

import io
import logging
import os
import struct
import tempfile
import warnings
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

log = logging.getLogger(__name__)

# The pixel limit of every entry point (koala colorize, the Colorizer API, koala serve and the
# exported SavedModel): larger pictures are refused before they are decoded, as possible
# decompression bombs. 100 MP covers a 600 dpi scan of an A3 page; memory stays bounded below it.
MAX_PIXELS = 100_000_000
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}
_EIGHT_BIT_MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "La", "RGBa"}


class ImageError(ValueError):
    """A file that cannot be used as a photo; ``str()`` is the one-line message for users."""

    def __init__(self, source: str, reason: str):
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


def check_file(path: str | os.PathLike, error: type[ImageError] = ImageError) -> None:
    """Raise ``error`` (an :class:`ImageError`) with its one-line reason for a missing or empty file."""
    if not os.path.isfile(path):
        raise error(str(path), "no such file")
    if os.path.getsize(path) == 0:
        raise error(str(path), "empty file (0 bytes)")


def _open(source: str | os.PathLike | bytes) -> tuple[Image.Image, str]:
    name = "<bytes>" if isinstance(source, (bytes, bytearray)) else str(source)
    if not isinstance(source, (bytes, bytearray)):
        check_file(source)
    elif len(source) == 0:
        raise ImageError(name, "empty file (0 bytes)")
    fp = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    try:
        with warnings.catch_warnings():  # PIL's own limit (89 MP) would be a second, lower one
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(fp)
    except (UnidentifiedImageError, Image.DecompressionBombError) as e:
        raise ImageError(name, _reason(e)) from None
    except OSError as e:
        raise ImageError(name, f"cannot read: {e}") from None
    return img, name


def _reason(error: Exception) -> str:
    if isinstance(error, UnidentifiedImageError):
        return "not an image (unrecognised format)"
    return "too many pixels (possible decompression bomb)"


def _to_pixels(img: Image.Image, name: str) -> np.ndarray:
    mode = img.mode
    if mode in _SIXTEEN_BIT_MODES:
        gray = np.asarray(img)
        if mode == "I" and gray.max(initial=0) <= 255:  # 8-bit values in a 32-bit image
            return np.clip(gray, 0, 255).astype(np.uint8)
        return np.clip(gray, 0, 65535).astype(np.uint16)
    if mode not in _EIGHT_BIT_MODES:
        raise ImageError(name, f"unsupported image mode {mode!r}")
    if "A" in mode or "a" in mode or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return np.asarray(img.convert("L") if mode in ("L", "1") else img.convert("RGB"))


def load_pixels(source: str | os.PathLike | bytes | Image.Image) -> np.ndarray:
    """Decode a photo to its pixels at their own depth: uint8 (H, W) gray or (H, W, 3) RGB, or
    uint16 (H, W) for 16-bit gray. A 24-megapixel gray scan stays 24 MB here, where float RGB
    takes 288 MB, so big scans are colorized in bounded memory.

    Accepts a path, encoded bytes or an open PIL image (used as it is, at its current frame, and
    left open and unchanged); EXIF orientation is applied, files' GIFs give their first frame,
    transparent pixels are composited on white. Raises :class:`ImageError` with a one-line
    reason (empty, truncated, not an image, unsupported mode, more than ``MAX_PIXELS`` pixels).
    """
    if isinstance(source, Image.Image):
        return _decoded_pixels(source, "<PIL image>")
    img, name = _open(source)
    with img:
        try:
            img.seek(0)
        except (OSError, SyntaxError, ValueError) as e:
            raise ImageError(name, f"truncated or corrupt image data ({e})") from None
        return _decoded_pixels(img, name)


def _decoded_pixels(img: Image.Image, name: str) -> np.ndarray:
    """:func:`load_pixels` of an open image: checked, loaded, EXIF-rotated (on a copy)."""
    width, height = img.size
    if width * height > MAX_PIXELS:
        raise ImageError(name, f"too many pixels ({width}x{height}; limit {MAX_PIXELS:,})")
    if width < 1 or height < 1:
        raise ImageError(name, "image has no pixels")
    try:
        img.load()
        img = ImageOps.exif_transpose(img)
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(name, f"truncated or corrupt image data ({e})") from None
    return _to_pixels(img, name)


def as_pixels(image: str | os.PathLike | bytes | Image.Image | np.ndarray) -> np.ndarray:
    """Any accepted input as pixels for the colorizer: files, bytes and PIL images through
    :func:`load_pixels`; arrays (H, W) or (H, W, 1|3|4) of uint8, uint16 or float in
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


def to_float_rgb(pixels: np.ndarray) -> np.ndarray:
    """Pixels from :func:`load_pixels` or :func:`as_pixels` as float32 RGB in [0, 1], shape (H, W, 3)."""
    if np.issubdtype(pixels.dtype, np.integer):
        rgb = pixels.astype(np.float32) / float(np.iinfo(pixels.dtype).max)
    else:
        rgb = np.clip(pixels.astype(np.float32), 0.0, 1.0)
    rgb = rgb[..., 0] if rgb.ndim == 3 and rgb.shape[-1] == 1 else rgb
    return np.repeat(rgb[..., None], 3, axis=-1) if rgb.ndim == 2 else rgb


def load_rgb(source: str | os.PathLike | bytes) -> np.ndarray:
    """Decode a photo to float32 RGB in [0, 1], shape (H, W, 3), as :func:`load_pixels` reads it
    (gray repeated to three channels, 16-bit gray with its precision)."""
    return to_float_rgb(load_pixels(source))


def load_shrunk(path: bytes | str, short_side: int) -> np.ndarray:
    """Decode a photo (:func:`load_rgb`) and shrink its short side to ``short_side`` (uint8 RGB);
    photos already smaller are kept as they are.

    Unusable files give a 0x0 image and a warning, so one bad file never stops a training
    run or a prior estimate (the data pipeline filters them out).
    """
    path = path.decode() if isinstance(path, bytes) else path
    try:
        rgb = load_rgb(path)
    except ImageError as e:
        log.warning("skipping %s", e)
        return np.zeros((0, 0, 3), np.uint8)
    return resize_short_side(to_uint8(rgb), short_side, upscale=False)


def list_folder(folder: str | os.PathLike, extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> list[str]:
    """Files under ``folder`` (recursive, sorted) whose extension is one of ``extensions``."""
    return sorted(str(p) for p in Path(folder).rglob("*") if p.suffix.lower() in extensions)


def list_images(source: str | os.PathLike) -> list[str]:
    """Image paths from a folder (recursive, sorted), a split file (one path per line,
    relative lines resolved against the file's folder) or a single image file."""
    path = Path(source)
    if path.is_dir():
        return list_folder(path)
    if path.suffix.lower() == ".txt":
        lines = [ln.strip() for ln in path.read_text().splitlines()]
        return [str(path.parent / ln) for ln in lines if ln and not ln.startswith("#")]
    if path.is_file():
        return [str(path)]
    raise FileNotFoundError(f"{source}: no such file or folder")


def evenly_spaced(items: list, count: int) -> list:
    """At most ``count`` items taken at even steps over the whole list (all when it is shorter),
    so a sample of a sorted folder reaches every sub-folder, not just the first."""
    if count <= 0 or len(items) <= count:
        return list(items)
    return items[:: len(items) // count][:count]


def group_by_source(paths: list[str], root: str | os.PathLike | None = None) -> dict[str, list[str]]:
    """Paths grouped by source: the first folder below ``root`` (default: their common folder;
    ``.`` for files directly in it). photos-v1's sources are its eight first-level sub-folders."""
    if not paths:
        return {}
    if root is None or not Path(root).is_dir():
        root = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths])
    root = os.path.abspath(root)
    groups: dict[str, list[str]] = {}
    for path in paths:
        parts = Path(os.path.abspath(path)).relative_to(root).parts
        groups.setdefault(parts[0] if len(parts) > 1 else ".", []).append(path)
    return groups


def source_groups(source: str | os.PathLike | list) -> dict[str, list[str]]:
    """Photos by source. One folder or split file (or a list of photo paths): as
    :func:`group_by_source`. Several folders or split files: each one's sources, named
    ``<its path below the folders' common parent>/<source>`` (``photos-v1/train/bsds500``), so two
    datasets trained on together keep their own sources for balancing."""
    if isinstance(source, (str, os.PathLike)):
        return group_by_source(list_images(source), source)
    roots = [str(item) for item in source]
    if not roots or not all(Path(r).is_dir() or Path(r).suffix.lower() == ".txt" for r in roots):
        return group_by_source(roots)
    if len(roots) == 1:
        return group_by_source(list_images(roots[0]), roots[0])
    parent = os.path.commonpath([os.path.abspath(r) for r in roots])
    groups: dict[str, list[str]] = {}
    for root in roots:
        label = os.path.relpath(os.path.abspath(root), parent)
        for name, paths in group_by_source(list_images(root), root).items():
            groups[f"{label}/{name}"] = paths
    return groups


# The one "is this photo gray" rule (training data and data_tools.prepare): the mean, over pixels, of
# the spread between a pixel's largest and smallest channel, in 8-bit levels. Below this a photo
# carries no colour worth learning: JPEG noise on a gray scan spreads about 1, a faint tint 2-3.
GRAY_SPREAD = 3.0


def colour_spread(pixels: np.ndarray) -> np.float64:
    """Mean over pixels of max - min of the channels, in levels of ``pixels``' 8 bits: 0 for a
    gray photo (one channel, or three equal ones). Compare with :data:`GRAY_SPREAD`."""
    if pixels.ndim == 2:
        return np.float64(0.0)
    return np.float64(np.mean(pixels.max(axis=-1) - pixels.min(axis=-1)))  # max >= min: no uint8 wrap


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """Float RGB in [0, 1] to uint8 with rounding (not truncation), so round trips are exact."""
    return np.clip(np.rint(np.asarray(rgb) * 255.0), 0, 255).astype(np.uint8)


def as_8bit(rgb: np.ndarray) -> np.ndarray:
    """Float RGB rounded to the 8 bits a saved PNG holds (:func:`to_uint8`), back in [0, 1]
    (float64): results are scored as users see them."""
    return to_uint8(rgb) / 255.0


def resize_short_side(rgb_uint8: np.ndarray, side: int, upscale: bool = True) -> np.ndarray:
    """uint8 RGB (H, W, 3) with its short side resized to ``side``, keeping the aspect ratio:
    PIL's bilinear filter, antialiased when shrinking (``reducing_gap`` 2). With ``upscale``
    False a photo already no larger than ``side`` is returned as it is."""
    img = Image.fromarray(rgb_uint8)
    scale = side / min(img.size)
    if scale >= 1 and not upscale:
        return rgb_uint8
    size = (max(side, round(img.width * scale)), max(side, round(img.height * scale)))
    return np.asarray(img.resize(size, Image.BILINEAR, reducing_gap=2.0 if scale < 1 else None))


# PNG written by :func:`encode_png`: its deflate stream cut into pieces of about this many bytes of
# filtered rows, compressed by every core at once (zlib lets go of the GIL) and joined into one
# stream, as pigz does. One core's zlib took 1.2 of a grainy 24 MP scan's 4.5 s.
PNG_PIECE_BYTES = 1 << 22
PNG_WINDOW = 1 << 15  # deflate's window: each piece is primed with this much of the stream before it
_PNG_COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type (gray, gray+alpha, RGB, RGBA)
_PNG_UP = 2  # PNG's "Up" filter: each byte minus the one above it


def png_rows(pixels: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Rows [start, stop) of uint8 pixels (H, W, C) as PNG's filtered stream, flat: each row led by its
    filter type and Up-filtered (minus the row above, mod 256; the first row of the picture as
    it is). Up alone, vectorised, makes a colorized scan's PNG 0.3-4% smaller than libpng's
    adaptive choice per row (measured on smooth and grainy scans) and costs one subtraction."""
    row_bytes = pixels.shape[1] * pixels.shape[2]
    rows = pixels[start:stop].reshape(stop - start, row_bytes)
    above = pixels[start - 1].reshape(1, row_bytes) if start else np.zeros((1, row_bytes), np.uint8)
    filtered = np.empty((stop - start, row_bytes + 1), np.uint8)
    filtered[:, 0] = _PNG_UP
    np.subtract(rows[:1], above, out=filtered[:1, 1:])
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])
    return filtered.reshape(-1)


def adler32_combine(first: int, second: int, second_length: int) -> int:
    """The Adler-32 of two byte strings joined, from each one's and the second's length (zlib's
    adler32_combine, which Python's zlib does not expose)."""
    base = 65521
    remainder = second_length % base
    low = first & 0xFFFF
    high = (remainder * low + (first >> 16) + (second >> 16) + base - remainder) % base
    low = (low + (second & 0xFFFF) + base - 1) % base
    return (high << 16) | low


def _png_chunk(kind: bytes, data: bytes) -> list[bytes]:
    """A PNG chunk as its parts (length and type, data, CRC), so that big data is not copied."""
    return [struct.pack(">I", len(data)) + kind, data, struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))]


def _deflated_piece(pixels: np.ndarray, start: int, stop: int, last: bool, level: int) -> tuple[list[bytes], int, int]:
    """Rows [start, stop) deflated as one piece of the PNG's zlib stream (raw deflate, primed with
    the window of rows before them, ended byte-aligned by a sync flush, or as the stream's end
    when ``last``) -> (its IDAT chunk's parts, its Adler-32, its length before compression)."""
    data = png_rows(pixels, start, stop)
    row_bytes = len(data) // (stop - start)
    before = png_rows(pixels, max(start - (PNG_WINDOW + row_bytes - 1) // row_bytes, 0), start)[-PNG_WINDOW:]
    compressor = zlib.compressobj(level, zlib.DEFLATED, -15, zdict=before.tobytes())  # -15: raw deflate, no header
    deflated = compressor.compress(data) + compressor.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)
    return _png_chunk(b"IDAT", deflated), zlib.adler32(data), len(data)


def encode_png(pixels: np.ndarray, level: int) -> bytes:
    """uint8 pixels (H, W) or (H, W, C) with C 1 to 4 (gray, gray+alpha, RGB, RGBA) -> a lossless
    PNG at zlib ``level``, any reader's PNG (one zlib stream in IDAT chunks), deflated by every
    core at once (:data:`PNG_PIECE_BYTES`): on 2 cores a grainy 24 MP scan's 1.2 s of zlib take
    about half. TensorFlow's and PIL's encoders deflate on one core (and PIL first copies RGB to
    4 bytes a pixel)."""
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[-1] not in _PNG_COLOUR_TYPES):
        raise ValueError(f"encode_png: expected uint8 pixels (H, W) or (H, W, 1-4); got {pixels.dtype} {pixels.shape}")
    pixels = np.ascontiguousarray(pixels if pixels.ndim == 3 else pixels[..., None])
    height, width, channels = pixels.shape
    rows = max(1, PNG_PIECE_BYTES // (width * channels + 1))
    starts = range(0, height, rows)
    workers = min(len(starts), len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        pieces = list(pool.map(lambda start: _deflated_piece(pixels, start, min(start + rows, height),
                                                             start + rows >= height, level), starts))
    checksum = 1  # the Adler-32 of nothing
    for _, adler, length in pieces:
        checksum = adler32_combine(checksum, adler, length)
    header = struct.pack(">IIBBBBB", width, height, 8, _PNG_COLOUR_TYPES[channels], 0, 0, 0)
    parts = [b"\x89PNG\r\n\x1a\n", *_png_chunk(b"IHDR", header), *_png_chunk(b"IDAT", zlib.compress(b"", level)[:2])]
    for chunk, _, _ in pieces:
        parts += chunk
    parts += _png_chunk(b"IDAT", struct.pack(">I", checksum)) + _png_chunk(b"IEND", b"")
    return b"".join(parts)


# Modes of what koala writes, given explicitly (never read from the process umask, which is
# process-wide and would race the server's threads): readable by everyone, such as a TF Serving
# process running as another user, writable by the owner.
FILE_MODE = 0o644
FOLDER_MODE = 0o755


def make_readable(folder: str | os.PathLike) -> None:
    """Give a folder made by ``tempfile.mkdtemp`` (0700) and its contents :data:`FOLDER_MODE` and
    :data:`FILE_MODE`, so that a server running as another user can read what koala wrote."""
    for root, dirs, files in os.walk(folder):
        os.chmod(root, FOLDER_MODE)
        for name in files:
            os.chmod(os.path.join(root, name), FILE_MODE)


@contextmanager
def atomic_target(path: str | os.PathLike, overwrite: bool = False) -> Iterator[str]:
    """A temporary file in ``path``'s folder to write an output into (by name, so that any writer,
    FFmpeg's muxers included, can stream into it); published at ``path`` when the block ends, and
    removed if it raises (Ctrl-C included), so readers never see a partial file.

    Without ``overwrite`` an existing file is left untouched and ``FileExistsError`` is raised,
    before the block runs and again if the file appeared meanwhile.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: exists")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, FILE_MODE)  # mkstemp makes 0600 files; outputs should be readable
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if the file appeared meanwhile: never clobber
            os.unlink(tmp)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_atomic(path: str | os.PathLike, data: bytes, overwrite: bool = False) -> None:
    """Write bytes through :func:`atomic_target`: readers never see a partial file, and an
    existing file survives unless ``overwrite`` (``FileExistsError``)."""
    with atomic_target(path, overwrite) as tmp, open(tmp, "wb") as f:
        f.write(data)


def write_figure(figure, path: str | os.PathLike, dpi: float = 100) -> None:
    """Save a matplotlib ``Figure`` in the format its suffix names (PNG, JPEG, ...), atomically
    (:func:`write_atomic`, replacing an earlier one). Figures are made with
    ``matplotlib.figure.Figure``, never pyplot, so drawing switches no backend and keeps no global
    figure list."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format=Path(path).suffix.lstrip(".").lower() or "png", dpi=dpi)
    write_atomic(path, buffer.getvalue(), overwrite=True)
