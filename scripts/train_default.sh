#!/usr/bin/env bash
# Reproduce the bundled default model from scratch on ../shared/datasets/photos-v1, stage by stage
# (each stage resumes if it was stopped: run the script again):
#   1. train zhang16 (width 0.25) on 64 px crops, sources balanced (configs/default.yaml);
#   2. choose the shipped temperature and saturation on the frontier of 600 *training* photos
#      (scripts/tune_colour.py: the most colourful setting that stays 0.7 dB above gray overall,
#      0.3 dB on the general-photo sources and no more than 0.3 dB below gray on any source);
#   3. package it into koala/weights/ and score it on photos-v1/val: koala evaluate and the frontier.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=../shared/datasets/photos-v1
GENERAL=general=bsds500,imagenet_sample1000,urban100
.venv/bin/koala train --config configs/default.yaml
.venv/bin/python scripts/tune_colour.py runs/default --data "$DATA/train" --images 600 \
    --temperatures 0.3,0.38,0.46,0.55,0.7 --saturations 0.9,1,1.1,1.25 \
    --margin 0.7 --group "$GENERAL" --group-margin 0.3 --source-floor 0.3
.venv/bin/python scripts/package_model.py runs/default --name default
.venv/bin/koala evaluate --model default --data "$DATA/val" --out koala/weights/default-val.json
.venv/bin/koala evaluate --model default --data "$DATA/val" --group "$GENERAL" \
    --sweep-temperature 0.3,0.38,0.46,0.55,0.7,1.0 --out reports/frontier/default.json
