# Sourced by scripts/score_short.sh and score_epochs.sh, run from the repository root: issue 31's
# frontier probe of one model.
# frontier_probe LABEL=MODEL OUT: photos-v1/val with its general group and scenes-v2/val, saturations
# 1 to 1.8, into OUT-photos.json and OUT-scenes2.json (plots beside them). WRAP runs each evaluation
# under a command (e.g. a CPU lock).
frontier_probe() {
    local data=../shared/datasets
    ${WRAP:-} .venv/bin/koala evaluate --model "$1" --data $data/photos-v1/val \
        --group general=bsds500,imagenet_sample1000,urban100 --sweep 1,1.2,1.4,1.6,1.8 --out "$2-photos.json"
    ${WRAP:-} .venv/bin/koala evaluate --model "$1" --data $data/scenes-v2/val \
        --sweep 1,1.2,1.4,1.6,1.8 --out "$2-scenes2.json"
}
