import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from koala import images
from koala.images import (
    ImageError,
    adler32_combine,
    encode_png,
    list_images,
    load_rgb,
    resize_short_side,
    to_uint8,
    write_atomic,
)
from tests.conftest import smooth_colour_image


def test_eight_bit_gray_becomes_three_equal_channels(tmp_path):
    gray = np.arange(256, dtype=np.uint8).reshape(16, 16)
    Image.fromarray(gray).save(tmp_path / "g.png")
    rgb = load_rgb(tmp_path / "g.png")
    assert rgb.shape == (16, 16, 3) and rgb.dtype == np.float32
    np.testing.assert_allclose(rgb[..., 0], gray / 255.0, atol=1e-6)
    assert np.array_equal(rgb[..., 0], rgb[..., 2])


def test_sixteen_bit_gray_keeps_its_precision(tmp_path):
    gray = (np.arange(64 * 64, dtype=np.uint32) * 16).reshape(64, 64).astype(np.uint16)
    Image.fromarray(gray).save(tmp_path / "g16.png")
    rgb = load_rgb(tmp_path / "g16.png")
    np.testing.assert_allclose(rgb[..., 1], gray / 65535.0, atol=1e-6)
    assert len(np.unique(rgb[..., 0])) > 256  # more levels than 8 bits can hold


def test_palette_with_alpha_is_composited_on_white(tmp_path):
    img = Image.new("P", (8, 8), 0)
    img.putpalette([255, 0, 0] + [0, 0, 255] * 255)
    img.info["transparency"] = 0
    img.save(tmp_path / "p.png", transparency=0)
    rgb = load_rgb(tmp_path / "p.png")
    np.testing.assert_allclose(rgb[0, 0], [1, 1, 1])  # transparent red -> white


def test_exif_orientation_is_applied(tmp_path):
    img = Image.fromarray(smooth_colour_image(0, 20, 40))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    img.save(tmp_path / "r.jpg", exif=exif.tobytes())
    assert load_rgb(tmp_path / "r.jpg").shape == (40, 20, 3)


