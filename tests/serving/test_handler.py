"""The Lambda handler driven with real API Gateway v1/v2 and Function URL events."""

from __future__ import annotations

import base64
import io
import json
import logging
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import requests
import urllib3
from PIL import Image

from skyclass.serving.lambda_handler import App
from skyclass.serving.settings import ServingSettings

from .aws_events import REQUEST_ID, v1_event, v2_event
from .conftest import body_json

EVENTS = {
    "v1": lambda **kw: v1_event(**kw),
    "v2": lambda **kw: v2_event(**kw),
    "url": lambda **kw: v2_event(function_url=True, **kw),
}


def _post(
    app: App,
    kind: str,
    body: bytes | str | None,
    content_type: str | None,
    b64: bool = True,
    query: dict | None = None,
    path: str = "/",
) -> dict:
    headers = {"Content-Type": content_type} if content_type else {}
    return app(
        EVENTS[kind](method="POST", path=path, headers=headers, body=body, b64=b64, query=query)
    )


def _png(img: Image.Image, **save) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", **save)
    return buf.getvalue()


def _assert_predictions(response: dict, classes: list[str], k: int = 3) -> list[dict]:
    assert response["statusCode"] == 200, response["body"]
    payload = body_json(response)
    preds = payload["predictions"]
    assert len(preds) == k
    probs = [p["probability"] for p in preds]
    assert probs == sorted(probs, reverse=True)
    assert all(0.0 <= p <= 1.0 for p in probs)
    for p in preds:
        assert classes[p["index"]] == p["label"]
    assert set(payload["model"]) == {"name", "version", "sha256"}
    assert payload["latency_ms"] > 0
    return preds


# --- happy paths --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["v1", "v2", "url"])
def test_multipart_from_requests_library(app, classifier, photo_bytes, kind):
    prepared = requests.Request(
        "POST",
        "https://example.invalid/",
        data={"note": "a text field before the file"},
        files={"file": ("drone.jpg", photo_bytes, "image/jpeg")},
    ).prepare()
    response = _post(app, kind, prepared.body, prepared.headers["Content-Type"])
    preds = _assert_predictions(response, classifier.class_names)
    direct = classifier.predict_image(photo_bytes, 3)
    assert [p["label"] for p in preds] == [p.label for p in direct]
    assert preds[0]["probability"] == pytest.approx(direct[0].probability, abs=1e-6)
    assert response["headers"]["x-request-id"] == REQUEST_ID


def test_first_file_part_is_used_when_no_field_is_named_file(app, classifier, photo_bytes):
    body, ctype = urllib3.encode_multipart_formdata(
        [
            ("comment", "hello"),
            ("upload", ("drone.jpg", photo_bytes, "image/jpeg")),
            ("second", ("notes.txt", b"not an image", "text/plain")),
        ]
    )
    _assert_predictions(_post(app, "v2", body, ctype), classifier.class_names)


def test_field_named_file_wins_over_earlier_file_parts(app, classifier, photo_bytes):
    body, ctype = urllib3.encode_multipart_formdata(
        [
            ("attachment", ("notes.txt", b"not an image", "text/plain")),
            ("file", ("drone.jpg", photo_bytes, "image/jpeg")),
        ]
    )
    _assert_predictions(_post(app, "v1", body, ctype), classifier.class_names)


@pytest.mark.parametrize("ctype", ["image/jpeg", "application/octet-stream", "IMAGE/JPEG"])
@pytest.mark.parametrize("kind", ["v1", "v2", "url"])
def test_raw_image_body(app, classifier, photo_bytes, ctype, kind):
    _assert_predictions(_post(app, kind, photo_bytes, ctype), classifier.class_names)


def test_headers_are_case_insensitive(app, classifier, photo_bytes):
    event = v1_event(method="POST", headers={"CONTENT-TYPE": "image/jpeg"}, body=photo_bytes)
    _assert_predictions(app(event), classifier.class_names)
    event = v1_event(method="POST", headers={"content-Type": "image/jpeg"}, body=photo_bytes)
    _assert_predictions(app(event), classifier.class_names)


