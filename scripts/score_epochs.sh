#!/usr/bin/env bash
# Issue 31: choose a long run's epoch on the frontier probe, not on val loss. Scores the epochs that
# train.keep_every kept (runs/RUN/checkpoints/epoch_NNN.keras) on the probe (scripts/probe.sh:
# photos-v1/val with its general group, scenes-v2/val), each as it is written, beside the training;
# read them side by side with scripts/frontier_at.py. WRAP runs each evaluation under a command
# (e.g. a CPU lock).
#   nice scripts/score_epochs.sh dist-2 10 16 22 > logs/score-dist-2.log 2>&1 &
#   python scripts/frontier_at.py reports/issue31/short/short-32-photos.json reports/issue31/dist-2/*-photos.json
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/probe.sh
run=${1:?usage: scripts/score_epochs.sh RUN EPOCH...}; shift
out=reports/issue31/$run
mkdir -p "$out"
for epoch in "$@"; do
    name=$(printf 'e%02d' "$epoch") model=runs/$run/checkpoints/$(printf 'epoch_%03d.keras' "$epoch")
    until [ -f "$model" ]; do sleep 30; done
    frontier_probe "$run-$name=$model" "$out/$name"
done
