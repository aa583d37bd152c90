"""`koala export`: TF Serving's layout, both signatures, plain-TensorFlow loading, same colours as
`koala colorize`, and ONNX against Keras."""
from __future__ import annotations

import io
import json
import site
import stat
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import decode, encode, photo
from koala.cli import main
from koala.export import header_shape, next_version
from koala.images import MAX_PIXELS
from koala.inference import predict_ab
from tests.test_images import png_with_size

SAVED_MODEL_CLI = Path(sys.executable).parent / "saved_model_cli"

# Runs with the standard library and site-packages only (no .pth files, so not the editable
# koala): proves the SavedModel needs nothing of koala.
PLAIN_TF_SCRIPT = textwrap.dedent("""
    import sys
    sys.path.append(sys.argv[1])
    try:
        import koala
    except ModuleNotFoundError:
        pass
    else:
        raise SystemExit("koala is importable: the test would prove nothing")
    import tensorflow as tf
    model = tf.saved_model.load(sys.argv[2])
    names = sys.argv[3:]
    images = [open(name, "rb").read() for name in names]
    pngs = model.signatures["serving_default"](image_bytes=tf.constant(images))["png_bytes"].numpy()
    for name, png in zip(names, pngs):
        open(name + ".out.png", "wb").write(png)
""")


def test_layout_is_tf_serving_versioned(exported):
    version = exported / "1"
    assert (version / "saved_model.pb").is_file()
    assert (version / "variables" / "variables.index").is_file()
    meta = json.loads((version / "assets.extra" / "koala.json").read_text())
    assert meta["model"] == "cunet" and meta["image_size"] == 32
    assert not [p for p in exported.iterdir() if p.name.startswith(".")], "staging folder left behind"


def test_exported_files_are_readable_by_everyone(exported):
    """TF Serving often runs as another user: no 0700 folder (mkdtemp's) may stay in the way. The
    modes are explicit (0755 folders, 0644 files), whatever the process umask."""
    paths = [exported / "1", *(exported / "1").rglob("*")]
    modes = {p.relative_to(exported).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in paths}
    expected = {name: 0o755 if (exported / name).is_dir() else 0o644 for name in modes}
    assert modes == expected and "1/variables/variables.index" in modes


