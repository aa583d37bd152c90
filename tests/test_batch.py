"""The Beam pipelines (koala.batch) on the DirectRunner with 2 worker processes: koala batch
colorize against koala colorize, its dead letters and re-runs; koala batch embed against
data_tools.embed. Each Beam run starts two Python workers (~15 s each to import TensorFlow).
Needs the beam extra, which ``make test`` installs."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from apache_beam.pvalue import TaggedOutput
from conftest import save_run, smooth_colour_image
from PIL import Image

from data_tools.embed import main as embed_main
from koala import config as config_lib
from koala.batch.colorize import ClaimOutput, output_for, plan_inputs
from koala.batch.common import pipeline_options
from koala.cli import main
from koala.data.embeddings import EmbeddingCache, resolve_key
from koala.inference import Colorizer
from koala.models import get_model
from koala.training import build_datasets

BEAM = ["--runner=DirectRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=2"]
BAD = {"empty.png": "empty file (0 bytes)", "notes.jpg": "not an image (unrecognised format)",
       "sub/truncated.png": "truncated or corrupt image data"}
TESTS_DIR = str(Path(__file__).parent)


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """30 files: 27 photos of varied sizes and formats (a third in a sub-folder) and 3 bad ones."""
    folder = tmp_path_factory.mktemp("archive")
    (folder / "sub").mkdir()
    for i in range(27):
        rgb = smooth_colour_image(i, height=36 + 2 * (i % 4), width=52 + 3 * (i % 3))
        name = f"{'sub/' if i % 3 == 0 else ''}photo_{i:02d}.{'jpg' if i % 5 == 0 else 'png'}"
        Image.fromarray(rgb).save(folder / name)
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.jpg").write_text("not a photo")
    whole = (folder / "photo_01.png").read_bytes()
    (folder / "sub" / "truncated.png").write_bytes(whole[: len(whole) // 2])
    return folder


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> str:
    """A tiny CU-Net with its random initial weights: outputs that differ from photo to photo."""
    return save_run(tmp_path_factory.mktemp("runs") / "tiny", get_model("cunet", base_filters=4, batch_norm=False))


@pytest.fixture
def workers_import_tests(monkeypatch):
    """Beam's worker processes inherit the environment: let them import the tests' helpers."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [TESTS_DIR, os.environ.get("PYTHONPATH")])))


def pngs(folder: Path) -> dict[str, np.ndarray]:
    return {str(p.relative_to(folder)): np.asarray(Image.open(p)) for p in sorted(folder.rglob("*.png"))}


@pytest.mark.slow
def test_batch_colorize_matches_koala_colorize_and_skips_on_rerun(archive, tiny_run, tmp_path, capsys):
    reference, out = tmp_path / "reference", tmp_path / "out"
    assert main(["colorize", str(archive), "-o", str(reference), "--model", tiny_run]) == 1
    capsys.readouterr()
    assert main(["batch", "colorize", str(archive), "-o", str(out), "--model", tiny_run, "--batch", "4", *BEAM]) == 1
    err = capsys.readouterr().err
    assert "colorized 27 image(s)" in err and "3 input(s) failed" in err

    expected, got = pngs(reference), pngs(out)
    assert len(got) == 27 and sorted(got) == sorted(expected)  # names and sub-folders as koala colorize's
    for name, image in got.items():
        assert image.shape == expected[name].shape, name  # the input's size
        assert np.abs(image.astype(int) - expected[name].astype(int)).max() <= 1, name
    assert not all(np.array_equal(a, b) for a, b in zip(list(got.values()), list(got.values())[1:]))

    header, *rows = (out / "failed.tsv").read_text().splitlines()
    assert header == "path\treason" and len(rows) == 3
    failed = {os.path.relpath(row.split("\t")[0], archive): row.split("\t")[1] for row in rows}
    assert failed.keys() == BAD.keys()
    assert all(failed[name].startswith(reason) for name, reason in BAD.items())

    # A re-run keeps every output (skipped, not failed) and still reports the bad files.
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    assert main(["batch", "colorize", str(archive), "-o", str(out), "--model", tiny_run, *BEAM]) == 1
    err = capsys.readouterr().err
    assert "colorized 0 image(s)" in err and "27 skipped" in err and "3 failed" in err
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == stamps
    assert len((out / "failed.tsv").read_text().splitlines()) == 4


