#!/usr/bin/env bash
# Reproduce the bundled default model from scratch on ../shared/datasets/photos-v1, stage by stage
# (each training stage resumes if it was stopped: run the script again):
#   1. CU-Net (16 filters, no batch norm), L1 on 128 px crops, 80,000 crops (configs/default-stage1.yaml);
#   2. the same network trained on with the sources balanced and a lower learning rate (configs/default.yaml);
#   3. trained on at 160 px (stage 2's working size) with a lower learning rate (configs/default-stage3.yaml);
#   4. the shipped working size and saturation chosen on the frontier of 600 *training* photos
#      (scripts/tune_colour.py: the most colourful setting still 0.7 dB above gray overall, 0.3 dB
#      on the general-photo sources, and no more than 0.3 dB below gray on any source);
#   5. packaged into koala/weights/ and scored on photos-v1/val: koala evaluate and the frontier.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=../shared/datasets/photos-v1
GENERAL=general=bsds500,imagenet_sample1000,urban100
source scripts/stage.sh
stage default-stage1 configs/default-stage1.yaml
stage default configs/default.yaml
stage default-stage3 configs/default-stage3.yaml
.venv/bin/python scripts/tune_colour.py runs/default-stage3 --data "$DATA/train" --images 600 \
    --sizes 160,192 --saturations 1.1,1.2,1.3,1.4,1.5,1.6 \
    --margin 0.7 --group "$GENERAL" --group-margin 0.3 --source-floor 0.3
.venv/bin/python scripts/package_model.py runs/default-stage3 --name default --overwrite
.venv/bin/koala evaluate --model default --data "$DATA/val" --out koala/weights/default-val.json
.venv/bin/koala evaluate --model default --data "$DATA/val" --group "$GENERAL" \
    --sweep 1,1.2,1.4,1.6,1.8 --out reports/frontier/default.json
