import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.color import rgb2lab

from koala.cli import main
from koala.inference import Colorizer
from tests.conftest import smooth_colour_image

EXPECTED_AB = np.array([0.3, -0.2]) * 110  # what the constant_ab_run model predicts, in Lab units


def lab_of(path) -> np.ndarray:
    """scikit-image's Lab of a file (koala's own conversion is what is under test)."""
    return rgb2lab(np.asarray(Image.open(path).convert("RGB")))


def test_python_api_keeps_size_and_full_resolution_l(constant_ab_run):
    gray = smooth_colour_image(3, 75, 131).mean(axis=-1).astype(np.uint8)
    out = Colorizer.load(constant_ab_run).colorize(gray)
    assert out.shape == (75, 131, 3) and out.dtype == np.uint8
    lab_out = rgb2lab(out)
    lab_in = rgb2lab(np.repeat(gray[..., None], 3, -1))
    mid = (lab_in[..., 0] > 35) & (lab_in[..., 0] < 65)  # where the colour fits in gamut
    assert np.abs(lab_out[..., 0] - lab_in[..., 0])[mid].mean() < 0.6  # structure kept
    np.testing.assert_allclose(np.median(lab_out[..., 1:][mid], axis=0), EXPECTED_AB, atol=2.5)


def test_saturation_scales_the_colour(constant_ab_run):
    gray = np.full((40, 40), 128, np.uint8)
    vivid = rgb2lab(Colorizer.load(constant_ab_run).colorize(gray))
    muted = rgb2lab(Colorizer.load(constant_ab_run, saturation=0.5).colorize(gray))
    ratio = np.hypot(*muted[20, 20, 1:]) / np.hypot(*vivid[20, 20, 1:])
    assert abs(ratio - 0.5) < 0.05


@pytest.fixture
def inputs(tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(smooth_colour_image(0, 50, 70)).save(folder / "colour.jpg")
    Image.fromarray((np.arange(60 * 44).reshape(60, 44) * 20).astype(np.uint16)).save(folder / "sub" / "deep.png")
    palette = Image.fromarray(smooth_colour_image(1, 30, 30)).convert("P")
    palette.save(folder / "sub" / "palette.png", transparency=0)
    rotated = Image.fromarray(smooth_colour_image(2, 20, 36))
    exif = Image.Exif()
    exif[0x0112] = 8
    rotated.save(folder / "rotated.jpg", exif=exif.tobytes())
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.png").write_text("not a photo")
    return folder


def test_cli_colorizes_a_folder_and_reports_bad_files(inputs, tmp_path, constant_ab_run, capsys):
    out = tmp_path / "out"
    code = main(["colorize", str(inputs), "-o", str(out), "--model", constant_ab_run])
    err = capsys.readouterr().err
    assert code == 1
    assert f"{inputs / 'empty.jpg'}: empty file" in err and f"{inputs / 'notes.png'}: not an image" in err
    sizes = {p.relative_to(out).as_posix(): Image.open(p).size for p in out.rglob("*.png")}
    assert sizes == {"colour.png": (70, 50), "sub/deep.png": (44, 60), "sub/palette.png": (30, 30),
                     "rotated.png": (20, 36)}
    assert "Traceback" not in err


def test_cli_never_overwrites_without_the_flag(inputs, tmp_path, constant_ab_run, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "colour.png").write_bytes(b"precious")
    source = str(inputs / "colour.jpg")
    assert main(["colorize", source, "-o", str(out), "--model", constant_ab_run]) == 0  # kept: not a failure
    assert (out / "colour.png").read_bytes() == b"precious" and "--overwrite" in capsys.readouterr().err
    assert main(["colorize", source, "-o", str(out), "--model", constant_ab_run, "--overwrite"]) == 0
    assert Image.open(out / "colour.png").size == (70, 50)


def test_cli_globs_and_missing_inputs(inputs, tmp_path, constant_ab_run, capsys):
    out = tmp_path / "out"
    code = main(["colorize", str(inputs / "*.jpg"), str(tmp_path / "missing.png"), "-o", str(out),
                 "--model", constant_ab_run])
    err = capsys.readouterr().err
    assert code == 1 and "missing.png: no such file" in err and "empty.jpg: empty file" in err
    assert sorted(p.name for p in out.iterdir()) == ["colour.png", "rotated.png"]


def test_unknown_model_is_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "koala.cli", "colorize", "x.png", "-o", str(tmp_path),
                             "--model", str(tmp_path / "nope")], capture_output=True, text=True)
    assert result.returncode == 2 and "no such model" in result.stderr and "Traceback" not in result.stderr


