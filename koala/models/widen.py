"""Function-preserving widening: a trained network's weights in a wider copy of it.

Chen, Goodfellow & Shlens 2016, "Net2Net: Accelerating Learning via Knowledge Transfer"
(net2wider): each new channel of a layer copies one of its old channels (same incoming weights and
bias), and the next layer splits that channel's outgoing weights among its copies, so the wider
network computes the same function and goes on learning from where the narrow one stopped, instead
of from scratch. Deviation: Net2Net splits evenly and adds noise to break the symmetry between
copies; here each output's split is a random convex combination (weights drawn in [0.25, 0.75] and
normalised), which breaks it as well (copies get different gradients) and keeps the function exact.

Works on functional graphs built of convolutions (2-D, transposed), dense layers, batch
normalisation, and layers that keep channels apart (activations, pooling, adds, reshapes that keep
the last axis) or join them (concatenation on the last axis): every CU-Net option.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import layers

SPLIT_RANGE = (0.25, 0.75)  # how unevenly a copied channel's outgoing weights are split


class Channels:
    """Which channel of the narrow tensor each channel of the wide tensor copies."""

    def __init__(self, copies: np.ndarray, narrow: int):
        self.copies = copies  # wide channel -> narrow channel
        self.narrow = narrow

    @classmethod
    def identity(cls, width: int) -> Channels:
        return cls(np.arange(width), width)

    def __eq__(self, other) -> bool:
        return self.narrow == other.narrow and np.array_equal(self.copies, other.copies)


def grown(narrow: int, wide: int, rng: np.random.Generator, cache: dict) -> Channels:
    """The old channels first, then random copies; one choice per pair of widths, so the two
    branches of an add (the hint and L convolutions) grow alike."""
    if (narrow, wide) not in cache:
        extra = rng.choice(narrow, wide - narrow, replace=wide - narrow > narrow)
        cache[(narrow, wide)] = Channels(np.concatenate([np.arange(narrow), extra]), narrow)
    return cache[(narrow, wide)]


def split_inputs(kernel: np.ndarray, inputs: Channels, rng: np.random.Generator) -> np.ndarray:
    """``kernel`` (inputs on axis -2, already the wide ones; outputs on -1) with each copied input
    channel's weights split among its copies, per output: their sum is the narrow weight."""
    kernel = kernel.copy()
    for channel in np.unique(inputs.copies):
        where = np.flatnonzero(inputs.copies == channel)
        if len(where) > 1:
            share = rng.uniform(*SPLIT_RANGE, size=(len(where), kernel.shape[-1]))
            kernel[..., where, :] *= share / share.sum(axis=0)
    return kernel


def wider_kernel(kernel: np.ndarray, inputs: Channels, outputs: Channels, transposed: bool,
                 rng: np.random.Generator) -> np.ndarray:
    """A convolution's or dense layer's kernel (inputs on axis -2, outputs on -1; swapped for a
    transposed convolution) for the wide channels."""
    in_axis, out_axis = (-1, -2) if transposed else (-2, -1)
    wide = np.take(np.take(kernel, inputs.copies, axis=in_axis), outputs.copies, axis=out_axis)
    if transposed:
        return np.swapaxes(split_inputs(np.swapaxes(wide, -1, -2), inputs, rng), -1, -2)
    return split_inputs(wide, inputs, rng)


def _tensors(value) -> list:
    return keras.tree.flatten(value)


def _width(tensor) -> int:
    return int(tensor.shape[-1])


def _passed_on(layer: layers.Layer, inputs: list[Channels | None]) -> Channels | None:
    """The channels of a layer without weights, from its inputs' (None: fresh, no narrow source)."""
    if isinstance(layer, layers.Concatenate):
        if layer.axis not in (-1, len(layer.output.shape) - 1) or any(c is None for c in inputs):
            raise ValueError(f"{layer.name}: cannot widen across a concatenation of new or non-channel axes")
        offsets = np.cumsum([0] + [c.narrow for c in inputs[:-1]])
        return Channels(np.concatenate([c.copies + o for c, o in zip(inputs, offsets)]),
                        sum(c.narrow for c in inputs))
    known = [c for c in inputs if c is not None]
    if any(c != known[0] for c in known[1:]):
        raise ValueError(f"{layer.name}: its inputs were widened differently")
    if known and len(known[0].copies) != _width(layer.output):
        raise ValueError(f"{layer.name}: cannot widen across a {type(layer).__name__}, which changes the channels")
    return known[0] if known else None


def widen_into(source: keras.Model, target: keras.Model, seed: int = 0) -> list[str]:
    """Set ``target``'s weights from ``source``, a narrower network of the same layer names, so
    that ``target`` computes what ``source`` does. Layers of ``target`` without a namesake in
    ``source`` keep their initialisation (their outputs count as new channels) and are returned
    by name; a ValueError names a layer that cannot be widened."""
    rng = np.random.default_rng(seed)
    donors = {layer.name: layer for layer in source.layers}
    cache: dict = {}
    channels: dict[int, Channels | None] = {id(t): Channels.identity(_width(t)) for t in _tensors(target.inputs)}
    untouched = []
    for layer in target.layers:
        if isinstance(layer, layers.InputLayer):
            continue
        inputs = [channels[id(t)] for t in _tensors(layer.input)]
        donor = donors.get(layer.name)
        if not layer.weights:
            out = _passed_on(layer, inputs)
        elif donor is None or not donor.weights:
            untouched.append(layer.name)
            out = None
        else:
            out = _wider_layer(layer, donor, inputs, rng, cache)
        for tensor in _tensors(layer.output):
            channels[id(tensor)] = out
    return untouched


def _wider_layer(layer: layers.Layer, donor: layers.Layer, inputs: list[Channels | None],
                 rng: np.random.Generator, cache: dict) -> Channels:
    """Set one weighted layer from its narrow namesake; returns its output's channels."""
    (given,) = inputs
    if given is None:
        raise ValueError(f"{layer.name}: its input comes from a new layer, so it cannot be widened from {donor.name}")
    old = donor.get_weights()
    if isinstance(layer, layers.BatchNormalization):
        layer.set_weights([w[given.copies] for w in old])
        return given
    if not isinstance(layer, (layers.Conv2D, layers.Conv2DTranspose, layers.Dense)):
        raise ValueError(f"{layer.name}: cannot widen a {type(layer).__name__}")
    transposed = isinstance(layer, layers.Conv2DTranspose)
    narrow_out, wide_out = old[0].shape[-2 if transposed else -1], _width(layer.output)
    if narrow_out > wide_out or given.narrow != old[0].shape[-1 if transposed else -2]:
        raise ValueError(f"{layer.name}: {donor.name} is not a narrower version of it")
    outputs = Channels.identity(wide_out) if narrow_out == wide_out else grown(narrow_out, wide_out, rng, cache)
    layer.set_weights([wider_kernel(old[0], given, outputs, transposed, rng)] + [b[outputs.copies] for b in old[1:]])
    return outputs
