"""Issue 28: a reference photo or a palette, suggested colours at a point, everywhere koala colours:
the Python API, the CLI, the REST API, the SavedModel and its client. The model is a tiny CU-Net
with global hints and a colour distribution head trained briefly on a toy world (tests/toy_global.py:
red or blue squares on green, a coin toss from gray alone); expectations come from that world's
own colours (scikit-image's Lab), not from koala's code."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image
from skimage.color import rgb2lab

from conftest import encode
from koala.cli import main
from koala.data.global_hints import GlobalHintError
from koala.inference import Colorizer
from toy_global import BLUE_AB, RED_AB, SQUARE_L, TOY_SIDE, lab_colour, toy_photo


def square_photo(ab=RED_AB, side: int = 48) -> tuple[np.ndarray, tuple[slice, slice]]:
    """A toy photo (uint8 RGB, ``side`` px) with one square of ``ab`` in its middle, and the square."""
    image = np.empty((side, side, 3), np.float32)
    image[:] = toy_photo(np.random.default_rng(0), [])[0, 0]
    inside = (slice(side // 4, 3 * side // 4), slice(side // 4, 3 * side // 4))
    image[inside] = lab_colour(SQUARE_L, ab)
    return (image * 255).round().astype(np.uint8), inside


def reference_photo(ab) -> np.ndarray:
    """A toy photo whose two squares are of ``ab``: a reference saying "the squares are this colour"."""
    return (toy_photo(np.random.default_rng(1), [ab, ab]) * 255).round().astype(np.uint8)


def mean_b(rgb: np.ndarray, where) -> float:
    return float(rgb2lab(rgb / 255.0)[where][..., 2].mean())


def hex_ab(colour: str) -> np.ndarray:
    return rgb2lab(np.array([[[int(colour[i:i + 2], 16) for i in (1, 3, 5)]]]) / 255.0)[0, 0, 1:]


@pytest.fixture(scope="module")
def toy(toy_global_model):
    return Colorizer.load(toy_global_model)


def test_a_blue_reference_makes_the_output_bluer(toy):
    photo, inside = square_photo(RED_AB)
    gray = np.asarray(Image.fromarray(photo).convert("L"))
    automatic = mean_b(toy.colorize(gray), inside)
    blue = mean_b(toy.colorize(gray, reference=reference_photo(BLUE_AB)), inside)
    red = mean_b(toy.colorize(gray, reference=reference_photo(RED_AB)), inside)
    assert blue < automatic - 5 and blue < red - 10  # b* down: bluer
    by_palette = mean_b(toy.colorize(gray, palette=[("#%02x%02x%02x" % tuple(
        np.rint(lab_colour(SQUARE_L, BLUE_AB) * 255).astype(int)), 1.0)]), inside)
    assert by_palette < automatic - 5
    # every way of giving a reference is the same reference
    ref = reference_photo(BLUE_AB)
    np.testing.assert_array_equal(toy.colorize(gray, reference=ref), toy.colorize(gray, reference=encode(ref)))
    np.testing.assert_array_equal(toy.colorize(gray, reference=ref), toy.colorize(gray, reference=Image.fromarray(ref)))


@pytest.mark.parametrize("ab", [RED_AB, BLUE_AB])
def test_suggestions_at_a_square_include_its_true_colour(toy, ab):
    photo, inside = square_photo(ab)
    gray = np.asarray(Image.fromarray(photo).convert("L"))
    found = toy.suggest(gray, 24, 24, k=4)
    assert 1 <= len(found) <= 4 and all(set(s) == {"color", "probability"} for s in found)
    probabilities = [s["probability"] for s in found]
    assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1.0 + 1e-6
    assert min(np.linalg.norm(hex_ab(s["color"]) - np.array(ab)) for s in found) <= 12  # the true colour is there
    assert len({s["color"] for s in found}) == len(found)  # merged: no colour twice


def test_refusals_name_what_and_why(toy, tiny_hint_model, tmp_path):
    photo, _ = square_photo()
    gray_reference = np.full((20, 20, 3), 128, np.uint8)
    with pytest.raises(GlobalHintError, match=r"^reference <bytes>: not an image \(unrecognised format\)$"):
        toy.colorize(photo, reference=b"these are notes")
    with pytest.raises(GlobalHintError, match=r"^reference <ndarray>: the photo has no colour \(it is grayscale\)"):
        toy.colorize(photo, reference=gray_reference)
    with pytest.raises(GlobalHintError, match=r"^palette: entry 2 \('green'\) is not a colour; expected #rrggbb$"):
        toy.colorize(photo, palette="#c02020,green")
    with pytest.raises(GlobalHintError, match=r"^palette: 17 colours; at most 16$"):
        toy.colorize(photo, palette=",".join(["#c02020"] * 17))
    with pytest.raises(ValueError, match=r"^suggest: x=48 is outside the photo \(48 x 48 px: 0 <= x < 48\)$"):
        toy.suggest(photo, 48, 3)
    plain = Colorizer.load(tiny_hint_model)
    with pytest.raises(GlobalHintError, match=rf"^reference/palette: this model \(cunet, {tiny_hint_model}\) has no "
                                              "global-hint input"):
        plain.colorize(photo, reference=reference_photo(BLUE_AB))
    with pytest.raises(ValueError, match=r"has no colour distribution head"):
        plain.suggest(photo, 3, 3)


def test_cli_colorize_with_a_reference_and_suggest(toy_global_model, toy, tmp_path, capsys):
    photo, _ = square_photo()
    (tmp_path / "scan.png").write_bytes(encode(np.asarray(Image.fromarray(photo).convert("L"))))
    (tmp_path / "ref.png").write_bytes(encode(reference_photo(BLUE_AB)))
    out = tmp_path / "out"
    assert main(["colorize", str(tmp_path / "scan.png"), "-o", str(out), "--model", str(toy_global_model),
                 "--reference", str(tmp_path / "ref.png")]) == 0
    written = np.asarray(Image.open(out / "scan.png").convert("RGB"))
    np.testing.assert_array_equal(written, toy.colorize(str(tmp_path / "scan.png"), reference=str(tmp_path / "ref.png")))
    capsys.readouterr()
    assert main(["suggest", str(tmp_path / "scan.png"), "--at", "24,24", "--k", "3", "--model", str(toy_global_model)]) == 0
    assert json.loads(capsys.readouterr().out) == toy.suggest(str(tmp_path / "scan.png"), 24, 24, k=3)


@pytest.mark.parametrize("args, reason", [
    (["--reference", "{notes}"], "reference {notes}: not an image (unrecognised format)"),
    (["--reference", "{gray}"], "reference {gray}: the photo has no colour (it is grayscale), so it cannot give any; "
                                "give a colour photo"),
    (["--palette", "#c02020,#12"], "palette: entry 2 ('#12') is not a colour; expected #rrggbb"),
    (["--palette", ",".join(["#c02020"] * 17)], "palette: 17 colours; at most 16"),
])
def test_cli_refuses_a_bad_reference_or_palette_in_one_line_and_writes_nothing(
        args, reason, toy_global_model, tmp_path, capsys):
    files = {"notes": tmp_path / "notes.jpg", "gray": tmp_path / "gray.png"}
    files["notes"].write_text("these are notes")
    files["gray"].write_bytes(encode(np.full((20, 20), 90, np.uint8)))
    (tmp_path / "scan.png").write_bytes(encode(np.full((40, 48), 120, np.uint8)))
    out = tmp_path / "out"
    args = [a.format(**files) for a in args]
    code = main(["colorize", str(tmp_path / "scan.png"), "-o", str(out), "--model", str(toy_global_model), *args])
    assert code == 2 and capsys.readouterr().err.strip().splitlines() == [f"koala colorize: {reason.format(**files)}"]
    assert not out.exists()


def test_cli_refuses_a_reference_for_a_model_without_global_hints_and_a_point_outside(
        tiny_hint_model, toy_global_model, tmp_path, capsys):
    (tmp_path / "scan.png").write_bytes(encode(np.full((40, 48), 120, np.uint8)))
    (tmp_path / "ref.png").write_bytes(encode(reference_photo(BLUE_AB)))
    out = tmp_path / "out"
    code = main(["colorize", str(tmp_path / "scan.png"), "-o", str(out), "--model", str(tiny_hint_model),
                 "--reference", str(tmp_path / "ref.png")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"koala colorize: reference/palette: this model (cunet, {tiny_hint_model}) has no "
                                 "global-hint input, so it takes no reference or palette; use the bundled default or a "
                                 "model trained with global_hints: true"]
    assert not out.exists()
    code = main(["suggest", str(tmp_path / "scan.png"), "--at", "10,40", "--model", str(toy_global_model)])
    assert code == 2 and capsys.readouterr().err.strip().splitlines() == [
        "koala suggest: suggest: y=40 is outside the photo (48 x 40 px: 0 <= y < 40)"]
    code = main(["suggest", str(tmp_path / "scan.png"), "--at", "10", "--model", str(toy_global_model)])
    assert code == 2 and "--at: expected X,Y" in capsys.readouterr().err


@pytest.fixture(scope="module")
def client(toy):
    from koala.serving.app import create_app

    return create_app(toy).test_client()


def test_rest_reference_palette_and_suggest(client, toy):
    photo, _ = square_photo()
    gray = np.asarray(Image.fromarray(photo).convert("L"))
    ref = encode(reference_photo(BLUE_AB))
    answer = client.post("/api/colorize", data={"image": (io.BytesIO(encode(gray)), "scan.png"),
                                                "reference": (io.BytesIO(ref), "blue.png")})
    assert answer.status_code == 200
    got = np.asarray(Image.open(io.BytesIO(answer.data)).convert("RGB"))
    np.testing.assert_array_equal(got, toy.colorize(gray, reference=ref))
    answer = client.post("/api/colorize", data={"image": (io.BytesIO(encode(gray)), "scan.png"), "palette": "#2050c0"})
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(answer.data)).convert("RGB")),
                                  toy.colorize(gray, palette="#2050c0"))
    answer = client.post("/api/suggest?x=24&y=24&k=3", data={"image": (io.BytesIO(encode(gray)), "scan.png")})
    assert answer.status_code == 200 and answer.get_json() == toy.suggest(gray, 24, 24, k=3)
    assert client.get("/healthz").get_json()["supports_reference"] is True


@pytest.mark.parametrize("url, fields, reason", [
    ("/api/colorize", {"reference": (b"notes", "notes.jpg")}, "reference notes.jpg: not an image (unrecognised format)"),
    ("/api/colorize", {"palette": "#c02020,red"}, "palette: entry 2 ('red') is not a colour; expected #rrggbb"),
    ("/api/suggest?x=99&y=3", {}, "suggest: x=99 is outside the photo (48 x 48 px: 0 <= x < 48)"),
    ("/api/suggest?y=3", {}, "no 'x' (a query parameter, in the photo's pixels)"),
])
def test_rest_refuses_with_400_and_one_line(client, url, fields, reason):
    photo, _ = square_photo()
    data = {"image": (io.BytesIO(encode(photo)), "scan.png"),
            **{k: (io.BytesIO(v[0]), v[1]) if isinstance(v, tuple) else v for k, v in fields.items()}}
    answer = client.post(url, data=data)
    assert answer.status_code == 400 and answer.get_json() == {"error": reason}


def test_the_savedmodel_and_its_client_take_the_reference(toy_global_model, toy, tmp_path):
    import tensorflow as tf

    from koala.export import export
    from koala.serving.client import global_hint, rest_global_request

    target = export(toy_global_model, tmp_path / "exported")
    loaded = tf.saved_model.load(str(target))
    photo, _ = square_photo()
    gray = encode(np.asarray(Image.fromarray(photo).convert("L")))
    ref = encode(reference_photo(BLUE_AB))
    vector = global_hint(reference=ref)
    body = rest_global_request([gray], [np.zeros((0, 6), np.float32)], [vector])  # what the client sends
    instance = body["instances"][0]
    pngs = loaded.signatures["colorize_global"](
        image_bytes=tf.constant([gray]), hints=tf.constant([instance["hints"]], tf.float32, shape=[1, 0, 6]),
        global_hints=tf.constant([instance["global_hints"]], tf.float32))["png_bytes"].numpy()
    got = np.asarray(Image.open(io.BytesIO(pngs[0])).convert("RGB"))
    np.testing.assert_array_equal(got, toy.colorize(gray, reference=ref))


@pytest.fixture(scope="module")
def toy_folder(tmp_path_factory):
    """Two sources of three toy photos each (PNG, 32 px)."""
    folder = tmp_path_factory.mktemp("toy-photos")
    rng = np.random.default_rng(7)
    for source in ("fields", "parks"):
        (folder / source).mkdir()
        for i in range(3):
            (folder / source / f"{i}.png").write_bytes(encode((toy_photo(rng) * 255).round().astype(np.uint8)))
    return folder


def test_evaluate_reference_and_suggest(toy_global_model, toy_folder, tmp_path, capsys):
    out = tmp_path / "reference.json"
    assert main(["evaluate", "--model", str(toy_global_model), "--data", str(toy_folder), "--reference", "self,other",
                 "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["references"]) == {"self", "other"} and report["images"] == 6
    assert set(report["automatic"]["sources"]) == {"fields", "parks"}
    assert report["references"]["self"]["psnr"] > report["automatic"]["psnr"] + 1  # its own colours help
    assert all(report["pairs"][p] != p and report["pairs"][p].split("/")[-2] == p.split("/")[-2] for p in report["pairs"])
    assert out.with_suffix(".png").stat().st_size > 0
    out = tmp_path / "suggest.json"
    assert main(["evaluate", "--model", str(toy_global_model), "--data", str(toy_folder), "--suggest", "4",
                 "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["k"] == 4 and report["points"] == 60
    assert report["suggest_hit"] >= report["automatic_hit"] and report["suggest_hit"] > 0.8
    assert "| all | 60 |" in capsys.readouterr().out


@pytest.mark.slow
def test_batch_colorize_with_a_reference_matches_koala_colorize(toy_global_model, toy_folder, tiny_hint_model,
                                                                 tmp_path, capsys):
    pytest.importorskip("apache_beam")
    ref = tmp_path / "blue.png"
    ref.write_bytes(encode(reference_photo(BLUE_AB)))
    single, batch = tmp_path / "single", tmp_path / "batch"
    assert main(["colorize", str(toy_folder / "fields"), "-o", str(single), "--model", str(toy_global_model),
                 "--reference", str(ref)]) == 0
    assert main(["batch", "colorize", str(toy_folder / "fields"), "-o", str(batch), "--model", str(toy_global_model),
                 "--reference", str(ref), "--runner=DirectRunner"]) == 0
    for name in ("0.png", "1.png", "2.png"):
        np.testing.assert_array_equal(np.asarray(Image.open(batch / name)), np.asarray(Image.open(single / name)))
    capsys.readouterr()
    code = main(["batch", "colorize", str(toy_folder / "fields"), "-o", str(tmp_path / "none"), "--model",
                 str(tiny_hint_model), "--reference", str(ref), "--runner=DirectRunner"])
    assert code == 2 and "has no global-hint input" in capsys.readouterr().err and not (tmp_path / "none").exists()
