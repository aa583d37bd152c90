"""A person's colour hints: the one format, its checks, painting it at the working size, and a model
that takes hints through Colorizer and `koala colorize --hints`."""
from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from skimage.color import rgb2lab

from conftest import HINT_MODEL_SATURATION, photo
from koala.cli import main
from koala.data.hints import (
    DEFAULT_PATCH,
    HintError,
    parse_hints,
    rasterise_hints,
    read_hints,
    simulate_user_hints,
)
from koala.inference import Colorizer

TOY_SIDE = 32  # the toy hint model's working size


def test_a_hint_list_becomes_a_table_of_position_radius_and_colour():
    table = parse_hints([{"x": 3, "y": 4.5, "color": "#FF0000"}, {"x": 0, "y": 9, "color": "#0080ff", "radius": 2}],
                        (10, 10))
    np.testing.assert_allclose(table, [[3, 4.5, 0, 1, 0, 0], [0, 9, 2, 0, 128 / 255, 1]], atol=1e-6)
    assert parse_hints([]).shape == (0, 6)
    np.testing.assert_array_equal(parse_hints([{"x": np.int64(3), "y": np.float32(4), "color": "#ffffff"}]),
                                  [[3, 4, 0, 1, 1, 1]])  # NumPy numbers from Python callers


@pytest.mark.parametrize("hints, reason", [
    ({"x": 1}, "hints must be a list of objects; got dict"),
    ([{"x": 1, "y": 1, "color": "#ffffff"}, [1, 2]], "hint 1: must be an object with x, y and color; got [1, 2]"),
    ([{"x": 1, "color": "#ffffff"}], "hint 0: no 'y'"),
    ([{"x": 1, "y": 2, "color": "red"}], 'hint 0: color "red" is not a colour (write it as #rrggbb)'),
    ([{"x": 1, "y": 2, "color": "#ff00"}], 'hint 0: color "#ff00" is not a colour (write it as #rrggbb)'),
    ([{"x": "1", "y": 2, "color": "#ffffff"}], 'hint 0: x must be a number; got "1"'),
    ([{"x": 1, "y": 2, "color": "#ffffff", "radius": 0}], "hint 0: radius must be above 0 px; got 0"),
    ([{"x": 1, "y": 2, "color": "#ffffff", "colour": "#000000"}],
     "hint 0: unknown field(s) 'colour' (fields: x, y, color, radius)"),
    ([{"x": 1, "y": 1, "color": "#ffffff"}, {"x": 40, "y": 1, "color": "#ffffff"}],
     "hint 1: x=40 is outside the photo (40 x 30 px: 0 <= x < 40)"),
    ([{"x": 1, "y": -1, "color": "#ffffff"}], "hint 0: y=-1 is outside the photo (40 x 30 px: 0 <= y < 30)"),
    ([{"x": 1, "y": 1, "color": "#ffffff"}] * 1001, "too many hints (1,001; at most 1,000)"),
    ([{"x": 1, "y": 1, "color": "#ffffff"}, {"x": 1, "y": 1, "color": ("#fff", object)}],
     "hint 1: color ('#fff', <class 'object'>) is not a colour (write it as #rrggbb)"),
])
def test_bad_hints_are_one_line_naming_the_hint(hints, reason):
    with pytest.raises(HintError) as error:
        parse_hints(hints, (40, 30))
    assert str(error.value) == reason


def test_a_hints_file_names_itself_in_its_errors(tmp_path):
    good, broken, bad = tmp_path / "good.json", tmp_path / "broken.json", tmp_path / "bad.json"
    good.write_text(json.dumps([{"x": 5, "y": 6, "color": "#00ff00"}]))
    broken.write_text("[{x: 1}]")
    bad.write_text(json.dumps([{"x": 5, "y": 6, "color": "green"}]))
    np.testing.assert_allclose(read_hints(good), [[5, 6, 0, 0, 1, 0]])
    with pytest.raises(HintError, match=r"^.*broken\.json: not JSON \(Expecting property name"):
        read_hints(broken)
    with pytest.raises(HintError, match=r"bad\.json: hint 0: color \"green\" is not a colour"):
        read_hints(bad)
    with pytest.raises(HintError, match=r"missing\.json: cannot read \(No such file or directory\)"):
        read_hints(tmp_path / "missing.json")


