#!/usr/bin/env bash
# Issue 31: choose a long run's epoch on the frontier probe, not on val loss. Scores the epochs that
# train.keep_every kept (runs/RUN/checkpoints/epoch_NNN.keras) on photos-v1/val with its general
# group and on scenes-v2/val, each as it is written, beside the training; read them side by side
# with scripts/frontier_at.py. WRAP runs each evaluation under a command (e.g. a CPU lock).
#   nice scripts/score_epochs.sh dist-2 10 16 22 > logs/score-dist-2.log 2>&1 &
#   python scripts/frontier_at.py reports/issue31/short/short-32-photos.json reports/issue31/dist-2/*-photos.json
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:?usage: scripts/score_epochs.sh RUN EPOCH...}; shift
data=../shared/datasets out=reports/issue31/$run
mkdir -p "$out"
for epoch in "$@"; do
    name=$(printf 'e%02d' "$epoch") model=runs/$run/checkpoints/$(printf 'epoch_%03d.keras' "$epoch")
    until [ -f "$model" ]; do sleep 30; done
    ${WRAP:-} .venv/bin/koala evaluate --model "$run-$name=$model" --data $data/photos-v1/val \
        --group general=bsds500,imagenet_sample1000,urban100 --sweep 1,1.2,1.4,1.6,1.8 --out "$out/$name-photos.json"
    ${WRAP:-} .venv/bin/koala evaluate --model "$run-$name=$model" --data $data/scenes-v2/val \
        --sweep 1,1.2,1.4,1.6,1.8 --out "$out/$name-scenes2.json"
done
