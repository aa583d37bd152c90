"""koala.evaluation.frontier and `koala evaluate --sweep`: the PSNR-colourfulness frontier, per source, beside gray."""
import json

import keras
import numpy as np
import pytest
from PIL import Image

from conftest import save_run
from koala.cli import main
from koala.color import AB_NORM, ab_bins, lab_to_rgb
from koala.evaluation.frontier import choose, parse_labelled, sweep_report
from koala.images import group_by_source
from koala.inference import Colorizer
from koala.models.layers import l_input

MODEL_AB = (0.3, -0.2)  # the constant normalised ab of the conftest's constant_ab_run


def lab_photo(ab_norm: tuple[float, float], seed: int, size: int = 40) -> np.ndarray:
    """uint8 RGB with textured L and one ab (normalised) everywhere."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    lightness = 55 + 15 * np.sin(rng.uniform(3, 8) * xx + rng.uniform(3, 8) * yy)
    lab = np.stack([lightness, np.full_like(lightness, ab_norm[0] * AB_NORM),
                    np.full_like(lightness, ab_norm[1] * AB_NORM)], axis=-1).astype(np.float32)
    return (np.clip(lab_to_rgb(lab).numpy(), 0, 1) * 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def two_sources(tmp_path_factory):
    """val/right: photos whose colour is the constant model's; val/wrong: the opposite colour."""
    root = tmp_path_factory.mktemp("val")
    for name, ab in (("right", MODEL_AB), ("wrong", (-MODEL_AB[0], -MODEL_AB[1]))):
        (root / name).mkdir()
        for i in range(3):
            Image.fromarray(lab_photo(ab, i)).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def distribution_run(tmp_path_factory):
    """A 'zhang16' whose logits everywhere favour bins near ab (40, -30): lower temperatures give
    more saturated colour."""
    bins = ab_bins()
    inputs = l_input()
    logits = keras.layers.Conv2D(len(bins), 1, strides=4, name="logits")(inputs)
    model = keras.Model(inputs, logits, name="zhang16")
    d2 = ((bins - np.array([40.0, -30.0], np.float32)) ** 2).sum(axis=1)
    layer = model.get_layer("logits")
    layer.set_weights([np.zeros_like(layer.get_weights()[0]), (-d2 / (2 * 30.0**2)).astype(np.float32)])
    return save_run(tmp_path_factory.mktemp("runs") / "dist", model)


def test_sources_are_the_first_level_subfolders(tmp_path):
    paths = [str(tmp_path / "a" / "b" / "x.png"), str(tmp_path / "a" / "y.png"), str(tmp_path / "c" / "z.png"),
             str(tmp_path / "w.png")]
    assert group_by_source(paths) == {"a": paths[:2], "c": paths[2:3], ".": paths[3:]}


def test_saturation_sweep_traces_the_frontier_per_source(constant_ab_run, two_sources):
    report = sweep_report({"const": Colorizer.load(constant_ab_run)}, str(two_sources), [0.0, 0.5, 1.0],
                          None, progress=False)
    gray = report["gray_baseline"]
    assert report["images"] == 6 and set(gray["sources"]) == {"right", "wrong"}
    assert gray["colourfulness_ratio"] < 0.02
    points = {p["value"]: p for p in report["sweep"]}
    assert [p["parameter"] for p in report["sweep"]] == ["saturation"] * 3
    # Saturation 0 is the gray baseline itself.
    assert points[0.0]["psnr"] == pytest.approx(gray["psnr"], abs=1e-6)
    # Colour grows with saturation; on the right source the model gains PSNR, on the wrong one it loses.
    assert points[0.0]["colourfulness_ratio"] < points[0.5]["colourfulness_ratio"] < points[1.0]["colourfulness_ratio"]
    right, wrong = points[1.0]["sources"]["right"], points[1.0]["sources"]["wrong"]
    assert right["psnr"] > gray["sources"]["right"]["psnr"] + 3
    assert wrong["psnr"] < gray["sources"]["wrong"]["psnr"] - 3
    assert right["colourfulness_ratio"] == pytest.approx(1.0, abs=0.1)
    assert right["images"] == wrong["images"] == 3


