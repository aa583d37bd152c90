#!/usr/bin/env bash
# Train the bundled default model on ../shared/datasets/photos-v1, package it into
# koala/weights/ (with a chroma gain fitted on training photos) and score it on photos-v1/val beside the grayscale baseline.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=../shared/datasets/photos-v1
.venv/bin/koala train --config configs/default.yaml
.venv/bin/python scripts/calibrate_saturation.py runs/default --data "$DATA/train" --images 512
.venv/bin/python scripts/package_model.py runs/default --name default
.venv/bin/koala evaluate --model default --data "$DATA/val" --out koala/weights/default-val.json
