"""Colour maths: Lab conversions as TF ops and the quantised ab gamut."""
from koala.color.lab import (
    AB_NORM,
    L_CENT,
    L_NORM,
    colorize_lab,
    join_lab,
    lab_to_rgb,
    rgb_to_l,
    rgb_to_lab,
    split_lab,
)

__all__ = [
    "AB_NORM", "L_CENT", "L_NORM", "colorize_lab", "join_lab", "lab_to_rgb",
    "rgb_to_l", "rgb_to_lab", "split_lab",
]
