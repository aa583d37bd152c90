"""Where a train step's time goes on a batch already in memory: the forward pass, forward plus
backward (gradients, no update), the optimizer's update alone, and Keras' whole train step, in
milliseconds per batch and process CPU-ms per image (all threads; unlike wall time it hardly moves
with what else the machine runs). One configuration per process, so that thread settings and
oneDNN switches apply from the start:

    python scripts/bench_train_step.py --precision mixed_bfloat16 --steps 40
    python scripts/bench_train_step.py --precision mixed_bfloat16 --intra 2 --inter 1

The model is koala's CU-Net as the bundled default builds it (16 filters, 776,930 parameters),
at ``--size`` px and batch ``--batch``, with the L1 loss and Adam.
"""
from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from koala.models import get_model  # noqa: E402
from timing import timed  # noqa: E402


def bench(precision: str, size: int, batch: int, steps: int) -> dict[str, dict[str, float]]:
    keras.utils.set_random_seed(0)
    model = get_model("cunet", base_filters=16, batch_norm=False, dilation_rates=[2, 4, 8, 8], dtype=precision)
    optimizer = keras.optimizers.Adam(1e-4)
    loss_fn = keras.losses.MeanAbsoluteError()
    x = tf.random.uniform((batch, size, size, 1))
    y = tf.random.uniform((batch, size, size, 2), -0.5, 0.5)
    optimizer.build(model.trainable_variables)

    @tf.function
    def forward():
        return model(x, training=True)

    @tf.function
    def gradients():
        with tf.GradientTape() as tape:
            loss = loss_fn(y, tf.cast(model(x, training=True), tf.float32))
        return tape.gradient(loss, model.trainable_variables)

    grads = [tf.identity(g) for g in gradients()]

    @tf.function
    def update():
        optimizer.apply(grads, model.trainable_variables)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = loss_fn(y, tf.cast(model(x, training=True), tf.float32))
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)

    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="mae", jit_compile=False)
    data = tf.data.Dataset.from_tensors((x, y)).repeat()
    fit_steps = 5
    fit = lambda: model.fit(data, epochs=1, steps_per_epoch=fit_steps, verbose=0)  # noqa: E731
    result = {name: timed(fn, steps, batch) for name, fn in
              (("forward", forward), ("gradients", gradients), ("update", update), ("step", step))}
    fit_times = timed(fit, max(1, steps // fit_steps), batch * fit_steps)  # a call is fit_steps batches
    result["fit"] = {**fit_times, "ms_per_batch": fit_times["ms_per_batch"] / fit_steps}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--precision", default="mixed_bfloat16")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--intra", type=int, default=0, help="intra-op threads (0: TensorFlow's choice)")
    parser.add_argument("--inter", type=int, default=0, help="inter-op threads (0: TensorFlow's choice)")
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(args.intra)
    tf.config.threading.set_inter_op_parallelism_threads(args.inter)
    result = bench(args.precision, args.size, args.batch, args.steps)
    print(json.dumps({"precision": args.precision, "intra": args.intra, "inter": args.inter,
                      "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"), **result}))


if __name__ == "__main__":
    main()