def test_hints_are_painted_as_square_patches_at_the_working_size():
    # A 80 x 40 photo (width x height) at a working shape of 20 x 40: scale 1/2.
    table = parse_hints([{"x": 21, "y": 9, "color": "#ff0000"}, {"x": 70, "y": 30, "color": "#0000ff", "radius": 4}])
    channels = rasterise_hints(table[None], tf.constant([40, 80]), tf.constant([20, 40])).numpy()[0]
    assert channels.shape == (20, 40, 3)
    red, blue = (rgb2lab(np.array([[c]], np.float64))[0, 0, 1:] / 110 for c in ([1, 0, 0], [0, 0, 1]))
    mask = np.zeros((20, 40), bool)
    mask[4 - 2:4 + 3, 10 - 2:10 + 3] = True  # centre (row 4.75 -> 4, col 10.75 -> 10), 5 px: DEFAULT_PATCH
    mask_blue = np.zeros((20, 40), bool)
    mask_blue[15 - 2:15 + 3, 35 - 2:35 + 3] = True  # radius 4 photo px -> 2 working px: 5 px
    np.testing.assert_array_equal(channels[..., 2], mask | mask_blue)
    np.testing.assert_allclose(channels[mask][:, :2], np.broadcast_to(red, (mask.sum(), 2)), atol=1e-3)
    np.testing.assert_allclose(channels[mask_blue][:, :2], np.broadcast_to(blue, (mask_blue.sum(), 2)), atol=1e-3)
    assert np.all(channels[~(mask | mask_blue)] == 0)
    assert DEFAULT_PATCH == 5


def test_simulated_hints_are_the_mean_colour_of_patches_near_the_centre():
    rgb = np.zeros((60, 90, 3), np.float32)
    rgb[:, :45] = (0.8, 0.1, 0.1)  # red left half, blue right half
    rgb[:, 45:] = (0.1, 0.1, 0.8)
    hints = simulate_user_hints(rgb, seed=3, count=40, patch=5)
    assert hints == simulate_user_hints(rgb, seed=3, count=40, patch=5)  # seeded
    assert simulate_user_hints(rgb, seed=3, count=7, patch=5) == hints[:7]  # fewer: the first of the same draw
    assert simulate_user_hints(rgb, seed=4, count=7, patch=5) != hints[:7]
    eight_bit = simulate_user_hints((rgb * 255).round().astype(np.uint8), seed=3, count=40, patch=5)
    assert [(h["x"], h["y"]) for h in eight_bit] == [(h["x"], h["y"]) for h in hints]
    xs, ys = np.array([h["x"] for h in hints]), np.array([h["y"] for h in hints])
    assert abs(xs.mean() - 45) < 8 and abs(ys.mean() - 30) < 6  # around the centre
    assert 5 < xs.std() < 40
    for hint in hints:
        if hint["x"] <= 42 or hint["x"] >= 47:  # patches wholly on one side have that side's colour
            colour = [int(hint["color"][i:i + 2], 16) for i in (1, 3, 5)]
            side = (204, 26, 26) if hint["x"] < 45 else (26, 26, 204)
            assert np.abs(np.subtract(colour, side)).max() <= 1, hint  # through Lab and back
    parse_hints(hints, (90, 60))  # in the user format, inside the photo


def test_hints_for_a_model_without_hint_inputs_are_refused(tiny_model):
    colorizer = Colorizer.load(tiny_model)
    with pytest.raises(ValueError, match=r"^hints: this model \(cunet\) takes no hints") as refused:
        colorizer.colorize(np.zeros((20, 20), np.uint8), hints=[{"x": 1, "y": 1, "color": "#ff0000"}])
    assert "the bundled default" in str(refused.value) and "--" not in str(refused.value)  # the CLI adds its --model
    assert colorizer.colorize(np.zeros((20, 20), np.uint8), hints=[]).shape == (20, 20, 3)


def test_a_hint_model_without_hints_is_its_automatic_colorizer(tiny_hint_model):
    colorizer = Colorizer.load(tiny_hint_model)
    assert colorizer.takes_hints
    gray = np.asarray(Image.new("L", (48, 40), 120))
    automatic = colorizer.colorize(gray)
    np.testing.assert_array_equal(automatic, colorizer.colorize(gray, hints=[]))
    hinted = colorizer.colorize(gray, hints=[{"x": 10, "y": 10, "color": "#00ff00"}])
    assert np.abs(hinted.astype(int) - automatic).max() > 10
    with pytest.raises(HintError, match=r"hint 0: x=48 is outside the photo \(48 x 40 px"):
        colorizer.colorize(gray, hints=[{"x": 48, "y": 10, "color": "#00ff00"}])
    graphs = len(colorizer._graphs)
    colorizer.colorize(gray, hints=[{"x": 1, "y": 1, "color": "#00ff00"}] * 7)
    assert len(colorizer._graphs) == graphs  # any number of hints: the same traced graph


