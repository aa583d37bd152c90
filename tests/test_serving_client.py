"""The TF Serving client: requests in TF Serving's documented REST/gRPC formats, fed to the exported
model's own signatures, and the answers parsed back. (No TF Serving server runs here.)"""
from __future__ import annotations

import base64
import io
import json
import os
import shlex
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import decode, encode, photo
from koala.images import load_rgb, to_uint8
from koala.inference import Colorizer
from koala.serving.client import (BUSY_WAIT, MAX_RETRY_WAIT, ServingError, TFServingClient, grpc_hints_request,
                                  grpc_l_request, grpc_request, hint_table, parse_grpc_response, parse_rest_ab,
                                  parse_rest_response, predict_url, read_image_bytes, rest_hints_request,
                                  rest_l_request, rest_request, retry_after)

predict_pb2 = pytest.importorskip("tensorflow_serving.apis.predict_pb2")


@pytest.fixture(scope="module")
def images():
    return [encode(photo(), "JPEG"), encode(photo((24, 56), gray=True))]


def test_predict_url():
    assert predict_url("http://h:8501") == "http://h:8501/v1/models/koala:predict"
    assert predict_url("http://h:8501/", "cat", 3) == "http://h:8501/v1/models/cat/versions/3:predict"
    assert predict_url("http://h:8501", label="canary") == "http://h:8501/v1/models/koala/labels/canary:predict"
    with pytest.raises(ValueError, match="not both"):
        predict_url("http://h:8501", version=1, label="stable")


def test_rest_request_is_tf_servings_b64_row_format(images):
    body = json.loads(json.dumps(rest_request(images)))
    assert body == {"signature_name": "serving_default",
                    "instances": [{"b64": base64.b64encode(data).decode()} for data in images]}


def test_rest_round_trip_through_the_exported_signature(loaded, colorizer, images):
    body = json.loads(json.dumps(rest_request(images)))
    # What TF Serving does with the documented format: b64 objects become the string tensor.
    inputs = {"image_bytes": tf.constant([base64.b64decode(i["b64"]) for i in body["instances"]])}
    outputs = loaded.signatures[body["signature_name"]](**inputs)
    answer = json.dumps({"predictions": [{"b64": base64.b64encode(p).decode()} for p in outputs["png_bytes"].numpy()]})
    pngs = parse_rest_response(answer)
    assert [decode(p).shape for p in pngs] == [(40, 48, 3), (56, 24, 3)]
    for data, png in zip(images, pngs):
        assert np.abs(decode(png).astype(int) - colorizer.colorize(data)).max() <= 1


def test_rest_l_round_trip(loaded, colorizer):
    l_norm = np.random.default_rng(1).uniform(-0.5, 0.5, (2, 24, 40, 1)).astype(np.float32)
    body = json.loads(json.dumps(rest_l_request(l_norm)))
    assert body["signature_name"] == "colorize_l" and len(body["instances"]) == 2
    ab = loaded.signatures["colorize_l"](L=tf.constant(body["instances"], tf.float32))["ab"].numpy()
    parsed = parse_rest_ab(json.dumps({"predictions": ab.tolist()}))
    assert parsed.shape == (2, 24, 40, 2)
    np.testing.assert_allclose(parsed, ab, atol=1e-6)
    with pytest.raises(ValueError, match=r"\(N, H, W, 1\)"):
        rest_l_request(l_norm[..., 0])


def test_grpc_round_trip_through_the_exported_signature(loaded, colorizer, images):
    request = grpc_request(images, model="koala", version=3)
    request = predict_pb2.PredictRequest.FromString(request.SerializeToString())  # over the wire
    assert (request.model_spec.name, request.model_spec.signature_name) == ("koala", "serving_default")
    assert request.model_spec.version.value == 3
    tensor = request.inputs["image_bytes"]
    assert tensor.dtype == tf.string.as_datatype_enum and [d.size for d in tensor.tensor_shape.dim] == [2]
    outputs = loaded.signatures[request.model_spec.signature_name](
        **{key: tf.constant(tf.make_ndarray(value)) for key, value in request.inputs.items()})
    response = predict_pb2.PredictResponse()
    for key, value in outputs.items():
        response.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
    pngs = parse_grpc_response(response)
    for data, png in zip(images, pngs):
        assert np.abs(decode(png).astype(int) - colorizer.colorize(data)).max() <= 1


