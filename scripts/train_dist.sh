#!/usr/bin/env bash
# Issue 31's candidate for the next default, in two parts: the new layers alone (configs/dist-1a.yaml),
# then everything (configs/dist-1.yaml). Each part resumes where it stopped when run again.
#   nice scripts/train_dist.sh > logs/dist-1.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f runs/dist-1a/best.keras ] && [ ! -d runs/dist-1a/backup ] || .venv/bin/koala train --config configs/dist-1a.yaml
.venv/bin/koala train --config configs/dist-1.yaml
