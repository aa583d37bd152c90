"""The augmentation settings (a config section), kept apart from the pipeline so that reading a
config needs no TensorFlow."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Augment:
    """Runtime augmentation, after Keras' old ImageDataGenerator.

    flip: random horizontal flip. rotation: max degrees either way. zoom, shear, shift:
    max fractions of the image size (shear as a fraction, as Keras' RandomShear takes it).
    """

    flip: bool = True
    rotation: float = 10.0
    zoom: float = 0.1
    shear: float = 0.05
    shift: float = 0.05
