"""The tf.data input pipeline: photos -> (normalised L, normalised ab) batches, optionally with
a side input beside L (a model's second input, e.g. Deep Koalarization's image embedding).

Decoding goes through :func:`koala.images.load_rgb` (every format, EXIF orientation, 16-bit),
images are shrunk once and cached as uint8, then each epoch takes random crops, applies the
geometric augmentation to the RGB image *before* the Lab split (so L and ab share one random
draw and stay aligned) and converts to Lab with the TF ops of :mod:`koala.color`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np
import tensorflow as tf

from koala.color import rgb_to_lab, split_lab
from koala.data.augment import Augment
from koala.images import GRAY_SPREAD, colour_spread, evenly_spaced, load_shrunk, source_groups

log = logging.getLogger(__name__)

CROP_MARGIN = 1.15  # cached images are a little larger than the crop, so crops vary
SHUFFLE_BUFFER = 4096  # photos a training shuffle draws from (the whole set when it is smaller)
GRAY_CHECK_PHOTOS = 256  # training sets read without the cache: photos (evenly spread) decoded up front to find colour


@dataclass(frozen=True)
class SideInput:
    """A second model input beside L: :func:`make_dataset` then yields ``({"L": l, name: x}, ab)``.

    Give exactly one source:

    * ``per_photo(paths, source) -> array`` with one row per path (``source`` names the data in
      errors), looked up once and carried with its photo through shuffling, source balancing and
      dropped unreadable files; e.g. an HDF5 embedding cache's
      :meth:`koala.data.embeddings.EmbeddingCache.lookup`.
    * ``from_l(l_norm) -> tensor``, computed from each finished batch's normalised L (cropped and
      augmented, the very L the model sees); e.g. a frozen extractor run on the fly.
    * ``from_target(l_norm, ab, seed) -> tensor``, computed from each finished batch and its true
      ab with a stateless ``seed`` (2 ints, new each batch; for validation data ``(seed, batch
      index)``: the same for every pass and whatever the global seed, so runs trained with other
      ``train.seed`` values are validated on the same hints); e.g. simulated colour hints
      (:func:`koala.data.hints.simulate_hints`). It may return a dict of several inputs by name
      (hints and global hints), which then join L instead of one input called ``name``.

    Example: ``SideInput("embedding", per_photo=EmbeddingCache.open("e.h5").lookup)``.
    """

    name: str
    per_photo: Callable[[list[str], str], np.ndarray] | None = None
    from_l: Callable[[tf.Tensor], tf.Tensor] | None = None
    from_target: Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tf.Tensor] | None = None

    def __post_init__(self):
        if sum(source is not None for source in (self.per_photo, self.from_l, self.from_target)) != 1:
            raise ValueError(f"side input {self.name!r}: give exactly one of per_photo, from_l and from_target")


def geometry_transforms(augment: Augment, batch: tf.Tensor, height: tf.Tensor, width: tf.Tensor,
                        seed: tf.Tensor) -> tf.Tensor:
    """One random affine map per image, (batch, 8) in ImageProjectiveTransformV3's form (output
    pixel -> input pixel): a horizontal flip, a rotation, a zoom, a shear and a shift, drawn as
    Keras' RandomFlip, RandomRotation, RandomZoom, RandomShear and RandomTranslation draw them,
    composed about the image centre so that one resampling does all five."""
    draws = tf.random.stateless_uniform([batch, 7], seed, -1.0, 1.0)
    h, w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    cy, cx = (h - 1.0) / 2.0, (w - 1.0) / 2.0
    flip = tf.where(draws[:, 0] < 0, -1.0, 1.0) if augment.flip else tf.ones([batch])
    angle = draws[:, 1] * augment.rotation * np.pi / 180.0
    zoom = 1.0 + draws[:, 2] * augment.zoom
    shear_x, shear_y = draws[:, 3] * augment.shear, draws[:, 4] * augment.shear
    shift_x, shift_y = draws[:, 5] * augment.shift * w, draws[:, 6] * augment.shift * h
    cos, sin = tf.cos(angle), tf.sin(angle)
    # Linear part about the centre: rotation @ shear @ zoom, then the flip of the output's x.
    a00 = (cos - sin * shear_y) * zoom * flip
    a01 = (cos * shear_x - sin) * zoom
    a10 = (sin + cos * shear_y) * zoom * flip
    a11 = (sin * shear_x + cos) * zoom
    a02 = cx - a00 * cx - a01 * cy - shift_x
    a12 = cy - a10 * cx - a11 * cy - shift_y
    zero = tf.zeros([batch])
    return tf.stack([a00, a01, a02, a10, a11, a12, zero, zero], axis=1)


def augment_geometry(images: tf.Tensor, augment: Augment, seed: tf.Tensor) -> tf.Tensor:
    """A batch of float RGB images (B, H, W, 3) moved by :func:`geometry_transforms` (stateless
    ``seed``, 2 ints): bilinear, edges reflected. One resampling instead of Keras' four layers'
    four (each also drawing its own matrix) costs a third of the input pipeline's CPU time."""
    shape = tf.shape(images)
    transforms = geometry_transforms(augment, shape[0], shape[1], shape[2], seed)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=shape[1:3], fill_value=0.0,
        interpolation="BILINEAR", fill_mode="REFLECT")


