"""Where a training run's time goes: the input pipeline alone, the forward pass, the whole train
step (forward + backward + update) on a batch already in memory, and `fit` on the real pipeline;
the steps are timed with koala's fused batch normalisation and with Keras' own (alternately,
``--repeats`` times, best of each).

    python scripts/profile_training.py --config configs/default.yaml --steps 30 --out profile.json \\
        --set data.max_train_images=512 --set data.source_balance=0 --warmup 40

Uses the config's model, loss, batch size and crop size through ``koala.training``, without XLA,
once per ``--precision`` (default: float32 and mixed_bfloat16, which ``precision: auto`` picks on a
CPU with bfloat16 units). Backward is the train step minus the forward pass.
If `fit` is much slower than the in-memory train step, the input side is the cost.
``--warmup`` batches are read first, so that a cached dataset is filled before anything is timed
(limit the photos with ``data.max_train_images`` so that this is quick). Numbers depend on what
else the machine is doing: run it on a quiet machine.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from koala import config as config_lib  # noqa: E402
from koala.models.layers import FusedBatchNormalization  # noqa: E402
from koala.training import build_datasets, compile_model  # noqa: E402
from timing import timed  # noqa: E402


CPU_MS: dict[str, float] = {}  # process CPU ms per image of each measurement, by name


def rate(fn, steps: int, batch: int, name: str = "") -> float:
    """Images/s of ``fn`` (one batch per call) after one warm-up call; its process CPU time per
    image (all threads) goes into ``CPU_MS[name]``: unlike images/s it hardly depends on what else
    the machine runs, so it shows where a shared machine's cores go."""
    times = timed(fn, steps, batch, warmup=1)
    if name:
        CPU_MS[name] = min(CPU_MS.get(name, float("inf")), times["cpu_ms_per_image"])
    return times["images_per_second"]


def model_rates(cfg: config_lib.Config, x: tf.Tensor, y: tf.Tensor, steps: int, precision: str,
                tag: str) -> dict[str, float]:
    """Forward and train-step images/s of the config's model on one in-memory batch."""
    keras.utils.set_random_seed(0)
    model = compile_model(cfg, [], precision)
    forward = tf.function(lambda: model(x, training=True))
    batches = tf.data.Dataset.from_tensors((x, y)).repeat()
    step = lambda: model.fit(batches, epochs=1, steps_per_epoch=5, verbose=0)  # noqa: E731
    batch = int(x.shape[0])
    return {"forward": rate(forward, steps, batch, f"{tag} forward"),
            "train_step": rate(step, max(1, steps // 5), 5 * batch, f"{tag} train_step")}


def profile(cfg: config_lib.Config, steps: int, warmup: int = 0, repeats: int = 2, precision: str = "float32") -> dict:
    batch = cfg.data.batch_size
    fused_call = FusedBatchNormalization.call
    train_ds, _ = build_datasets(cfg)
    iterator = iter(train_ds)
    for _ in range(warmup):
        next(iterator)
    data = rate(lambda: next(iterator), steps, batch, f"{precision} data")
    x, y = next(iterator)
    fused, unfused = {}, {}
    for _ in range(repeats):  # alternated, best of each: other work on the machine hits both alike
        for rates, call, tag in ((fused, FusedBatchNormalization.call, precision),
                                 (unfused, keras.layers.BatchNormalization.call, f"{precision} keras_bn")):
            FusedBatchNormalization.call = call
            try:
                for key, value in model_rates(cfg, x, y, steps, precision, tag).items():
                    rates[key] = max(value, rates.get(key, 0.0))
            finally:
                FusedBatchNormalization.call = fused_call
    model = compile_model(cfg, [], precision)
    fit = rate(lambda: model.fit(train_ds, epochs=1, steps_per_epoch=5, verbose=0), max(1, steps // 5), 5 * batch,
               f"{precision} fit")
    ms = lambda r: 1000.0 * batch / r  # noqa: E731  images/s -> ms per batch
    return {
        "precision": precision,
        "config": {"source": cfg.data.train, "max_train_images": cfg.data.max_train_images, "model": cfg.model, "model_args": cfg.model_args, "image_size": cfg.data.image_size,
                   "batch_size": batch},
        "images_per_second": {"data": data, "forward": fused["forward"], "train_step": fused["train_step"],
                              "fit": fit, "train_step_keras_bn": unfused["train_step"],
                              "forward_keras_bn": unfused["forward"]},
        "ms_per_batch": {"data": ms(data), "forward": ms(fused["forward"]),
                         "backward_and_update": ms(fused["train_step"]) - ms(fused["forward"]),
                         "fit": ms(fit)},
        "cpu_ms_per_image": {part: CPU_MS[f"{precision} {part}"] for part in ("data", "forward", "train_step", "fit")},
        "fit_share_of_train_step": fit / fused["train_step"],
        "fused_bn_speedup": fused["train_step"] / unfused["train_step"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="a `koala train` config")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a field")
    parser.add_argument("--steps", type=int, default=30, help="timed batches per measurement")
    parser.add_argument("--repeats", type=int, default=2, help="alternated measurements of each batch norm")
    parser.add_argument("--warmup", type=int, default=0, help="batches read before timing (fills the cache)")
    parser.add_argument("--precision", default="float32,mixed_bfloat16",
                        help="comma-separated dtype policies to profile (default: float32,mixed_bfloat16)")
    parser.add_argument("--out", help="write the JSON here")
    args = parser.parse_args()
    cfg = config_lib.load(args.config, overrides=args.set)
    result = {precision: profile(cfg, args.steps, args.warmup, args.repeats, precision)
              for precision in args.precision.split(",")}
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
