"""Hostile input, round two, against the handler: every payload class is generated at test time.

- images over the decode budget (progressive-scan JPEG, 16-bit/float/int32 TIFF, RGBA/LA PNG,
  EPS, ICO/ICNS) get a 4xx in bounded CPU time and memory (a child process's VmHWM);
- multipart bodies with bare-CR line endings hit the part-count and header-size limits;
- numeric headers: a Content-Length of 4,301 digits is a 400, never a 500;
- a model that outputs NaN is a 503 with valid JSON, never `"probability": NaN`;
- a skyclass.json that fails its schema: `/health` and POST answer 503 with the reason, and
  `skyclass serve` / `skyclass deploy` refuse to start.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import hostile_payloads as hp
from skyclass.cli import main as cli_main
from skyclass.fileio import sha256_file
from skyclass.serving import lambda_handler
from skyclass.serving.bundle import BundleError, read_manifest
from skyclass.serving.classifier import Classifier
from skyclass.serving.lambda_handler import DEADLINE_MARGIN_S, App, _response, decode_limits
from skyclass.serving.settings import ServingSettings

from .aws_events import v1_event, v2_event
from .conftest import body_json

MAX_CPU_SECONDS = 2.0
MAX_RSS_MB = 700
# payload -> the status the handler must answer it with
STATUSES = {
    "progressive_jpeg_5000_scans": 413,
    "float32_tiff_62mpx": 413,
    "int32_tiff_62mpx": 413,
    "grey16_tiff_62mpx": 413,
    "rgba_png_62mpx": 413,
    "la_png_62mpx": 413,
    "rgba16_png_62mpx": 413,
    "rgb_png_62mpx": 200,
    "eps_header": 400,
    "ico_container": 400,
    "icns_container": 400,
    "animated_gif_2000_frames": 200,
}

CHILD = """
import json, sys, time, base64
from pathlib import Path
from skyclass.serving.classifier import Classifier
from skyclass.serving.lambda_handler import App
bundle, folder = sys.argv[1], Path(sys.argv[2])
app = App(lambda: Classifier.from_bundle(bundle, threads=1))
app.model
out = {}
for path in sorted(folder.iterdir()):
    event = {"version": "2.0", "rawPath": "/", "headers": {"content-type": "image/x"},
             "requestContext": {"http": {"method": "POST"}, "requestId": path.name},
             "body": base64.b64encode(path.read_bytes()).decode(), "isBase64Encoded": True}
    start, cpu = time.perf_counter(), time.process_time()
    response = app(event)
    json.loads(response["body"])  # valid JSON, or this child fails
    out[path.name] = {"status": response["statusCode"], "seconds": time.perf_counter() - start,
                      "cpu_seconds": time.process_time() - cpu}
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(json.dumps({"answers": out, "rss_mb": hwm / 1024}))
"""


def test_every_hostile_image_gets_its_4xx_fast_with_bounded_memory(bundle_dir, tmp_path):
    """One handler process answers every payload: per request CPU < 2 s, peak RSS < 700 MB."""
    assert set(STATUSES) == set(hp.IMAGE_PAYLOADS)
    for name, build in hp.IMAGE_PAYLOADS.items():
        (tmp_path / name).write_bytes(build())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(bundle_dir), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for name, answer in result["answers"].items():
        assert answer["status"] == STATUSES[name], (name, answer)
        assert answer["cpu_seconds"] < MAX_CPU_SECONDS, (name, answer)
    assert result["rss_mb"] < MAX_RSS_MB, result


# --- multipart and numeric headers -------------------------------------------------------------


@pytest.mark.parametrize("build", [hp.multipart_bare_cr_parts, hp.multipart_bare_cr_headers])
@pytest.mark.parametrize("event_of", [v1_event, v2_event])
def test_bare_cr_forms_hit_the_limits_at_once(app, build, event_of):
    body, content_type = build()
    start = time.perf_counter()
    response = app(event_of(method="POST", headers={"content-type": content_type}, body=body))
    assert time.perf_counter() - start < 1.0  # main: 8 s (20,000 parts), 37 s (600 kB headers)
    assert response["statusCode"] == 400
    assert body_json(response)["error"] == "bad_multipart"


def test_a_bare_cr_form_with_a_real_photo_still_classifies(app, photo_bytes):
    body = (
        b'--b\rContent-Disposition: form-data; name="file"; filename="a.jpg"\r'
        b"Content-Type: image/jpeg\r\r" + photo_bytes + b"\r--b--\r"
    )
    response = app(
        v2_event(
            method="POST", body=body, headers={"content-type": "multipart/form-data; boundary=b"}
        )
    )
    assert response["statusCode"] == 200, response["body"]


@pytest.mark.parametrize("value", ["9" * 4301, "1" * 21, "-5", "12a", "1_000", "\u0663", "+7"])
@pytest.mark.parametrize("event_of", [v1_event, v2_event])
def test_malformed_content_length_is_a_400(app, photo_bytes, value, event_of):
    response = app(
        event_of(
            method="POST",
            body=photo_bytes,
            headers={"content-type": "image/jpeg", "content-length": value},
        )
    )
    assert response["statusCode"] == 400
    assert body_json(response)["error"] == "bad_content_length"


def test_a_20_digit_content_length_is_a_413(app, photo_bytes):
    response = app(
        v2_event(
            method="POST",
            body=photo_bytes,
            headers={"content-type": "image/jpeg", "content-length": "9" * 20},
        )
    )
    assert response["statusCode"] == 413


# --- NaN never reaches an answer -------------------------------------------------------------


def _copy_bundle(bundle_dir: Path, dest: Path) -> Path:
    shutil.copytree(bundle_dir, dest)
    return dest


def _rewrite_manifest(bundle: Path, change) -> None:
    manifest = json.loads((bundle / "skyclass.json").read_text())
    change(manifest)
    (bundle / "skyclass.json").write_text(json.dumps(manifest))


@pytest.fixture(scope="module")
def nan_bundle(bundle_dir, tmp_path_factory):
    """The tiny bundle with one NaN in the classifier's bias (sha256 updated: a 'valid' file)."""
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    bundle = _copy_bundle(bundle_dir, tmp_path_factory.mktemp("nan") / "b")
    model = onnx.load(str(bundle / "model.onnx"))
    arrays = [(i, numpy_helper.to_array(i)) for i in model.graph.initializer]
    init = next(
        i for i, a in reversed(arrays) if a.dtype.kind == "f" and a.ndim == 1 and a.size <= 16
    )
    values = numpy_helper.to_array(init).copy()
    values[0] = float("nan")
    init.CopyFrom(numpy_helper.from_array(values, init.name))
    onnx.save(model, str(bundle / "model.onnx"))
    _rewrite_manifest(
        bundle, lambda m: m["files"]["model.onnx"].update(sha256=sha256_file(bundle / "model.onnx"))
    )
    return bundle