def test_inputs_are_never_written_over_even_with_overwrite(tmp_path, constant_ab_run, capsys):
    scans = tmp_path / "scans"
    scans.mkdir()
    Image.fromarray(smooth_colour_image(4, 30, 40)).save(scans / "a.png")
    original = (scans / "a.png").read_bytes()
    (tmp_path / "link").symlink_to(scans)  # the same folder under another name
    for out in (scans, tmp_path / "link"):
        code = main(["colorize", str(scans), "-o", str(out), "--model", constant_ab_run, "--overwrite"])
        err = capsys.readouterr().err
        assert code == 1 and "would replace an input photo" in err and "use --overwrite" not in err
        assert (scans / "a.png").read_bytes() == original


def test_unreadable_inputs_are_named_and_fail(tmp_path, constant_ab_run, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Image.fromarray(smooth_colour_image(5, 20, 20)).save("good.png")
    Path("dangling.png").symlink_to("nowhere.png")
    Path("loop.png").symlink_to("loop.png")
    os.mkfifo("fifo.png")  # opening it would block forever
    Path("folders/a").mkdir(parents=True)
    code = main(["colorize", "good.png", "dangling.png", "loop.png", "fifo.png", "folders/*", "-o", "out",
                 "--model", constant_ab_run])
    err = capsys.readouterr().err
    assert code == 1
    for line in ("dangling.png: broken symbolic link", "loop.png: symbolic link loop",
                 "fifo.png: not a regular file", "folders/*: matches no readable file"):
        assert line in err
    assert sorted(p.name for p in Path("out").iterdir()) == ["good.png"]


def test_a_file_without_read_permission_is_named(tmp_path, constant_ab_run, capsys, monkeypatch):
    """Mode 0 denies reading to every user but root, who reads every file (the suite runs as root
    in CI, and the interpreter lies in /root, out of another user's reach): there the OS's answer
    for this one file is made the one another user would get."""
    locked = tmp_path / "locked.png"
    Image.fromarray(smooth_colour_image(5, 20, 20)).save(locked)
    locked.chmod(0)
    if os.geteuid() == 0:
        access = os.access
        monkeypatch.setattr(os, "access", lambda path, mode, **kw: (Path(path) != locked) and access(path, mode, **kw))
    assert main(["colorize", str(locked), "-o", str(tmp_path / "out"), "--model", constant_ab_run]) == 1
    assert f"{locked}: not readable (permission denied)" in capsys.readouterr().err
    assert not (tmp_path / "out" / "locked.png").exists()


def test_output_must_be_a_folder(tmp_path, constant_ab_run, capsys):
    Image.fromarray(smooth_colour_image(5, 20, 20)).save(tmp_path / "in.png")
    assert main(["colorize", str(tmp_path / "in.png"), "-o", str(tmp_path / "result.png"),
                 "--model", constant_ab_run]) == 2
    assert "-o takes a folder" in capsys.readouterr().err and not (tmp_path / "result.png").exists()


def test_stripes_give_the_colours_of_the_whole_picture(monkeypatch):
    """Joined stripe by stripe (bounded memory), the result is that of resizing ab to the whole
    picture and joining it with the whole L, within one level."""
    import keras
    import tensorflow as tf

    from koala import graphs, inference
    from koala.color import l_ab_to_rgb, rgb_to_l
    from koala.images import to_uint8
    from koala.models import get_model

    keras.utils.set_random_seed(1)
    colorizer = Colorizer(get_model("cunet", base_filters=4), 32, 8, saturation=1.3, metadata={"model": "cunet"})
    gray = smooth_colour_image(7, 97, 61).mean(axis=-1).astype(np.uint8)
    l_full = rgb_to_l(tf.constant(np.repeat(gray[None, ..., None], 3, -1) / np.float32(255)))
    ab = inference.predict_ab(colorizer.network_fn(), l_full, 32, 8) * 1.3
    whole = to_uint8(l_ab_to_rgb(l_full, ab)[0].numpy())
    for stripe_pixels in (1 << 19, 61 * 10, 5):  # one stripe, 10 rows, one row at a time
        monkeypatch.setattr(graphs, "STRIPE_PIXELS", stripe_pixels)
        colorizer._graphs.clear()
        striped = colorizer.colorize(gray)
        assert np.abs(striped.astype(int) - whole).max() <= 1 and (striped != whole).mean() < 1e-3
        assert np.array_equal(colorizer.colorize(np.repeat(gray[..., None], 3, -1)), striped)  # RGB as gray
        pair = np.stack([np.repeat(gray[..., None], 3, -1), smooth_colour_image(8, 97, 61)]) / np.float32(255)
        batched = to_uint8(colorizer.graph()(tf.constant(pair), tf.constant(1.3)).numpy())  # photos of one size
        assert np.array_equal(batched[0], striped)
        assert np.abs(batched[1].astype(int) - colorizer.colorize(smooth_colour_image(8, 97, 61))).max() <= 1


def test_fused_per_pixel_work_gives_the_colours_op_by_op(monkeypatch):
    """A film's graphs do the per-pixel work in kernels compiled by XLA over padded stripes: the
    same L and colours as op by op, within one level, whatever the stripes (padded, or a row too
    wide to fit one, which goes op by op) and the pixels (RGB, gray, 16-bit)."""
    import keras
    import tensorflow as tf

    from koala import graphs
    from koala.models import get_model

    keras.utils.set_random_seed(1)
    colorizer = Colorizer(get_model("cunet", base_filters=4), 32, 8, saturation=1.3, metadata={"model": "cunet"})
    rgb = np.stack([smooth_colour_image(8, 97, 61), smooth_colour_image(9, 97, 61)])
    ab = tf.constant(np.random.default_rng(0).uniform(-0.5, 0.5, (2, 16, 10, 2)).astype(np.float32))
    for stripe_pixels in (1 << 19, 2 * 61 * 10, 5):  # one stripe; 10 rows, the last padded; a row does not fit
        monkeypatch.setattr(graphs, "STRIPE_PIXELS", stripe_pixels)
        for pixels in (rgb, rgb[..., :1], rgb.astype(np.uint16) * 257 + 100):
            colorizer._graphs.clear()
            pixels = tf.constant(pixels)
            op_by_op = tf.function(lambda p: graphs.working_l(p, 32, 8), autograph=False)(pixels)
            np.testing.assert_allclose(colorizer.working_graph(pixels.dtype)(pixels)[0], op_by_op, atol=1e-6)
            for out_dtype in (tf.uint8, tf.float32):
                want = tf.function(lambda p, a: graphs.join_ab(p, a, 1.3, out_dtype), autograph=False)(pixels, ab).numpy()
                fused = colorizer.join_graph(pixels.dtype, out_dtype)(pixels, ab, tf.constant(1.3)).numpy()
                if out_dtype == tf.uint8:
                    assert np.abs(fused.astype(int) - want).max() <= 1 and (fused != want).mean() < 1e-3
                else:
                    np.testing.assert_allclose(fused, want, atol=1e-5)


def test_gray_l_by_table_is_each_pixels_own_conversion():
    """Gray integer pixels take their L from a table of every level's: in a traced graph (as the
    colorize path runs) exactly what converting each pixel gives, for 8 and 16 bits."""
    import tensorflow as tf

    from koala import graphs
    from koala.color import rgb_to_l

    rng = np.random.default_rng(0)
    for dtype, levels in ((np.uint8, 256), (np.uint16, 65536)):
        gray = tf.constant(rng.integers(0, levels, (2, 300, 250, 1)).astype(dtype))
        spec = [tf.TensorSpec([None] * 4, tf.as_dtype(dtype))]
        by_table = tf.function(graphs.pixel_l, input_signature=spec, autograph=False)(gray)
        own = tf.function(lambda p: rgb_to_l(graphs.unit_rgb(p)), input_signature=spec, autograph=False)(gray)
        assert np.array_equal(by_table.numpy(), own.numpy())
        rgb = tf.constant(np.repeat(gray.numpy(), 3, axis=-1))  # not gray to the table: converted pixel by pixel
        np.testing.assert_array_equal(tf.function(graphs.pixel_l, autograph=False)(rgb), own)


def test_png_holds_exactly_the_colorized_pixels(colorizer):
    """colorize_png's PNG (deflated on every core) decodes to colorize's pixels, gray or colour."""
    import io

    for photo in (smooth_colour_image(5, 120, 90), smooth_colour_image(6, 64, 80).mean(axis=-1).astype(np.uint8)):
        with Image.open(io.BytesIO(colorizer.colorize_png(photo))) as img:
            assert np.array_equal(np.asarray(img), colorizer.colorize(photo))


def test_many_photos_give_the_pngs_each_gives_alone(colorizer, monkeypatch):
    """koala batch colorize's path: photos of one size share graph calls, and each still gets the
    bytes koala colorize writes for it."""
    from koala import inference

    photos = [smooth_colour_image(i, 40, 56) for i in range(3)]
    photos += [smooth_colour_image(3, 30, 30).mean(axis=-1).astype(np.uint8), photos[0].astype(np.uint16) * 257]
    alone = [colorizer.colorize_png(p) for p in photos]
    for call_pixels in (1 << 22, 40 * 56):  # the three of one size in one call; one photo a call
        monkeypatch.setattr(inference, "CALL_PIXELS", call_pixels)
        assert colorizer.colorize_pngs(photos) == alone


def test_arrays_over_the_pixel_limit_are_refused(monkeypatch, constant_ab_run):
    from koala import images

    monkeypatch.setattr(images, "MAX_PIXELS", 99)
    with pytest.raises(ValueError, match="too many pixels"):
        Colorizer.load(constant_ab_run).colorize(np.zeros((10, 10), np.uint8))


def test_exit_code_says_whether_anything_failed(inputs, tmp_path, constant_ab_run, capsys):
    """A re-run over a finished folder keeps every output and exits 0; a failure anywhere gives 1,
    and the summary line counts what was done, kept and failed."""
    out = tmp_path / "out"
    good = [str(inputs / "colour.jpg"), str(inputs / "sub")]
    assert main(["colorize", *good, "-o", str(out), "--model", constant_ab_run]) == 0
    assert capsys.readouterr().err.strip().splitlines()[-1] == \
        f"colorized 3 of 3 input(s) into {out}/; 0 kept (output already there; --overwrite replaces it), 0 failed"
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    assert main(["colorize", *good, "-o", str(out), "--model", constant_ab_run]) == 0
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("colorized 0 of 3 input(s)")
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == before
    assert main(["colorize", *good, str(inputs / "notes.png"), "-o", str(out), "--model", constant_ab_run]) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("colorized 0 of 4 input(s)") and last.endswith("3 kept (output already there; "
                                                                          "--overwrite replaces it), 1 failed")


def test_python_api_takes_pil_images_and_per_call_knobs(constant_ab_run, tmp_path):
    colorizer = Colorizer.load(constant_ab_run)
    rgb = smooth_colour_image(6, 30, 44)
    Image.fromarray(rgb).save(tmp_path / "p.png")
    with Image.open(tmp_path / "p.png") as img:
        from_pil = colorizer.colorize(img)
        assert img.mode == "RGB" and img.size == (44, 30)  # the caller's image is left as it was
    assert np.array_equal(from_pil, colorizer.colorize(tmp_path / "p.png"))
    gray = rgb.mean(axis=-1).astype(np.uint8)
    assert np.array_equal(colorizer.colorize(Image.fromarray(gray).convert("LA")), colorizer.colorize(gray))
    per_call = colorizer.colorize(rgb, saturation=0.5)
    assert np.array_equal(per_call, Colorizer.load(constant_ab_run, saturation=0.5).colorize(rgb))
    assert not np.array_equal(per_call, colorizer.colorize(rgb)) and colorizer.saturation == 1.0
    assert colorizer.colorize_png(rgb, saturation=0.5) == Colorizer.load(constant_ab_run, saturation=0.5).colorize_png(rgb)


@pytest.mark.parametrize("value", ["-3", "nan", "inf", "1000", "3.01"])
def test_saturation_out_of_range_is_refused_everywhere(value, constant_ab_run, tmp_path, capsys):
    Image.fromarray(smooth_colour_image(7, 20, 20)).save(tmp_path / "g.png")
    assert main(["colorize", str(tmp_path / "g.png"), "-o", str(tmp_path / "out"), "--model", constant_ab_run,
                 "--saturation", value]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"koala colorize: --saturation must be between 0 and 3; got {float(value)!r}"]
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="saturation must be between 0 and 3"):
        Colorizer.load(constant_ab_run, saturation=float(value))
    with pytest.raises(ValueError, match="saturation must be between 0 and 3"):
        Colorizer.load(constant_ab_run).colorize(np.zeros((8, 8), np.uint8), saturation=float(value))
    assert main(["export", "--model", constant_ab_run, "--out", str(tmp_path / "exp"), "--saturation", value]) == 2
    assert not (tmp_path / "exp").exists()


