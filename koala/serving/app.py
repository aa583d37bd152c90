"""The web app behind `koala serve`: a page to colorize a photo, and a small API.

``GET /``                the page: drop a photo, compare gray and colour, tune, download the PNG.
``POST /api/colorize``   a photo (multipart field ``image``, or the raw bytes as the body) -> PNG.
                         Query parameters ``saturation`` and ``temperature`` (models that
                         predict colour distributions) are optional.
``GET /healthz``         JSON: status, model and limits.

Errors are JSON ``{"error": reason}``: 400 for a file that is not a usable photo (the reasons of
:func:`koala.images.load_rgb`) or a bad parameter, 413 for an upload or a picture over the
limits, 503 when the colorize queue is full. Colorizing runs on a bounded pool of workers with
a bounded queue, so a burst of requests gets quick 503s instead of piling up memory.
Colours come from :class:`koala.inference.Colorizer`, the same path as ``koala colorize``.

Flask, not FastAPI: inference is blocking TensorFlow work on a CPU, so async buys nothing,
Flask is already a dependency, and the API is three routes.
"""
from __future__ import annotations

import dataclasses
import io
import logging
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from flask import Flask, Response, jsonify, render_template, request
from PIL import Image
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from koala.images import ImageError, encode_png, load_rgb
from koala.inference import Colorizer
from koala.models import get_spec
from koala.serving import DEFAULT_MAX_PIXELS, DEFAULT_MAX_UPLOAD_MB, DEFAULT_QUEUE, DEFAULT_WORKERS

log = logging.getLogger(__name__)

SATURATION_RANGE = (0.0, 3.0)
TEMPERATURE_RANGE = (0.01, 1.0)
MB = 1 << 20


class Busy(Exception):
    """Every worker is busy and the queue is full."""


class ApiError(Exception):
    """A request the API refuses: ``status`` and a one-line ``reason`` for the JSON body."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class WorkerPool:
    """Run jobs on ``workers`` threads with at most ``queue`` more waiting; refuse the rest.

    Example: ``WorkerPool(1, 2).run(colorizer.colorize, photo)`` blocks until done, or raises
    :class:`Busy` at once when three jobs are already admitted.
    """

    def __init__(self, workers: int = DEFAULT_WORKERS, queue: int = DEFAULT_QUEUE):
        if workers < 1 or queue < 0:
            raise ValueError(f"need workers >= 1 and queue >= 0; got workers={workers}, queue={queue}")
        self.workers, self.queue = workers, queue
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="koala-colorize")
        self._lock = threading.Lock()
        self._admitted = 0

    @property
    def admitted(self) -> int:
        """Jobs running or waiting now."""
        return self._admitted

    def run(self, fn: Callable, *args):
        with self._lock:
            if self._admitted >= self.workers + self.queue:
                raise Busy()
            self._admitted += 1
        try:
            return self._executor.submit(fn, *args).result()
        finally:
            with self._lock:
                self._admitted -= 1


def pixel_count(data: bytes) -> int | None:
    """Width x height read from the header alone (no decoding); None when PIL cannot tell."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                return img.width * img.height
    except Image.DecompressionBombError:
        return Image.MAX_IMAGE_PIXELS * 2 + 1  # PIL refuses to even open it
    except Exception:  # not an image: load_rgb gives the reason
        return None


def parse_float(args, name: str, bounds: tuple[float, float]) -> float | None:
    """An optional query parameter as a float within ``bounds``, else a 400."""
    text = args.get(name)
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise ApiError(400, f"{name} must be a number; got {text!r}") from None
    if not bounds[0] <= value <= bounds[1]:
        raise ApiError(400, f"{name} must be between {bounds[0]} and {bounds[1]}; got {value}")
    return value


