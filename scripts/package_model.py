"""Copy a run's best model into koala/weights/ as a bundled model (without optimizer state).

    python scripts/package_model.py runs/default --name default
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import keras

WEIGHTS = Path(__file__).resolve().parent.parent / "koala" / "weights"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run", type=Path)
    parser.add_argument("--name", default="default")
    args = parser.parse_args()
    model = keras.saving.load_model(args.run / "best.keras", compile=False)
    model.save(WEIGHTS / f"{args.name}.keras")
    meta = json.loads((args.run / "koala.json").read_text())
    (WEIGHTS / f"{args.name}.json").write_text(json.dumps(meta, indent=2) + "\n")
    size = (WEIGHTS / f"{args.name}.keras").stat().st_size / 1e6
    print(f"wrote {WEIGHTS / args.name}.keras ({size:.1f} MB) and its metadata")


if __name__ == "__main__":
    main()
