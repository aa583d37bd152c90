"""A client for TF Serving running `koala export`'s SavedModel: REST and gRPC requests and answers.

REST follows TF Serving's documented JSON ("row" format): binary tensors travel base64-encoded
in ``{"b64": ...}`` objects, both ways, because the signature's tensor names end in ``_bytes``::

    POST http://HOST:8501/v1/models/koala[/versions/N]:predict
    {"signature_name": "serving_default", "instances": [{"b64": "iVBORw0..."}]}
    -> {"predictions": [{"b64": "iVBORw0..."}]}

gRPC sends a ``tensorflow_serving.apis.predict_pb2.PredictRequest`` to port 8500.

A model with hint inputs also answers ``colorize_hints``: each instance is then an object of two
named inputs, the photo and its hint table (:func:`koala.data.hints.parse_hints`)::

    {"signature_name": "colorize_hints",
     "instances": [{"image_bytes": {"b64": "..."}, "hints": [[x, y, radius, red, green, blue], ...]}]}

A model with a global-hint input also answers ``colorize_global``: each instance carries the hint
table (maybe empty) and the global hint, 310 numbers computed here from a reference photo or a
palette (:mod:`koala.data.global_hints`), so the photo is coloured like the reference::

    {"signature_name": "colorize_global",
     "instances": [{"image_bytes": {"b64": "..."}, "hints": [], "global_hints": [0.0, ..., 1.0]}]}

Example::

    client = TFServingClient("http://localhost:8501", model="koala")
    png = client.colorize([read_image_bytes("old_photo.jpg")])[0]
    png = client.colorize(["dress.jpg"], hints=[[{"x": 120, "y": 340, "color": "#a01c2c"}]])[0]
    png = client.colorize(["street.jpg"], reference="summer_street.jpg")[0]
"""
from __future__ import annotations

import base64
import io
import json
import os
import time
import urllib.error
import urllib.request
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image, ImageOps

from koala.serving import (
    AB_OUTPUT,
    BYTES_SIGNATURE,
    GLOBAL_INPUT,
    GLOBAL_SIGNATURE,
    HINTS_INPUT,
    HINTS_SIGNATURE,
    IMAGE_INPUT,
    L_INPUT,
    L_SIGNATURE,
    PNG_OUTPUT,
)

DEFAULT_MODEL = "koala"
REST_PORT = 8501
GRPC_PORT = 8500
EXIF_ORIENTATION = 0x0112
RETRIES = 3  # further tries after a 503 (busy) answer
MAX_RETRY_WAIT = 30.0  # seconds: the longest Retry-After the client waits before a try
BUSY_WAIT = 1.0  # seconds to wait after a 503 that names no Retry-After


class ServingError(RuntimeError):
    """TF Serving answered with an error (its ``{"error": ...}`` body, or a gRPC status)."""


def read_image_bytes(source: str | os.PathLike | bytes) -> bytes:
    """Encoded photo bytes ready to send. TensorFlow's decoders ignore EXIF orientation, which
    ``koala colorize`` applies, so a rotated photo is turned upright here and sent as PNG."""
    data = bytes(source) if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.getexif().get(EXIF_ORIENTATION, 1) == 1:
                return data
            upright, buffer = ImageOps.exif_transpose(img), io.BytesIO()
            upright.save(buffer, format="PNG")
            return buffer.getvalue()
    except OSError:
        return data  # not something PIL reads: let the server give its reason


def predict_url(base_url: str, model: str = DEFAULT_MODEL, version: int | None = None,
                label: str | None = None) -> str:
    """``http://host:8501`` -> ``http://host:8501/v1/models/MODEL[/versions/N|/labels/L]:predict``."""
    if version is not None and label is not None:
        raise ValueError(f"give a version or a label, not both (got {version} and {label!r})")
    which = f"/versions/{int(version)}" if version is not None else f"/labels/{label}" if label else ""
    return f"{base_url.rstrip('/')}/v1/models/{model}{which}:predict"


