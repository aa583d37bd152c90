"""Colour maths: Lab conversions as TF ops and the quantised ab gamut.

The ab prior of a photo collection (it reads files) is in :mod:`koala.color.prior`, imported on its own.
"""
from koala.color.lab import (
    AB_NORM,
    L_CENT,
    L_NORM,
    join_lab,
    l_ab_to_rgb,
    lab_to_rgb,
    rgb_to_l,
    rgb_to_lab,
    split_lab,
)
from koala.color.gamut import (
    GRID,
    NEIGHBOURS,
    PRIOR_LAMBDA,
    SIGMA,
    TEMPERATURE,
    ab_bins,
    ab_histogram,
    annealed_mean,
    nearest_bin,
    nearest_bins,
    pixel_weights,
    rebalance_weights,
    smooth_prior,
    soft_encode,
)

__all__ = [
    "AB_NORM", "L_CENT", "L_NORM", "join_lab", "l_ab_to_rgb", "lab_to_rgb",
    "rgb_to_l", "rgb_to_lab", "split_lab",
    "GRID", "NEIGHBOURS", "PRIOR_LAMBDA", "SIGMA", "TEMPERATURE", "ab_bins", "ab_histogram",
    "annealed_mean", "nearest_bin", "nearest_bins", "pixel_weights", "rebalance_weights", "smooth_prior", "soft_encode",
]