@pytest.mark.slow
def test_batch_embed_shards_merge_into_the_cache_data_tools_writes(archive, tmp_path, tiny, workers_import_tests,
                                                                     monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # relative keys, as a manifest usually gives them
    photos = os.path.relpath(archive, tmp_path)
    args = ["--extractor", tiny, "--weights", "none", "--batch", "4"]
    assert embed_main([photos, "reference.h5", *args]) == 1
    assert main(["batch", "embed", photos, "beam.h5", *args, *BEAM]) == 1
    err = capsys.readouterr().err
    assert "embedded 27 image(s) into beam.h5" in err and "3 input(s) failed; see beam.h5.failed.tsv" in err
    assert not (tmp_path / "beam.h5.shards").exists()  # merged, then removed
    failed = [row.split("\t")[0] for row in (tmp_path / "beam.h5.failed.tsv").read_text().splitlines()[1:]]
    assert sorted(os.path.relpath(p, photos) for p in failed) == sorted(BAD)

    reference, beam = EmbeddingCache.open("reference.h5"), EmbeddingCache.open("beam.h5")
    assert (beam.extractor, beam.weights, beam.fingerprint) == (reference.extractor, reference.weights,
                                                                 reference.fingerprint)
    assert sorted(beam.keys) == sorted(reference.keys) and len(beam.keys) == 27
    np.testing.assert_allclose(beam.lookup(reference.keys, "photos"), reference.embeddings, atol=1e-5)

    # The training pipeline accepts it: every good photo found, rows checked against the extractor.
    good = [k for k in reference.keys if resolve_key(k, reference.base_dir) not in {os.path.abspath(p) for p in failed}]
    (tmp_path / "good.txt").write_text("\n".join(os.path.abspath(k) for k in good))
    cfg = config_lib.from_dict({"model": "koalarization", "model_args": {"extractor": tiny, "extractor_weights": "none"},
                                "data": {"train": "good.txt", "val": "good.txt", "image_size": 32, "batch_size": 4,
                                         "embeddings": "beam.h5"}})
    _, val = build_datasets(cfg)
    inputs, _ = next(iter(val))
    np.testing.assert_allclose(inputs["embedding"], reference.embeddings[:4], atol=1e-5)

    # Nothing left to do: a re-run embeds nothing and adds no rows.
    assert main(["batch", "embed", photos, "beam.h5", *args, *BEAM]) == 1  # the bad files still fail
    assert len(EmbeddingCache.open("beam.h5").keys) == 27


@pytest.fixture(scope="module")
def depths(tmp_path_factory) -> Path:
    """One photo of each kind koala reads its own way: colour JPEG, gray PNG, 16-bit gray PNG, RGBA
    PNG, a JPEG turned by its EXIF orientation, and two colour PNGs of one size (one graph call)."""
    folder = tmp_path_factory.mktemp("depths")
    Image.fromarray(smooth_colour_image(0, 50, 70)).save(folder / "colour.jpg", quality=90)
    Image.fromarray(smooth_colour_image(1, 44, 60).mean(axis=-1).astype(np.uint8)).save(folder / "gray.png")
    deep = (smooth_colour_image(2, 60, 44).mean(axis=-1) * 257).astype(np.uint16)
    Image.fromarray(deep).save(folder / "deep.png")
    assert Image.open(folder / "deep.png").mode.startswith("I")  # 16 bits in the file
    rgba = np.dstack([smooth_colour_image(3, 30, 30), np.linspace(0, 255, 900).reshape(30, 30).astype(np.uint8)])
    Image.fromarray(rgba).save(folder / "rgba.png")
    exif = Image.Exif()
    exif[0x0112] = 8  # turned 90 degrees
    Image.fromarray(smooth_colour_image(4, 20, 36)).save(folder / "rotated.jpg", exif=exif.tobytes())
    for i in (5, 6):
        Image.fromarray(smooth_colour_image(i, 40, 56)).save(folder / f"twin_{i}.png")
    return folder


@pytest.mark.slow
def test_batch_colorize_writes_the_files_koala_colorize_writes(depths, tiny_run, tmp_path):
    single, batch = tmp_path / "single", tmp_path / "batch"
    assert main(["colorize", str(depths), "-o", str(single), "--model", tiny_run]) == 0
    assert main(["batch", "colorize", str(depths), "-o", str(batch), "--model", tiny_run, "--runner=DirectRunner"]) == 0
    names = sorted(p.name for p in single.glob("*.png"))
    assert len(names) == 7 and sorted(p.name for p in batch.glob("*.png")) == names
    assert Image.open(single / "rotated.png").size == (20, 36)  # EXIF applied
    for name in names:
        assert (batch / name).read_bytes() == (single / name).read_bytes(), name


def test_inputs_become_patterns_and_output_names(archive, tmp_path):
    folder, single, glob = plan_inputs([str(archive), str(archive / "photo_01.png"), str(archive / "sub/*.png")])
    assert (folder.pattern, folder.folder) == (f"{archive}/**", str(archive))
    assert (single.pattern, single.folder) == (str(archive / "photo_01.png"), None)
    assert glob.folder is None
    assert output_for(f"{archive}/sub/photo_03.jpg", str(archive)) == "sub/photo_03.png"
    assert output_for(f"{archive}/sub/readme.txt", str(archive)) is None  # folders: images only
    assert output_for("gs://bucket/scans/a.b.tif", None) == "a.b.png"


def test_an_output_never_replaces_an_input_and_one_source_claims_a_name(tmp_path):
    (tmp_path / "a.png").write_bytes(b"original")
    same = list(ClaimOutput(str(tmp_path), overwrite=True).process(("a.png", [str(tmp_path / "a.png")])))
    assert [o.value for o in same] == [(str(tmp_path / "a.png"), f"output {tmp_path / 'a.png'} would replace an input "
                                        "photo; skipped (choose another output folder)")]
    out = tmp_path / "out"
    clash = list(ClaimOutput(str(out), overwrite=False).process(("x.png", ["/b/x.jpg", "/a/x.png", "/a/x.png"])))
    assert [o.value for o in clash if isinstance(o, TaggedOutput)] == [("/b/x.jpg", "same output name as /a/x.png; skipped")]
    assert [o for o in clash if not isinstance(o, TaggedOutput)] == [(str(out / "x.png"), "/a/x.png")]


def test_unknown_options_are_refused_in_one_line(tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown pipeline option\\(s\\) --direct_num_worker=2"):
        pipeline_options(["--runner=DirectRunner", "--direct_num_worker=2"])
    assert pipeline_options(["--direct_num_workers=3"]).get_all_options()["direct_num_workers"] == 3
    assert main(["batch", "colorize", str(tmp_path), "-o", str(tmp_path / "o"), "--runer=DirectRunner"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("koala batch: unknown pipeline option(s) --runer")
    with pytest.raises(SystemExit):
        main(["colorize", str(tmp_path), "-o", str(tmp_path / "o"), "--runner=DirectRunner"])
    assert "unrecognized arguments: --runner=DirectRunner" in capsys.readouterr().err
    assert main(["batch", "colorize", str(tmp_path), "-o", "o", "--model", str(tmp_path / "nope.keras")]) == 2
    assert "nope.keras: no such model" in capsys.readouterr().err


@pytest.mark.slow
def test_batch_colorize_reads_hints_beside_each_photo(tiny_hint_model, tmp_path, capsys):
    photos, out = tmp_path / "photos", tmp_path / "out"
    photos.mkdir()
    for name in ("guided", "plain", "bad"):
        Image.fromarray(smooth_colour_image(len(name), 40, 56).mean(axis=-1).astype(np.uint8)).save(photos / f"{name}.png")
    hints = [{"x": 10, "y": 12, "color": "#00c040"}, {"x": 50, "y": 30, "color": "#ff2000", "radius": 3}]
    (photos / "guided.json").write_text(json.dumps(hints))
    (photos / "bad.json").write_text(json.dumps([{"x": 56, "y": 3, "color": "#00c040"}]))
    args = ["batch", "colorize", str(photos), "--model", str(tiny_hint_model), "--runner=DirectRunner"]
    # Without --hint-files the JSON beside a photo is not read (an archive's own sidecar files).
    assert main([*args, "-o", str(tmp_path / "plain")]) == 0 and "colorized 3 image(s)" in capsys.readouterr().err
    code = main([*args, "-o", str(out), "--hint-files"])
    assert code == 1 and "colorized 2 image(s)" in capsys.readouterr().err
    colorizer = Colorizer.load(tiny_hint_model)
    got = pngs(out)
    assert sorted(got) == ["guided.png", "plain.png"]
    guided = colorizer.colorize(str(photos / "guided.png"), hints=hints)
    assert not np.array_equal(guided, colorizer.colorize(str(photos / "guided.png")))
    assert np.abs(got["guided.png"].astype(int) - guided).max() <= 1
    assert np.abs(got["plain.png"].astype(int) - colorizer.colorize(str(photos / "plain.png"))).max() <= 1
    unhinted = pngs(tmp_path / "plain")["guided.png"]
    assert np.abs(unhinted.astype(int) - colorizer.colorize(str(photos / "guided.png"))).max() <= 1
    _, row = (out / "failed.tsv").read_text().splitlines()
    assert row == (f"{photos / 'bad.png'}\t{photos / 'bad.json'}: hint 0: x=56 is outside the photo "
                   "(56 x 40 px: 0 <= x < 56)")


def test_hint_files_need_a_model_with_hint_inputs(tiny_run, tmp_path, capsys):
    Image.new("L", (40, 32), 90).save(tmp_path / "a.png")
    out = tmp_path / "out"
    assert main(["batch", "colorize", str(tmp_path / "a.png"), "-o", str(out), "--model", str(tiny_run),
                 "--hint-files", "--runner=DirectRunner"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("koala batch: --hint-files: this model (cunet) takes no hints")
    assert err.endswith("(--model hints)") and len(err.splitlines()) == 1 and not out.exists()
    with pytest.raises(SystemExit):  # batch colorize's option only: koala colorize takes --hints FILE
        main(["colorize", str(tmp_path / "a.png"), "-o", str(out), "--hint-files"])