def retry_after(value: str | None, now: float | None = None) -> float:
    """Seconds to wait before trying again from a ``Retry-After`` header (delta seconds or an
    HTTP date), bounded to [0, ``MAX_RETRY_WAIT``]; ``BUSY_WAIT`` when absent or unreadable."""
    if not value:
        return BUSY_WAIT
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - (time.time() if now is None else now)
        except (TypeError, ValueError):
            return BUSY_WAIT
    return min(max(seconds, 0.0), MAX_RETRY_WAIT)


def rest_request(images: list[bytes]) -> dict[str, Any]:
    """JSON body for ``serving_default``: one ``{"b64": ...}`` instance per encoded photo."""
    return {"signature_name": BYTES_SIGNATURE,
            "instances": [{"b64": base64.b64encode(data).decode("ascii")} for data in images]}


def hint_table(image: bytes, hints: list[dict]) -> np.ndarray:
    """A photo's hints (a list of ``{"x", "y", "color", "radius"}``) checked against its size (read
    from its header) -> the (K, 6) table the ``colorize_hints`` signature takes."""
    from koala.data.hints import parse_hints  # TensorFlow comes with it: only when hints are sent

    with Image.open(io.BytesIO(image)) as img:
        size = img.size
    return parse_hints(hints, size)


def rest_hints_request(images: list[bytes], tables: list[np.ndarray]) -> dict[str, Any]:
    """JSON body for ``colorize_hints``: each photo with its hint table (every table K x 6, one K)."""
    if len(images) != len(tables) or len({np.shape(t)[0] for t in tables}) > 1:
        raise ValueError(f"give one hint table per photo, all with the same number of hints; got "
                         f"{len(images)} photo(s) and tables of {[np.shape(t)[0] for t in tables]} hints")
    return {"signature_name": HINTS_SIGNATURE,
            "instances": [{IMAGE_INPUT: {"b64": base64.b64encode(data).decode("ascii")},
                           HINTS_INPUT: np.asarray(table, np.float32).tolist()}
                          for data, table in zip(images, tables)]}


def global_hint(reference=None, palette=None) -> np.ndarray | None:
    """The global hint (310,) of a reference photo (a path or bytes) or a palette, checked here,
    before anything is sent (:func:`koala.data.global_hints.reference_hint`, ``palette_hint``); None
    without either."""
    if reference is None and palette is None:
        return None
    if reference is not None and palette is not None:
        raise ValueError("reference/palette: give a reference or a palette, not both")
    from koala.data.global_hints import palette_hint, reference_hint  # TensorFlow: only when one is sent

    return reference_hint(reference) if reference is not None else palette_hint(palette)


def rest_global_request(images: list[bytes], tables: list[np.ndarray], vectors: list[np.ndarray]) -> dict[str, Any]:
    """JSON body for ``colorize_global``: each photo with its hint table and its global hint (310,)."""
    if not len(images) == len(tables) == len(vectors) or len({np.shape(t)[0] for t in tables}) > 1:
        raise ValueError(f"give one hint table (all with the same number of hints) and one global hint per photo; "
                         f"got {len(images)} photo(s), {len(tables)} table(s), {len(vectors)} global hint(s)")
    return {"signature_name": GLOBAL_SIGNATURE,
            "instances": [{IMAGE_INPUT: {"b64": base64.b64encode(data).decode("ascii")},
                           HINTS_INPUT: np.asarray(table, np.float32).reshape(-1, 6).tolist(),
                           GLOBAL_INPUT: np.asarray(vector, np.float32).tolist()}
                          for data, table, vector in zip(images, tables, vectors)]}


def rest_l_request(l_norm: np.ndarray) -> dict[str, Any]:
    """JSON body for ``colorize_l``: normalised L, (N, H, W, 1), one nested list per instance."""
    l_norm = np.asarray(l_norm, np.float32)
    if l_norm.ndim != 4 or l_norm.shape[-1] != 1:
        raise ValueError(f"expected normalised L of shape (N, H, W, 1); got {l_norm.shape}")
    return {"signature_name": L_SIGNATURE, "instances": l_norm.tolist()}


def _predictions(body: dict | str | bytes) -> list:
    if isinstance(body, (str, bytes)):
        body = json.loads(body)
    if "error" in body:
        raise ServingError(body["error"])
    if "predictions" not in body:
        raise ServingError(f"unexpected answer: no 'predictions' (keys: {sorted(body)})")
    return body["predictions"]