def test_is_base64_encoded_is_honoured_not_assumed(app, photo_bytes):
    """The same base64 text is an image only when the event says it is base64."""
    as_text = base64.b64encode(photo_bytes).decode()
    ok = app(
        v2_event(method="POST", headers={"content-type": "image/jpeg"}, body=as_text, b64=False)
        | {"isBase64Encoded": True}
    )
    assert ok["statusCode"] == 200
    not_b64 = app(
        v2_event(method="POST", headers={"content-type": "image/jpeg"}, body=as_text, b64=False)
    )
    assert not_b64["statusCode"] == 400
    assert body_json(not_b64)["error"] == "bad_image"


def test_top_k_query_and_stage_prefix(app, classifier, photo_bytes):
    for kind in ("v1", "v2"):
        event = EVENTS[kind](
            method="POST",
            path="/predict",
            headers={"content-type": "image/jpeg"},
            body=photo_bytes,
            query={"top_k": "4"},
        )
        if kind == "v2":
            event = v2_event(
                method="POST",
                path="/predict",
                stage="dev",
                body=photo_bytes,
                headers={"content-type": "image/jpeg"},
                query={"top_k": "4"},
            )
            assert event["rawPath"] == "/dev/predict"
        preds = _assert_predictions(app(event), classifier.class_names, k=4)
        assert sum(p["probability"] for p in preds) == pytest.approx(1.0, abs=1e-5)
        assert sorted(p["index"] for p in preds) == [0, 1, 2, 3]


def test_health_and_page(app, classifier, bundle_dir):
    manifest = json.loads((bundle_dir / "skyclass.json").read_text())
    for kind in EVENTS:
        health = body_json(app(EVENTS[kind](method="GET")))
        assert health["status"] == "ok"
        assert health["classes"] == manifest["class_names"] == classifier.class_names
        assert health["model"]["sha256"] == manifest["files"]["model.onnx"]["sha256"]
    page = app(v2_event(headers={"accept": "text/html,application/xhtml+xml"}))
    assert page["statusCode"] == 200
    assert page["headers"]["content-type"].startswith("text/html")
    assert '<input id="file"' in page["body"]
    # /health is JSON even for a browser
    assert body_json(app(v2_event(path="/health", headers={"accept": "text/html"})))["status"]


# --- inputs -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def upright(photo_path: Path) -> Image.Image:
    with Image.open(photo_path) as img:
        return img.convert("RGB").resize((96, 64))  # non-square, so a rotation is visible


def test_cmyk_alpha_grayscale_16bit_inputs(app, classifier, upright):
    cmyk = io.BytesIO()
    upright.convert("CMYK").save(cmyk, format="JPEG", quality=95)
    rgba = upright.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(upright.size))
    grey16 = Image.fromarray(np.asarray(upright.convert("L"), dtype=np.uint16) * 257)
    bodies = {
        "cmyk": (cmyk.getvalue(), "image/jpeg"),
        "alpha": (_png(rgba), "image/png"),
        "grey": (_png(upright.convert("L")), "image/png"),
        "grey16": (_png(grey16), "image/png"),
        "palette": (_png(upright.convert("P")), "image/png"),
    }
    with Image.open(io.BytesIO(bodies["cmyk"][0])) as img:
        assert img.mode == "CMYK"
    for name, (data, ctype) in bodies.items():
        response = _post(app, "v2", data, ctype)
        assert response["statusCode"] == 200, (name, response["body"])
    # 16-bit grey is scaled, not clipped: same tensor as its 8-bit version
    t16 = classifier.preprocess(bodies["grey16"][0])
    t8 = classifier.preprocess(bodies["grey"][0])
    assert np.abs(t16 - t8).max() < 0.05