def test_grpc_l_request(loaded):
    l_norm = np.zeros((1, 16, 24, 1), np.float32)
    request = grpc_l_request(l_norm, model="koala")
    assert request.model_spec.signature_name == "colorize_l" and not request.model_spec.HasField("version")
    assert grpc_l_request(l_norm, label="canary").model_spec.version_label == "canary"
    assert request.inputs["L"].dtype == tf.float32.as_datatype_enum
    outputs = loaded.signatures["colorize_l"](L=tf.constant(tf.make_ndarray(request.inputs["L"])))
    response = predict_pb2.PredictResponse()
    response.outputs["ab"].CopyFrom(tf.make_tensor_proto(outputs["ab"].numpy()))
    ab = parse_grpc_response(response)
    assert ab.shape == (1, 16, 24, 2) and 0.2 < ab[..., 0].mean() < 0.3


def test_errors_are_raised_with_the_servers_message():
    with pytest.raises(ServingError, match="Servable not found"):
        parse_rest_response('{"error": "Servable not found for request: Latest(koala)"}')
    with pytest.raises(ServingError, match="no 'predictions'"):
        parse_rest_response({"outputs": []})
    with pytest.raises(ServingError, match="unexpected answer"):
        parse_grpc_response(predict_pb2.PredictResponse())


def test_exif_rotated_photos_are_sent_upright():
    buffer, rgb = io.BytesIO(), photo()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    Image.fromarray(rgb).save(buffer, format="JPEG", exif=exif.tobytes())
    rotated = buffer.getvalue()
    upright = read_image_bytes(rotated)
    assert upright[:8] == b"\x89PNG\r\n\x1a\n"
    assert np.array_equal(decode(upright), to_uint8(load_rgb(rotated)))  # what koala colorize sees
    assert decode(upright).shape == (48, 40, 3)
    plain = encode(rgb, "JPEG")
    assert read_image_bytes(plain) == plain  # upright already: sent as it is


