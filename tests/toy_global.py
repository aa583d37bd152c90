"""A toy world for reference and suggestion tests, and a tiny CU-Net with global hints and a colour
distribution head trained on it briefly (as koala trains the real one: simulated hints, each crop's
own colours as the global hint half the time, ab loss plus the head's cross-entropy).

Each photo is a green background (L* 70) with one or two squares of L* 50, all red or all blue at
random: from gray alone a square's colour is a coin toss, so only a reference (or a hint) can say
which, and the distribution head at a square should give both.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from skimage.color import lab2rgb

TOY_SIDE = 32
BACKGROUND_LAB = (70.0, -40.0, 35.0)
SQUARE_L = 50.0
RED_AB, BLUE_AB = (55.0, 40.0), (10.0, -55.0)
TOY_STEPS = 500
GIVEN_P = 0.8  # the global hint is given more often than in koala's training: a short run learns it sooner
TOY_ARGS = {"base_filters": 8, "batch_norm": False, "hints": True, "global_hints": True, "distribution": True}


def lab_colour(l: float, ab: tuple[float, float]) -> np.ndarray:
    """The sRGB in [0, 1] of a Lab colour (scikit-image's conversion, not koala's)."""
    return lab2rgb(np.array([[[l, *ab]]], np.float64))[0, 0]


def toy_photo(rng: np.random.Generator, colours: list[tuple[float, float]] | None = None) -> np.ndarray:
    """Float RGB (TOY_SIDE, TOY_SIDE, 3): the background and a square of each of ``colours`` (ab at
    L* 50; default: one or two, all red or all blue at random)."""
    image = np.empty((TOY_SIDE, TOY_SIDE, 3), np.float32)
    image[:] = lab_colour(BACKGROUND_LAB[0], BACKGROUND_LAB[1:])
    if colours is None:
        colours = [(RED_AB, BLUE_AB)[rng.integers(2)]] * rng.integers(1, 3)
    for ab in colours:
        side = rng.integers(10, 19)
        top, left = rng.integers(0, TOY_SIDE - side, 2)
        image[top:top + side, left:left + side] = lab_colour(SQUARE_L, ab)
    return image


def toy_key() -> str:
    """A short hash of the sources that decide the toy model: this file, the CU-Net and the hint
    and global-hint simulations."""
    import koala

    root = Path(koala.__file__).parent
    sources = [Path(__file__), root / "models" / "cunet.py", root / "data" / "hints.py", root / "data" / "global_hints.py"]
    return hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:12]


def train_toy_model(folder) -> str:
    """Train the tiny model on 1024 toy photos for ``TOY_STEPS`` steps; a run folder."""
    import keras
    import tensorflow as tf

    from conftest import save_run
    from koala.color import rgb_to_lab, split_lab
    from koala.data.global_hints import simulate_global_hints
    from koala.data.hints import simulate_hints
    from koala.models import get_model
    from koala.models.cunet import distribution_losses

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    l_norm, ab = split_lab(rgb_to_lab(np.stack([toy_photo(rng) for _ in range(1024)])))

    def example(i, pair):
        seeds = tf.random.experimental.stateless_split(tf.stack([tf.constant(0, tf.int64), i]), 2)
        inputs = {"L": pair[0], "hints": simulate_hints(pair[1], seeds[0]),
                  "global_hints": simulate_global_hints(pair[1], seeds[1], GIVEN_P)}
        return inputs, {"ab": pair[1], "bins": pair[1]}

    data = tf.data.Dataset.from_tensor_slices((l_norm, ab)).repeat().shuffle(1024, seed=0).batch(16).enumerate().map(example)
    model = get_model("cunet", **TOY_ARGS)
    fuse = model.get_layer("global_hints_fuse")  # zero-initialised, it needs many steps to start learning
    kernel, bias = fuse.get_weights()
    fuse.set_weights([rng.normal(0, 0.1, kernel.shape).astype(np.float32), bias])
    losses, weights = distribution_losses(TOY_ARGS, 0.05)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss={"ab": "mse", **losses}, loss_weights={"ab": 1.0, **weights})
    model.fit(data, steps_per_epoch=TOY_STEPS, epochs=1, verbose=0)
    return save_run(folder, model, image_size=TOY_SIDE, model_args=TOY_ARGS, saturation=1.2)
