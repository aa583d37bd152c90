#!/usr/bin/env bash
# Issue 31, part 4: the frontier probe (scripts/probe.sh: photos-v1/val with its general group;
# scenes-v2/val by source) of each equal-CPU short run as it finishes, beside the training of the
# next one. WRAP runs each evaluation under a command (e.g. a CPU lock).
#   nice scripts/score_short.sh short-24 short-32 short-128 > logs/score-short.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/probe.sh
out=reports/issue31/short
mkdir -p $out
for name in "$@"; do
    until [ -f runs/$name/koala.json ] && ! pgrep -f "configs/$name.yaml" > /dev/null; do sleep 30; done
    frontier_probe "$name=runs/$name" "$out/$name"
done
