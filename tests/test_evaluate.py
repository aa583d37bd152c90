"""koala.evaluation.evaluate and `koala evaluate`: every metric, the gray baseline, --size, reproducibility."""
import json

import keras
import numpy as np
import pytest

from koala.cli import main
from koala.color import rgb_to_lab
from koala.evaluation import METRICS, PROTOCOL, metrics
from koala.evaluation.evaluate import evaluate, gray_baseline, load_at_size
from koala.images import list_images, to_uint8
from koala.inference import Colorizer

SIZE = 32


def test_load_at_size_crops_the_centre_square(photo_dir):
    path = list_images(photo_dir)[0]  # 48 x 64
    full = load_at_size(path)
    assert full.shape == (48, 64, 3)
    small = load_at_size(path, SIZE)
    assert small.shape == (SIZE, SIZE, 3)
    big = load_at_size(path, 96)  # upscaled: short side 96, long side 128, centre 96
    assert big.shape == (96, 96, 3)
    # The crop is the centre: the middle pixel keeps its colour (within resampling blur).
    np.testing.assert_allclose(small[16, 16], full[24, 32], atol=0.08)


def test_gray_baseline_numbers_match_a_direct_computation(constant_ab_run, photo_dir):
    paths = list_images(photo_dir)[:4]
    report = evaluate(Colorizer.load(constant_ab_run), paths, progress=False, size=SIZE)
    assert report["images"] == 4 and report["size"] == SIZE and len(report["per_image"]) == 4
    assert set(METRICS) - {"fid"} <= set(report["model"]) and set(METRICS) - {"fid"} <= set(report["gray_baseline"])
    trues = [to_uint8(load_at_size(p, SIZE)) / 255.0 for p in paths]
    grays = [to_uint8(gray_baseline(t)) / 255.0 for t in trues]
    gray = report["gray_baseline"]
    assert gray["psnr"] == pytest.approx(np.mean([metrics.psnr(g[None], t[None])[0] for g, t in zip(grays, trues)]),
                                         abs=1e-5)
    true_ab = np.stack([rgb_to_lab(t).numpy()[..., 1:] for t in trues])
    assert gray["ab_mse"] == pytest.approx(np.mean((true_ab / 110.0) ** 2), rel=0.02)  # gray ab is ~0 after 8 bits
    assert gray["colourfulness"] < 1.0 and gray["colourfulness_ratio"] < 0.02
    assert gray["ab_r2"] < 0.05  # ab = 0 explains nothing
    model = report["model"]
    # The constant (33, -22) Lab ab of the model is far more colourful than grey, with a bluish cast.
    assert model["colourfulness"] > 10 * gray["colourfulness"]
    assert model["delta_colourfulness"] == pytest.approx(model["colourfulness"] - model["colourfulness_true"])
    # Per-image scores are those of the 8-bit output against the 8-bit photo.
    pred = to_uint8(Colorizer.load(constant_ab_run).colorize_float(load_at_size(paths[0], SIZE)))[None] / 255.0
    pred_ab, true_ab0 = rgb_to_lab(pred).numpy()[..., 1:], true_ab[:1]
    first = report["per_image"][0]
    assert first["path"] == paths[0]
    assert first["bin_acc"] == pytest.approx(metrics.bin_accuracy(pred_ab, true_ab0)[0])
    assert first["auc"] == pytest.approx(metrics.ab_auc(pred_ab, true_ab0)[0])
    assert np.median(pred_ab[..., 0]) == pytest.approx(33.0, abs=3) and np.median(pred_ab[..., 1]) == pytest.approx(-22.0, abs=3)
    assert report["images_per_second"] > 0


def test_results_are_reproducible(constant_ab_run, photo_dir):
    paths = list_images(photo_dir)[:3]
    colorizer = Colorizer.load(constant_ab_run)
    first = evaluate(colorizer, paths, progress=False, size=SIZE)
    second = evaluate(colorizer, paths, progress=False, size=SIZE)
    for side in ("model", "gray_baseline"):
        for key, value in first[side].items():
            assert abs(second[side][key] - value) <= 1e-6 * max(1.0, abs(value)), (side, key)


def test_evaluate_cli_prints_a_table_and_writes_every_metric(constant_ab_run, photo_dir, tmp_path, capsys):
    inputs = keras.Input((16, 16, 3))
    features = keras.layers.Conv2D(4, 3, strides=2, activation="relu",
                                   kernel_initializer=keras.initializers.GlorotUniform(1))(inputs)
    keras.Model(inputs, features).save(tmp_path / "features.keras")
    out = tmp_path / "report.json"
    code = main(["evaluate", "--model", constant_ab_run, "--data", str(photo_dir), "--size", str(SIZE),
                 "--limit", "5", "--fid", str(tmp_path / "features.keras"), "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| metric | model | gray baseline |" in printed and "| auc |" in printed and "| fid |" in printed
    assert f"metrics as in koala's {PROTOCOL}" in printed.splitlines()[0]
    report = json.loads(out.read_text())
    assert report["images"] == 5 and report["size"] == SIZE and report["protocol"] == PROTOCOL
    assert set(METRICS) <= set(report["model"]) and set(METRICS) <= set(report["gray_baseline"])
    assert report["model"]["fid"] > 0 and report["gray_baseline"]["fid"] > 0
    # The same numbers as the Python API on the same photos.
    api = evaluate(Colorizer.load(constant_ab_run), list_images(photo_dir)[:5], progress=False, size=SIZE)
    for key, value in api["model"].items():
        assert report["model"][key] == pytest.approx(value, abs=1e-6)


def test_evaluate_cli_rejects_an_empty_folder(constant_ab_run, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "broken.png").write_bytes(b"not a png")
    assert main(["evaluate", "--model", constant_ab_run, "--data", str(tmp_path / "empty")]) == 2
    assert "no readable images" in capsys.readouterr().err


def test_the_metric_protocol_is_stated_once_in_docs_and_named_by_evaluate_help(capsys):
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / PROTOCOL).read_text()
    for key in METRICS:
        assert f"| `{key}` |" in doc, key
    for fact in ("11 x 11 Gaussian window", "ratio of means", "divided by 150", "64 px centre crops", "8-bit"):
        assert fact in doc
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    assert PROTOCOL in capsys.readouterr().out


def test_grayscale_photos_are_refused_in_one_line(tmp_path, constant_ab_run, capsys):
    from PIL import Image

    for i in range(2):
        Image.fromarray(np.full((32, 32), 60 * i + 30, np.uint8)).save(tmp_path / f"gray{i}.png")
    assert main(["evaluate", "--model", constant_ab_run, "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err  # the progress bar, then one line
    assert "koala evaluate: no colour photos to score against (2 grayscale)\n" in err and "Traceback" not in err