def test_a_nan_model_answers_503_in_valid_json(nan_bundle, photo_bytes):
    app = App(lambda: Classifier.from_bundle(nan_bundle))
    response = app(
        v2_event(method="POST", headers={"content-type": "image/jpeg"}, body=photo_bytes)
    )
    assert response["statusCode"] == 503
    payload = json.loads(response["body"], parse_constant=lambda c: pytest.fail(c))
    assert payload["error"] == "model_output_invalid"


def test_a_non_finite_answer_becomes_a_valid_json_500():
    response = _response(200, {"probability": float("nan")})
    assert response["statusCode"] == 500
    assert json.loads(response["body"])["error"] == "internal_error"


# --- skyclass.json schema ----------------------------------------------------------------------

BROKEN_MANIFESTS = {
    "size 0": (lambda m: m["preprocess"].update(size=0), "preprocess.size"),
    "size 100000": (lambda m: m["preprocess"].update(size=100000), "preprocess.size"),
    "size as text": (lambda m: m["preprocess"].update(size="224"), "preprocess.size"),
    "2-element mean": (lambda m: m["preprocess"].update(mean=[0.5, 0.5]), "preprocess.mean"),
    "zero std": (lambda m: m["preprocess"].update(std=[0.2, 0.0, 0.2]), "preprocess.std"),
    "NaN mean": (
        lambda m: m["preprocess"].update(mean=[0.5, float("nan"), 0.5]),
        "preprocess.mean",
    ),
    "unknown resize": (lambda m: m["preprocess"].update(resize="crop"), "preprocess.resize"),
    "class names text": (lambda m: m.update(class_names="bird"), "class_names"),
    "duplicate class": (lambda m: m.update(class_names=["a", "a"]), "class_names"),
    "model name number": (lambda m: m["model"].update(name=5), "model"),
}


