#!/usr/bin/env bash
# Reproduce the bundled default model from scratch on ../shared/datasets/{photos-v1,scenes-v1,scenes-v2},
# stage by stage (each training stage resumes if it was stopped: run the script again):
#   1. CU-Net (16 filters, no batch norm), L1 on 128 px crops, 80,000 crops (configs/default-stage1.yaml);
#   2. the same network trained on with the sources balanced and a lower learning rate (configs/default.yaml);
#   3. trained on at 160 px with a lower learning rate (configs/default-stage3.yaml): the default
#      until issue 17 (tuned then to 192 px and saturation 1.3);
#   4. scripts/train_hints.sh: from it, hint inputs and scenes-v1 added, widened to 24 filters
#      (Net2Net), trained on in bfloat16, tuned on training photos, packaged into koala/weights/
#      and scored on photos-v1/val, scenes-v1/val and with hints (the default of issues 17-31);
#   5. scripts/train_dist.sh: from that, global hints and a colour distribution head, scenes-v2
#      added and every kind of photo drawn equally often, widened to 32 filters, a long run whose
#      epochs 16-22 are averaged, tuned, packaged and scored (the default since issue 31).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/stage.sh
stage default-stage1 configs/default-stage1.yaml
stage default configs/default.yaml
stage default-stage3 configs/default-stage3.yaml
scripts/train_hints.sh
exec scripts/train_dist.sh