def test_next_version_and_refusing_to_overwrite(tmp_path, exported, capsys):
    assert next_version(tmp_path / "missing") == 1
    for name in ("1", "3", "notes", "10x"):
        (tmp_path / name).mkdir()
    assert next_version(tmp_path) == 4
    # an existing version is refused before anything is loaded, with a one-line error
    assert main(["export", "--model", "nowhere", "--out", str(exported), "--version", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("koala export:") and "version 1 exists" in err and "\n" not in err
    assert main(["export", "--model", "nowhere", "--out", str(tmp_path), "--version", "0"]) == 2


@pytest.mark.slow
def test_saved_model_cli_lists_both_signatures(exported):
    out = subprocess.run([str(SAVED_MODEL_CLI), "show", "--all", "--dir", str(exported / "1")],
                         capture_output=True, text=True, check=True).stdout
    sections = out.split("signature_def[")
    serving = next(s for s in sections if s.startswith("'serving_default'"))
    tensor = next(s for s in sections if s.startswith("'colorize_l'"))
    assert "inputs['image_bytes']" in serving and "outputs['png_bytes']" in serving
    assert serving.count("dtype: DT_STRING") == 2
    assert "inputs['L']" in tensor and "outputs['ab']" in tensor
    assert "shape: (-1, -1, -1, 1)" in tensor and "shape: (-1, -1, -1, 2)" in tensor


@pytest.mark.slow
def test_plain_tensorflow_matches_koala_colorize(exported, tiny_model, photo_files, tmp_path):
    """The SavedModel, loaded by TensorFlow alone, gives the CLI's colours within one level."""
    names = [str(p) for p in photo_files.values()]  # colour/gray x JPEG/PNG
    site_packages = next(p for p in site.getsitepackages() if p.endswith("site-packages"))
    subprocess.run([sys.executable, "-I", "-S", "-c", PLAIN_TF_SCRIPT, site_packages, str(exported / "1"), *names],
                   cwd=tmp_path, check=True, capture_output=True)
    assert main(["colorize", *names, "-o", str(tmp_path / "cli"), "--model", str(tiny_model)]) == 0
    for name in names:
        served = decode(Path(name + ".out.png").read_bytes())
        cli = decode((tmp_path / "cli" / (Path(name).stem + ".png")).read_bytes())
        assert served.shape == cli.shape == (40, 48, 3)
        assert np.abs(served.astype(int) - cli).max() <= 1, name
        assert np.abs(served.astype(int) - cli).mean() < 0.01, name


def test_batch_of_different_sizes_and_alpha(loaded, colorizer):
    wide, tall = photo((48, 40)), photo((24, 56), gray=True)
    rgba = np.dstack([wide, np.tile(np.linspace(0, 255, 48).astype(np.uint8), (40, 1))])
    inputs = [encode(wide, "JPEG"), encode(tall), encode(rgba)]
    pngs = loaded.signatures["serving_default"](image_bytes=tf.constant(inputs))["png_bytes"].numpy()
    outs = [decode(p) for p in pngs]
    assert [o.shape for o in outs] == [(40, 48, 3), (56, 24, 3), (40, 48, 3)]
    for data, out in zip(inputs, outs):
        # transparency is composited on white by PIL in uint8 and by TF in float: one level apart at most
        assert np.abs(out.astype(int) - colorizer.colorize(data)).max() <= 1
    with pytest.raises(tf.errors.InvalidArgumentError):
        loaded.signatures["serving_default"](image_bytes=tf.constant([b"not an image"]))


@pytest.mark.parametrize("fmt, options", [
    ("PNG", {}), ("JPEG", {}), ("GIF", {}), ("BMP", {}), ("WEBP", {"lossless": False}), ("WEBP", {"lossless": True}),
    ("WEBP", {"lossless": False, "exif": b"Exif\0\0"}),  # extended (VP8X) header
])
def test_header_shape_reads_the_size_without_decoding(fmt, options):
    buffer = io.BytesIO()
    Image.fromarray(photo((53, 37))).save(buffer, format=fmt, **options)
    assert header_shape(tf.constant(buffer.getvalue())).numpy().tolist() == [37, 53]
    assert header_shape(tf.constant(b"tiny")).numpy().tolist() == [0, 0]


def test_saved_model_refuses_more_than_the_pixel_limit_before_decoding(loaded):
    side = int(MAX_PIXELS**0.5) + 1  # a few hundred bytes that claim a picture over the limit
    for bomb in (png_with_size(side, side), b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\0" * 20):
        with pytest.raises(tf.errors.InvalidArgumentError, match="image has too many pixels"):
            loaded.signatures["serving_default"](image_bytes=tf.constant([bomb]))


def test_saved_model_names_bytes_that_are_not_an_image(loaded):
    for junk in (b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\0" * 40):
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match=r"not an image: expected the bytes of a JPEG, PNG, GIF, BMP or WebP file"):
            loaded.signatures["serving_default"](image_bytes=tf.constant([junk]))


def test_sixteen_bit_png_keeps_its_precision(loaded, colorizer):
    deep = (photo(gray=True).astype(np.uint16) * 257 + np.arange(48, dtype=np.uint16)).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(deep).save(buffer, format="PNG")
    png = loaded.signatures["serving_default"](image_bytes=tf.constant([buffer.getvalue()]))["png_bytes"].numpy()[0]
    assert np.abs(decode(png).astype(int) - colorizer.colorize(buffer.getvalue())).max() <= 1


def test_colorize_l_signature_is_predict_ab(loaded, colorizer):
    l_norm = tf.random.stateless_uniform([2, 36, 52, 1], seed=[1, 2], minval=-0.5, maxval=0.5)
    ab = loaded.signatures["colorize_l"](L=l_norm)["ab"].numpy()
    want = predict_ab(colorizer.network_fn(), l_norm, colorizer.image_size, colorizer.multiple).numpy()
    assert ab.shape == (2, 36, 52, 2)
    np.testing.assert_allclose(ab, want, atol=1e-5)
    assert 0.2 < ab[..., 0].mean() < 0.3  # the tiny model's orange bias comes through


def test_export_bakes_in_the_colour_knob(tiny_model, loaded, tmp_path):
    assert main(["export", "--model", str(tiny_model), "--out", str(tmp_path), "--saturation", "0.5"]) == 0
    half = tf.saved_model.load(str(tmp_path / "1"))
    l_norm = tf.random.stateless_uniform([1, 24, 40, 1], seed=[3, 4], minval=-0.5, maxval=0.5)
    full_ab = loaded.signatures["colorize_l"](L=l_norm)["ab"].numpy()
    half_ab = half.signatures["colorize_l"](L=l_norm)["ab"].numpy()
    np.testing.assert_allclose(half_ab, 0.5 * full_ab, atol=1e-5)


@pytest.mark.slow
def test_onnx_matches_keras(tiny_model, colorizer, tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("tf2onnx")
    assert main(["export", "--model", str(tiny_model), "--out", str(tmp_path), "--format", "onnx"]) == 0
    assert f"{tmp_path / '1'}" in capsys.readouterr().out
    session = ort.InferenceSession(str(tmp_path / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["L"]
    assert [o.name for o in session.get_outputs()] == ["ab"]
    l_norm = np.random.default_rng(0).uniform(-0.5, 0.5, (2, 32, 48, 1)).astype(np.float32)
    got = session.run(None, {"L": l_norm})[0]
    want = colorizer.network(l_norm, training=False).numpy()
    assert got.shape == (2, 32, 48, 2)
    assert np.abs(got - want).max() < 1e-5


def test_hint_signature_gives_the_colorizers_pixels(exported_hints, tiny_hint_model, loaded):
    from koala.data.hints import parse_hints
    from koala.inference import Colorizer

    model = tf.saved_model.load(str(exported_hints / "1"))
    assert set(model.signatures) == {"serving_default", "colorize_l", "colorize_hints"}
    assert "colorize_hints" not in loaded.signatures  # only models with hint inputs have it
    colorizer = Colorizer.load(tiny_hint_model)
    images = [encode(photo(gray=True)), encode(photo((64, 30)), "JPEG")]
    hints = [[{"x": 5, "y": 7, "color": "#20c040"}, {"x": 40, "y": 33, "color": "#ff2000", "radius": 4}],
             [{"x": 60, "y": 2, "color": "#0000ff"}, {"x": 0, "y": 29, "color": "#ffff00", "radius": 1.5}]]
    tables = np.stack([parse_hints(h) for h in hints])
    pngs = model.signatures["colorize_hints"](image_bytes=tf.constant(images), hints=tf.constant(tables))["png_bytes"]
    for data, hint_list, png in zip(images, hints, pngs.numpy()):
        want = colorizer.colorize(data, hints=hint_list)
        assert not np.array_equal(want, colorizer.colorize(data))  # the hints matter
        assert np.abs(decode(png).astype(int) - want).max() <= 1
    none = model.signatures["colorize_hints"](image_bytes=tf.constant(images[:1]), hints=tf.zeros([1, 0, 6]))
    automatic = model.signatures["serving_default"](image_bytes=tf.constant(images[:1]))
    assert none["png_bytes"].numpy()[0] == automatic["png_bytes"].numpy()[0]  # no hints: serving_default's answer
