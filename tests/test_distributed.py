"""Training with tf.distribute: strategy choice, the custom loop that replaces `fit` under
MultiWorkerMirroredStrategy, loss scaling, and two real worker processes on 127.0.0.1.

Run as a script, this file is one worker: ``python tests/test_distributed.py CONFIG OUT.npz``.
"""
import csv
import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]


def tiny_model_and_data(seed: int = 0):
    import keras
    import tensorflow as tf

    from koala.models import get_model

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    l_norm = rng.uniform(-0.5, 0.5, (16, 16, 16, 1)).astype(np.float32)
    ab = np.tanh(np.concatenate([l_norm, -l_norm], -1) * 2).astype(np.float32)
    ds = tf.data.Dataset.from_tensor_slices((l_norm, ab)).batch(4, drop_remainder=True)
    return (lambda: get_model("cunet", base_filters=4, batch_norm=False)), ds


def test_strategy_names():
    import tensorflow as tf

    from koala.training import get_strategy
    from koala.training.multiworker import is_chief

    assert get_strategy("default") is tf.distribute.get_strategy()
    assert get_strategy("mirrored").num_replicas_in_sync >= 1
    assert is_chief(get_strategy("default"))
    with pytest.raises(ValueError, match="unknown strategy 'horovod'"):
        get_strategy("horovod")


def test_custom_loop_matches_keras_fit():
    import keras
    import tensorflow as tf

    from koala.losses import l1
    from koala.training.multiworker import custom_fit

    build, ds = tiny_model_and_data()
    strategy = tf.distribute.get_strategy()
    weights = []
    for use_fit in (True, False):
        keras.utils.set_random_seed(0)
        model = build()
        model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=l1, jit_compile=False)
        if use_fit:
            history = model.fit(ds, validation_data=ds, epochs=2, verbose=0)
        else:
            history = custom_fit(model, strategy, ds, ds, epochs=2, verbose=0)
        weights.append(model.get_weights())
        losses = history.history
    fit_weights, loop_weights = weights
    for a, b in zip(fit_weights, loop_weights):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert set(losses) >= {"loss", "val_loss"} and len(losses["loss"]) == 2
    assert losses["val_loss"][1] < losses["val_loss"][0]


def test_loss_scaling_skips_overflowing_steps_and_bfloat16_trains():
    import keras
    import tensorflow as tf

    from koala.losses import l1
    from koala.training.multiworker import custom_fit

    build, ds = tiny_model_and_data()
    strategy = tf.distribute.get_strategy()
    try:
        keras.mixed_precision.set_dtype_policy("mixed_float16")
        model = build()
        model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=l1, jit_compile=False)
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)  # Keras wraps it
        model.optimizer.build(model.trainable_variables)
        model.optimizer.dynamic_scale.assign(1e30)  # the scaled float16 gradients overflow
        before = [w.copy() for w in model.get_weights()]
        custom_fit(model, strategy, ds.take(1), epochs=1, verbose=0)
        assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))  # step skipped
        assert float(model.optimizer.dynamic_scale) == pytest.approx(5e29, rel=1e-6)  # and the scale halved
        model.optimizer.dynamic_scale.assign(1024.0)
        history = custom_fit(model, strategy, ds.take(1), epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])
        assert not all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))

        keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
        model = build()
        model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=l1, jit_compile=False)
        assert not isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)  # bfloat16 needs none
        assert model.get_layer("enc0a_conv").compute_dtype == "bfloat16"
        history = custom_fit(model, strategy, ds.take(1), epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


def test_adversarial_models_are_refused():
    import keras
    import tensorflow as tf

    from koala.models import get_model
    from koala.training.multiworker import custom_fit

    model = get_model("resunet34", decoder_filters=(8, 8, 8, 8, 8), adversarial=True, critic_filters=4)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="l1")
    with pytest.raises(ValueError, match="own train_step"):
        custom_fit(model, tf.distribute.get_strategy(), tiny_model_and_data()[1])


