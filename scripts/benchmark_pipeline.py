"""Print images/s of the input pipeline alone and of training steps on this machine.

    python scripts/benchmark_pipeline.py --data ../shared/datasets/photos-v1/train --size 128
"""
from __future__ import annotations

import argparse
import time

import keras

from koala.data import Augment, make_dataset
from koala.losses import get_loss
from koala.models import get_model


def images_per_second(iterator, batches: int, batch_size: int) -> float:
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--images", type=int, default=2048, help="images to cache")
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--model", default="cunet")
    parser.add_argument("--base-filters", type=int, default=32)
    args = parser.parse_args()

    ds = make_dataset(args.data, args.size, args.batch, training=True, augment=Augment(),
                      max_images=args.images, repeat=True)
    it = iter(ds)
    first = images_per_second(it, args.images // args.batch, args.batch)
    print(f"pipeline, first pass (decode + shrink + augment + Lab): {first:.0f} images/s")
    cached = images_per_second(it, args.batches * 3, args.batch)
    print(f"pipeline, cached (crop + augment + Lab): {cached:.0f} images/s")

    model = get_model(args.model, base_filters=args.base_filters)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=get_loss("l1"), jit_compile=False)
    model.fit(ds, steps_per_epoch=5, epochs=1, verbose=0)  # warm-up: tracing
    start = time.perf_counter()
    model.fit(ds, steps_per_epoch=args.batches, epochs=1, verbose=0)
    rate = args.batches * args.batch / (time.perf_counter() - start)
    print(f"training ({args.model}, base_filters={args.base_filters}, {args.size}px, float32): {rate:.1f} images/s")


if __name__ == "__main__":
    main()