def test_a_limited_sweep_keeps_the_sources_of_its_photos(constant_ab_run, two_sources):
    # The first 2 photos are both in "right": still named so, and its group is scored.
    report = sweep_report({"const": Colorizer.load(constant_ab_run)}, str(two_sources), [1.0], None,
                          limit=2, progress=False, groups={"r": ["right"], "w": ["wrong"]})
    point = report["sweep"][0]
    assert report["images"] == 2 and point["groups"]["r"]["images"] == 2 and "w" not in point["groups"]
    assert point["groups"]["r"]["psnr"] > report["gray_baseline"]["psnr"] + 3  # the right colours


def test_temperature_sweep_colours_more_when_colder(distribution_run, two_sources):
    report = sweep_report({"dist": Colorizer.load(distribution_run)}, str(two_sources), None,
                          [0.2, 0.6, 1.0], progress=False)
    points = report["sweep"]
    assert [p["parameter"] for p in points] == ["temperature"] * 3
    assert [p["temperature"] for p in points] == [0.2, 0.6, 1.0]
    cf = [p["colourfulness_ratio"] for p in points]
    assert cf[0] > cf[1] > cf[2] > 0


def test_cli_sweep_writes_json_and_plot_for_several_models(constant_ab_run, distribution_run, two_sources,
                                                           tmp_path, capsys):
    out = tmp_path / "f.json"
    code = main(["evaluate", "--model", constant_ab_run, "--model", f"dist={distribution_run}", "--data",
                 str(two_sources), "--sweep", "0.5,1", "--group", "both=right,wrong", "--out", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert {p["model"] for p in report["sweep"]} == {constant_ab_run, "dist"}
    assert {"value", "psnr", "ssim", "colourfulness_ratio", "auc", "sources"} <= set(report["sweep"][0])
    assert set(report["sweep"][0]["sources"]) == {"right", "wrong"}
    # A group of sources is scored over its photos together: here, all of them.
    for point in report["sweep"]:
        assert point["groups"]["both"]["psnr"] == pytest.approx(point["psnr"])
        assert point["groups"]["both"]["images"] == 6
    # The distribution model's points carry the temperature it decoded with (the paper's 0.38).
    assert {p["temperature"] for p in report["sweep"] if p["model"] == "dist"} == {0.38}
    with Image.open(tmp_path / "f.png") as plot:
        assert plot.size[0] > 600 and plot.size[1] > 400
    assert "gray baseline" in capsys.readouterr().out


def test_cli_sweep_refuses_temperature_for_regression_models(constant_ab_run, two_sources, tmp_path, capsys):
    code = main(["evaluate", "--model", constant_ab_run, "--data", str(two_sources),
                 "--sweep-temperature", "0.3,1", "--out", str(tmp_path / "f.json")])
    assert code == 2
    err = capsys.readouterr().err
    assert "predicts ab directly" in err and "\n" == err[-1] and err.count("\n") == 1
    assert not (tmp_path / "f.json").exists()


def test_cli_sweep_rejects_bad_values(constant_ab_run, distribution_run, two_sources, tmp_path, capsys):
    code = main(["evaluate", "--model", constant_ab_run, "--data", str(two_sources), "--sweep", "1,lots",
                 "--out", str(tmp_path / "f.json")])
    assert code == 2 and "--sweep: expected comma-separated numbers" in capsys.readouterr().err

    for values, shown in (("0.5,4", "--sweep must be between 0 and 3; got 4.0"),
                          ("nan", "--sweep must be between 0 and 3; got nan")):
        code = main(["evaluate", "--model", constant_ab_run, "--data", str(two_sources), "--sweep", values,
                     "--out", str(tmp_path / "f.json")])
        assert code == 2 and shown in capsys.readouterr().err
    code = main(["evaluate", "--model", distribution_run, "--data", str(two_sources), "--sweep-temperature", "0,0.5",
                 "--out", str(tmp_path / "f.json")])
    assert code == 2 and "--sweep-temperature must be between 0.01 and 1; got 0.0" in capsys.readouterr().err
    assert not (tmp_path / "f.json").exists()


def test_sweep_and_evaluate_name_their_numbers_alike(constant_ab_run, two_sources):
    from koala.evaluation.evaluate import evaluate
    from koala.images import list_images

    colorizer = Colorizer.load(constant_ab_run)
    sweep = sweep_report({"c": colorizer}, str(two_sources), [1.0], None, progress=False)
    single = evaluate(colorizer, list_images(two_sources), progress=False)
    assert "gray_baseline" in sweep and "gray_baseline" in single
    for key in ("psnr", "ssim", "colourfulness_ratio", "auc"):
        assert sweep["sweep"][0][key] == pytest.approx(single["model"][key], abs=1e-6)
        assert sweep["gray_baseline"][key] == pytest.approx(single["gray_baseline"][key], abs=1e-6)


def test_old_sweep_files_still_tabulate_and_plot(constant_ab_run, two_sources):
    """Sweeps written before the names agreed (gray, cf_ratio) read as the current ones."""
    from koala.evaluation.frontier import frontier_figure, markdown_table

    report = sweep_report({"c": Colorizer.load(constant_ab_run)}, str(two_sources), [0.5, 1.0], None,
                          progress=False, groups={"both": ["right", "wrong"]})
    text = json.dumps(report).replace('"gray_baseline"', '"gray"').replace('"colourfulness_ratio"', '"cf_ratio"')
    old = json.loads(text)
    assert "gray" in old and "cf_ratio" in old["sweep"][0]["sources"]["right"]
    assert markdown_table(old) == markdown_table(report)
    assert len(frontier_figure(old).axes) == len(frontier_figure(report).axes)


def test_sweeps_run_apart_merge_into_one_report_under_new_labels(constant_ab_run, distribution_run, two_sources):
    """An old model's sweep beside a new one's, without scoring the old one again; sweeps of other
    photos, or two curves under one label, are refused."""
    from koala.evaluation.frontier import curves, merge_reports

    models = {"c": Colorizer.load(constant_ab_run), "d": Colorizer.load(distribution_run)}
    old = sweep_report(models, str(two_sources), [0.5, 1.0], None, progress=False)
    new = sweep_report({"c": models["c"]}, str(two_sources), [0.8], None, progress=False)
    merged = merge_reports([(new, {}), (old, {"c": "before"})])  # d is left out
    assert {k: [p["value"] for p in v] for k, v in curves(merged).items()} == {"c": [0.8], "before": [0.5, 1.0]}
    assert merged["gray_baseline"] == new["gray_baseline"] and old["sweep"][0]["model"] == "c"  # inputs untouched
    with pytest.raises(ValueError, match=r"^two curves would be labelled 'c': rename one$"):
        merge_reports([(new, {}), (old, {})])
    fewer = sweep_report({"c": models["c"]}, str(two_sources), [1.0], None, limit=2, progress=False)
    with pytest.raises(ValueError, match=r"^cannot merge sweeps of different photos: .* \(2\) and .* \(6\)$"):
        merge_reports([(new, {}), (fewer, {"c": "few"})])


def test_a_sweep_report_reads_back_and_a_bad_one_is_named(constant_ab_run, two_sources, tmp_path):
    from koala.evaluation.frontier import read_report

    report = sweep_report({"c": Colorizer.load(constant_ab_run)}, str(two_sources), [1.0], None, progress=False)
    (tmp_path / "old.json").write_text(json.dumps(report).replace('"gray_baseline"', '"gray"'))
    assert read_report(tmp_path / "old.json") == json.loads(json.dumps(report))  # under the current keys
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match=r"bad\.json: not JSON \("):
        read_report(tmp_path / "bad.json")
    with pytest.raises(ValueError, match=r"gone\.json: No such file or directory$"):
        read_report(tmp_path / "gone.json")


def test_a_group_naming_a_missing_source_is_refused_in_one_line(constant_ab_run, two_sources, tmp_path, capsys):
    out = tmp_path / "f.json"
    code = main(["evaluate", "--model", constant_ab_run, "--data", str(two_sources), "--sweep", "1",
                 "--group", "general=right,bsds500", "--out", str(out)])
    assert code == 2 and not out.exists()
    assert capsys.readouterr().err.strip().splitlines() == [
        "koala evaluate: group general: no source bsds500 in the data (its sources: right, wrong)"]


def test_frontier_plot_labels_points_says_which_way_is_better_and_draws_groups(constant_ab_run, distribution_run,
                                                                               two_sources):
    from koala.evaluation.frontier import BETTER, frontier_figure

    report = sweep_report({"c": Colorizer.load(constant_ab_run)}, str(two_sources), [0.5, 1.0], None,
                          progress=False, groups={"both": ["right", "wrong"]})
    fig = frontier_figure(report)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[1:] == ["group both (6)", "right (3)", "wrong (3)"]  # a panel per group, then per source
    main_texts = [t.get_text() for t in fig.axes[0].texts]
    assert {"s=0.5", "s=1"} <= set(main_texts) and BETTER in main_texts
    assert "up" in BETTER and "right" in BETTER
    temps = sweep_report({"d": Colorizer.load(distribution_run)}, str(two_sources), None, [0.2, 1.0],
                         progress=False)
    assert {"T=0.2", "T=1"} <= {t.get_text() for t in frontier_figure(temps).axes[0].texts}


def test_per_call_temperature_for_a_distribution_model(distribution_run):
    photo = lab_photo((0.0, 0.0), 3)
    colorizer = Colorizer.load(distribution_run)
    cold = colorizer.colorize(photo, temperature=0.2)
    assert np.array_equal(cold, Colorizer.load(distribution_run, temperature=0.2).colorize(photo))
    assert not np.array_equal(cold, colorizer.colorize(photo, temperature=1.0)) and colorizer.temperature is None
    with pytest.raises(ValueError, match="temperature must be between 0.01 and 1; got 1.5"):
        colorizer.colorize(photo, temperature=1.5)


def point(psnr: float, cf: float, sources: dict[str, float], groups: dict[str, float] | None = None) -> dict:
    return {"psnr": psnr, "colourfulness_ratio": cf, "sources": {k: {"psnr": v} for k, v in sources.items()},
            **({"groups": {k: {"psnr": v} for k, v in groups.items()}} if groups else {})}


def test_choose_takes_the_most_colourful_point_that_keeps_every_margin():
    """Gray is 20 dB overall and on each source: a (vivid, +1.0) loses source b by 0.5 dB, more than
    the 0.3 dB floor; b (+0.8) keeps it; c is greyer; d is vivid but only +0.5 dB overall."""
    gray = point(20.0, 0.0, {"a": 20.0, "b": 20.0}, {"g": 20.0})
    candidates = {"a": point(21.0, 0.9, {"a": 22.0, "b": 19.5}, {"g": 21.0}),
                  "b": point(20.8, 0.7, {"a": 21.2, "b": 19.8}, {"g": 20.8}),
                  "c": point(20.9, 0.5, {"a": 21.0, "b": 20.5}, {"g": 20.9}),
                  "d": point(20.5, 0.95, {"a": 20.6, "b": 20.4}, {"g": 20.5})}
    report = {"gray_baseline": gray, "sweep": [{"name": k, **v} for k, v in candidates.items()]}
    assert choose(report, margin=0.7, group_margin=0.3, source_floor=0.3)["name"] == "b"
    assert choose(report, margin=0.7, group_margin=0.3, source_floor=0.6)["name"] == "a"
    assert choose(report, margin=0.7, group_margin=0.85, source_floor=0.3)["name"] == "c"  # only c's group is +0.9
    assert choose(report, margin=2.0, group_margin=0.3, source_floor=0.3) is None


@pytest.mark.parametrize("item, expected", [
    ("new=runs/stage3", ("new", "runs/stage3")),
    ("stage 3=runs/lr=1e-4", ("stage 3", "runs/lr=1e-4")),
    ("default", ("default", "default")),
    ("=runs/x", ("runs/x", "runs/x")),
])
def test_label_model_pairs(item, expected):
    assert parse_labelled(item) == expected
