"""The web app's API on a real waitress server on loopback: colours identical to the Colorizer,
and every refusal (413 size, 413 pixels, 400 non-image/truncated/bad parameter, 503 full queue)."""
from __future__ import annotations

import dataclasses
import io
import json
import logging
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from itertools import islice
from types import SimpleNamespace

import numpy as np
import pytest
import requests

from conftest import colourfulness, decode, encode, photo
from koala.inference import Colorizer
from koala.serving.app import Busy, WorkerPool, create_app, make_server

MAX_UPLOAD_MB = 0.05  # about 52 KB
MAX_PIXELS = 5000  # the 48 x 40 test photo has 1920


@pytest.fixture(scope="module")
def server(tiny_model):
    colorizer = Colorizer.load(tiny_model)
    app = create_app(colorizer, workers=1, queue=1, max_upload_mb=MAX_UPLOAD_MB, max_pixels=MAX_PIXELS)
    httpd = make_server(app, "127.0.0.1", 0)
    thread = threading.Thread(target=httpd.run, daemon=True)
    thread.start()
    yield SimpleNamespace(url=f"http://127.0.0.1:{httpd.effective_port}", pool=app.extensions["koala_pool"],
                          colorizer=colorizer)
    httpd.close()


def post(server, data: bytes, multipart: bool = True, **params) -> requests.Response:
    url = f"{server.url}/api/colorize"
    if multipart:
        return requests.post(url, files={"image": ("photo.jpg", data)}, params=params, timeout=60)
    return requests.post(url, data=data, params=params, headers={"Content-Type": "application/octet-stream"},
                         timeout=60)


