#!/usr/bin/env bash
# Issue 31's candidate for the next default, as a chain; each step resumes where it stopped when run
# again and is skipped once finished; once the last has started only it runs (on a new machine:
# scripts/restore_state.sh dist-2 first):
#   1. configs/dist-1a.yaml: the default's network gains global hints and a distribution head; the
#      new layers alone train (3 epochs at 1e-3);
#   2. configs/dist-1.yaml: everything trains at 1e-4 (stopped after 16 epochs; its best, epoch 14,
#      is the bundled `guided` model);
#   3. reports/issue31/configs/short-32.yaml: widened to 32 filters (Net2Net), 2,000 CPU-seconds;
#   4. configs/dist-2.yaml: the long run from there.
# Steps 1-3 ran with kinds of photo weighted by the square root of their photo counts; data.groups
# now draws every kind equally often, so a rerun of them differs a little from the first.
#   nice scripts/train_dist.sh > logs/dist-2.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/stage.sh  # stage RUN CONFIG: skipped once finished, resumed when stopped
if [ ! -f runs/dist-2/koala.json ]; then
    stage dist-1a configs/dist-1a.yaml
    stage dist-1 configs/dist-1.yaml --set train.epochs=16
    stage short-32 reports/issue31/configs/short-32.yaml
fi
.venv/bin/koala train --config configs/dist-2.yaml