def test_a_saturation_holds_with_and_without_hints(tiny_hint_model):
    """The tuned saturation applies to every photo, hinted or not (hinted colours are kept by
    dividing each hint by it on the way in: test_hints_leave_the_rest_alone)."""
    tuned = Colorizer.load(tiny_hint_model)
    assert tuned.saturation == HINT_MODEL_SATURATION
    gray, hint = photo(gray=True), [{"x": 10, "y": 10, "color": "#00ff00"}]
    np.testing.assert_array_equal(tuned.colorize(gray), tuned.colorize(gray, saturation=HINT_MODEL_SATURATION))
    assert np.abs(tuned.colorize(gray).astype(int) - tuned.colorize(gray, saturation=1.0)).max() > 3
    np.testing.assert_array_equal(tuned.colorize(gray, hints=hint),
                                  tuned.colorize(gray, saturation=HINT_MODEL_SATURATION, hints=hint))


def test_hints_leave_the_rest_alone():
    """Issue 28: a hinted colour comes out as given at any saturation, and the rest of the photo keeps
    the tuned saturation (before, a photo with hints was coloured at 1 all over). A stand-in network
    whose ab is the hint channels' ab where a hint is painted and a constant elsewhere shows it
    exactly: the expectations are the hint's own a*b* (scikit-image) and the constant times the
    saturation."""
    import keras
    from skimage.color import lab2rgb

    from koala.color import AB_NORM

    l_in = keras.Input((None, None, 1), name="L")
    hints_in = keras.Input((None, None, 3), name="hints")
    elsewhere = np.array([0.2, -0.1], np.float32)  # normalised ab
    ab = keras.layers.Lambda(lambda h: h[..., :2] + (1.0 - h[..., 2:]) * elsewhere)(hints_in)
    network = keras.Model({"L": l_in, "hints": hints_in}, ab)
    gray = np.full((64, 80), 128, np.uint8)
    lightness = float(rgb2lab(np.full((1, 1, 3), 128 / 255.0))[0, 0, 0])
    wanted = np.array([30.0, 20.0])  # a*b* of the hint
    colour = "#%02x%02x%02x" % tuple(np.rint(lab2rgb(np.array([[[lightness, *wanted]]]))[0, 0] * 255).astype(int))
    hint = [{"x": 5, "y": 5, "color": colour}]
    for saturation in (1.0, 1.4, 2.0):
        colorizer = Colorizer(network, image_size=32, multiple=8, saturation=saturation, metadata={"model": "cunet"})
        out = lab_of(colorizer.colorize(gray, hints=hint))
        hint_colour = lab_of(np.array([[[int(colour[i:i + 2], 16) for i in (1, 3, 5)]]], np.uint8))[0, 0, 1:]
        np.testing.assert_allclose(out[5, 5, 1:], hint_colour, atol=1.5)  # as given
        np.testing.assert_allclose(out[40:, 40:, 1:].mean(axis=(0, 1)), elsewhere * AB_NORM * saturation, atol=1.5)


def toy_photos(rng: np.random.Generator, count: int) -> np.ndarray:
    """Flat-coloured squares on a flat-coloured background: float RGB (count, 32, 32, 3)."""
    images = np.empty((count, TOY_SIDE, TOY_SIDE, 3), np.float32)
    images[:] = rng.uniform(0, 1, (count, 1, 1, 3))
    for image in images:
        for _ in range(rng.integers(1, 3)):
            side = rng.integers(6, 13)
            top, left = rng.integers(0, TOY_SIDE - side, 2)
            image[top:top + side, left:left + side] = rng.uniform(0, 1, 3)
    return images


