#!/usr/bin/env bash
# Put a run kept by scripts/save_state.sh back into runs/RUN, so that its `koala train` command
# resumes where the last session stopped. Refuses to overwrite a run folder that is already there.
#   scripts/restore_state.sh hints-2 && .venv/bin/koala train --config configs/hints-2.yaml
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:?usage: scripts/restore_state.sh RUN}
src=training-state/$run dst=runs/$run
[ -d "$src" ] || { echo "$src: not there (nothing kept for $run)" >&2; exit 1; }
[ ! -e "$dst" ] || { echo "$dst: already there; move it away first to restore $src" >&2; exit 1; }
mkdir -p runs && cp -r "$src" "$dst"
echo "restored $dst from $src; epochs done: $(($(wc -l < "$dst/history.csv") - 1))"
