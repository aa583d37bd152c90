"""koala.evaluation.evaluate and `koala evaluate`: every metric, the gray baseline, --size, reproducibility."""
import json

import keras
import numpy as np
import pytest

from koala.cli import main
from skimage.color import lab2rgb, rgb2lab
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from koala.color import ab_bins
from koala.evaluation import METRICS, PROTOCOL
from koala.evaluation.evaluate import PER_IMAGE, evaluate, load_at_size, summarise, write_report
from koala.images import list_images
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


def to_8bit(rgb: np.ndarray) -> np.ndarray:
    return np.clip(np.round(rgb * 255.0), 0, 255) / 255.0


def reference_bins(ab: np.ndarray) -> np.ndarray:
    """Nearest bin of each pixel, by brute force in float64."""
    return np.linalg.norm(ab[..., None, :] - ab_bins().astype(np.float64), axis=-1).argmin(-1)


def test_gray_baseline_and_per_image_scores_match_scikit_image(constant_ab_run, photo_dir):
    """Expectations from scikit-image's Lab conversion and hand-written PSNR and bin accuracy,
    not from koala's colour code or metrics."""
    paths = list_images(photo_dir)[:4]
    report = evaluate(Colorizer.load(constant_ab_run), paths, progress=False, size=SIZE)
    assert report["images"] == 4 and report["size"] == SIZE and len(report["per_image"]) == 4
    assert set(METRICS) - {"fid"} <= set(report["model"]) and set(METRICS) - {"fid"} <= set(report["gray_baseline"])
    trues = [to_8bit(load_at_size(p, SIZE)) for p in paths]
    true_lab = [rgb2lab(t) for t in trues]
    grays = [to_8bit(lab2rgb(np.concatenate([lab[..., :1], np.zeros_like(lab[..., 1:])], -1))) for lab in true_lab]
    psnr = [10 * np.log10(1.0 / np.mean((g - t) ** 2)) for g, t in zip(grays, trues)]
    gray = report["gray_baseline"]
    assert gray["psnr"] == pytest.approx(np.mean(psnr), abs=0.05)
    true_ab = np.stack([lab[..., 1:] for lab in true_lab])
    assert gray["ab_mse"] == pytest.approx(np.mean((true_ab / 110.0) ** 2), rel=0.02)  # gray ab is ~0 after 8 bits
    assert gray["colourfulness"] < 1.0 and gray["colourfulness_ratio"] < 0.02
    assert gray["ab_r2"] < 0.05  # ab = 0 explains nothing
    model = report["model"]
    # The constant (33, -22) Lab ab of the model is far more colourful than grey, with a bluish cast.
    assert model["colourfulness"] > 10 * gray["colourfulness"]
    # Per-image scores are those of the 8-bit output against the 8-bit photo.
    pred = to_8bit(Colorizer.load(constant_ab_run).colorize_float(load_at_size(paths[0], SIZE)))
    pred_ab = rgb2lab(pred)[..., 1:]
    first = report["per_image"][0]
    assert first["path"] == paths[0]
    same_bin = np.mean(reference_bins(pred_ab) == reference_bins(true_ab[0]))
    assert first["bin_acc"] == pytest.approx(same_bin, abs=0.01)
    assert np.median(pred_ab[..., 0]) == pytest.approx(33.0, abs=3) and np.median(pred_ab[..., 1]) == pytest.approx(-22.0, abs=3)
    assert report["images_per_second"] > 0


def test_summaries_are_means_except_pooled_r2_and_the_ratio_of_means():
    """Hand-worked: colourfulness 10 and 50 against photos of 20 and 40 is a ratio of means of
    1.0 (the mean of ratios would be 0.875) and a delta of 0; R^2 pools the pixels of both images
    (true a = 1, 3 and 5, 7 about their mean 4: SST 20; the first image, predicted 0, has SSE 10)."""
    rows = [{**dict.fromkeys(PER_IMAGE, 1.0), "colourfulness": 10.0, "colourfulness_true": 20.0,
             "delta_colourfulness": -10.0, "psnr": 20.0, "r2_terms": [10, 2, 4, 0, 10, 0]},
            {**dict.fromkeys(PER_IMAGE, 1.0), "colourfulness": 50.0, "colourfulness_true": 40.0,
             "delta_colourfulness": 10.0, "psnr": 30.0, "r2_terms": [0, 2, 12, 0, 74, 0]}]
    summary = summarise(rows)
    assert summary["colourfulness_ratio"] == pytest.approx(1.0)
    assert summary["delta_colourfulness"] == pytest.approx(0.0)
    assert summary["ab_r2"] == pytest.approx(0.5)
    assert summary["psnr"] == pytest.approx(25.0) and summary["colourfulness"] == pytest.approx(30.0)


def test_model_scores_are_scikit_images_whatever_the_order(constant_ab_run, photo_dir):
    """Each photo's PSNR and SSIM are scikit-image's on the 8-bit output and photo, the summary is
    their mean, and a photo scores the same whichever photos it is evaluated with, in any order."""
    paths = list_images(photo_dir)[:3]
    colorizer = Colorizer.load(constant_ab_run)
    report = evaluate(colorizer, paths, progress=False, size=SIZE)
    reordered = evaluate(colorizer, paths[::-1], progress=False, size=SIZE)
    alone = evaluate(colorizer, paths[1:2], progress=False, size=SIZE)
    expected = []
    for path in paths:
        true = to_8bit(load_at_size(path, SIZE))
        pred = to_8bit(colorizer.colorize_float(load_at_size(path, SIZE)))
        expected.append({"psnr": peak_signal_noise_ratio(true, pred, data_range=1.0),
                         "ssim": structural_similarity(pred, true, gaussian_weights=True, sigma=1.5,
                                                       use_sample_covariance=False, data_range=1.0, channel_axis=-1)})
    for row, want in zip(report["per_image"], expected):
        assert row["psnr"] == pytest.approx(want["psnr"], abs=1e-3) and row["ssim"] == pytest.approx(want["ssim"], abs=1e-4)
    assert report["model"]["psnr"] == pytest.approx(np.mean([e["psnr"] for e in expected]), abs=1e-3)
    scores = lambda row: {key: value for key, value in row.items() if key != "path"}  # noqa: E731
    by_path = {row["path"]: scores(row) for row in reordered["per_image"]}
    for row in report["per_image"]:
        assert by_path[row["path"]] == pytest.approx(scores(row), rel=1e-6, abs=1e-9)
    assert scores(alone["per_image"][0]) == pytest.approx(scores(report["per_image"][1]), rel=1e-6, abs=1e-9)


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


def test_a_report_is_written_with_its_plot_beside_it(tmp_path):
    """The one writer of the frontier's and the hints curve's reports: JSON, then the given plot."""
    drawn = []

    def plot(report, path):
        drawn.append(report)
        path.write_bytes(b"png")

    report = {"gray_baseline": {"psnr": 23.5}, "sweep": []}
    json_path, plot_path = write_report(report, str(tmp_path / "f.json"), plot)
    assert (json_path, plot_path) == (tmp_path / "f.json", tmp_path / "f.png")
    assert json.loads(json_path.read_text()) == report and json_path.read_text().endswith("}\n")
    assert drawn == [report] and plot_path.read_bytes() == b"png"
