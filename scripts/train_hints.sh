#!/usr/bin/env bash
# The bundled default's second half (scripts/train_default.sh runs it after the first): from the
# default before issue 17 (runs/default-stage3, 16 filters, no hints) to koala/weights/default.keras,
# a CU-Net with hint inputs, on ../shared/datasets/{photos-v1,scenes-v1}, stage by stage (each
# training stage resumes if it was stopped: run the script again):
#   1. two short runs at equal CPU time (train.cpu_budget), both from the old default's weights
#      with the new layers zero-initialised: the CU-Net with hint inputs (configs/hints-plain.yaml)
#      and the same with a global-context branch (reports/issue17/configs/hints-global.yaml); compared on the
#      PSNR-colourfulness frontier of 240 val photos and with 0/3/10 simulated hints
#      (reports/issue17/): the plain one won, so
#   2. the long run continues it (configs/hints.yaml; bfloat16 where the CPU has bf16 units);
#   3. (then: its saturation tuned on training photos, and packaged as the bundled hint model)
#   4. the long run's second part (configs/hints-2.yaml, 70 epochs: flat at its floor learning
#      rate) goes on from it (then re-tuned and packaged as the bundled hint model);
#   5. its third part: two short runs at equal CPU time from that model with a warm restart
#      (reports/issue17/configs/hints-3-global.yaml with a global-context branch, configs/hints-3-plain.yaml without;
#      compared on the frontier of 367 general and scenes val photos, reports/issue17/): the plain
#      one won, and the long run continues it (configs/hints-3.yaml; its best checkpoint, re-tuned
#      to saturation 1.4, was the bundled hint model).
#   6. its fourth part: hints-3's best widened from 16 to 24 filters (Net2Net, so it starts as the
#      same function; configs/hints-4-wide.yaml) against the 16-filter network trained on alike
#      (reports/issue17/configs/hints-4-narrow.yaml), at equal CPU time, compared on the frontier of the same
#      367 photos (listed in reports/issue17/probe-367.txt, scored from a folder with a sub-folder
#      per source so that --group finds them) and with hints: the wider one won, and the long
#      run continues it (configs/hints-4.yaml);
#   7. its best, tuned on training photos (scripts/tune_colour.py, the default's rule at 160 px), is
#      packaged as the bundled default (it dominated the old default's frontier) and scored on
#      photos-v1/val, scenes-v1/val and with hints: the default from issue 17 to issue 31, which
#      scripts/train_dist.sh goes on from.
#   A session that stops keeps a long run with scripts/save_state.sh RUN (committed under
#   training-state/); this script restores it and resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
PHOTOS=../shared/datasets/photos-v1
SCENES=../shared/datasets/scenes-v1
GENERAL=general=bsds500,imagenet_sample1000,urban100
source scripts/stage.sh
resume() {  # a long run kept under training-state/ by an earlier session
    [ -e "runs/$1" ] || [ ! -d "training-state/$1" ] || scripts/restore_state.sh "$1"
    stage "$@"
}
stage hints-plain configs/hints-plain.yaml
stage hints-global reports/issue17/configs/hints-global.yaml
stage hints configs/hints.yaml
resume hints-2 configs/hints-2.yaml
stage hints-3-global reports/issue17/configs/hints-3-global.yaml
stage hints-3-plain configs/hints-3-plain.yaml
resume hints-3 configs/hints-3.yaml --set train.epochs=45  # where it was stopped; part 4 starts from its best
stage hints-4-narrow reports/issue17/configs/hints-4-narrow.yaml
stage hints-4-wide configs/hints-4-wide.yaml
resume hints-4 configs/hints-4.yaml
.venv/bin/python scripts/tune_colour.py runs/hints-4 --data "$PHOTOS/train" --images 300 \
    --sizes 160 --saturations 1.2,1.3,1.4,1.5,1.6 \
    --margin 0.7 --group "$GENERAL" --group-margin 0.3 --source-floor 0.3
.venv/bin/python scripts/package_model.py runs/hints-4 --name default --overwrite
# Its scores, under the names they have kept since issue 31 replaced it (scripts/train_dist.sh):
.venv/bin/koala evaluate --model default --data "$PHOTOS/val" --out reports/frontier/default-before-31-val.json
.venv/bin/koala evaluate --model default --data "$PHOTOS/val" --group "$GENERAL" \
    --sweep 1,1.3,1.4,1.6 --out reports/frontier/default-before-31.json
.venv/bin/koala evaluate --model default --data "$SCENES/val" --sweep 1,1.3,1.4,1.6 \
    --out reports/frontier/default-scenes-before-31.json
.venv/bin/koala evaluate --model default --data reports/hints-model/val-120.txt \
    --hints 0,1,2,5,10,20,50 --out reports/hints-model/curve-before-31.json
