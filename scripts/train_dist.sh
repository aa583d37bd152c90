#!/usr/bin/env bash
# Issue 31's candidate for the next default, in two parts: the new layers alone (configs/dist-1a.yaml),
# then everything (configs/dist-1.yaml). Each part resumes where it stopped when run again (on a
# new machine: scripts/restore_state.sh dist-1 first).
#   nice scripts/train_dist.sh > logs/dist-1.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
# Part a only until part b has started (a resumed part b needs nothing of part a's folder).
[ -f runs/dist-1/koala.json ] || .venv/bin/koala train --config configs/dist-1a.yaml
.venv/bin/koala train --config configs/dist-1.yaml
