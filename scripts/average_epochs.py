"""Average a run's kept epochs (``train.keep_every``) into one model: stochastic weight averaging
(:func:`koala.models.layers.average_weights`), scored on the frontier like any checkpoint.

    python scripts/average_epochs.py runs/dist-2 --epochs 12,14,16,18,20
    # -> runs/dist-2/checkpoints/average_012-020.keras, beside the epochs (it finds the run's metadata)
"""
from __future__ import annotations

import argparse
import sys

import keras

import koala.models  # noqa: F401  registers the architectures' classes, which load_model looks up
from koala.models.layers import average_weights
from koala.runs import Run, save_model_atomic


def epoch_list(text: str) -> list[int]:
    """'16,18,20' -> [16, 18, 20] (argparse's type: anything else is a one-line usage error)."""
    try:
        epochs = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated epochs like 16,18,20; got {text!r}") from None
    if not epochs or epochs[0] < 1:
        raise argparse.ArgumentTypeError(f"epochs are counted from 1; got {text!r}")
    return epochs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="the run folder")
    parser.add_argument("--epochs", required=True, type=epoch_list, help="comma-separated epochs kept in its checkpoints/")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing average")
    args = parser.parse_args()
    run, epochs = Run(args.run), args.epochs
    missing = [str(run.checkpoint(e)) for e in epochs if not run.checkpoint(e).is_file()]
    if missing:
        sys.exit(f"{missing[0]}: not there (epochs are kept every train.keep_every in {run.checkpoints})")
    out = run.checkpoints / f"average_{min(epochs):03d}-{max(epochs):03d}.keras"
    if out.exists() and not args.overwrite:
        sys.exit(f"{out}: exists (give --overwrite to replace it)")
    models = [keras.saving.load_model(run.checkpoint(e), compile=False) for e in epochs]
    save_model_atomic(average_weights(models), out, overwrite=args.overwrite)
    print(f"{out}: the mean of epochs {', '.join(map(str, epochs))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
