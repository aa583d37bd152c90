"""Copy a run's best model into koala/weights/ as a bundled model (without optimizer state).

    python scripts/package_model.py runs/default --name default
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import keras

import koala.models  # noqa: F401  registers koala's layers, which load_model must find
from koala.runs import WEIGHTS_DIR, Run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run", type=Path)
    parser.add_argument("--name", default="default")
    args = parser.parse_args()
    run = Run(args.run)
    bundled = WEIGHTS_DIR / f"{args.name}.keras"
    keras.saving.load_model(run.best, compile=False).save(bundled)
    # Where koala.runs.model_metadata looks for a bundled model's metadata: <stem>.json beside it.
    bundled.with_suffix(".json").write_text(json.dumps(run.read_metadata(), indent=2) + "\n")
    print(f"wrote {bundled} ({bundled.stat().st_size / 1e6:.1f} MB) and its metadata")


if __name__ == "__main__":
    main()
