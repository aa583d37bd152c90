"""Simulated colour hints, as Zhang, Zhu et al. 2017 (ideepcolor) train and evaluate with them.

A hint model sees, beside L, three hint channels: the hint's normalised a and b where a hint was
placed (0 elsewhere) and a mask (1 there, 0 elsewhere). In training a person's clicks are
simulated from the true colours (the paper's ``add_color_patches_rand_gt``): the number of hints
per crop is geometric (after each hint another follows with probability 1 - ``STOP_P``, so 1
crop in 8 gets none and the mean is 7), each hint is a square patch of 1 to 9 px whose centre
is drawn from a normal distribution around the crop's centre (sigma a quarter of the side), and
the patch is filled with the mean true ab inside it. Evaluation places a fixed number of
hints the same way, from a seed, so every model sees the same hints.

All ops are stateless and vectorised over the batch (a batch of 16 crops at 128 px with 64 hint
slots is a few million multiply-adds), so they run inside the tf.data pipeline.

Example::

    hints = simulate_hints(ab, seed=tf.constant([0, 1], tf.int64))              # training
    hints = simulate_hints(ab, seed=tf.constant([7, 0], tf.int64), count=10, patch=5)  # 10 hints
"""
from __future__ import annotations

import tensorflow as tf

STOP_P = 1.0 / 8.0  # ideepcolor's p: the chance that no further hint is added
PATCH_SIZES = (1, 9)  # smallest and largest square patch side in px (ideepcolor's sample_Ps)
MAX_HINTS = 64  # hint slots per crop: a geometric count beyond it (p < 2e-4) is cut here
HINT_CHANNELS = 3  # normalised a, normalised b, mask
HINTS_INPUT_NAME = "hints"


def hint_count(seed: tf.Tensor, batch: tf.Tensor, max_hints: int = MAX_HINTS) -> tf.Tensor:
    """Geometric numbers of hints per crop, P(k) = (1 - STOP_P)^k STOP_P, capped at ``max_hints``."""
    u = tf.random.stateless_uniform([batch], seed, minval=1e-7, maxval=1.0)
    k = tf.floor(tf.math.log(u) / tf.math.log(1.0 - STOP_P))
    return tf.cast(tf.minimum(k, float(max_hints)), tf.int32)


def simulate_hints(ab: tf.Tensor, seed: tf.Tensor, count: int | None = None, patch: int | None = None,
                   max_hints: int = MAX_HINTS) -> tf.Tensor:
    """Hint channels (B, H, W, 3) for normalised ``ab`` (B, H, W, 2) from a stateless ``seed`` (2 ints).

    count: hints per crop (default None: geometric, as in training); patch: patch side in px
    (default None: uniform over ``PATCH_SIZES``). Overlapping patches average their colours.
    """
    ab = tf.convert_to_tensor(ab, tf.float32)
    shape = tf.shape(ab)
    batch, height, width = shape[0], shape[1], shape[2]
    slots = max_hints if count is None else max(int(count), 1)
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 4)
    if count is None:
        active = tf.sequence_mask(hint_count(seeds[0], batch, max_hints), slots, tf.float32)
    else:
        active = tf.fill([batch, slots], 1.0 if count else 0.0)
    if patch is None:
        sizes = tf.random.stateless_uniform([batch, slots], seeds[1], PATCH_SIZES[0], PATCH_SIZES[1] + 1, tf.int32)
    else:
        sizes = tf.fill([batch, slots], int(patch))
    top = _gaussian_start(seeds[2], [batch, slots], height, sizes)
    left = _gaussian_start(seeds[3], [batch, slots], width, sizes)
    rows = _span(top, sizes, height) * active[..., None]  # (B, K, H): 1 on the patch's rows
    cols = _span(left, sizes, width)  # (B, K, W)
    area = tf.cast(sizes * sizes, tf.float32)
    colour = tf.einsum("bkh,bkw,bhwc->bkc", rows, cols, ab) / area[..., None]  # mean ab in each patch
    cover = tf.einsum("bkh,bkw->bhw", rows, cols)
    painted = tf.einsum("bkh,bkw,bkc->bhwc", rows, cols, colour) / tf.maximum(cover, 1.0)[..., None]
    return tf.concat([painted, tf.cast(cover > 0, tf.float32)[..., None]], axis=-1)


def _gaussian_start(seed: tf.Tensor, shape, side: tf.Tensor, sizes: tf.Tensor) -> tf.Tensor:
    """First row (or column) of each patch: normal around the centre, sigma a quarter of the free
    range, clipped so the patch stays inside (ideepcolor's ``samp='normal'``)."""
    free = tf.cast(side - sizes + 1, tf.float32)
    start = tf.random.stateless_normal(shape, seed, mean=0.0, stddev=1.0) * free / 4.0 + free / 2.0
    return tf.cast(tf.clip_by_value(tf.floor(start), 0.0, free - 1.0), tf.int32)


def _span(start: tf.Tensor, sizes: tf.Tensor, side: tf.Tensor) -> tf.Tensor:
    """(B, K, side) float mask: 1 where start <= i < start + size."""
    i = tf.range(side)[None, None, :]
    return tf.cast((i >= start[..., None]) & (i < (start + sizes)[..., None]), tf.float32)