def test_exif_orientation_is_applied(app, classifier, upright):
    """Pixels stored rotated + EXIF 'rotate 90 CW' must classify exactly like the upright photo."""
    stored = upright.rotate(90, expand=True)
    exif = Image.Exif()
    exif[0x0112] = 6
    with_exif = _png(stored, exif=exif)
    without = _png(stored)
    assert np.array_equal(classifier.preprocess(with_exif), classifier.preprocess(_png(upright)))
    assert not np.array_equal(classifier.preprocess(without), classifier.preprocess(_png(upright)))
    a = body_json(_post(app, "v1", with_exif, "image/png", query={"top_k": "4"}))["predictions"]
    b = body_json(_post(app, "v1", _png(upright), "image/png", query={"top_k": "4"}))
    assert a == b["predictions"]


# --- errors -------------------------------------------------------------------------------------


def _error(response: dict, status: int, code: str) -> dict:
    assert response["statusCode"] == status, response["body"]
    payload = body_json(response)
    assert payload["error"] == code
    assert payload["message"]
    assert payload["request_id"]
    return payload


def _bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A tiny PNG whose header declares 900 Mpx: must be refused before decoding."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
        + struct.pack(">I", len(idat))
        + b"IDAT"
        + idat
        + struct.pack(">I", zlib.crc32(b"IDAT" + idat))
        + b"\x00\x00\x00\x00IEND"
        + struct.pack(">I", zlib.crc32(b"IEND"))
    )