def test_the_ends_of_the_saturation_range_are_accepted(constant_ab_run):
    gray = np.full((16, 16), 128, np.uint8)
    assert np.ptp(Colorizer.load(constant_ab_run, saturation=0).colorize(gray)[8, 8]) <= 1  # 0: gray
    assert Colorizer.load(constant_ab_run, saturation=3).saturation == 3.0


def test_temperature_is_refused_for_a_model_without_a_distribution(constant_ab_run, tmp_path, capsys):
    Image.fromarray(smooth_colour_image(7, 20, 20)).save(tmp_path / "g.png")
    assert main(["colorize", str(tmp_path / "g.png"), "-o", str(tmp_path / "out"), "--model", constant_ab_run,
                 "--temperature", "0.5"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "temperature: cunet predicts ab directly and has no temperature" in lines[0]
    assert not list(tmp_path.glob("out/*"))  # nothing written (the folder need not even be made)
    with pytest.raises(ValueError, match="predicts ab directly"):
        Colorizer.load(constant_ab_run).colorize(np.zeros((8, 8), np.uint8), temperature=0.5)
    assert main(["colorize", str(tmp_path / "g.png"), "-o", str(tmp_path / "out"), "--model", constant_ab_run,
                 "--temperature", "0"]) == 2
    assert "--temperature must be between 0.01 and 1; got 0.0" in capsys.readouterr().err


def test_a_model_that_is_not_a_model_file_is_one_line(tmp_path, capsys):
    Image.fromarray(smooth_colour_image(7, 20, 20)).save(tmp_path / "notmodel.png")
    code = main(["colorize", str(tmp_path / "notmodel.png"), "-o", str(tmp_path / "out"),
                 "--model", str(tmp_path / "notmodel.png")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and lines == [f"koala colorize: {tmp_path / 'notmodel.png'}: not a Keras model file (a .keras "
                                   "file is a zip archive; give 'default', 'hints', a run folder or a .keras file)"]
