"""The web app behind `koala serve`: a page to colorize a photo, and a small API.

``GET /``                the page: drop a photo, compare gray and colour, tune, download the PNG.
``POST /api/colorize``   a photo (multipart field ``image``, or the raw bytes as the body) -> PNG.
                         Query parameters ``saturation`` (default: the model's own, which is
                         its hint saturation for a photo with hints) and ``temperature``
                         (models that predict colour distributions) are optional. Models with hint inputs
                         also take colour hints: the multipart field ``hints``, a JSON list of
                         ``{"x": px, "y": px, "color": "#rrggbb", "radius": px}`` in the photo's
                         pixels (:mod:`koala.data.hints`). Models with a global-hint input also
                         take a ``reference`` file field (a colour photo to colour it like) or a
                         ``palette`` field ("#c02020,#2050a0", weights after a colon).
``POST /api/suggest``    models with a colour distribution head: the likeliest colours at a point,
                         JSON ``[{"color": "#rrggbb", "probability": p}, ...]`` (Colorizer.suggest):
                         query parameters ``x``, ``y`` (the photo's pixels) and ``k`` (default 8),
                         multipart fields ``image`` and, optionally, ``hints``, ``reference``, ``palette``.
``GET /healthz``         JSON: status, model and limits.

Errors are JSON ``{"error": reason}``: 400 for a file that is not a usable photo (the reasons of
:func:`koala.images.load_pixels`), a bad parameter, bad hints (``hints: hint 3: ...``), a bad
reference or palette (``reference old.jpg: ...``, ``palette: entry 2 ...``) or a point outside
the photo, 413 for an upload or a picture over the
limits, 503 when the colorize queue is full. Colorizing runs on a bounded pool of workers with
a bounded queue, so a burst of requests gets quick 503s instead of piling up memory.
Colours come from :class:`koala.inference.Colorizer`, the same path as ``koala colorize``.

Flask, not FastAPI: inference is blocking TensorFlow work on a CPU, so async buys nothing,
Flask is already a dependency, and the API is three routes.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import heapq
import io
import itertools
import json
import logging
import threading
import time
import warnings
from typing import Callable

from flask import Flask, Response, g, jsonify, render_template, request
from PIL import Image
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from koala.data.global_hints import GlobalHintError
from koala.data.hints import HintError, parse_hints
from koala.images import MAX_PIXELS, ImageError, as_pixels
from koala.inference import SUGGEST_K, Colorizer
from koala.knobs import MAX_PALETTE, SATURATION_RANGE, TEMPERATURE_RANGE, check_range
from koala.models import get_spec
from koala.serving import DEFAULT_MAX_UPLOAD_MB, DEFAULT_PORT, DEFAULT_QUEUE, DEFAULT_WORKERS, SLOT_PIXELS

log = logging.getLogger(__name__)
access_log = logging.getLogger("koala.access")

MB = 1 << 20
CHANNEL_TIMEOUT = 10  # seconds a connection may send or read nothing before it is closed
CONNECTION_LIMIT = 1000  # open connections; idle ones cost a socket, not a thread
SPARE_THREADS = 8  # server threads beyond the pool's slots: health checks, quick refusals, slow readers
OUTBUF_HIGH_WATERMARK = 256 * MB  # responses up to this are buffered (on disk past 1 MB) for slow readers


class Busy(Exception):
    """Every worker is busy and the queue is full."""


class ApiError(Exception):
    """A request the API refuses: ``status`` and a one-line ``reason`` for the JSON body."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class WorkerPool:
    """Run jobs ``workers`` at a time in a waiting room of ``workers + queue`` slots, admitted by size.

    A job weighs one slot per ``slot_pixels`` of its photo (at least one; at most all slots but
    one, so a small photo always finds room), and waiting jobs run lightest first: a big scan
    takes more of the pool than a small photo, and small photos are not stuck behind big scans.
    A job that does not fit is refused at once with :class:`Busy`. Jobs run in the caller's thread.

    Example: ``WorkerPool(1, 2).run(colorizer.colorize, photo, pixels=12_000_000)``.
    """

    def __init__(self, workers: int = DEFAULT_WORKERS, queue: int = DEFAULT_QUEUE, slot_pixels: int = SLOT_PIXELS):
        if workers < 1 or queue < 0 or slot_pixels < 1:
            raise ValueError(f"need workers >= 1, queue >= 0 and slot_pixels >= 1; got workers={workers}, "
                             f"queue={queue}, slot_pixels={slot_pixels}")
        self.workers, self.queue, self.slot_pixels = workers, queue, slot_pixels
        self.slots = workers + queue
        self._changed = threading.Condition()
        self._waiting: list[tuple[int, int]] = []  # heap of (weight, arrival)
        self._arrivals = itertools.count()
        self._admitted = self._load = self._running = 0

    @property
    def admitted(self) -> int:
        """Jobs running or waiting now."""
        return self._admitted

    @property
    def load(self) -> int:
        """Slots taken by the jobs running or waiting now."""
        return self._load

    def weight(self, pixels: int) -> int:
        """Slots a job on a photo of ``pixels`` takes."""
        return max(1, min(-(-pixels // self.slot_pixels), self.slots - 1))

    def run(self, fn: Callable, *args, pixels: int = 0):
        weight = self.weight(pixels)
        with self._changed:
            if self._load + weight > self.slots:
                raise Busy()
            self._admitted += 1
            self._load += weight
            ticket = (weight, next(self._arrivals))
            heapq.heappush(self._waiting, ticket)
            self._changed.wait_for(lambda: self._running < self.workers and self._waiting[0] == ticket)
            heapq.heappop(self._waiting)
            self._running += 1
            self._changed.notify_all()  # the next lightest may start too if a worker is free
        try:
            return fn(*args)
        finally:
            with self._changed:
                self._running -= 1
                self._admitted -= 1
                self._load -= weight
                self._changed.notify_all()


def _malloc_trim() -> Callable[[], None]:
    """glibc's ``malloc_trim(0)``, or a no-op elsewhere. Freed memory stays in glibc's per-thread
    arenas: without trimming, a server that colorized one big scan keeps its memory."""
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    return lambda: trim(0) and None


release_memory = _malloc_trim()


def pixel_count(data: bytes) -> int | None:
    """Width x height read from the header alone (no decoding); None when PIL cannot tell."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                return img.width * img.height
    except Image.DecompressionBombError:
        return Image.MAX_IMAGE_PIXELS * 2 + 1  # PIL refuses to even open it
    except Exception:  # not an image: load_pixels gives the reason
        return None


def parse_float(args, name: str, bounds: tuple[float, float]) -> float | None:
    """An optional query parameter as a finite float within ``bounds`` (:mod:`koala.knobs`), else a 400."""
    text = args.get(name)
    if text is None or text == "":
        return None
    try:
        return check_range(name, text, bounds)
    except ValueError as e:
        raise ApiError(400, str(e)) from None


def create_app(
    colorizer: Colorizer,
    workers: int = DEFAULT_WORKERS,
    queue: int = DEFAULT_QUEUE,
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    max_pixels: int = MAX_PIXELS,
) -> Flask:
    """The Flask app serving ``colorizer``; ``app.extensions["koala_pool"]`` is its :class:`WorkerPool`.
    ``max_pixels`` may lower koala's pixel limit (:data:`koala.images.MAX_PIXELS`), not raise it.
    Each part is added by its own function below: the access log, the page and health check, the
    two API routes, the JSON errors."""
    if max_upload_mb <= 0 or not 1 <= max_pixels <= MAX_PIXELS:
        raise ValueError(f"need max_upload_mb > 0 and 1 <= max_pixels <= {MAX_PIXELS:,}; "
                         f"got max_upload_mb={max_upload_mb}, max_pixels={max_pixels}")
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = int(max_upload_mb * MB)
    pool = WorkerPool(workers, queue)
    app.extensions["koala_pool"] = pool
    info = model_info(colorizer, workers=workers, queue=queue, max_upload_mb=max_upload_mb, max_pixels=max_pixels)
    add_access_log(app)
    add_page(app, info, pool)
    add_colorize(app, colorizer, pool, info)
    add_suggest(app, colorizer, pool, info)
    add_error_handlers(app, pool, max_upload_mb)
    return app


def model_info(colorizer: Colorizer, **limits) -> dict:
    """What the page and ``/healthz`` show: the model, its knobs and options, then ``limits``."""
    meta = colorizer.metadata or {}
    model_name = meta.get("model", colorizer.network.name)
    has_temperature = get_spec(model_name).decode is not None
    return {
        "model": model_name,
        "image_size": colorizer.image_size,
        "saturation": colorizer.saturation,
        "temperature": colorizer.temperature if has_temperature else None,
        "supports_temperature": has_temperature,
        "supports_hints": colorizer.takes_hints,
        "supports_reference": colorizer.takes_global_hints,
        "supports_suggest": colorizer.suggests,
        "max_palette": MAX_PALETTE,
        **limits,
    }


def add_access_log(app: Flask) -> None:
    """One line per request on the ``koala.access`` logger."""
    @app.before_request
    def start_clock():
        g.started = time.perf_counter()

    @app.after_request
    def log_access(response: Response) -> Response:
        """One line per request: client, method, path, status, bytes sent, milliseconds."""
        ms = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
        access_log.info("%s %s %s %d %d %.0f", request.remote_addr, request.method, request.path,
                        response.status_code, response.content_length or response.calculate_content_length() or 0, ms)
        return response


def add_page(app: Flask, info: dict, pool: WorkerPool) -> None:
    """``GET /`` (the page) and ``GET /healthz``."""
    @app.get("/")
    def index():
        return render_template("index.html", info=info, saturation_range=SATURATION_RANGE,
                               temperature_range=TEMPERATURE_RANGE)

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok", busy=pool.admitted, load=pool.load, slots=pool.slots, **info)


def check_pixels(data: bytes, max_pixels: int) -> int | None:
    """The upload's pixel count from its header (None when unknown), or a 413 over ``max_pixels``."""
    pixels = pixel_count(data)
    if pixels is not None and pixels > max_pixels:
        raise ApiError(413, f"too many pixels ({pixels:,}; limit {max_pixels:,})")
    return pixels


def add_colorize(app: Flask, colorizer: Colorizer, pool: WorkerPool, info: dict) -> None:
    """``POST /api/colorize``: a photo (with hints, a reference or a palette) -> PNG."""
    model_name, has_temperature = info["model"], info["supports_temperature"]

    @app.post("/api/colorize")
    def colorize():
        data = upload_bytes()
        hints = request_hints()
        if len(hints) and not colorizer.takes_hints:
            raise ApiError(400, f"hints: {model_name} takes no hints (serve a model with hint inputs, such as the bundled default)")
        options = {"saturation": parse_float(request.args, "saturation", SATURATION_RANGE)}
        temperature = parse_float(request.args, "temperature", TEMPERATURE_RANGE)
        if temperature is not None and not has_temperature:
            raise ApiError(400, f"temperature: {model_name} predicts ab directly and has no temperature")
        options["temperature"] = temperature
        pixels = check_pixels(data, info["max_pixels"])
        global_hint = request_global_hint(colorizer)
        tuned = colorizer.tuned(**options)
        try:
            png = pool.run(lambda: tuned.colorize_pngs([as_pixels(data)], [hints], [global_hint])[0], pixels=pixels or 0)
        finally:
            release_memory()  # back to the baseline after a big scan
        return Response(png, mimetype="image/png")


def add_suggest(app: Flask, colorizer: Colorizer, pool: WorkerPool, info: dict) -> None:
    """``POST /api/suggest``: the likeliest colours at a point (models with a distribution head)."""
    model_name = info["model"]

    @app.post("/api/suggest")
    def suggest():
        data = upload_bytes()
        hints = request_hints()
        if not colorizer.suggests:
            raise ApiError(400, f"suggest: {model_name} has no colour distribution head (serve the bundled default or "
                                "a model trained with distribution: true)")
        x, y = (parse_number(request.args, name) for name in ("x", "y"))
        k = parse_number(request.args, "k", SUGGEST_K)
        if k != int(k) or k < 1:
            raise ApiError(400, f"k must be a whole number of 1 or more; got {request.args.get('k')!r}")
        pixels = check_pixels(data, info["max_pixels"])
        reference, palette, name = request_reference()
        try:
            found = pool.run(lambda: colorizer.suggest(data, x, y, int(k), hints=hints, reference=reference,
                                                       palette=palette, reference_name=name), pixels=pixels or 0)
        except ValueError as e:
            if isinstance(e, (ImageError, HintError)):
                raise
            raise ApiError(400, str(e)) from None
        return jsonify(found)


def add_error_handlers(app: Flask, pool: WorkerPool, max_upload_mb: float) -> None:
    """Every error as JSON ``{"error": reason}`` with its status (see the module's docstring)."""
    @app.errorhandler(ApiError)
    def api_error(e: ApiError):
        return jsonify(error=e.reason), e.status

    @app.errorhandler(GlobalHintError)
    def global_hint_error(e: GlobalHintError):
        return jsonify(error=str(e)), 400

    @app.errorhandler(HintError)
    def hint_error(e: HintError):
        return jsonify(error=f"hints: {e}"), 400

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


def request_hints():
    """The request's hint table (:func:`koala.data.hints.parse_hints`): the multipart field ``hints``,
    JSON text; empty without one."""
    text = request.form.get("hints", "") if request.mimetype == "multipart/form-data" else ""
    try:
        return parse_hints(json.loads(text) if text.strip() else [])
    except ValueError as e:  # JSON's own errors too
        reason = str(e) if isinstance(e, HintError) else f"not JSON ({e})"
        raise ApiError(400, f"hints: {reason}") from None


def parse_number(args, name: str, default: float | None = None) -> float:
    """A query parameter as a finite number (required when ``default`` is None), else a 400."""
    text = args.get(name)
    if text is None or text == "":
        if default is None:
            raise ApiError(400, f"no {name!r} (a query parameter, in the photo's pixels)")
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if value != value or value in (float("inf"), float("-inf")):
        raise ApiError(400, f"{name} must be a number; got {text!r}")
    return value


def request_reference():
    """The request's ``reference`` file (its bytes and name, a colour photo) and ``palette`` text,
    each None when absent."""
    if request.mimetype != "multipart/form-data":
        return None, None, None
    upload = request.files.get("reference")
    data = upload.read() if upload is not None else None
    if upload is not None and not data:
        raise ApiError(400, f"reference {upload.filename or 'upload'}: empty file (0 bytes)")
    palette = request.form.get("palette", "").strip() or None
    return data, palette, (upload.filename or "upload") if upload is not None else None


def request_global_hint(colorizer: Colorizer):
    """The request's global hint (:meth:`Colorizer.global_hint`) from its reference or palette, or None."""
    reference, palette, name = request_reference()
    return colorizer.global_hint(reference, palette, reference_name=name)


def make_server(app: Flask, host: str = "127.0.0.1", port: int = DEFAULT_PORT, channel_timeout: float = CHANNEL_TIMEOUT):
    """A waitress server for ``app`` (port 0: any free one; see ``.effective_port``); ``.run()`` serves.

    Waitress reads requests and writes responses for every connection in one event loop and
    hands a request to a thread only once its body has arrived, so slow or idle clients cost a
    socket, not a thread: up to ``CONNECTION_LIMIT`` of them are held (polled, not selected, so
    more than 1024 descriptors work), and one that sends or reads nothing for ``channel_timeout``
    seconds is closed. Threads: one per slot of the app's pool plus ``SPARE_THREADS``, so the
    pool, not waitress's backlog, decides who waits. Bodies far over the upload limit are
    refused by waitress itself (413, plain text) before they are buffered. For the public
    internet, put a reverse proxy in front (docs/deploy.md).
    """
    from waitress.server import create_server

    pool: WorkerPool = app.extensions["koala_pool"]
    return create_server(app, host=host, port=port, threads=pool.slots + SPARE_THREADS,
                         connection_limit=CONNECTION_LIMIT, channel_timeout=channel_timeout,
                         cleanup_interval=max(1, channel_timeout / 4), asyncore_use_poll=True,
                         outbuf_high_watermark=OUTBUF_HIGH_WATERMARK,
                         max_request_body_size=2 * app.config["MAX_CONTENT_LENGTH"] + MB, ident="koala")