def create_app(
    colorizer: Colorizer,
    workers: int = DEFAULT_WORKERS,
    queue: int = DEFAULT_QUEUE,
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Flask:
    """The Flask app serving ``colorizer``; ``app.extensions["koala_pool"]`` is its :class:`WorkerPool`."""
    if max_upload_mb <= 0 or max_pixels < 1:
        raise ValueError(f"limits must be positive; got max_upload_mb={max_upload_mb}, max_pixels={max_pixels}")
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = int(max_upload_mb * MB)
    pool = WorkerPool(workers, queue)
    app.extensions["koala_pool"] = pool
    meta = colorizer.metadata or {}
    model_name = meta.get("model", colorizer.network.name)
    has_temperature = get_spec(model_name).decode is not None
    info = {
        "model": model_name,
        "image_size": colorizer.image_size,
        "saturation": colorizer.saturation,
        "temperature": colorizer.temperature if has_temperature else None,
        "supports_temperature": has_temperature,
        "workers": workers,
        "queue": queue,
        "max_upload_mb": max_upload_mb,
        "max_pixels": max_pixels,
    }

    @app.get("/")
    def index():
        return render_template("index.html", info=info, saturation_range=SATURATION_RANGE,
                               temperature_range=TEMPERATURE_RANGE)

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok", busy=pool.admitted, **info)

    @app.post("/api/colorize")
    def colorize():
        data = upload_bytes()
        options = {"saturation": parse_float(request.args, "saturation", SATURATION_RANGE)}
        temperature = parse_float(request.args, "temperature", TEMPERATURE_RANGE)
        if temperature is not None and not has_temperature:
            raise ApiError(400, f"temperature: {model_name} predicts ab directly and has no temperature")
        options["temperature"] = temperature
        pixels = pixel_count(data)
        if pixels is not None and pixels > max_pixels:
            raise ApiError(413, f"too many pixels ({pixels:,}; limit {max_pixels:,})")
        tuned = dataclasses.replace(colorizer, **{k: v for k, v in options.items() if v is not None})
        png = pool.run(lambda: encode_png(tuned.colorize(load_rgb(data))))
        return Response(png, mimetype="image/png")

    @app.errorhandler(ApiError)
    def api_error(e: ApiError):
        return jsonify(error=e.reason), e.status

    @app.errorhandler(ImageError)
    def image_error(e: ImageError):
        status = 413 if e.reason.startswith("too many pixels") else 400
        return jsonify(error=e.reason), status

    @app.errorhandler(Busy)
    def busy(_: Busy):
        reason = f"busy: {pool.workers} worker(s) and a queue of {pool.queue} are full; retry shortly"
        return jsonify(error=reason), 503, {"Retry-After": "1"}

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_: RequestEntityTooLarge):
        return jsonify(error=f"upload too large (limit {max_upload_mb:g} MB)"), 413

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException):
        return jsonify(error=e.description), e.code

    @app.errorhandler(Exception)
    def internal_error(e: Exception):
        log.exception("colorize failed")
        return jsonify(error=f"internal error ({type(e).__name__})"), 500

    return app


def upload_bytes() -> bytes:
    """The photo of a request: multipart field ``image``, or the raw body."""
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("image")
        if upload is None:
            raise ApiError(400, "no file in the multipart field 'image'")
        data = upload.read()
    else:
        data = request.get_data(cache=False)
    if not data:
        raise ApiError(400, "empty upload (0 bytes)")
    return data


def make_server(app: Flask, host: str = "127.0.0.1", port: int = 8000):
    """A waitress server for ``app`` (port 0: any free one; see ``.effective_port``); ``.run()`` serves.

    Waitress is a production WSGI server with a pool of request threads. It gets one for every
    job the app admits plus two (health checks and quick 503s), so the app's own pool, not
    waitress's backlog, decides who waits. Bodies far over the upload limit are refused by
    waitress itself (413, plain text) before they are buffered.
    """
    from waitress.server import create_server

    pool: WorkerPool = app.extensions["koala_pool"]
    return create_server(app, host=host, port=port, threads=pool.workers + pool.queue + 2,
                         max_request_body_size=2 * app.config["MAX_CONTENT_LENGTH"] + MB, ident="koala")
