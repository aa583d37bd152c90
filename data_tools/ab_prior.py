"""Compute the empirical ab prior that zhang16's class rebalancing needs, once, before training.

Usage::

    python -m data_tools.ab_prior SOURCE OUT.npy [--size 64] [--max-images N] [--overwrite]
    koala train --preset zhang16_small --set train.loss_args.prior=OUT.npy ...

SOURCE is what ``data.train`` accepts: a folder, a split file (.txt) or one image. Each photo is
read as koala reads photos, shrunk to a short side of ``--size`` px (default 64: the colour
histogram barely depends on it) and every pixel's ab is counted in its nearest in-gamut bin
(:func:`koala.color.ab_bins`); the counting is :mod:`koala.color.prior`'s, which zhang16's quick
prior also uses. OUT.npy holds the Q probabilities (float32, summing to 1), in the order of
``ab_bins()``. ``--max-images`` takes that many photos evenly spread over the sorted
list. Unreadable photos are skipped with a warning.
"""
from __future__ import annotations

import argparse
import io
import sys

import numpy as np

from koala.color import ab_bins
from koala.color.prior import PRIOR_SIZE, prior_from_source
from koala.images import write_atomic


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m data_tools.ab_prior", description=__doc__.split("\n\n")[0])
    p.add_argument("source", help="folder, split file (.txt) or image")
    p.add_argument("out", help="the .npy file to write")
    p.add_argument("--size", type=int, default=PRIOR_SIZE, help=f"short side in px (default {PRIOR_SIZE})")
    p.add_argument("--max-images", type=int, help="use at most this many photos, evenly spread (default: all)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    return p.parse_args(argv)


def summary(prior: np.ndarray, images: int) -> str:
    """One line on the prior: how concentrated it is, and where."""
    bins = ab_bins()
    top = bins[int(np.argmax(prior))]
    used = int((prior > 0).sum())
    return (f"{images} photo(s); {used} of {len(bins)} bins seen; most common bin "
            f"(a={top[0]:.0f}, b={top[1]:.0f}) holds {prior.max():.1%} of the pixels")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.size < 8:
            raise ValueError(f"--size {args.size}: must be at least 8")
        if args.max_images is not None and args.max_images < 1:
            raise ValueError(f"--max-images {args.max_images}: must be at least 1")
        prior, images = prior_from_source(args.source, args.max_images, args.size, progress=True)
        buffer = io.BytesIO()
        np.save(buffer, prior)
        write_atomic(args.out, buffer.getvalue(), overwrite=args.overwrite)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"ab_prior: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {summary(prior, images)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