def augments(augment: Augment | None) -> bool:
    """Whether ``augment`` moves anything."""
    return augment is not None and bool(augment.flip or augment.rotation or augment.zoom or augment.shear
                                        or augment.shift)


def rgb_to_pair(rgb: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Float RGB in [0, 1] -> (normalised L, normalised ab): the model's input and target."""
    return split_lab(rgb_to_lab(rgb))


def _on_image(fn: Callable, with_rows: bool) -> Callable:
    """``fn`` over the image of an element that is the image, or (image, its side-input row)
    ``with_rows``; the row passes through unchanged."""
    return (lambda img, row: (fn(img), row)) if with_rows else fn


def _image_only(fn: Callable, with_rows: bool) -> Callable:
    """``fn`` of the image alone, for an element with or without a side-input row (filters)."""
    return (lambda img, row: fn(img)) if with_rows else fn


def _decoded(paths: list[str], short_side: int, cache: bool, rows: np.ndarray | None = None) -> tf.data.Dataset:
    """uint8 photos shrunk to ``short_side``, unreadable ones left out; each one paired with its
    row of ``rows`` when given, so no shuffle or dropped file can separate them."""
    with_rows = rows is not None
    ds = tf.data.Dataset.from_tensor_slices((paths, rows) if with_rows else paths)
    ds = ds.map(
        _on_image(lambda p: tf.numpy_function(load_shrunk, [p, short_side], tf.uint8, stateful=False), with_rows),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    ds = ds.filter(_image_only(lambda img: tf.size(img) > 0, with_rows))
    ds = ds.map(_on_image(lambda img: tf.ensure_shape(img, [None, None, 3]), with_rows))
    return ds.cache() if cache else ds


def source_weights(counts: list[int], balance: float) -> list[float]:
    """Sampling probability of each source: proportional to its photo count to the power
    ``1 - balance``. 0 keeps the photos' own proportions, 1 samples every source equally, 0.5
    (photos-v1's roads: 44% of photos, 27% of samples) is in between."""
    if not 0.0 <= balance <= 1.0:
        raise ValueError(f"data.source_balance must be in [0, 1]; got {balance}")
    weights = [n ** (1.0 - balance) for n in counts]
    return [w / sum(weights) for w in weights]


def grouped_weights(sources: list[str], counts: list[int], kinds: dict[str, list[str]], balance: float) -> list[float]:
    """Sampling probability of each source when sources are gathered into kinds of photo
    (``kinds``: kind -> source names, each matching a source by its last path part, e.g.
    ``{"people": ["faces_rmfd_nomask", "stanford40"]}``): every kind equally often, whatever its
    photo count (a kind with few photos, e.g. 1,500 road scenes beside 6,000 scenes, would
    otherwise fade from the diet), then each source within its kind by :func:`source_weights`. A
    source in no kind is a kind of its own; a name that matches no source is a ValueError naming it."""
    kind_of = {}
    for kind, names in kinds.items():
        for name in names:
            matched = [s for s in sources if s.rsplit("/", 1)[-1] == name]
            if not matched:
                raise ValueError(f"data.groups.{kind}: no source {name!r} in the training data; "
                                 f"sources: {sorted({s.rsplit('/', 1)[-1] for s in sources})}")
            kind_of.update({s: kind for s in matched})
    members: dict[str, list[int]] = {}
    for i, source in enumerate(sources):
        members.setdefault(kind_of.get(source, source), []).append(i)
    weights = [0.0] * len(sources)
    for idx in members.values():
        for i, w in zip(idx, source_weights([counts[i] for i in idx], balance)):
            weights[i] = w / len(members)
    return weights


def _balanced(paths: list[str], groups: dict[str, list[str]], short_side: int, cache: bool, seed: int,
              balance: float, rows: np.ndarray | None = None, kinds: dict[str, list[str]] | None = None
              ) -> tf.data.Dataset:
    """An endless shuffled stream drawing each photo's source (``groups``: source -> its paths) by
    :func:`source_weights`, or by :func:`grouped_weights` with ``kinds`` (each photo with its row
    of ``rows`` when given)."""
    position = {path: i for i, path in enumerate(paths)}
    streams = [_decoded(group, short_side, cache, None if rows is None else rows[[position[p] for p in group]])
               .shuffle(min(len(group), SHUFFLE_BUFFER), seed=seed).repeat()
               for group in groups.values()]
    counts = [len(group) for group in groups.values()]
    weights = (grouped_weights(list(groups), counts, kinds, balance) if kinds else source_weights(counts, balance))
    log.info("source sampling weights: %s", {k: round(w, 3) for k, w in zip(groups, weights)})
    return tf.data.Dataset.sample_from_datasets(streams, weights, seed=seed)


def _census(ds: tf.data.Dataset) -> tuple[int, int]:
    """(readable photos, colour photos) in one pass over the decoded images (which fills the cache).

    The count states the dataset's length: with it unknown (the filter that drops unreadable
    files hides it), Keras warns "Your input ran out of data; interrupting training" at the end
    of every finite pass, as if something were wrong. The colour count lets training refuse a
    set of grayscale photos, from which a colorizer learns nothing.
    """
    def add(counts, img):
        spread = tf.numpy_function(colour_spread, [img], tf.float64, stateful=False)
        colour = tf.cast(spread >= GRAY_SPREAD, tf.int64)
        return counts + tf.stack([tf.constant(1, tf.int64), colour])

    photos, colour = ds.reduce(tf.zeros([2], tf.int64), add).numpy()
    return int(photos), int(colour)


def _gray_check_sample(paths: list[str], short_side: int) -> tf.data.Dataset:
    """Up to ``GRAY_CHECK_PHOTOS`` photos spread over the whole list (so every source can show its
    colour), decoded without caching, for :func:`_census`."""
    return _decoded(evenly_spaced(paths, GRAY_CHECK_PHOTOS), short_side, cache=False)


def _require_colour(source, paths: list[str], photos: int, colour: int) -> None:
    if not colour:
        found = f"{photos} grayscale" if photos else "none readable"
        raise ValueError(f"{source}: no colour photos to learn colour from ({found} of {len(paths)})")


def make_dataset(
    source: str | list[str],
    image_size: int,
    batch_size: int,
    training: bool,
    augment: Augment | None = None,
    cache: bool = True,
    seed: int = 0,
    max_images: int | None = None,
    repeat: bool = False,
    source_balance: float = 0.0,
    side_input: SideInput | None = None,
    kinds: dict[str, list[str]] | None = None,
) -> tf.data.Dataset:
    """Batches of (L, ab) from a folder, a split file, several of them (a list: each keeps its own
    sources, :func:`koala.images.source_groups`) or a list of photo paths; of
    ``({"L": l, side_input.name: x}, ab)`` with a :class:`SideInput`.

    Training takes random crops (images are cached ``CROP_MARGIN`` larger than the crop) and augments;
    evaluation takes centre crops so every epoch sees the same pixels. ``source_balance`` (training
    with ``repeat`` only; default 0: every photo equally often) evens out sources of very different
    sizes (:func:`source_weights`), so the largest one does not teach its colours to every photo;
    with ``kinds`` (kind of photo -> source names) it evens out kinds first, then sources within
    each (:func:`grouped_weights`).
    A per-photo side input describes the whole photo: the L beside it is a crop of it, then the
    geometric augmentation, which hardly changes what a classifier sees in the photo.
    """
    groups = source_groups(source)
    paths = [path for group in groups.values() for path in group]
    if not isinstance(source, str) and set(map(str, source)) == set(paths):
        paths = [str(path) for path in source]  # a list of photos keeps its order
    if max_images:
        paths = paths[:max_images]
        kept = set(paths)
        groups = {name: [p for p in group if p in kept] for name, group in groups.items()}
        groups = {name: group for name, group in groups.items() if group}
    if not paths:
        raise ValueError(f"{source}: no images found")
    rows = _side_rows(side_input, paths, source)
    with_rows = rows is not None
    short_side = int(round(image_size * CROP_MARGIN)) if training else image_size
    if training and source_balance:
        if not repeat:
            raise ValueError("data.source_balance needs train.steps_per_epoch (balanced sampling never ends)")
        _require_colour(source, paths, *_census(_gray_check_sample(paths, short_side)))
        ds = _balanced(paths, groups, short_side, cache, seed, source_balance, rows, kinds)
    else:
        ds = _decoded(paths, short_side, cache, rows)
        if training or (cache and not repeat):
            images = ds.map(lambda img, row: img) if with_rows else ds
            photos, colour = _census(images if cache else _gray_check_sample(paths, short_side))
            if training:
                _require_colour(source, paths, photos, colour)
            if cache and not repeat:
                ds = ds.apply(tf.data.experimental.assert_cardinality(photos))
        if training:
            ds = ds.shuffle(min(len(paths), SHUFFLE_BUFFER), seed=seed, reshuffle_each_iteration=True)
            if repeat:
                ds = ds.repeat()
    if training:
        crop = _on_image(lambda img: _random_crop(img, image_size, seed), with_rows)
    else:
        crop = _on_image(lambda img: _center_crop(img, image_size), with_rows)
    ds = ds.map(crop, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(batch_size, drop_remainder=training)
    if training and augments(augment):
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip(ds, seeds).map(
            lambda element, s: _on_image(lambda x: augment_geometry(x, augment, s), with_rows)(
                *(element if with_rows else (element,))),
            num_parallel_calls=tf.data.AUTOTUNE)

    def to_pair(x):
        return rgb_to_pair(tf.clip_by_value(x, 0.0, 1.0))

    if with_rows:  # a per-photo side input: each row joins the L of its own photo
        def to_inputs(x, row):
            l_norm, ab = to_pair(x)
            return {"L": l_norm, side_input.name: row}, ab

        return ds.map(to_inputs, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    ds = ds.map(to_pair, num_parallel_calls=tf.data.AUTOTUNE)
    if side_input is not None and side_input.from_target is not None:
        seeds = (tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2) if training
                 else tf.data.Dataset.counter().map(lambda i: tf.stack([tf.constant(seed, tf.int64), i])))
        ds = tf.data.Dataset.zip(ds, seeds).map(
            lambda pair, s: ({"L": pair[0], **_named(side_input, side_input.from_target(pair[0], pair[1], s))}, pair[1]),
            num_parallel_calls=tf.data.AUTOTUNE)
        return ds.prefetch(tf.data.AUTOTUNE)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    if side_input is not None:  # from_l: one call at a time, after the prefetch (an extractor is a large model)
        ds = ds.map(lambda l_norm, ab: ({"L": l_norm, side_input.name: side_input.from_l(l_norm)}, ab))
    return ds


def _named(side_input: SideInput, made) -> dict:
    """A side input's tensors by input name: a dict as it is, one tensor as ``side_input.name``."""
    return made if isinstance(made, dict) else {side_input.name: made}


def _side_rows(side_input: SideInput | None, paths: list[str], source) -> np.ndarray | None:
    """The per-photo side input's rows, in the order of ``paths`` (None without one)."""
    if side_input is None or side_input.per_photo is None:
        return None
    rows = np.asarray(side_input.per_photo(paths, source if isinstance(source, str) else "the photo list"))
    if len(rows) != len(paths):
        raise ValueError(f"side input {side_input.name!r}: {len(rows)} rows for {len(paths)} photos")
    return rows


def _random_crop(img: tf.Tensor, size: int, seed: int) -> tf.Tensor:
    img = tf.image.convert_image_dtype(img, tf.float32)
    img = _ensure_min_side(img, size)
    return tf.image.random_crop(img, [size, size, 3])


def _center_crop(img: tf.Tensor, size: int) -> tf.Tensor:
    img = _ensure_min_side(tf.image.convert_image_dtype(img, tf.float32), size)
    shape = tf.shape(img)
    top, left = (shape[0] - size) // 2, (shape[1] - size) // 2
    return img[top : top + size, left : left + size, :]


def _ensure_min_side(img: tf.Tensor, size: int) -> tf.Tensor:
    """Upscale images smaller than the crop (tiny photos), keeping the aspect ratio."""
    shape = tf.cast(tf.shape(img)[:2], tf.float32)
    scale = tf.maximum(1.0, size / tf.reduce_min(shape))
    new = tf.cast(tf.math.ceil(shape * scale), tf.int32)
    return tf.cond(scale > 1.0, lambda: tf.image.resize(img, new, antialias=True), lambda: img)
