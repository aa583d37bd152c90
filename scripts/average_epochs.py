"""Average a run's kept epochs (``train.keep_every``) into one model: stochastic weight averaging
(:func:`koala.models.layers.average_weights`), scored on the frontier like any checkpoint.

    python scripts/average_epochs.py runs/dist-2 --epochs 12,14,16,18,20
    # -> runs/dist-2/checkpoints/average_012-020.keras, beside the epochs (it finds the run's metadata)
    python scripts/average_epochs.py runs/dist-2 --epochs 16,18,20,22 --as-run runs/dist-2-a16-22
    # -> a finished run folder whose best.keras is the average, for tune_colour.py and package_model.py
    #    (from checkpoints/average_016-022.keras when the epochs are gone, as in a restored run)
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import keras

import koala.models  # noqa: F401  registers the architectures' classes, which load_model looks up
from koala.models.layers import average_weights
from koala.runs import BEST_CHECKPOINT, Run, save_model_atomic


def epoch_list(text: str) -> list[int]:
    """'16,18,20' -> [16, 18, 20] (argparse's type: anything else is a one-line usage error)."""
    try:
        epochs = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated epochs like 16,18,20; got {text!r}") from None
    if not epochs or epochs[0] < 1:
        raise argparse.ArgumentTypeError(f"epochs are counted from 1; got {text!r}")
    return epochs


def averaged_metadata(meta: dict, run: Run, epochs: list[int]) -> dict:
    """The run's metadata for its average: the architecture and training totals stay; the best
    epoch's record does not describe the average, which names its epochs instead."""
    kept = {k: v for k, v in meta.items() if k not in ("best_epoch", "best_val_loss", "saturation", "colour_setting")}
    return {**kept, "averaged_epochs": epochs, "averaged_from": run.path.name}


def write_run(run: Run, epochs: list[int], model: keras.Model, target: Path) -> None:
    """A finished run folder at ``target`` whose best checkpoint is ``model`` (the average)."""
    out = Run(target)
    out.path.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run.config_file, out.config_file)
    out.write_metadata(averaged_metadata(run.read_metadata(), run, epochs))
    save_model_atomic(model, out.best, overwrite=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="the run folder")
    parser.add_argument("--epochs", required=True, type=epoch_list, help="comma-separated epochs kept in its checkpoints/")
    parser.add_argument("--as-run", type=Path, metavar="DIR",
                        help="write it as a run folder's best.keras instead (with the run's config and metadata)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing average")
    args = parser.parse_args()
    run, epochs = Run(args.run), args.epochs
    kept = run.checkpoints / f"average_{min(epochs):03d}-{max(epochs):03d}.keras"
    missing = [str(run.checkpoint(e)) for e in epochs if not run.checkpoint(e).is_file()]
    if missing and not (args.as_run and kept.is_file()):  # a restored run keeps its average, not its epochs
        sys.exit(f"{missing[0]}: not there (epochs are kept every train.keep_every in {run.checkpoints})")
    out = args.as_run / BEST_CHECKPOINT if args.as_run else kept
    if out.exists() and not args.overwrite:
        sys.exit(f"{out}: exists (give --overwrite to replace it)")
    if missing:
        average = keras.saving.load_model(kept, compile=False)
    else:
        average = average_weights([keras.saving.load_model(run.checkpoint(e), compile=False) for e in epochs])
    if args.as_run:
        write_run(run, epochs, average, args.as_run)
    else:
        save_model_atomic(average, out, overwrite=args.overwrite)
    print(f"{out}: the mean of epochs {', '.join(map(str, epochs))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