def test_client_posts_json_and_reports_http_errors(monkeypatch, images):
    sent = []

    class Answer(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def fake_urlopen(request: urllib.request.Request, timeout: float):
        sent.append(request)
        body = json.loads(request.data)
        if "versions" in request.full_url:
            raise urllib.error.HTTPError(request.full_url, 404, "Not Found", {},
                                         io.BytesIO(b'{"error": "Servable not found for request: Specific(koala, 9)"}'))
        pngs = [{"b64": i["b64"]} for i in body["instances"]]  # echo: this checks the wiring, not colours
        return Answer(json.dumps({"predictions": pngs}).encode())

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    assert TFServingClient("http://localhost:8501").colorize(images) == images
    assert sent[0].full_url == "http://localhost:8501/v1/models/koala:predict"
    assert sent[0].get_method() == "POST" and sent[0].get_header("Content-type") == "application/json"
    with pytest.raises(ServingError, match=r"HTTP 404: Servable not found"):
        TFServingClient("http://localhost:8501", version=9).colorize(images)


@pytest.fixture
def busy_server():
    """A local HTTP server answering 503 (with the queued Retry-After headers, None for none) until
    they run out, then an echo of the instances; yields (url, queue, count of requests)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    busy, requests = [], []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            requests.append(body)
            if busy:
                retry = busy.pop(0)
                self.send_response(503)
                if retry is not None:
                    self.send_header("Retry-After", retry)
                answer = b'{"error": "busy"}'
            else:
                self.send_response(200)
                answer = json.dumps({"predictions": body["instances"]}).encode()
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", busy, requests
    server.shutdown()
    server.server_close()


def test_client_retries_503_after_retry_after_and_gives_up_when_bounded(busy_server, images):
    url, busy, requests = busy_server
    waits = []
    busy += ["2", None, "3600"]  # seconds; none (the default wait); more than the client waits at most
    client = TFServingClient(url, retries=3, sleep=waits.append)
    assert client.colorize(images[:1]) == images[:1]
    assert waits == [2.0, BUSY_WAIT, MAX_RETRY_WAIT] and len(requests) == 4
    busy += ["0"] * 5
    with pytest.raises(ServingError, match="HTTP 503: busy"):
        TFServingClient(url, retries=2, sleep=waits.append).colorize(images[:1])
    assert len(requests) == 4 + 3 and busy == ["0", "0"]  # 1 try + 2 retries, then the error


def test_retry_after_reads_seconds_and_http_dates():
    assert retry_after("7") == 7.0 and retry_after("-3") == 0.0 and retry_after(None) == BUSY_WAIT
    assert retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == pytest.approx(10.0)
    assert retry_after("soon") == BUSY_WAIT


SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def test_models_config_serves_two_versions():
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = text_format.Parse((SCRIPTS / "models.config").read_text(), model_server_config_pb2.ModelServerConfig())
    (model,) = config.model_config_list.config
    assert (model.name, model.base_path, model.model_platform) == ("koala", "/models/koala", "tensorflow")
    assert list(model.model_version_policy.specific.versions) == [1, 2]
    assert dict(model.version_labels) == {"stable": 1, "canary": 2}


@pytest.mark.parametrize("extra", [[], ["--config"]], ids=["latest", "config"])
def test_serve_script_docker_command(tmp_path, exported, extra):
    """The script's docker command, caught by a stand-in ``docker`` on PATH (no Docker here)."""
    fake = tmp_path / "bin" / "docker"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$DOCKER_ARGS"\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}", "DOCKER_ARGS": str(tmp_path / "args")}
    subprocess.run(["bash", str(SCRIPTS / "serve_tf_serving.sh"), str(exported), *extra], env=env, check=True)
    args = (tmp_path / "args").read_text().splitlines()
    command = shlex.join(args)
    assert args[0] == "run" and "-p 127.0.0.1:8500:8500 -p 127.0.0.1:8501:8501" in command
    assert f"type=bind,source={exported.resolve()},target=/models/koala,readonly" in args
    assert "MODEL_NAME=koala" in args and any(a.startswith("tensorflow/serving") for a in args)
    assert ("--model_config_file=/models/models.config" in args) == bool(extra)
    assert (f"type=bind,source={SCRIPTS / 'models.config'},target=/models/models.config,readonly" in args) == bool(extra)


HINTS = [{"x": 5, "y": 7, "color": "#20c040"}, {"x": 40, "y": 33, "color": "#ff2000", "radius": 4}]


def test_hints_travel_as_named_inputs_of_the_hint_signature(exported_hints, tiny_hint_model):
    model = tf.saved_model.load(str(exported_hints / "1"))
    data = encode(photo(gray=True))
    want = Colorizer.load(tiny_hint_model).colorize(data, hints=HINTS)
    body = json.loads(json.dumps(rest_hints_request([data], [hint_table(data, HINTS)])))
    assert body["signature_name"] == "colorize_hints" and set(body["instances"][0]) == {"image_bytes", "hints"}
    inputs = {"image_bytes": tf.constant([base64.b64decode(i["image_bytes"]["b64"]) for i in body["instances"]]),
              "hints": tf.constant([i["hints"] for i in body["instances"]], tf.float32)}
    png = model.signatures[body["signature_name"]](**inputs)["png_bytes"].numpy()[0]
    assert np.abs(decode(png).astype(int) - want).max() <= 1

    request = predict_pb2.PredictRequest.FromString(grpc_hints_request([data], [hint_table(data, HINTS)]).SerializeToString())
    assert request.model_spec.signature_name == "colorize_hints"
    outputs = model.signatures["colorize_hints"](
        **{key: tf.constant(tf.make_ndarray(value)) for key, value in request.inputs.items()})
    assert np.abs(decode(outputs["png_bytes"].numpy()[0]).astype(int) - want).max() <= 1


def test_client_checks_hints_before_sending(monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("nothing may be sent"))
    client, data = TFServingClient("http://localhost:8501"), encode(photo(gray=True))
    with pytest.raises(ValueError, match=r"hint 0: x=48 is outside the photo \(48 x 40 px"):
        client.colorize([data], hints=[[{"x": 48, "y": 0, "color": "#ffffff"}]])
    with pytest.raises(ValueError, match=r"one list of hints per photo \(2\); got 1"):
        client.colorize([data, data], hints=[HINTS])