def test_gif_first_frame_and_bytes_input(tmp_path):
    frames = [Image.new("RGB", (10, 6), c) for c in ((255, 0, 0), (0, 255, 0))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    rgb = load_rgb((tmp_path / "a.gif").read_bytes())
    assert rgb.shape == (6, 10, 3) and rgb[0, 0, 0] > 0.9 and rgb[0, 0, 1] < 0.1


def png_with_size(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose header claims ``width`` x ``height`` (a decompression bomb)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\x00")) + chunk(b"IEND", b"")


@pytest.mark.parametrize("content, reason", [
    (b"", "empty file"),
    (b"this is not an image", "not an image"),
    (png_with_size(40000, 40000), "too many pixels"),
    (png_with_size(12000, 9000), "too many pixels"),
])
def test_bad_files_give_one_line_reasons(tmp_path, content, reason):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(ImageError) as err:
        load_rgb(path)
    assert reason in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_truncated_jpeg_is_reported(tmp_path):
    Image.fromarray(smooth_colour_image(1, 64, 64)).save(tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated"):
        load_rgb(tmp_path / "cut.jpg")


def test_unsupported_mode_is_reported(tmp_path):
    Image.fromarray(np.zeros((4, 4), np.float32)).save(tmp_path / "f.tif")
    with pytest.raises(ImageError, match="unsupported image mode 'F'"):
        load_rgb(tmp_path / "f.tif")


def test_list_images_from_folder_and_split_file(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/one.jpg", "a/b/two.PNG", "a/notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.split("/")[-1] for p in list_images(tmp_path / "a")] == ["two.PNG", "one.jpg"]
    (tmp_path / "split.txt").write_text("# a comment\na/one.jpg\n\n/abs/path.png\n")
    assert list_images(tmp_path / "split.txt") == [str(tmp_path / "a/one.jpg"), "/abs/path.png"]


def test_write_atomic_never_clobbers_without_overwrite(tmp_path):
    target = tmp_path / "out" / "x.png"
    write_atomic(target, b"first")
    with pytest.raises(FileExistsError):
        write_atomic(target, b"second")
    assert target.read_bytes() == b"first"
    write_atomic(target, b"third", overwrite=True)
    assert target.read_bytes() == b"third"
    assert [p.name for p in target.parent.iterdir()] == ["x.png"]  # no temporary files left
    assert target.stat().st_mode & 0o044  # readable by others, not mkstemp's 0600


def test_to_uint8_rounds():
    assert to_uint8(np.array([0.0, 0.5 / 255, 1.6 / 255, 1.2])).tolist() == [0, 0, 2, 255]


def test_resize_short_side_keeps_the_aspect_and_upscales_only_when_asked():
    rgb = np.random.default_rng(0).integers(0, 256, (40, 100, 3), dtype=np.uint8)
    assert resize_short_side(rgb, 20).shape == (20, 50, 3)
    assert resize_short_side(rgb, 80).shape == (80, 200, 3)
    assert resize_short_side(rgb, 80, upscale=False) is rgb
    flat = np.full((30, 30, 3), 77, np.uint8)
    assert np.all(resize_short_side(flat, 13) == 77)  # bilinear: a flat photo stays flat


@pytest.mark.parametrize("name, magic", [("plot.png", b"\x89PNG"), ("grid.jpg", b"\xff\xd8\xff")])
def test_write_figure_writes_the_format_its_suffix_names(tmp_path, name, magic):
    """A grid saved as grid.jpg is a JPEG, not a PNG under a .jpg name (four times the size)."""
    from matplotlib.figure import Figure

    from koala.images import write_figure

    fig = Figure(figsize=(2, 2))
    fig.add_subplot().imshow([[0.0, 1.0], [1.0, 0.0]])
    write_figure(fig, tmp_path / name)
    assert (tmp_path / name).read_bytes()[:len(magic)] == magic


def idat_stream(png: bytes) -> bytes:
    """The zlib stream of a PNG: its IDAT chunks' data joined, each chunk's CRC checked."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    stream, at = b"", 8
    while at < len(png):
        length, kind = struct.unpack(">I4s", png[at : at + 8])
        data = png[at + 8 : at + 8 + length]
        assert struct.unpack(">I", png[at + 8 + length : at + 12 + length])[0] == zlib.crc32(kind + data)
        stream += data if kind == b"IDAT" else b""
        at += 12 + length
    return stream


@pytest.mark.parametrize("piece_bytes", [1 << 22, 100, 7])  # one piece; a few rows each; a row each
@pytest.mark.parametrize("shape", [(1, 1), (37, 23), (9, 41, 1), (12, 5, 2), (40, 33, 3), (17, 3, 4), (1, 400, 3)])
def test_png_deflated_in_pieces_is_one_valid_lossless_png(shape, piece_bytes, monkeypatch):
    """encode_png deflates its rows in pieces on every core and joins them into one zlib stream:
    PIL and zlib itself (which checks the joined Adler-32) read back exactly the pixels."""
    monkeypatch.setattr(images, "PNG_PIECE_BYTES", piece_bytes)
    pixels = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    png = encode_png(pixels, 1)
    with Image.open(io.BytesIO(png)) as img:
        assert img.size == (shape[1], shape[0])
        assert np.array_equal(np.asarray(img).reshape(shape), pixels)
    rows = pixels.reshape(shape[0], -1).astype(np.int16)
    up = np.diff(rows, axis=0, prepend=0) % 256  # PNG's Up filter, by hand
    raw = np.concatenate([np.full((shape[0], 1), 2), up], axis=1).astype(np.uint8).tobytes()
    assert zlib.decompress(idat_stream(png)) == raw


def test_png_of_a_colorized_scan_opens_in_other_readers(tmp_path):
    """OpenCV (libpng) reads the pieced PNG as PIL does."""
    cv2 = pytest.importorskip("cv2")
    pixels = smooth_colour_image(4, 300, 200)
    pixels[::3] = 255 - pixels[::3]  # grain-like rows
    path = tmp_path / "out.png"
    write_atomic(path, encode_png(pixels, 1))
    assert np.array_equal(cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[..., ::-1], pixels)


def test_adler32_of_joined_pieces():
    data = np.random.default_rng(0).integers(0, 256, 200_000, dtype=np.uint8).tobytes()
    for cut in (0, 1, 5552, 65521, 65522, 199_999, 200_000):
        first, second = data[:cut], data[cut:]
        assert adler32_combine(zlib.adler32(first), zlib.adler32(second), len(second)) == zlib.adler32(data)


@pytest.mark.parametrize("pixels", [np.zeros((4, 4), np.uint16), np.zeros((4, 4, 5), np.uint8),
                                    np.zeros((2, 4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.float32)])
def test_png_of_what_it_cannot_write_is_refused(pixels):
    with pytest.raises(ValueError, match=r"^encode_png: expected uint8 pixels"):
        encode_png(pixels, 1)
