import csv
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from koala import config as config_lib
from koala.losses import get_loss
from koala.runs import FinishedRunError, Run, model_metadata
from koala.training import build_datasets, resolve_jit, resolve_precision, train


def tiny_config(photo_dir, out_dir, **train_overrides) -> config_lib.Config:
    overrides = [f"data.train={photo_dir}", f"data.val={photo_dir}", f"out_dir={out_dir}", "name=tiny",
                 "model_args={base_filters: 8, batch_norm: false}", "data.image_size=32", "data.batch_size=4",
                 "train.learning_rate=0.003", "data.augment={rotation: 0, zoom: 0, shear: 0, shift: 0}"]
    overrides += [f"train.{k}={v}" for k, v in train_overrides.items()]
    return config_lib.load(preset="smoke", overrides=overrides)


def read_history(run: Path) -> list[dict]:
    with open(Run(run).history_file) as f:
        return list(csv.DictReader(f))


def toy_folder(folder: Path, exponents: tuple[float, float, float]) -> Path:
    """Photos whose colour is a fixed function of brightness (RGB = gray ** exponents):
    a toy task a colorizer must learn from L alone."""
    from PIL import Image

    from tests.conftest import smooth_colour_image

    for i in range(12):
        gray = smooth_colour_image(i).mean(axis=-1, keepdims=True) / 255.0
        rgb = np.concatenate([gray ** e for e in exponents], axis=-1)
        Image.fromarray((rgb * 255).round().astype(np.uint8)).save(folder / f"toy_{i:02d}.png")
    return folder


@pytest.fixture(scope="module")
def toy_photos(tmp_path_factory):
    """Dark blue -> bright orange."""
    return toy_folder(tmp_path_factory.mktemp("toy"), (0.6, 1.0, 1.8))


@pytest.fixture(scope="module")
def opposite_photos(tmp_path_factory):
    """The same brightness with the opposite colours (orange <-> blue)."""
    return toy_folder(tmp_path_factory.mktemp("opposite"), (1.8, 1.0, 0.6))


@pytest.fixture(scope="module")
def toy_run(toy_photos, tmp_path_factory) -> Path:
    """A tiny CU-Net trained on toy_photos, keeping every third epoch."""
    return train(tiny_config(toy_photos, tmp_path_factory.mktemp("runs"), epochs=6, steps_per_epoch=12,
                             keep_every=3))


@pytest.mark.slow
def test_training_learns_and_saves_the_best_checkpoint(toy_run, toy_photos, tmp_path):
    run = toy_run
    history = read_history(run)
    assert [int(row["epoch"]) for row in history] == list(range(1, 7))  # counted from 1, as samples/
    assert float(history[-1]["loss"]) < 0.5 * float(history[0]["loss"])
    assert min(float(r["val_loss"]) for r in history) < 0.5 * float(history[0]["val_loss"])
    model = keras.saving.load_model(Run(run).best, compile=False)
    assert model.name == "cunet" and (Run(run).samples / "epoch_006.png").is_file()
    assert not Run(run).backup.exists() and Run(run).finished  # the backup is removed once training finished
    kept = sorted(path.name for path in Run(run).checkpoints.iterdir())
    assert kept == ["epoch_003.keras", "epoch_006.keras"]  # train.keep_every=3, beside best.keras
    third = keras.saving.load_model(Run(run).checkpoint(3), compile=False)
    assert not np.allclose(third.get_weights()[0], keras.saving.load_model(Run(run).checkpoint(6), compile=False).get_weights()[0])
    assert model_metadata(Run(run).checkpoint(3))["image_size"] == 32  # a kept epoch finds its run's metadata
    with pytest.raises(FileExistsError, match="finished run") as refused:
        train(tiny_config(toy_photos, run.parent))
    message = str(refused.value)  # one line that names every way on, in config terms: no CLI flags
    assert "\n" not in message and "raise train.epochs above 6" in message
    assert f"train.init_weights={run}" in message and "overwrite it" in message and "--" not in message


