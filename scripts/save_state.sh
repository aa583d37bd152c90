#!/usr/bin/env bash
# Keep a stopped training run resumable across machines: copy what `koala train` needs to go on
# (config, metadata, history, best checkpoint, the last epoch's backup with the optimizer state,
# averages of kept epochs) from runs/RUN into training-state/RUN, to be committed. scripts/restore_state.sh RUN puts it back;
# then the run's own command (koala train --config ...) resumes it.
#   scripts/save_state.sh hints-2
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:?usage: scripts/save_state.sh RUN}
src=runs/$run dst=training-state/$run
[ -d "$src/backup" ] || { echo "$src: no backup (the run finished or never started); nothing to keep" >&2; exit 1; }
rm -rf "$dst.tmp" && mkdir -p "$dst.tmp/backup"
cp "$src"/{config.yaml,koala.json,history.csv} "$dst.tmp/"
# The best checkpoint without its optimizer state (the backup holds the optimizer; a 24-filter
# CU-Net's best.keras is 21 MB with Adam's moments and 7 MB without).
.venv/bin/python -c 'import sys, keras, koala.models; keras.saving.load_model(sys.argv[1], compile=False).save(sys.argv[2])' \
    "$src/best.keras" "$dst.tmp/best.keras"
cp "$src"/backup/{latest.weights.h5,training_metadata.json} "$dst.tmp/backup/"
# Averages of kept epochs (scripts/average_epochs.py; no optimizer state): the epochs they came from
# stay behind, so a candidate average goes with the state.
if compgen -G "$src/checkpoints/average_*.keras" > /dev/null; then
    mkdir -p "$dst.tmp/checkpoints" && cp "$src"/checkpoints/average_*.keras "$dst.tmp/checkpoints/"
fi
rm -rf "$dst" && mv "$dst.tmp" "$dst"
echo "kept $src in $dst ($(du -sh "$dst" | cut -f1)); epochs done: $(($(wc -l < "$dst/history.csv") - 1))"
