"""The run folder: model resolution, metadata, state and history (no training here)."""
import json
import os
import threading
import zipfile

import pytest

from koala.runs import DEFAULT_MODEL, Run, model_metadata, resolve_model


def test_resolve_default_folder_and_file(tmp_path):
    assert resolve_model("default") == DEFAULT_MODEL and DEFAULT_MODEL.is_file()
    run = Run(tmp_path / "run")
    run.path.mkdir()
    zipfile.ZipFile(run.best, "w").close()  # a .keras file is a zip archive
    assert resolve_model(run.path) == run.best
    assert resolve_model(str(run.best)) == run.best  # a file is itself
    other = tmp_path / "elsewhere.keras"
    zipfile.ZipFile(other, "w").close()
    assert resolve_model(other) == other


def test_resolve_refuses_what_is_not_a_model(tmp_path):
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty_run: no such model \(give 'default', 'hints', a run folder"):
        resolve_model(tmp_path / "empty_run")  # a folder without a best checkpoint
    with pytest.raises(FileNotFoundError, match="missing.keras: no such model"):
        resolve_model(tmp_path / "missing.keras")
    for name in ("photo.png", "truncated.keras"):  # a file, but not a model
        (tmp_path / name).write_bytes(b"\x89PNG\r\n\x1a\n")
        with pytest.raises(ValueError, match=f"{name}: not a Keras model file"):
            resolve_model(tmp_path / name)


def test_model_metadata_from_the_run_or_beside_a_bundled_model(tmp_path):
    assert model_metadata(DEFAULT_MODEL)["model"] == "cunet"  # koala/weights/default.json
    run = Run(tmp_path / "run")
    run.update_metadata(model="cunet", image_size=32)
    assert model_metadata(run.best) == {"model": "cunet", "image_size": 32}
    assert model_metadata(tmp_path / "loose.keras") == {}  # none: inference uses registry defaults
    (tmp_path / "loose.json").write_text('{"model": "zhang16"}')
    assert model_metadata(tmp_path / "loose.keras") == {"model": "zhang16"}


def test_metadata_round_trip_merges_and_writes_atomically(tmp_path, monkeypatch):
    run = Run(tmp_path / "run")
    assert run.read_metadata() == {}  # none yet; nothing created
    assert not run.path.exists()
    run.write_metadata({"model": "cunet", "output": "ab"})  # old files carry "output": still read
    run.update_metadata(best_epoch=3, best_val_loss=0.25)
    assert run.read_metadata() == {"model": "cunet", "output": "ab", "best_epoch": 3, "best_val_loss": 0.25}
    assert json.loads(run.metadata_file.read_text())["best_epoch"] == 3

    # A write that dies half way leaves the old file whole and no temporary behind.
    def broken_replace(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk gone"):
        run.update_metadata(best_epoch=4)
    monkeypatch.undo()
    assert run.read_metadata()["best_epoch"] == 3
    assert sorted(p.name for p in run.path.iterdir()) == [run.metadata_file.name]


def test_a_reader_during_a_write_sees_the_old_file_whole(tmp_path, monkeypatch):
    """The writer is held (an Event) with half of the new koala.json written; a reader then gets
    the old file whole, and the new one once the writer finishes. A writer that wrote koala.json
    in place would hand the reader half a JSON document."""
    from koala import images

    run = Run(tmp_path)
    old = {"n": 0, "pad": "x" * 10_000}
    run.write_metadata(old)
    half_written, resume = threading.Event(), threading.Event()

    class HalfThenWait:
        """A file whose write stops half way until ``resume`` is set."""

        def __init__(self, file):
            self.file = file

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.file.__exit__(*exc)

        def write(self, data):
            self.file.write(data[: len(data) // 2])
            self.file.flush()
            half_written.set()
            resume.wait(60)
            return self.file.write(data[len(data) // 2:])

    real_open = open
    monkeypatch.setattr(images, "open", lambda *a, **k: HalfThenWait(real_open(*a, **k)), raising=False)
    writer = threading.Thread(target=run.update_metadata, kwargs={"n": 1})
    writer.start()
    try:
        assert half_written.wait(60), "the write never got half way through the file"
        seen = run.read_metadata()
    finally:
        resume.set()
        writer.join(60)
    assert seen == old
    assert run.read_metadata() == {**old, "n": 1}


def test_finished_and_resuming(tmp_path):
    run = Run(tmp_path / "run")
    assert not run.finished and not run.resuming and run.epochs_done() == 0
    run.backup.mkdir(parents=True)
    assert run.resuming and not run.finished and run.epochs_done() == 0
    (run.backup / "training_metadata.json").write_text('{"epoch": 2}')  # what BackupAndRestore writes
    assert run.epochs_done() == 2
    run.best.write_bytes(b"")
    assert not run.finished  # a best checkpoint, but still training
    run.backup.joinpath("training_metadata.json").unlink()
    run.backup.rmdir()
    assert run.finished and not run.resuming


def test_history_columns(tmp_path):
    run = Run(tmp_path)
    assert run.history() == {}
    run.history_file.write_text("epoch,learning_rate,loss,val_loss\n0,0.001,0.5,0.6\n1,0.001,0.4,\n")
    assert run.history() == {"epoch": [0.0, 1.0], "learning_rate": [0.001, 0.001], "loss": [0.5, 0.4],
                             "val_loss": [0.6]}
    run.history_file.write_text("")
    assert run.history() == {}


def test_config_round_trip(tmp_path):
    from koala import config as config_lib

    cfg = config_lib.load(preset="smoke")
    run = Run(tmp_path)
    run.save_config(cfg)
    assert run.read_config() == cfg


def functional_cunet(args: dict):
    """A CU-Net saved as a plain Functional (how the first bundled model was saved), seeded weights."""
    import keras

    from koala.models import get_model

    keras.utils.set_random_seed(4)
    network = get_model("cunet", **args)
    return keras.Model(network.inputs, network.outputs, name="cunet")


def test_bundle_ships_the_registered_class_with_the_same_outputs_and_keeps_existing_files(tmp_path):
    import keras
    import numpy as np

    from koala.models.cunet import CUNet
    from koala.runs import bundle

    args = {"base_filters": 4, "batch_norm": False, "dilation_rates": [2, 4, 8, 8]}
    plain = functional_cunet(args)
    assert not isinstance(plain, CUNet)
    run = Run(tmp_path / "run")
    run.path.mkdir()
    plain.save(run.best)
    meta = {"model": "cunet", "model_args": args, "image_size": 32, "multiple": 8, "saturation": 1.3}
    run.write_metadata(meta)
    weights = tmp_path / "weights"
    weights.mkdir()
    bundled = bundle(run, "mine", weights)
    loaded = keras.saving.load_model(bundled, compile=False)
    assert isinstance(loaded, CUNet) and loaded.dilation_rates == (2, 4, 8, 8)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 32, 40, 1)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x).numpy(), plain(x).numpy())
    assert json.loads((weights / "mine.json").read_text()) == meta
    assert (bundled.stat().st_mode & 0o777) == 0o644 and not list(weights.glob(".*"))
    before = bundled.read_bytes()
    with pytest.raises(FileExistsError, match="mine.keras: exists"):
        bundle(run, "mine", weights)
    assert bundled.read_bytes() == before
    bundle(run, "mine", weights, overwrite=True)
    assert bundle(run, "hints", weights) == weights / "default.keras"  # the default takes hints: one file
    assert json.loads((weights / "default.json").read_text()) == meta and not (weights / "hints.keras").exists()
    with pytest.raises(FileNotFoundError, match="no finished run"):
        bundle(Run(tmp_path / "nothing"), "other", weights)
    with pytest.raises(FileNotFoundError, match="no finished run"):
        bundle(Run(tmp_path / "nothing"), "other", weights, stopped=True)
    run.backup.mkdir()  # stopped: it can resume
    with pytest.raises(FileNotFoundError, match="still training"):
        bundle(run, "stopped", weights)
    np.testing.assert_array_equal(keras.saving.load_model(bundle(run, "stopped", weights, stopped=True),
                                                          compile=False)(x).numpy(), plain(x).numpy())
    assert run.backup.is_dir()


def test_bundle_loads_a_subclassed_run_in_a_fresh_process(tmp_path):
    """A run saved as a CUNet (every run trained since the architectures became classes) bundles
    from a process that imported only koala.runs, as scripts/package_model.py does."""
    import subprocess
    import sys

    from koala.models import get_model

    args = {"base_filters": 4, "batch_norm": False, "dilation_rates": [2, 4, 8, 8], "hints": True}
    run = Run(tmp_path / "run")
    run.path.mkdir()
    get_model("cunet", **args).save(run.best)
    run.write_metadata({"model": "cunet", "model_args": args, "image_size": 32, "multiple": 8})
    code = ("import sys; from koala.runs import Run, bundle; "
            "print(bundle(Run(sys.argv[1]), 'mine', sys.argv[2]))")
    done = subprocess.run([sys.executable, "-c", code, str(run.path), str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "mine.keras").is_file() and (tmp_path / "mine.json").is_file()


def test_the_bundled_model_is_its_registered_class():
    """load_model alone rebuilds the shipped model: a CUNet with the arguments of its metadata."""
    import keras

    from koala.models.cunet import CUNet

    network = keras.saving.load_model(DEFAULT_MODEL, compile=False)
    args = model_metadata(DEFAULT_MODEL)["model_args"]
    assert isinstance(network, CUNet)
    assert (network.base_filters, network.batch_norm, list(network.dilation_rates)) == (
        args["base_filters"], args["batch_norm"], args["dilation_rates"])