def parse_rest_response(body: dict | str | bytes) -> list[bytes]:
    """``{"predictions": [{"b64": ...}, ...]}`` -> the PNG bytes of each photo."""
    return [base64.b64decode(item["b64"]) for item in _predictions(body)]


def parse_rest_ab(body: dict | str | bytes) -> np.ndarray:
    """``colorize_l``'s answer -> normalised ab, (N, H, W, 2)."""
    return np.asarray(_predictions(body), np.float32)


def grpc_request(images: list[bytes], model: str = DEFAULT_MODEL, version: int | None = None,
                 label: str | None = None):
    """A ``PredictRequest`` for ``serving_default`` with the photos as a string tensor (N,)."""
    return _grpc_request(model, version, label, BYTES_SIGNATURE, IMAGE_INPUT, np.array(list(images), dtype=object))


def grpc_hints_request(images: list[bytes], tables: list[np.ndarray], model: str = DEFAULT_MODEL,
                       version: int | None = None, label: str | None = None):
    """A ``PredictRequest`` for ``colorize_hints``: the photos (N,) and their hint tables (N, K, 6)."""
    request = _grpc_request(model, version, label, HINTS_SIGNATURE, IMAGE_INPUT, np.array(list(images), dtype=object))
    import tensorflow as tf

    stacked = np.stack([np.asarray(table, np.float32) for table in tables])
    request.inputs[HINTS_INPUT].CopyFrom(tf.make_tensor_proto(stacked))
    return request


def grpc_global_request(images: list[bytes], tables: list[np.ndarray], vectors: list[np.ndarray],
                        model: str = DEFAULT_MODEL, version: int | None = None, label: str | None = None):
    """A ``PredictRequest`` for ``colorize_global``: photos (N,), hint tables (N, K, 6), global hints (N, 310)."""
    request = _grpc_request(model, version, label, GLOBAL_SIGNATURE, IMAGE_INPUT, np.array(list(images), dtype=object))
    import tensorflow as tf

    stacked = np.stack([np.asarray(table, np.float32).reshape(-1, 6) for table in tables])
    request.inputs[HINTS_INPUT].CopyFrom(tf.make_tensor_proto(stacked))
    request.inputs[GLOBAL_INPUT].CopyFrom(tf.make_tensor_proto(np.stack(vectors).astype(np.float32)))
    return request


def grpc_l_request(l_norm: np.ndarray, model: str = DEFAULT_MODEL, version: int | None = None,
                   label: str | None = None):
    """A ``PredictRequest`` for ``colorize_l`` with normalised L, (N, H, W, 1)."""
    return _grpc_request(model, version, label, L_SIGNATURE, L_INPUT, np.asarray(l_norm, np.float32))


def _grpc_request(model: str, version: int | None, label: str | None, signature: str, key: str,
                  value: np.ndarray):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    if version is not None and label is not None:
        raise ValueError(f"give a version or a label, not both (got {version} and {label!r})")
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = int(version)
    elif label:
        request.model_spec.version_label = label
    request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return request


def parse_grpc_response(response) -> list[bytes] | np.ndarray:
    """A ``PredictResponse`` -> PNG bytes per photo (``serving_default``) or ab (``colorize_l``)."""
    import tensorflow as tf

    if PNG_OUTPUT in response.outputs:
        return [bytes(b) for b in tf.make_ndarray(response.outputs[PNG_OUTPUT])]
    if AB_OUTPUT in response.outputs:
        return tf.make_ndarray(response.outputs[AB_OUTPUT])
    raise ServingError(f"unexpected answer: outputs {sorted(response.outputs)}")


def _error_message(error: urllib.error.HTTPError) -> str:
    """The ``error`` of a JSON error body, else the body as text."""
    text = error.read().decode(errors="replace")
    try:
        return json.loads(text).get("error", text)
    except (ValueError, AttributeError):
        return text