@pytest.fixture(params=sorted(BROKEN_MANIFESTS))
def broken_bundle(request, bundle_dir, tmp_path):
    change, field = BROKEN_MANIFESTS[request.param]
    bundle = _copy_bundle(bundle_dir, tmp_path / "b")
    _rewrite_manifest(bundle, change)
    return bundle, field


def test_schema_errors_are_named_at_load(broken_bundle):
    bundle, field = broken_bundle
    with pytest.raises(BundleError, match=field.replace(".", r"\.")):
        read_manifest(bundle)


def test_schema_errors_are_a_503_with_the_reason(broken_bundle, photo_bytes):
    bundle, field = broken_bundle
    app = App(lambda: Classifier.from_bundle(bundle))
    for event in (
        v2_event(),
        v2_event(method="POST", headers={"content-type": "image/jpeg"}, body=photo_bytes),
    ):
        response = app(event)
        assert response["statusCode"] == 503
        assert field in body_json(response)["message"]


def test_serve_and_deploy_refuse_to_start_with_the_reason(bundle_dir, tmp_path, capsys):
    bundle = _copy_bundle(bundle_dir, tmp_path / "b")
    _rewrite_manifest(bundle, lambda m: m["preprocess"].update(size=0))
    assert cli_main(["serve", str(bundle), "--port", "0"]) != 0
    assert "preprocess.size" in capsys.readouterr().err
    from skyclass.deploy import DeployError, validate_bundle  # what `deploy` checks first

    with pytest.raises(DeployError, match=r"preprocess\.size"):
        validate_bundle(bundle)


# --- the request deadline ----------------------------------------------------------------------


class _Context:
    aws_request_id = "deadline-test"

    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_the_decode_deadline_stays_inside_lambdas_remaining_time():
    now = time.monotonic()
    limits = decode_limits(ServingSettings(), _Context(remaining_ms=28_000))
    assert now + 9 < limits.deadline <= time.monotonic() + 10  # the 10 s default
    limits = decode_limits(ServingSettings(), _Context(remaining_ms=5_000))
    assert limits.deadline <= time.monotonic() + 5.0 - DEADLINE_MARGIN_S


def test_a_decode_past_the_deadline_is_a_503_with_retry_after(app, photo_bytes, monkeypatch):
    """A request that arrives with (almost) no Lambda time left is stopped at the first read."""
    monkeypatch.setattr(lambda_handler, "DEADLINE_MARGIN_S", 60.0)  # leaves the 0.1 s floor
    monkeypatch.setattr(time, "monotonic", _clock_that_jumps(0.5))
    response = app(
        v2_event(method="POST", headers={"content-type": "image/jpeg"}, body=photo_bytes),
        _Context(remaining_ms=1_000),
    )
    assert response["statusCode"] == 503
    assert body_json(response)["error"] == "decode_timeout"
    assert response["headers"]["retry-after"] == "1"


def _clock_that_jumps(step: float):
    """time.monotonic that advances `step` seconds per call: the decode 'takes' seconds."""
    real, calls = time.monotonic, [0]

    def clock() -> float:
        calls[0] += 1
        return real() + step * calls[0]

    return clock
