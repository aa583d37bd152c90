"""Serving koala: the web app (:mod:`koala.serving.app`) and the TF Serving client
(:mod:`koala.serving.client`).

The names below are the contract of what :mod:`koala.export` writes, kept here so the client and
the CLI can use them without importing Keras. TF Serving's REST API base64-wraps tensors whose
names end in ``_bytes``, hence the suffixes.
"""
EXPORT_FORMATS = ("savedmodel", "onnx")  # TF Serving's SavedModel (the whole colorize path), or the network as ONNX
BYTES_SIGNATURE = "serving_default"
IMAGE_INPUT = "image_bytes"
PNG_OUTPUT = "png_bytes"
HINTS_SIGNATURE = "colorize_hints"  # models with hint inputs: image_bytes and hints -> png_bytes
HINTS_INPUT = "hints"  # float32 (N, K, 6): koala.data.hints.HINT_COLUMNS, in each photo's pixels
GLOBAL_SIGNATURE = "colorize_global"  # models with a global-hint input: image_bytes, hints, global_hints -> png_bytes
GLOBAL_INPUT = "global_hints"  # float32 (N, 310): koala.data.global_hints (a reference's or a palette's colours)
L_SIGNATURE = "colorize_l"
L_INPUT = "L"
AB_OUTPUT = "ab"

# Defaults of `koala serve`, shared by the CLI and :func:`koala.serving.app.create_app`.
DEFAULT_WORKERS = 1
DEFAULT_QUEUE = 8
DEFAULT_MAX_UPLOAD_MB = 20.0
DEFAULT_PORT = 8000
SLOT_PIXELS = 4_000_000  # one slot of the worker pool per 4 MP: a 24 MP scan takes 6