@pytest.mark.parametrize("kind", ["v1", "v2", "url"])
def test_400s(app, photo_bytes, kind):
    _error(_post(app, kind, None, "image/jpeg"), 400, "empty_body")
    _error(_post(app, kind, b"", "image/jpeg"), 400, "empty_body")
    no_file, ctype = urllib3.encode_multipart_formdata({"comment": "only text"})
    _error(_post(app, kind, no_file, ctype), 400, "no_image")
    empty_file, ctype = urllib3.encode_multipart_formdata({"file": ("a.jpg", b"", "image/jpeg")})
    _error(_post(app, kind, empty_file, ctype), 400, "empty_body")
    _error(_post(app, kind, b"definitely not a jpeg", "image/jpeg"), 400, "bad_image")
    truncated = _error(
        _post(app, kind, photo_bytes[: len(photo_bytes) // 2], "image/jpeg"), 400, "bad_image"
    )
    assert "corrupt" in truncated["message"]
    _error(_post(app, kind, photo_bytes, "multipart/form-data"), 400, "bad_multipart")
    _error(_post(app, kind, photo_bytes, "image/jpeg", query={"top_k": "x"}), 400, "bad_top_k")
    _error(_post(app, kind, photo_bytes, "image/jpeg", query={"top_k": "0"}), 400, "bad_top_k")
    bad_b64 = EVENTS[kind](
        method="POST", headers={"content-type": "image/jpeg"}, body="!!not base64!!", b64=False
    ) | {"isBase64Encoded": True}
    _error(app(bad_b64), 400, "bad_body")


def test_413_default_limit_is_lambdas_6mb(app):
    body = b"\xff\xd8" + b"\x00" * (6 * 1024 * 1024)
    _error(_post(app, "v2", body, "image/jpeg"), 413, "payload_too_large")


def test_413_configured_limit_and_bomb(app, classifier, photo_bytes):
    bomb = _error(_post(app, "v1", _bomb_png(), "image/png"), 413, "image_too_large")
    assert "decompression-bomb" in bomb["message"]

    def configured(**settings) -> App:
        return App(loader=lambda: classifier, settings=ServingSettings(**settings))

    small_bomb = _error(
        _post(configured(max_pixels=1_000_000), "v1", _bomb_png(2000, 1000), "image/png"),
        413,
        "image_too_large",
    )  # our own limit
    assert "2000x1000" in small_bomb["message"]
    tight = configured(max_body_bytes=len(photo_bytes) - 1)
    _error(_post(tight, "v1", photo_bytes, "image/jpeg"), 413, "payload_too_large")
    exact = configured(max_body_bytes=len(photo_bytes))
    assert _post(exact, "v1", photo_bytes, "image/jpeg")["statusCode"] == 200


def test_settings_are_read_from_the_environment_once():
    env = {
        "MODEL_URI": "s3://b/p",
        "MAX_BODY_BYTES": "1000",
        "MAX_PIXELS": "5",
        "REQUEST_DEADLINE_S": "2.5",
        "TOP_K": "2",
        "CORS_ORIGIN": " * ",
        "SKYCLASS_THREADS": "1",
    }
    settings = ServingSettings.from_env(env)
    assert settings == ServingSettings(
        model_uri="s3://b/p",
        max_body_bytes=1000,
        max_pixels=5,
        request_deadline_s=2.5,
        top_k=2,
        cors_origin="*",
        threads=1,
    )
    # A typo keeps the default (logged) rather than taking the API down.
    assert ServingSettings.from_env({"MAX_BODY_BYTES": "6MB"}).max_body_bytes == (
        ServingSettings().max_body_bytes
    )


@pytest.mark.parametrize("kind", ["v1", "v2", "url"])
def test_415_405_404(app, photo_bytes, kind):
    _error(_post(app, kind, photo_bytes, "text/plain"), 415, "unsupported_media_type")
    _error(_post(app, kind, photo_bytes, None), 415, "unsupported_media_type")
    _error(
        _post(app, kind, '{"image": "x"}', "application/json", b64=False),
        415,
        "unsupported_media_type",
    )
    put = app(EVENTS[kind](method="PUT", headers={"content-type": "image/jpeg"}, body=photo_bytes))
    _error(put, 405, "method_not_allowed")
    assert "POST" in put["headers"]["allow"]
    _error(app(EVENTS[kind](method="GET", path="/predict")), 405, "method_not_allowed")
    _error(app(EVENTS[kind](method="DELETE", path="/health")), 405, "method_not_allowed")
    _error(app(EVENTS[kind](method="GET", path="/admin")), 404, "not_found")


def test_500_has_request_id_and_no_internals(photo_bytes, caplog):
    def broken_loader():
        raise RuntimeError("secret internal detail /var/task/x.py")

    app = App(loader=broken_loader)
    with caplog.at_level(logging.INFO, logger="skyclass.serving"):
        response = _post(app, "v2", photo_bytes, "image/jpeg")
    payload = _error(response, 500, "internal_error")
    assert payload["request_id"] == REQUEST_ID
    assert "secret" not in response["body"] and "Traceback" not in response["body"]
    assert any("secret internal detail" in r.getMessage() or r.exc_info for r in caplog.records)


def test_503_when_model_uri_is_wrong(photo_bytes, monkeypatch, tmp_path):
    from skyclass.serving.lambda_handler import load_default_model

    monkeypatch.setenv("MODEL_URI", str(tmp_path / "no-such-bundle"))
    response = _post(App(loader=load_default_model), "v1", photo_bytes, "image/jpeg")
    assert "no-such-bundle" in _error(response, 503, "model_unavailable")["message"]


def test_body_is_never_logged(app, photo_bytes, caplog):
    marker = b"PRIVATE-PHOTO-MARKER"
    body, ctype = urllib3.encode_multipart_formdata(
        {"file": ("me.jpg", photo_bytes + marker, "image/jpeg")}
    )
    with caplog.at_level(logging.DEBUG):
        ok = _post(app, "v2", body, ctype)
        bad = _post(app, "v2", marker * 10, "image/jpeg")
    assert ok["statusCode"] == 200 and bad["statusCode"] == 400
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert REQUEST_ID in text  # the access line is there ...
    assert "PRIVATE-PHOTO-MARKER" not in text  # ... the body is not, in any form
    assert base64.b64encode(marker * 3).decode()[:20] not in text


def test_default_handler_reads_model_uri(bundle_dir, photo_bytes, monkeypatch):
    from skyclass.serving import lambda_handler

    monkeypatch.setenv("MODEL_URI", str(bundle_dir))
    lambda_handler.default_app.cache_clear()  # a fresh process: settings read at first call
    try:
        response = lambda_handler.handler(
            v2_event(method="POST", headers={"content-type": "image/jpeg"}, body=photo_bytes), None
        )
        assert response["statusCode"] == 200
    finally:
        lambda_handler.default_app.cache_clear()
