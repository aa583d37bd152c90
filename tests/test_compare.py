"""`koala compare`: config resolution, the report's layout, and the smoke preset end to end."""
import json
from pathlib import Path

import pytest
from PIL import Image

from conftest import save_run
from koala.cli import main
from koala.evaluation import METRICS
from koala.evaluation.compare import config as compare_config
from koala.evaluation.compare import runner
from koala.evaluation.compare.plots import grid_rows
from koala.models import MODELS


def test_models_all_follows_the_registry_and_gets_each_architectures_args(tmp_path):
    cc = compare_config.load(preset="smoke", overrides=[f"out={tmp_path}"])
    entries = runner.entries(cc)
    assert [e.label for e in entries] == list(MODELS)
    for entry in entries:
        assert entry.cfg.model == entry.arch == entry.label
        assert entry.cfg.model_args == MODELS[entry.arch].smoke_args  # from the model's own file
        assert entry.run == tmp_path / "runs" / entry.label
        # the same split and budget for everyone
        assert (entry.cfg.data.image_size, entry.cfg.data.batch_size) == (32, 4)
        assert (entry.cfg.train.epochs, entry.cfg.train.steps_per_epoch) == (2, 4)


def test_model_entries_can_override_training_or_load_a_run(tmp_path, constant_ab_run):
    cc = compare_config.from_dict({"out": str(tmp_path), "train": {"preset": "smoke"},
                                "models": {"cunet_mse": {"model": "cunet", "train": {"loss": "mse"}},
                                           "bundled": {"run": constant_ab_run}},
                                "model_args": {"cunet": {"base_filters": 4}}})
    trained, loaded = runner.entries(cc)
    assert (trained.label, trained.arch, trained.cfg.train.loss) == ("cunet_mse", "cunet", "mse")
    assert trained.cfg.model_args == {"base_filters": 4} and trained.cfg.train.epochs == 2
    assert loaded.cfg is None and loaded.arch == "cunet" and str(loaded.run) == constant_ab_run
    with pytest.raises(ValueError, match="unknown model 'vgg'"):
        runner.entries(compare_config.from_dict({"models": ["vgg"]}))
    with pytest.raises(ValueError, match="unknown compare config key"):
        compare_config.from_dict({"modle": "cunet"})
    with pytest.raises(ValueError, match="unknown eval key"):
        compare_config.from_dict({"eval": {"sise": 3}})
    with pytest.raises(ValueError, match="unknown compare preset"):
        compare_config.load(preset="huge")


def fake_result(psnrs: list[float]) -> dict:
    return {"evaluation": {"per_image": [{"psnr": p} for p in psnrs]}}


def test_grid_rows_hold_the_sample_and_each_models_worst_and_best():
    paths = [f"p{i}.png" for i in range(6)]
    results = {"a": fake_result([20, 10, 30, 25, 24, 23]), "b": fake_result([20, 21, 22, 23, 24, 9])}
    rows = grid_rows(paths, results, samples=2)
    assert rows == [("p0.png", "sample"), ("p5.png", "sample, worst b"), ("p1.png", "worst a"),
                    ("p2.png", "best a"), ("p4.png", "best b")]


@pytest.mark.slow
def test_loaded_run_entry_is_reported_without_training(tmp_path, constant_ab_run, photo_dir):
    cc = compare_config.from_dict({"out": str(tmp_path / "report"), "train": {"preset": "smoke"},
                                "models": {"constant": {"run": constant_ab_run}},
                                "eval": {"data": str(photo_dir), "size": 32, "limit": 3, "samples": 1}})
    folder = runner.compare(cc, progress=False)
    summary = json.loads((folder / "report.json").read_text())
    facts = summary["models"]["constant"]
    assert facts["train_seconds"] is None and facts["params"] > 0 and summary["images"] == 3
    table = (folder / "report.md").read_text()
    assert "| constant (cunet) |" in table and "| gray baseline | — |" in table
    assert "Metrics as defined in koala's docs/metrics.md" in table
    assert not (tmp_path / "report" / "runs").exists()  # nothing was trained
    assert "frontier" not in summary and not (folder / "frontier.json").exists()  # no eval.sweep, no frontier
    assert "## Frontier" not in table


@pytest.fixture(scope="module")
def random_run(tmp_path_factory):
    """A tiny untrained CU-Net as a run folder: a second model beside the constant one."""
    from koala.models import get_model

    return save_run(tmp_path_factory.mktemp("runs") / "random", get_model("cunet", base_filters=4, batch_norm=False))


@pytest.mark.slow
def test_eval_sweep_draws_the_frontier_of_every_model_on_the_tables_photos(tmp_path, constant_ab_run, random_run,
                                                                            photo_dir, capsys):
    config = tmp_path / "compare.yaml"
    config.write_text(json.dumps({"train": {"preset": "smoke"},
                                  "models": {"constant": {"run": constant_ab_run}, "random": {"run": random_run}},
                                  "eval": {"data": str(photo_dir), "size": 32, "limit": 3, "samples": 1,
                                           "sweep": [0, 1], "groups": {"everything": ["."]}}}))  # JSON is YAML
    folder = tmp_path / "report"
    assert main(["compare", "--config", str(config), "--out", str(folder)]) == 0
    assert "frontier.json, frontier.png)" in capsys.readouterr().out
    summary = json.loads((folder / "report.json").read_text())
    assert summary["frontier"] == {"json": "frontier.json", "png": "frontier.png"}
    frontier = json.loads((folder / summary["frontier"]["json"]).read_text())
    assert (frontier["images"], frontier["size"]) == (3, 32)
    points = {(p["model"], p["value"]): p for p in frontier["sweep"]}
    assert len(frontier["sweep"]) == 4 and set(points) == {(m, v) for m in ("constant", "random") for v in (0, 1)}
    for label in ("constant", "random"):
        # Saturation 0 is the gray baseline; 1 is the model as the table scored it, on the same photos.
        assert points[(label, 0)]["psnr"] == pytest.approx(frontier["gray_baseline"]["psnr"], abs=1e-6)
        assert points[(label, 1)]["psnr"] == pytest.approx(summary["models"][label]["evaluation"]["model"]["psnr"],
                                                           abs=1e-4)
        assert points[(label, 1)]["groups"]["everything"]["psnr"] == pytest.approx(points[(label, 1)]["psnr"])
    assert frontier["gray_baseline"]["psnr"] == pytest.approx(summary["gray_baseline"]["psnr"], abs=1e-6)
    assert png_size(folder / "frontier.png")[0] > 600
    report = (folder / "report.md").read_text()
    frontier_section = report[report.index("## Frontier"):]
    assert "| constant | 1 |" in frontier_section and "| gray baseline | 0 |" in frontier_section
    assert "everything PSNR vs gray" in frontier_section and "![frontier](frontier.png)" in frontier_section


