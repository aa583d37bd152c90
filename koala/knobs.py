"""The colour knobs' ranges, one definition for every entry point: ``koala colorize``/``evaluate``/
``export``/``batch`` options, :class:`koala.inference.Colorizer`, the web API and its sliders.

``saturation`` scales the predicted ab (0: gray, 1: the network's own); past 3 every model's
colours are clipped to the gamut's edge, and below 0 they turn into their opposites.
``temperature`` is the annealed-mean temperature of models that predict a colour distribution
(1: the distribution's mean; towards 0: its mode); 0 itself divides by zero.
No TensorFlow here: the CLI checks its options before loading it.
"""
from __future__ import annotations

import math

SATURATION_RANGE = (0.0, 3.0)
TEMPERATURE_RANGE = (0.01, 1.0)
MAX_PALETTE = 16  # colours one palette may give (koala.data.global_hints.parse_palette)


def check_range(name: str, value: float, bounds: tuple[float, float]) -> float:
    """``value`` as a float when it is finite and within ``bounds`` (inclusive), else a one-line
    ``ValueError`` naming ``name``: ``check_range("saturation", 1.2, SATURATION_RANGE)`` is 1.2."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number; got {value!r}") from None
    if not (math.isfinite(number) and bounds[0] <= number <= bounds[1]):
        raise ValueError(f"{name} must be between {bounds[0]:g} and {bounds[1]:g}; got {value!r}")
    return number


def check_saturation(value: float, name: str = "saturation") -> float:
    return check_range(name, value, SATURATION_RANGE)


def check_temperature(value: float, name: str = "temperature") -> float:
    return check_range(name, value, TEMPERATURE_RANGE)