def error_of(response: requests.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    return response.json()["error"]


def test_healthz(server):
    answer = requests.get(f"{server.url}/healthz", timeout=10)
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ok" and body["model"] == "cunet" and body["image_size"] == 32
    assert body["supports_temperature"] is False and body["max_pixels"] == MAX_PIXELS and body["busy"] == 0


def test_page_and_static_files(server):
    page = requests.get(server.url, timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    for element in ('id="file"', 'id="saturation"', 'id="compare-range"', 'id="download"', "cunet"):
        assert element in page.text
    assert 'id="temperature"' not in page.text  # cunet regresses ab: no temperature to tune
    script = requests.get(f"{server.url}/static/app.js", timeout=10)
    assert script.status_code == 200 and "/api/colorize" in script.text


@pytest.mark.parametrize("multipart", [True, False], ids=["multipart", "raw-body"])
def test_colours_are_the_colorizers_exactly(server, multipart):
    data = encode(photo(gray=True), "JPEG")
    answer = post(server, data, multipart=multipart)
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "image/png"
    result = decode(answer.content)
    assert np.array_equal(result, server.colorizer.colorize(data))  # PNG round trip is lossless
    assert colourfulness(result) > 20  # and the gray input did get colours


def test_saturation_parameter(server):
    data = encode(photo(), "PNG")
    gray = decode(post(server, data, saturation="0").content)
    strong = decode(post(server, data, saturation="2").content)
    assert colourfulness(gray) < 1.0
    assert colourfulness(strong) > colourfulness(decode(post(server, data).content)) + 5
    assert np.array_equal(strong, dataclasses.replace(server.colorizer, saturation=2.0).colorize(data))


@pytest.mark.parametrize("params, reason", [
    ({"saturation": "lots"}, "saturation must be a number"),
    ({"saturation": "9"}, "saturation must be between"),
    ({"temperature": "0.3"}, "no temperature"),
])
def test_bad_parameters_are_400(server, params, reason):
    assert reason in error_of(post(server, encode(photo()), **params), 400)


def test_upload_too_large_is_413(server):
    noise = np.random.default_rng(0).integers(0, 256, (150, 150, 3), dtype=np.uint8)
    data = encode(noise)
    assert len(data) > MAX_UPLOAD_MB * 2**20
    assert "upload too large" in error_of(post(server, data), 413)
    assert "upload too large" in error_of(post(server, data, multipart=False), 413)


def test_too_many_pixels_is_413(server):
    data = encode(np.zeros((100, 100), np.uint8))  # tiny file, 10,000 pixels
    assert len(data) < 1000
    assert "too many pixels (10,000; limit 5,000)" in error_of(post(server, data), 413)


def test_non_images_and_broken_files_are_400(server):
    assert error_of(post(server, b"%PDF-1.4 not a photo"), 400) == "not an image (unrecognised format)"
    png = encode(photo())
    assert "truncated" in error_of(post(server, png[: len(png) // 2], multipart=False), 400)
    assert "empty" in error_of(post(server, b"", multipart=False), 400)
    missing = requests.post(f"{server.url}/api/colorize", files={"photo": ("a.png", png)}, timeout=10)
    assert "field 'image'" in error_of(missing, 400)
    assert error_of(requests.get(f"{server.url}/api/colorize", timeout=10), 405)
    assert error_of(requests.get(f"{server.url}/nowhere", timeout=10), 404)


def test_full_queue_is_503_and_the_server_recovers(server):
    gate = threading.Event()
    blockers = [threading.Thread(target=server.pool.run, args=(gate.wait,)) for _ in range(2)]  # 1 worker + 1 queued
    for thread in blockers:
        thread.start()
    try:
        deadline = time.time() + 60  # generous: a state change, polled
        while server.pool.admitted < 2 and time.time() < deadline:
            time.sleep(0.01)
        assert server.pool.admitted == 2
        answer = post(server, encode(photo()))
        assert "busy" in error_of(answer, 503) and answer.headers["Retry-After"] == "1"
        health = requests.get(f"{server.url}/healthz", timeout=10)
        assert health.status_code == 200 and health.json()["busy"] == 2
    finally:
        gate.set()
        for thread in blockers:
            thread.join(10)
    assert post(server, encode(photo())).status_code == 200


def test_worker_pool_bounds():
    pool = WorkerPool(workers=1, queue=0)
    assert pool.run(lambda x: x + 1, 1) == 2
    with pytest.raises(ValueError, match="workers >= 1"):
        WorkerPool(workers=0)


def test_big_photos_take_more_of_the_pool_and_small_ones_go_first():
    pool = WorkerPool(workers=1, queue=3, slot_pixels=100)  # 4 slots
    assert [pool.weight(p) for p in (0, 100, 101, 250, 10**9)] == [1, 1, 2, 3, 3]  # never all 4 slots
    gate, order = threading.Event(), []

    def job(name: str, pixels: int) -> threading.Thread:
        thread = threading.Thread(target=pool.run, args=(lambda: gate.wait() and order.append(name),),
                                  kwargs={"pixels": pixels})
        thread.start()
        return thread

    def wait_for_load(load: int) -> None:
        deadline = time.time() + 60  # generous: a state change, polled
        while pool.load < load and time.time() < deadline:
            time.sleep(0.01)
        assert pool.load == load

    threads = [job("running", 50)]
    wait_for_load(1)
    threads.append(job("big scan", 150))  # 2 slots, waits
    wait_for_load(3)
    threads.append(job("small photo", 80))  # arrives later, 1 slot
    wait_for_load(4)
    with pytest.raises(Busy):
        pool.run(lambda: None, pixels=150)  # another big scan does not fit
    gate.set()
    for thread in threads:
        thread.join(10)
    assert order == ["running", "small photo", "big scan"] and pool.load == pool.admitted == 0


def test_the_pixel_limit_is_koalas_own(tiny_model):
    from koala.cli import build_parser
    from koala.images import MAX_PIXELS as LIMIT

    assert build_parser().parse_args(["serve"]).max_pixels == LIMIT
    assert create_app(Colorizer.load(tiny_model)).test_client().get("/healthz").json["max_pixels"] == LIMIT
    with pytest.raises(ValueError, match="max_pixels"):
        create_app(Colorizer.load(tiny_model), max_pixels=LIMIT + 1)


def test_access_log_has_one_line_per_request(server, caplog):
    with caplog.at_level(logging.INFO, logger="koala.access"):
        requests.get(f"{server.url}/healthz", timeout=10)
        post(server, encode(photo()))
    lines = [r.getMessage() for r in caplog.records if r.name == "koala.access"]
    assert len(lines) == 2
    assert re.fullmatch(r"127\.0\.0\.1 GET /healthz 200 \d+ \d+", lines[0])
    assert re.fullmatch(r"127\.0\.0\.1 POST /api/colorize 200 \d+ \d+", lines[1]) and int(lines[1].split()[4]) > 1000


def test_idle_connections_neither_lock_others_out_nor_stay_open(tiny_model):
    """300 clients that send headers and then nothing: others are still served at once, and the
    server closes the idle ones after its channel timeout. Loopback only; every wait is bounded."""
    app = create_app(Colorizer.load(tiny_model), workers=1, queue=1)
    httpd = make_server(app, "127.0.0.1", 0, channel_timeout=2)
    threading.Thread(target=httpd.run, daemon=True).start()
    url, idle = f"http://127.0.0.1:{httpd.effective_port}", []
    try:
        for _ in range(300):
            conn = socket.create_connection(("127.0.0.1", httpd.effective_port), timeout=5)
            conn.sendall(b"POST /api/colorize HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
            idle.append(conn)
        started = time.perf_counter()
        assert requests.get(f"{url}/healthz", timeout=60).status_code == 200
        answer = requests.post(f"{url}/api/colorize", data=encode(photo()), timeout=60,
                               headers={"Content-Type": "application/octet-stream"})
        served = time.perf_counter() - started
        # A generous bound (a locked-out client waits for ever); about 0.1 s on 2 busy cores.
        assert answer.status_code == 200 and served < 60, f"answered {answer.status_code} after {served:.1f} s"
        closed = 0
        for conn in idle:  # the server hangs up on each after its 2 s channel timeout: recv gives b"" (or a reset)
            conn.settimeout(max(0.1, started + 60 - time.perf_counter()))
            try:
                closed += conn.recv(1024) == b""
            except ConnectionResetError:
                closed += 1
            except TimeoutError:
                pass
        assert closed == 300, f"{closed} of 300 idle connections closed after {time.perf_counter() - started:.1f} s"
    finally:
        for conn in idle:
            conn.close()
        httpd.close()


def test_a_burst_gets_one_queue_place_and_quick_503s(server):
    """The one worker is held by a job waiting on an Event; of a burst of 8 requests, one takes the
    one queue place and waits, and the other 7 are refused with 503 while it waits. Released, the
    queued one gets its colours and the pool is empty again."""
    data = encode(photo())
    running, gate = threading.Event(), threading.Event()
    blocker = threading.Thread(target=server.pool.run, args=(lambda: running.set() or gate.wait(),))
    blocker.start()
    try:
        assert running.wait(60)
        with ThreadPoolExecutor(8) as burst:
            answers = [burst.submit(post, server, data) for _ in range(8)]
            refused = [future.result().status_code for future in islice(as_completed(answers, timeout=60), 7)]
            assert refused == [503] * 7 and server.pool.admitted == 2
            gate.set()
            assert sorted(future.result().status_code for future in answers) == [200] + [503] * 7
    finally:
        gate.set()
        blocker.join(10)
    assert server.pool.admitted == 0
    assert post(server, data).status_code == 200


@pytest.mark.slow
def test_temperature_for_models_that_predict_distributions(tmp_path):
    """zhang16 decodes a colour distribution: the page offers a temperature and the API honours it."""
    import json

    from koala.models import get_model

    model = get_model("zhang16", width=0.125)
    head = model.get_layer("logits")
    kernel, bias = head.get_weights()
    # the same peaked distribution at every pixel, so the annealed mean depends on the temperature
    head.set_weights([np.zeros_like(kernel), np.random.default_rng(0).normal(0, 3, bias.shape).astype(np.float32)])
    model.save(tmp_path / "best.keras")
    (tmp_path / "koala.json").write_text(json.dumps(
        {"model": "zhang16", "model_args": {"width": 0.125}, "image_size": 32, "output": "logits", "multiple": 8}))
    colorizer = Colorizer.load(tmp_path)
    client = create_app(colorizer).test_client()
    assert client.get("/healthz").json["supports_temperature"] is True
    assert 'id="temperature"' in client.get("/").text
    data = encode(photo())
    cold, warm = (decode(client.post(f"/api/colorize?temperature={t}", data=data,
                                     content_type="application/octet-stream").data) for t in ("0.05", "1"))
    assert np.array_equal(cold, dataclasses.replace(colorizer, temperature=0.05).colorize(data))
    assert np.abs(cold.astype(int) - warm).mean() > 1
    assert "between" in client.post("/api/colorize?temperature=5", data=data).json["error"]


@pytest.fixture(scope="module")
def hint_client(tiny_hint_model):
    colorizer = Colorizer.load(tiny_hint_model)
    return SimpleNamespace(client=create_app(colorizer).test_client(), colorizer=colorizer)


def post_hints(client, data: bytes, hints: str):
    return client.post("/api/colorize", data={"image": (io.BytesIO(data), "photo.png"), "hints": hints},
                       content_type="multipart/form-data")


def test_hints_field_guides_the_colours(hint_client):
    data = encode(photo(gray=True))
    hints = [{"x": 10, "y": 12, "color": "#00c000"}, {"x": 40, "y": 30, "color": "#2040ff", "radius": 3}]
    answer = post_hints(hint_client.client, data, json.dumps(hints))
    assert answer.status_code == 200, answer.json
    assert np.array_equal(decode(answer.data), hint_client.colorizer.colorize(data, hints=hints))
    assert not np.array_equal(decode(answer.data), hint_client.colorizer.colorize(data))
    assert hint_client.client.get("/healthz").json["supports_hints"] is True


@pytest.mark.parametrize("hints, reason", [
    ("[{", "hints: not JSON (Expecting property name enclosed in double quotes: line 1 column 3 (char 2))"),
    ('{"x": 1}', "hints: hints must be a list of objects; got dict"),
    ('[{"x": 1, "y": 1, "color": "#00ff00"}, "red"]', 'hints: hint 1: must be an object with x, y and color; got "red"'),
    ('[{"x": 1, "y": 1, "color": "green"}]', 'hints: hint 0: color "green" is not a colour (write it as #rrggbb)'),
    ('[{"x": 1, "y": 40, "color": "#00ff00"}]', "hints: hint 0: y=40 is outside the photo (48 x 40 px: 0 <= y < 40)"),
    (json.dumps([{"x": 1, "y": 1, "color": "#00ff00"}] * 1001), "hints: too many hints (1,001; at most 1,000)"),
])
def test_bad_hints_are_400(hint_client, hints, reason):
    answer = post_hints(hint_client.client, encode(photo(gray=True)), hints)
    assert answer.status_code == 400 and answer.json == {"error": reason}


def test_hints_for_a_model_without_hint_inputs_are_400(server):
    answer = requests.post(f"{server.url}/api/colorize", files={"image": ("p.png", encode(photo(gray=True)))},
                           data={"hints": '[{"x": 1, "y": 1, "color": "#00ff00"}]'}, timeout=60)
    assert error_of(answer, 400).startswith("hints: cunet takes no hints")
    assert requests.get(f"{server.url}/healthz", timeout=10).json()["supports_hints"] is False


@pytest.mark.parametrize("value", ["nan", "inf", "-0.5", "3.5"])
def test_api_refuses_the_saturations_every_entry_point_refuses(server, value):
    from koala.knobs import check_saturation

    data = encode(photo())
    with pytest.raises(ValueError) as refused:
        check_saturation(value)
    assert error_of(post(server, data, saturation=value), 400) == str(refused.value)