def free_ports(n: int) -> list[int]:
    """``n`` ports free now, below the kernel's ephemeral range: the ports bind(0) and outgoing
    connections are handed come from that range, so no other process is given one of these
    between this check and the workers' own bind (a port taken from bind(0) could be)."""
    ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = []
    for port in random.Random().sample(range(20000, ephemeral_low), 200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == n:
            return ports
    raise RuntimeError(f"no {n} free ports between 20000 and {ephemeral_low}")


def write_config(photo_dir, out_dir, path, strategy: str) -> None:
    from koala import config as config_lib

    cfg = config_lib.load(preset="smoke", overrides=[
        f"data.train={photo_dir}", f"data.val={photo_dir}", f"out_dir={out_dir}", f"name={strategy}",
        "model_args={base_filters: 4, batch_norm: false}", "data.image_size=32", "data.batch_size=4",
        "data.augment={flip: false, rotation: 0, zoom: 0, shear: 0, shift: 0}",
        # A small rate: Adam's first steps are lr * sign(gradient), so summation-order noise in a
        # near-zero gradient can flip a weight's step; at 1e-4 that stays far inside the tolerances.
        "train.epochs=2", "train.steps_per_epoch=3", "train.learning_rate=0.0001", "train.sample_images=2",
        f"train.strategy={strategy}",
    ])
    config_lib.save(cfg, path)


def read_history(run: Path) -> list[dict]:
    from koala.runs import Run

    with open(Run(run).history_file) as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_two_workers_train_in_step_and_match_one_process(tmp_path):
    from PIL import Image

    from tests.conftest import smooth_colour_image

    # Photos of exactly the crop size, so the random crop is the whole photo: tf.data's random ops
    # draw differently once the dataset is rewritten for sharding, while the order stays the same.
    photo_dir = tmp_path / "photos"
    photo_dir.mkdir()
    for i in range(12):
        Image.fromarray(smooth_colour_image(i, 32, 32)).save(photo_dir / f"photo_{i:02d}.png")
    write_config(photo_dir, tmp_path / "runs", tmp_path / "multi.yaml", "multiworker")
    write_config(photo_dir, tmp_path / "runs", tmp_path / "single.yaml", "default")
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, str(Path(__file__).resolve())]
    procs = [subprocess.Popen(command + [str(tmp_path / "multi.yaml"), str(tmp_path / f"worker{i}.npz")],
                              env={**env, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(2)]
    single = subprocess.Popen(command + [str(tmp_path / "single.yaml"), str(tmp_path / "single.npz")],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for proc in procs + [single]:
            output, _ = proc.communicate(timeout=540)
            assert proc.returncode == 0, output[-3000:]
    finally:
        for proc in procs + [single]:
            proc.kill()  # a worker left waiting for a dead peer would never exit

    import keras

    chief, worker = np.load(tmp_path / "worker0.npz"), np.load(tmp_path / "worker1.npz")
    assert len(chief.files) > 10
    for key in chief.files:  # in step: the very same weights on both workers
        np.testing.assert_array_equal(chief[key], worker[key])
    multi_run, single_run = tmp_path / "runs" / "multiworker", tmp_path / "runs" / "default"
    multi_history, single_history = read_history(multi_run), read_history(single_run)
    assert [int(r["epoch"]) for r in multi_history] == [1, 2] == [int(r["epoch"]) for r in single_history]
    for a, b in zip(multi_history, single_history):  # the same training as one process, global batch 4
        assert float(a["loss"]) == pytest.approx(float(b["loss"]), rel=1e-3)
        assert float(a["val_loss"]) == pytest.approx(float(b["val_loss"]), rel=1e-3)
    from koala import config as config_lib
    from koala.models import get_model
    from koala.runs import Run

    multi_best = keras.saving.load_model(Run(multi_run).best, compile=False).get_weights()
    single_best = keras.saving.load_model(Run(single_run).best, compile=False).get_weights()

    cfg = config_lib.load(tmp_path / "single.yaml")
    keras.utils.set_random_seed(cfg.train.seed)  # the initial weights both runs started from
    initial = get_model(cfg.model, **cfg.model_args).get_weights()
    flat = lambda weights: np.concatenate([(w - w0).ravel() for w, w0 in zip(weights, initial)])  # noqa: E731
    multi_update, single_update = flat(multi_best), flat(single_best)
    assert np.linalg.norm(single_update) > 1e-3  # it trained
    assert np.linalg.norm(multi_update - single_update) < 0.05 * np.linalg.norm(single_update)
    # Only the chief wrote the run folder, with everything `fit` leaves behind.
    assert (Run(multi_run).samples / "epoch_002.png").is_file() and Run(multi_run).finished
    assert Run(multi_run).read_metadata()["epochs_run"] == 2
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["default", "multiworker"]


def _worker(config_path: str, out_path: str) -> None:
    """One process of the two-worker test: train the config, save the final weights."""
    from koala import config as config_lib
    from koala.training import get_strategy
    from koala.training.multiworker import train_multiworker

    cfg = config_lib.load(config_path)
    if cfg.train.strategy != "multiworker":
        from koala.training import train

        train(cfg)
        return
    _, model = train_multiworker(cfg, get_strategy(cfg.train.strategy))
    np.savez(out_path, **{f"w{i:03d}": w for i, w in enumerate(model.get_weights())})


if __name__ == "__main__":
    _worker(sys.argv[1], sys.argv[2])