@pytest.fixture(scope="module")
def toy_hint_model(tmp_path_factory):
    """A tiny CU-Net with hint inputs trained on toy photos with simulated hints (as koala trains the
    real one): squares take the colour of a hint inside them. A run folder."""
    import keras

    from koala.color import rgb_to_lab, split_lab
    from koala.data.hints import simulate_hints
    from koala.models import get_model
    from conftest import save_run

    keras.utils.set_random_seed(0)
    l_norm, ab = split_lab(rgb_to_lab(toy_photos(np.random.default_rng(0), 1024)))
    data = (tf.data.Dataset.from_tensor_slices((l_norm, ab)).repeat().shuffle(1024, seed=0).batch(16)
            .enumerate()
            .map(lambda i, pair: ({"L": pair[0], "hints": simulate_hints(pair[1], tf.stack([tf.constant(0, tf.int64), i]))},
                                  pair[1])))
    model = get_model("cunet", base_filters=8, hints=True)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="mse")
    model.fit(data, steps_per_epoch=TOY_STEPS, epochs=1, verbose=0)
    return save_run(tmp_path_factory.mktemp("toy-hints"), model, image_size=TOY_SIDE,
                    model_args={"base_filters": 8, "hints": True})


TOY_STEPS = 400


def lab_of(rgb: np.ndarray) -> np.ndarray:
    return rgb2lab(rgb / 255.0)


def test_a_red_hint_turns_a_gray_square_red_and_leaves_the_rest(toy_hint_model):
    photo = np.full((64, 64), 80, np.uint8)  # a dark background
    photo[12:32, 12:32] = 170  # a lighter square, far from the bottom-right corner
    colorizer = Colorizer.load(toy_hint_model)
    automatic = lab_of(colorizer.colorize(photo))
    hinted = lab_of(colorizer.colorize(photo, hints=[{"x": 22, "y": 22, "color": "#ff0000"}]))
    square, far = (slice(14, 30), slice(14, 30)), (slice(48, 64), slice(48, 64))
    change = np.abs(hinted[..., 1:] - automatic[..., 1:]).sum(axis=-1)  # Lab units of ab moved by the hint
    assert hinted[square][..., 1].mean() > automatic[square][..., 1].mean() + 20  # a* up: red
    assert np.median(hinted[square][..., 1]) > 20
    assert change[far].mean() < 0.25 * change[square].mean()  # far away: (nearly) as without the hint
    assert np.abs(hinted[..., 0] - automatic[..., 0]).mean() < 0.5  # L is the photo's (but for gamut clipping)


def test_cli_colorizes_one_photo_with_a_hints_file(tiny_hint_model, tmp_path, capsys):
    photo = tmp_path / "scan.png"
    Image.new("L", (48, 40), 120).save(photo)
    hints = tmp_path / "scan.json"
    hints.write_text(json.dumps([{"x": 10, "y": 10, "color": "#00ff00", "radius": 3}]))
    assert main(["colorize", str(photo), "-o", str(tmp_path / "out"), "--model", str(tiny_hint_model),
                 "--hints", str(hints)]) == 0
    written = np.asarray(Image.open(tmp_path / "out" / "scan.png").convert("RGB"))
    expected = Colorizer.load(tiny_hint_model).colorize(str(photo), hints=json.loads(hints.read_text()))
    np.testing.assert_array_equal(written, expected)
    assert not np.array_equal(written, Colorizer.load(tiny_hint_model).colorize(str(photo)))


