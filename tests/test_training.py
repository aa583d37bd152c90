import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from koala import config as config_lib
from koala.training import resolve_jit, resolve_precision, train


def tiny_config(photo_dir, out_dir, **train_overrides) -> config_lib.Config:
    overrides = [f"data.train={photo_dir}", f"data.val={photo_dir}", f"out_dir={out_dir}", "name=tiny",
                 "model_args={base_filters: 8, batch_norm: false}", "data.image_size=32", "data.batch_size=4",
                 "train.learning_rate=0.003", "data.augment={rotation: 0, zoom: 0, shear: 0, shift: 0}"]
    overrides += [f"train.{k}={v}" for k, v in train_overrides.items()]
    return config_lib.load(preset="smoke", overrides=overrides)


def read_history(run: Path) -> list[dict]:
    with open(run / "history.csv") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def toy_photos(tmp_path_factory):
    """Photos whose colour is a fixed function of brightness (dark blue -> bright orange):
    a toy task a colorizer must learn from L alone."""
    from PIL import Image

    from tests.conftest import smooth_colour_image

    folder = tmp_path_factory.mktemp("toy")
    for i in range(12):
        gray = smooth_colour_image(i).mean(axis=-1, keepdims=True) / 255.0
        rgb = np.concatenate([gray ** 0.6, gray ** 1.0, gray ** 1.8], axis=-1)
        Image.fromarray((rgb * 255).round().astype(np.uint8)).save(folder / f"toy_{i:02d}.png")
    return folder


def test_training_learns_and_saves_the_best_checkpoint(toy_photos, tmp_path):
    run = train(tiny_config(toy_photos, tmp_path, epochs=6, steps_per_epoch=12))
    history = read_history(run)
    assert [int(row["epoch"]) for row in history] == list(range(6))
    assert float(history[-1]["loss"]) < 0.5 * float(history[0]["loss"])
    assert min(float(r["val_loss"]) for r in history) < 0.5 * float(history[0]["val_loss"])
    model = keras.saving.load_model(run / "best.keras", compile=False)
    assert model.name == "cunet" and (run / "samples" / "epoch_006.png").is_file()
    assert not (run / "backup").exists()  # removed once training finished
    with pytest.raises(FileExistsError, match="finished run"):
        train(tiny_config(toy_photos, tmp_path))


@pytest.mark.slow
def test_a_killed_run_resumes_where_it_stopped(photo_dir, tmp_path):
    cfg = tiny_config(photo_dir, tmp_path, epochs=5, steps_per_epoch=6)
    config_lib.save(cfg, tmp_path / "cfg.yaml")
    command = [sys.executable, "-m", "koala.cli", "train", "--config", str(tmp_path / "cfg.yaml")]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run = cfg.run_dir
    deadline = time.time() + 300
    while time.time() < deadline and not ((run / "history.csv").exists() and len(read_history(run)) >= 2):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_after = len(read_history(run))
    assert 2 <= killed_after < 5 and (run / "backup").exists()
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    epochs = [int(row["epoch"]) for row in read_history(run)]
    assert epochs[-1] == 4 and epochs == sorted(epochs)  # continued, not restarted from 0
    assert epochs.count(0) == 1


def test_precision_and_xla_are_chosen_by_hardware():
    assert resolve_precision("auto", []) == "float32"
    assert resolve_precision("auto", [(8, 0)]) == "mixed_float16"
    assert resolve_precision("auto", [(6, 1)]) == "float32"
    assert resolve_precision("mixed_bfloat16", []) == "mixed_bfloat16"
    with pytest.raises(ValueError, match="unknown precision"):
        resolve_precision("fp8", [])
    assert resolve_jit("auto", []) is False and resolve_jit("auto", [(8, 0)]) is True
    assert resolve_jit(False, [(8, 0)]) is False


def test_init_weights_starts_from_a_trained_model(constant_ab_run):
    from koala.training import compile_model

    cfg = config_lib.load(preset="smoke", overrides=["model_args={base_filters: 4, batch_norm: false}",
                                                     f"train.init_weights={constant_ab_run}"])
    model = compile_model(cfg, [])
    out = model.predict(np.zeros((1, 16, 16, 1), np.float32), verbose=0)
    np.testing.assert_allclose(out[0, 5, 5], [0.3, -0.2], atol=1e-5)