@pytest.mark.parametrize("values, field, shown", [
    ({"sweep": [1, "x"]}, "eval.sweep", "'x'"),
    ({"sweep": 1.2}, "eval.sweep", "1.2"),
    ({"sweep": [-0.5]}, "eval.sweep", "-0.5"),
    ({"sweep": []}, "eval.sweep", "[]"),
    ({"groups": ["bsds500"]}, "eval.groups", "'bsds500'"),
    ({"groups": {"general": "bsds500"}}, "eval.groups", "'bsds500'"),
])
def test_eval_sweep_and_groups_are_validated(values, field, shown):
    with pytest.raises(ValueError, match=f"^{field}: ") as error:
        compare_config.from_dict({"eval": values})
    assert shown in str(error.value) and "\n" not in str(error.value)


def test_eval_sweep_reads_from_set_values():
    cc = compare_config.load(preset="smoke", overrides=["eval.sweep=[0, 1.2]", "eval.groups={general: [a, b]}"])
    assert (cc.eval.sweep, cc.eval.groups) == ([0.0, 1.2], {"general": ["a", "b"]})
    assert compare_config.load(preset="smoke").eval.sweep is None  # no frontier unless asked


def png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as img:
        return img.size


@pytest.mark.slow
def test_smoke_preset_compares_every_registered_model_consistently_with_evaluate(photo_dir, tmp_path, tiny, capsys):
    out = tmp_path / "report"
    sets = [f"train.data.train={photo_dir}", f"train.data.val={photo_dir}", "eval.limit=6", "train.train.epochs=1",
            f"model_args.koalarization={{extractor: {tiny}, extractor_weights: none}}"]  # no ResNet-50 in CI
    argv = ["compare", "--preset", "smoke", "--out", str(out)] + [x for s in sets for x in ("--set", s)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "report.json").read_text())
    assert summary["failed"] == {} and list(summary["models"]) == list(MODELS)
    assert summary["images"] == 6 and summary["size"] == 32

    # The Markdown table: a row per model and the gray baseline, a column per metric and per fact.
    table = (out / "report.md").read_text()
    header = next(line for line in table.splitlines() if line.startswith("| model |"))
    for column in ("params", "train s", "train img/s", "infer img/s", "psnr", "ssim", "ab_mse", "ab_r2", "auc",
                   "bin_acc", "coarse_acc", "CF", "CF ratio", "ΔCF"):
        assert f"| {column} |" in header
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| model")]
    assert [r.split(" | ")[0][2:] for r in rows] == list(MODELS) + ["gray baseline"]
    assert all(r.count("|") == header.count("|") for r in rows)
    assert "| gray baseline |" in printed
    for label, facts in summary["models"].items():
        assert facts["params"] > 0 and facts["train_seconds"] > 0 and facts["epochs"] == 1
        assert facts["train_images_per_second"] > 0 and facts["evaluation"]["images_per_second"] > 0
        assert set(METRICS) - {"fid"} <= set(facts["evaluation"]["model"])
        assert f"worst {label}" in table and f"best {label}" in table
        # The gray baseline does not depend on the model.
        assert facts["evaluation"]["gray_baseline"] == pytest.approx(summary["gray_baseline"], abs=1e-9)

    # Figures: one curve panel per model, one grid row per chosen photo and a column per model.
    curves_w, _ = png_size(out / "curves.png")
    grid_w, grid_h = png_size(out / "grid.png")
    grid_rows = table.count("- row ")
    assert curves_w >= 300 * len(MODELS) and 2 <= grid_rows <= 2 + 2 * len(MODELS)
    assert grid_w >= 170 * (len(MODELS) + 2) and grid_h >= 180 * grid_rows

    # The same numbers as `koala evaluate` on the same run and photos (a plain and a hooked model).
    for label in ("cunet", "koalarization"):
        if label not in MODELS:
            continue
        target = tmp_path / f"{label}.json"
        assert main(["evaluate", "--model", str(out / "runs" / label), "--data", str(photo_dir), "--size", "32",
                     "--limit", "6", "--out", str(target)]) == 0
        evaluated = json.loads(target.read_text())
        for side in ("model", "gray_baseline"):
            for key, value in evaluated[side].items():
                assert summary["models"][label]["evaluation"][side][key] == pytest.approx(value, abs=1e-6), (label, key)

    # Run again: every finished run is reused, nothing retrains.
    for entry in runner.entries(compare_config.load(preset="smoke", overrides=sets + [f"out={out}"])):
        assert runner.train_entry(entry) is False
