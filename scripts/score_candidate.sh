#!/usr/bin/env bash
# Issue 31: score a candidate for the next default beside the bundled one, on the frontier probe
# (photos-v1/val with its general group; scenes-v2/val by source) and on what only the candidate
# has (suggested colours, references), plus the hint curve (0 and 10 hints) of both.
#   scripts/score_candidate.sh runs/dist-1-e15 reports/issue31
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: scripts/score_candidate.sh RUN OUT_DIR} out=${2:?usage: scripts/score_candidate.sh RUN OUT_DIR}
data=../shared/datasets val120=reports/hints-model/val-120.txt
mkdir -p "$out"
koala() { .venv/bin/koala "$@"; }
koala evaluate --model default --model new="$model" --data $data/photos-v1/val \
    --group general=bsds500,imagenet_sample1000,urban100 --sweep 1,1.2,1.4,1.6 --out "$out/frontier-photos.json"
koala evaluate --model default --model new="$model" --data $data/scenes-v2/val \
    --sweep 1,1.2,1.4,1.6 --out "$out/frontier-scenes2.json"
koala evaluate --model "$model" --data $val120 --suggest 8 --out "$out/suggest.json"
koala evaluate --model "$model" --data $val120 --reference self,other --out "$out/reference.json"
koala evaluate --model default --data $val120 --hints 0,10 --out "$out/hints-default.json"
koala evaluate --model "$model" --data $val120 --hints 0,10 --out "$out/hints-new.json"
.venv/bin/python scripts/probe_distribution.py "$model" --data $val120 --temperatures 0.38,0.6,1 --mixes 0.5 \
    --saturations 1,1.2,1.4 --out "$out/probe-distribution.json"