class TFServingClient:
    """Send photos to a TF Serving model over REST (``colorize``) or gRPC (``colorize_grpc``)."""

    def __init__(self, rest_url: str = f"http://localhost:{REST_PORT}", grpc_target: str = f"localhost:{GRPC_PORT}",
                 model: str = DEFAULT_MODEL, version: int | None = None, label: str | None = None,
                 timeout: float = 60.0, retries: int = RETRIES, sleep: Callable[[float], None] = time.sleep):
        """``retries`` (default 3): further tries of a REST request answered 503 (a busy server),
        each after the answer's ``Retry-After`` (:func:`retry_after`); ``sleep`` waits that long."""
        self.rest_url, self.grpc_target = rest_url, grpc_target
        self.model, self.version, self.label, self.timeout = model, version, label, timeout
        self.retries, self.sleep = retries, sleep

    def post(self, body: dict[str, Any]) -> dict:
        """POST a predict body; TF Serving's ``{"error": ...}`` answers raise :class:`ServingError`.
        A 503 is tried again, up to ``retries`` times, after the wait its ``Retry-After`` asks for."""
        data, tried = json.dumps(body).encode(), 0
        while True:
            request = urllib.request.Request(predict_url(self.rest_url, self.model, self.version, self.label),
                                             data=data, method="POST", headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                    return json.loads(answer.read())
            except urllib.error.HTTPError as e:
                if e.code != 503 or tried == self.retries:
                    raise ServingError(f"HTTP {e.code}: {_error_message(e)}") from None
                wait = retry_after(e.headers.get("Retry-After"))
                e.close()
            tried += 1
            self.sleep(wait)

    def colorize(self, images: list[str | os.PathLike | bytes], hints: list[list[dict]] | None = None,
                 reference: str | os.PathLike | bytes | None = None, palette=None) -> list[bytes]:
        """Photos (paths or bytes) -> colorized PNG bytes, through REST. ``hints``: one list of hints
        per photo (models with hint inputs); each photo then goes in a request of its own.
        ``reference`` (a colour photo) or ``palette``: the global hint of every photo (models with
        a global-hint input: ``colorize_global``)."""
        data = [read_image_bytes(i) for i in images]
        vector = global_hint(reference, palette)
        if vector is not None:
            tables = _tables(data, hints)
            return [parse_rest_response(self.post(rest_global_request([d], [t], [vector])))[0]
                    for d, t in zip(data, tables)]
        if hints is None:
            return parse_rest_response(self.post(rest_request(data)))
        return [parse_rest_response(self.post(rest_hints_request([d], [hint_table(d, h)])))[0]
                for d, h in zip(data, _one_per_photo(hints, data))]

    def colorize_grpc(self, images: list[str | os.PathLike | bytes], hints: list[list[dict]] | None = None,
                      reference: str | os.PathLike | bytes | None = None, palette=None) -> list[bytes]:
        """Photos (paths or bytes) -> colorized PNG bytes, through gRPC (``hints``, ``reference`` and
        ``palette`` as :meth:`colorize`)."""
        data = [read_image_bytes(i) for i in images]
        vector = global_hint(reference, palette)
        if vector is not None:
            return [self._predict_grpc(grpc_global_request([d], [t], [vector], self.model, self.version,
                                                           self.label))[0]
                    for d, t in zip(data, _tables(data, hints))]
        if hints is None:
            return self._predict_grpc(grpc_request(data, self.model, self.version, self.label))
        return [self._predict_grpc(grpc_hints_request([d], [hint_table(d, h)], self.model, self.version,
                                                      self.label))[0]
                for d, h in zip(data, _one_per_photo(hints, data))]

    def _predict_grpc(self, request) -> list[bytes]:
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        with grpc.insecure_channel(self.grpc_target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            try:
                return parse_grpc_response(stub.Predict(request, timeout=self.timeout))
            except grpc.RpcError as e:
                raise ServingError(f"{e.code().name}: {e.details()}") from None


def _tables(images: list[bytes], hints: list | None) -> list[np.ndarray]:
    """Each photo's hint table (empty without hints)."""
    if hints is None:
        return [np.zeros((0, 6), np.float32) for _ in images]
    return [hint_table(d, h) for d, h in zip(images, _one_per_photo(hints, images))]


def _one_per_photo(hints: list, images: list) -> list:
    if not isinstance(hints, list) or len(hints) != len(images):
        raise ValueError(f"hints: give one list of hints per photo ({len(images)}); got "
                         f"{len(hints) if isinstance(hints, list) else type(hints).__name__}")
    return hints
