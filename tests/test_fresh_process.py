"""Every architecture's run folder works in a process that did not train it.

A tiny run of each registered architecture is trained here, then one new Python process uses it
through `koala export`, `koala colorize`, `koala evaluate`, the web app `koala serve` runs and the
Python API. Export goes first: in a fresh process nothing (the zhang16 bins, an extractor) is
cached yet, which is what users meet and what an in-process test cannot see.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import save_run
from koala import config as config_lib
from koala.cli import main
from koala.models import get_model
from koala.training import train

# The smallest settings of each architecture; koalarization with the extractor that needs no download.
CASES = {
    "cunet": ("default", {"base_filters": 4, "batch_norm": False}),
    "koalarization": ("koalarization", {"extractor": "resnet50", "extractor_weights": "none"}),
    "resunet34": ("resunet34_gan", {"adversarial": True, "decoder_filters": [8, 8, 8, 8, 8], "critic_filters": 4}),
    "resnet18ae": ("resnet18ae", {}),
    "zhang16": ("zhang16_small", {"width": 0.125}),
}
PHOTO_SHAPE = (37, 53)

USE_RUN = textwrap.dedent("""
    import sys
    from pathlib import Path

    from koala.cli import main

    run, photos, out = sys.argv[1:4]
    for argv in (["export", "--model", run, "--out", f"{out}/exported"],
                 ["colorize", photos, "-o", f"{out}/colorized", "--model", run],
                 ["evaluate", "--model", run, "--data", photos, "--limit", "2", "--out", f"{out}/report.json"]):
        if main(argv) != 0:
            raise SystemExit(f"koala {argv[0]} failed")

    import numpy as np
    from PIL import Image

    from koala.inference import Colorizer
    from koala.serving.app import create_app

    photo = sorted(Path(photos).iterdir())[0]
    colorizer = Colorizer.load(run)
    np.save(f"{out}/api.npy", colorizer.colorize(str(photo)))
    answer = create_app(colorizer).test_client().post("/api/colorize", data=photo.read_bytes())
    if answer.status_code != 200:
        raise SystemExit(f"web API: {answer.status_code} {answer.get_data(as_text=True)}")
    Path(f"{out}/served.png").write_bytes(answer.get_data())
""")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    from conftest import smooth_colour_image

    folder = tmp_path_factory.mktemp("fresh-photos")
    for i in range(3):
        Image.fromarray(smooth_colour_image(40 + i, *PHOTO_SHAPE)).save(folder / f"p{i}.png")
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_a_tiny_run_works_from_a_fresh_process(name, photos, tmp_path):
    preset, model_args = CASES[name]
    cfg = config_lib.from_dict({
        "name": name, "out_dir": str(tmp_path / "runs"), "model": name, "model_args": model_args,
        "data": {"train": str(photos), "val": str(photos), "image_size": 32, "batch_size": 2},
        "train": {"epochs": 1, "steps_per_epoch": 1, "sample_images": 1},
    }, preset=preset)
    run = train(cfg)

    out = tmp_path / "out"
    used = subprocess.run([sys.executable, "-c", USE_RUN, str(run), str(photos), str(out)],
                          capture_output=True, text=True, timeout=600)
    assert used.returncode == 0, used.stderr[-3000:]

    api = np.load(out / "api.npy")
    assert api.shape == (*PHOTO_SHAPE, 3) and api.dtype == np.uint8
    for result in (out / "colorized" / "p0.png", out / "served.png"):
        np.testing.assert_array_equal(np.asarray(Image.open(result).convert("RGB")), api)
    assert sorted(p.name for p in (out / "colorized").iterdir()) == ["p0.png", "p1.png", "p2.png"]
    report = json.loads((out / "report.json").read_text())
    assert report["images"] == 2 and np.isfinite(report["model"]["psnr"])
    served = tf.saved_model.load(str(out / "exported" / "1")).signatures["serving_default"]
    png = served(image_bytes=tf.constant([(photos / "p0.png").read_bytes()]))["png_bytes"].numpy()[0]
    exported = tf.io.decode_png(png).numpy()
    assert exported.shape == api.shape and np.abs(exported.astype(int) - api).max() <= 1


def test_a_failed_export_leaves_nothing_behind(tmp_path, capsys):
    """The network loads, but its extractor's weights file is gone: the export fails after it
    began writing, in one line, and takes its (new) folders with it."""
    model_args = {"extractor": "resnet50", "extractor_weights": str(tmp_path / "gone.weights.h5")}
    run = save_run(tmp_path / "run", get_model("koalarization", extractor="resnet50", extractor_weights="none"),
                   model_args=model_args)
    out = tmp_path / "exports" / "koala"
    assert main(["export", "--model", run, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "gone.weights.h5: no such weights file" in err and "\n" not in err
    assert not (tmp_path / "exports").exists()
    (tmp_path / "kept").mkdir()  # a folder that was there before is kept, and stays empty
    assert main(["export", "--model", run, "--out", str(tmp_path / "kept")]) == 2
    assert (tmp_path / "kept").is_dir() and not list((tmp_path / "kept").iterdir())