@pytest.mark.parametrize("content, reason", [
    ('[{"x": 10, "y": 10, "color": "blue"}]', '{hints}: hint 0: color "blue" is not a colour (write it as #rrggbb)'),
    ('{"x": 10}', "{hints}: hints must be a list of objects; got dict"),
    ("[1", "{hints}: not JSON (Expecting ',' delimiter: line 1 column 3 (char 2))"),
    ('[{"x": 99, "y": 10, "color": "#0000ff"}]',
     "--hints {hints}: hint 0: x=99 is outside the photo (48 x 40 px: 0 <= x < 48)"),
])
def test_cli_refuses_bad_hints_with_one_line_and_writes_nothing(content, reason, tiny_hint_model, tmp_path, capsys):
    photo, hints, out = tmp_path / "scan.png", tmp_path / "h.json", tmp_path / "out"
    Image.new("L", (48, 40), 120).save(photo)
    hints.write_text(content)
    code = main(["colorize", str(photo), "-o", str(out), "--model", str(tiny_hint_model), "--hints", str(hints)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"koala colorize: {reason.format(hints=hints)}"]
    assert not (out / "scan.png").exists()


def test_cli_hints_need_one_photo_and_a_model_that_takes_them(tiny_model, tiny_hint_model, tmp_path, capsys):
    for name in ("a.png", "b.png"):
        Image.new("L", (48, 40), 120).save(tmp_path / name)
    hints = tmp_path / "h.json"
    hints.write_text('[{"x": 1, "y": 1, "color": "#ff0000"}]')
    out = tmp_path / "out"
    assert main(["colorize", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "-o", str(out),
                 "--model", str(tiny_hint_model), "--hints", str(hints)]) == 2
    assert capsys.readouterr().err.strip() == f"koala colorize: --hints {hints}: give one photo with a hints file (got 2 inputs)"
    assert main(["colorize", str(tmp_path / "*.png"), "-o", str(out), "--model", str(tiny_hint_model),
                 "--hints", str(hints)]) == 2
    assert "names 2 photos; a hints file is for one photo" in capsys.readouterr().err
    assert main(["colorize", str(tmp_path / "a.png"), "-o", str(out), "--model", str(tiny_model),
                 "--hints", str(hints)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("koala colorize: hints: this model (cunet) takes no hints") and err.endswith("(--model hints)")
    assert not out.exists() or not any(out.iterdir())


def test_the_bundled_default_takes_hints_and_is_named_hints_too(monkeypatch, tmp_path):
    from koala import runs

    assert runs.BUNDLED["hints"] == runs.BUNDLED["default"] == runs.WEIGHTS_DIR / "default.keras"
    assert runs.model_metadata(runs.resolve_model("hints"))["model_args"]["hints"] is True
    monkeypatch.setitem(runs.BUNDLED, "hints", tmp_path / "default.keras")
    with pytest.raises(FileNotFoundError, match=r"^hints: the bundled model default\.keras is not installed"):
        runs.resolve_model("hints")
    (tmp_path / "default.keras").write_bytes(b"")
    assert runs.resolve_model("hints") == tmp_path / "default.keras"


def test_evaluate_scores_each_number_of_hints_beside_ideepcolor(tiny_hint_model, tmp_path, capsys):
    from koala.evaluation.evaluate import evaluate
    from koala.images import list_images

    data = tmp_path / "val"
    for source in ("flat", "squares"):
        (data / source).mkdir(parents=True)
    for i, rgb in enumerate(toy_photos(np.random.default_rng(7), 6)):
        big = np.kron(rgb, np.ones((2, 2, 1)))  # 64 px
        Image.fromarray((big * 255).round().astype(np.uint8)).save(data / ("flat", "squares")[i % 2] / f"{i}.png")
    out = tmp_path / "curve.json"
    assert main(["evaluate", "--model", str(tiny_hint_model), "--data", str(data), "--hints", "20,0,5",
                 "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    psnr = {p["hints"]: p["psnr"] for p in report["hints"]}
    assert sorted(psnr) == [0, 5, 20] and report["images"] == 6 and report["seed"] == 0
    automatic = evaluate(Colorizer.load(tiny_hint_model), list_images(data), progress=False)
    assert psnr[0] == pytest.approx(automatic["model"]["psnr"], abs=1e-6)  # no hints: koala evaluate's score
    assert report["gray_baseline"]["psnr"] == pytest.approx(automatic["gray_baseline"]["psnr"], abs=1e-6)
    assert abs(psnr[5] - psnr[0]) > 0.01 and abs(psnr[20] - psnr[5]) > 0.01  # the hints were applied
    assert all(set(p["sources"]) == {"flat", "squares"} and p["sources"]["flat"]["images"] == 3
               for p in report["hints"])
    assert report["reference"]["psnr"]["10"] == 28.42  # ideepcolor's curve travels with ours
    assert Image.open(out.with_suffix(".png")).format == "PNG"
    table = capsys.readouterr().out
    assert "| 20 |" in table and "ideepcolor gain" in table and "+4.91" in table  # their 20 hints: 29.34 - 24.43


def test_evaluate_hints_needs_a_hint_model_and_counts(tiny_model, tmp_path, capsys):
    args = ["evaluate", "--model", str(tiny_model), "--data", str(tmp_path), "--out", str(tmp_path / "h.json")]
    assert main([*args, "--hints", "1,x"]) == 2
    assert capsys.readouterr().err.strip() == ("koala evaluate: --hints: expected comma-separated numbers of hints "
                                               "like 0,1,2,5,10; got '1,x'")
    Image.new("RGB", (40, 32), (200, 30, 30)).save(tmp_path / "red.png")
    assert main([*args, "--hints", "0,5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("koala evaluate: --hints: this model (cunet) takes no hints") and err.endswith("(--model hints)")
    assert not (tmp_path / "h.json").exists()