@pytest.mark.slow
def test_koala_train_names_its_options_for_a_finished_run(toy_run, capsys):
    """The library says what is in the way in config terms; the command adds its own flags."""
    from koala.cli import main

    assert main(["train", "--config", str(Run(toy_run).config_file)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"koala train: {toy_run}: a finished run is there (6 epoch(s))")
    assert "--set FIELD=VALUE" in err and "--name NEW" in err and "--overwrite" in err and err.count("\n") == 0


def val_losses_by_epoch(run: Path) -> list[float]:
    """val_loss per epoch from history.csv, whose epochs are 1, 2, ... each once."""
    rows = read_history(run)
    assert [int(row["epoch"]) for row in rows] == list(range(1, len(rows) + 1))
    return [float(row["val_loss"]) for row in rows]


# `koala train` that kills itself with SIGKILL right after its second epoch is recorded (its
# callbacks run first), while the third is to come: a kill at a known moment, not a poll of the clock.
KILLED_AFTER_EPOCH_2 = """
import os, signal, sys
import keras
from koala.cli import main
from koala.training import fit

class KillAfterSecondEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            os.kill(os.getpid(), signal.SIGKILL)

make_callbacks = fit.make_callbacks
fit.make_callbacks = lambda *args: make_callbacks(*args) + [KillAfterSecondEpoch()]
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_a_killed_run_resumes_and_keeps_the_truth(toy_run, toy_photos, opposite_photos, tmp_path):
    """A model of toy_photos fine-tuned on the opposite colours and validated on toy_photos gets
    worse every epoch, so the best epoch comes before the kill: best.keras must still hold it at
    the end, and koala.json must count the epochs and time of both processes. The model it started
    from is gone before the resume, as on another machine: the backup holds every weight."""
    start = tmp_path / "start.keras"
    shutil.copy(Run(toy_run).best, start)
    cfg = tiny_config(opposite_photos, tmp_path, epochs=4, steps_per_epoch=6, init_weights=str(start))
    cfg.data.val = str(toy_photos)
    config_lib.save(cfg, tmp_path / "cfg.yaml")
    command = [sys.executable, "-m", "koala.cli", "train", "--config", str(tmp_path / "cfg.yaml")]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    killed = subprocess.run([sys.executable, "-c", KILLED_AFTER_EPOCH_2, *command[3:]], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    assert killed.returncode == -signal.SIGKILL
    run = cfg.run_dir
    before = val_losses_by_epoch(run)
    meta_before = Run(run).read_metadata()
    assert len(before) == 2 and Run(run).resuming
    assert meta_before["epochs_run"] == 2 and meta_before["train_seconds"] > 0
    start.unlink()

    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert f"resuming {run} from epoch " in finished.stdout
    epochs = [int(row["epoch"]) for row in read_history(run)]
    assert epochs == [1, 2, 3, 4]  # continued, not restarted; the epoch cut short is recorded once
    losses = val_losses_by_epoch(run)
    resumed_at = len(before)
    # The situation this test is about: the first epoch after the restart is worse than an earlier one.
    assert losses[resumed_at] > min(losses[:resumed_at]), losses

    meta = Run(run).read_metadata()
    best_epoch = int(np.argmin(losses)) + 1
    assert best_epoch <= resumed_at, losses
    assert meta["best_epoch"] == best_epoch and meta["best_val_loss"] == pytest.approx(min(losses), rel=1e-6)
    best = keras.saving.load_model(Run(run).best, compile=False)
    best.compile(loss=get_loss(cfg.train.loss))
    _, val = build_datasets(cfg)
    assert best.evaluate(val, verbose=0) == pytest.approx(min(losses), rel=1e-4)
    assert meta["epochs_run"] == 4 and meta["train_seconds"] > meta_before["train_seconds"]


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


def test_grayscale_photos_are_refused_and_leave_no_run_folder(tmp_path):
    from PIL import Image

    gray = tmp_path / "gray"
    gray.mkdir()
    for i in range(3):
        Image.fromarray(np.full((40, 40), 40 * i, np.uint8)).convert("RGB").save(gray / f"g{i}.png")
    with pytest.raises(ValueError, match=r"no colour photos to learn colour from \(3 grayscale of 3\)"):
        train(tiny_config(gray, tmp_path / "runs"))
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_a_resumed_run_says_so(photo_dir, tmp_path, capsys):
    cfg = tiny_config(photo_dir, tmp_path, epochs=2, steps_per_epoch=2)
    run = Run(cfg.run_dir)
    run.backup.mkdir(parents=True)  # what BackupAndRestore leaves after one epoch
    (run.backup / "training_metadata.json").write_text('{"epoch": 1}')
    run.write_metadata({})
    train(cfg)
    assert f"resuming {cfg.run_dir} from epoch 2 (1 of 2 finished)" in capsys.readouterr().out
    assert [int(row["epoch"]) for row in read_history(cfg.run_dir)] == [2]


def test_a_resumed_history_holds_each_epoch_once(tmp_path):
    """A kill after epoch 3 was recorded but before its backup: epoch 3 is trained again, and its
    first row must go rather than be repeated."""
    from koala.training.callbacks import EpochHistory

    path = tmp_path / "history.csv"
    path.write_text("epoch,loss,val_loss\r\n1,0.5,0.6\r\n2,0.4,0.5\r\n3,0.35,0.45\r\n")
    history = EpochHistory(path, keep=2)
    history.on_train_begin()
    history.on_epoch_end(2, {"loss": 0.3, "val_loss": 0.4})  # Keras counts from 0: this is epoch 3
    history.on_train_end()
    rows = list(csv.DictReader(path.open()))
    assert [(r["epoch"], r["loss"]) for r in rows] == [("1", "0.5"), ("2", "0.4"), ("3", "0.3")]
    EpochHistory(path).on_train_begin()  # keep=None: a new run starts a new file
    assert path.read_text() == ""


@pytest.mark.slow
def test_a_finished_run_is_extended_when_its_epochs_are_raised(photo_dir, tmp_path, capsys):
    cfg = tiny_config(photo_dir, tmp_path, epochs=2, steps_per_epoch=2, early_stopping_patience=10)
    run = Run(train(cfg))
    best_before = run.read_metadata()["best_val_loss"]
    seconds_before = run.read_metadata()["train_seconds"]
    capsys.readouterr()
    train(tiny_config(photo_dir, tmp_path, epochs=4, steps_per_epoch=2, early_stopping_patience=10))
    out = capsys.readouterr().out
    assert f"extending the finished run {run.path} from epoch 3 to 4" in out
    meta = run.read_metadata()
    assert [int(row["epoch"]) for row in read_history(run.path)] == [1, 2, 3, 4]
    assert meta["epochs_run"] == 4 and meta["train_seconds"] > seconds_before
    assert meta["best_val_loss"] <= best_before and run.read_config().train.epochs == 4
    assert (run.samples / "epoch_004.png").is_file() and not run.resuming
    wider = tiny_config(photo_dir, tmp_path, epochs=6, steps_per_epoch=2)
    wider.model_args = {"base_filters": 4, "batch_norm": False}  # other weights: not the same run
    with pytest.raises(FinishedRunError, match="cannot extend a run of cunet"):
        train(wider)
