#!/usr/bin/env bash
# Issue 31, part 4: the equal-CPU short runs, one after the other; a stopped one resumes, a finished
# one (its folder without a backup) is skipped.
#   nice scripts/train_short.sh > logs/short.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
for name in short-24 short-32 short-24-even short-128; do
    [ -f runs/$name/koala.json ] && [ ! -d runs/$name/backup ] && continue
    .venv/bin/koala train --config reports/issue31/configs/$name.yaml
done
