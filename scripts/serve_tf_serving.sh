#!/usr/bin/env bash
# Serve `koala export`'s SavedModels with TF Serving in Docker: gRPC on 8500, REST on 8501.
#
#   koala export --model default --out exported/koala           # -> exported/koala/1/
#   bash scripts/serve_tf_serving.sh exported/koala              # the newest version
#   bash scripts/serve_tf_serving.sh exported/koala --config     # the versions in scripts/models.config
#
# Ports are published on 127.0.0.1 only; set HOST=0.0.0.0 to expose them. TF_SERVING_IMAGE picks
# the image (pin a tag at least as new as the TensorFlow that exported, 2.21), MODEL_NAME the name
# in /v1/models/NAME (default koala; with --config it must match the name in models.config).
set -euo pipefail

if [ $# -lt 1 ] || [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    exit 1
fi
EXPORT_DIR=$(realpath "$1")
shift
if [ ! -d "$EXPORT_DIR" ]; then
    echo "serve_tf_serving.sh: $EXPORT_DIR: no such folder (run koala export first)" >&2
    exit 1
fi
MODEL_NAME=${MODEL_NAME:-koala}
HOST=${HOST:-127.0.0.1}
IMAGE=${TF_SERVING_IMAGE:-tensorflow/serving:latest}
SCRIPTS=$(cd "$(dirname "$0")" && pwd)

args=(run --rm --name "koala-tf-serving"
      -p "$HOST:8500:8500" -p "$HOST:8501:8501"
      --mount "type=bind,source=$EXPORT_DIR,target=/models/$MODEL_NAME,readonly"
      -e "MODEL_NAME=$MODEL_NAME")
server_args=()
if [ "${1:-}" = "--config" ]; then
    args+=(--mount "type=bind,source=$SCRIPTS/models.config,target=/models/models.config,readonly")
    server_args+=(--model_config_file=/models/models.config --model_config_file_poll_wait_seconds=60)
fi
exec docker "${args[@]}" "$IMAGE" "${server_args[@]}"
