"""Real HTTP against `skyclass serve` (a separate process on 127.0.0.1, a free port)."""

from __future__ import annotations

import json
import socket

import pytest
import requests

from skyclass.cli import main as cli_main

from .server_proc import running_server

LIMIT = 200_000


@pytest.fixture(scope="module")
def server_url(bundle_dir):
    with running_server(bundle_dir, env={"MAX_BODY_BYTES": str(LIMIT)}) as url:
        yield url


def test_health_page_and_predict(server_url, bundle_dir, photo_path, photo_bytes):
    manifest = json.loads((bundle_dir / "skyclass.json").read_text())
    health = requests.get(server_url, timeout=10)
    assert health.status_code == 200 and health.json()["classes"] == manifest["class_names"]
    assert requests.get(server_url + "health", timeout=10).json()["status"] == "ok"
    page = requests.get(server_url, headers={"Accept": "text/html"}, timeout=10)
    assert page.headers["content-type"].startswith("text/html") and "<script>" in page.text

    with open(photo_path, "rb") as fh:  # a real multipart body, as Insomnia/curl -F send it
        r = requests.post(
            server_url,
            files={"file": (photo_path.name, fh, "image/jpeg")},
            params={"top_k": 2},
            timeout=30,
        )
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["predictions"]) == 2
    assert body["predictions"][0]["label"] in manifest["class_names"]
    assert body["model"]["sha256"] == manifest["files"]["model.onnx"]["sha256"]
    assert r.headers["x-request-id"]

    raw = requests.post(
        server_url + "predict", data=photo_bytes, headers={"Content-Type": "image/jpeg"}, timeout=30
    )
    assert raw.status_code == 200
    assert raw.json()["predictions"][0] == body["predictions"][0]


def test_errors_over_http(server_url, photo_bytes):
    too_big = requests.post(
        server_url, data=b"\x00" * (LIMIT + 1), headers={"Content-Type": "image/jpeg"}, timeout=30
    )
    assert too_big.status_code == 413 and too_big.json()["error"] == "payload_too_large"
    assert requests.put(server_url, data=photo_bytes, timeout=10).status_code == 405
    wrong = requests.post(
        server_url, data=b"hello", headers={"Content-Type": "text/plain"}, timeout=10
    )
    assert wrong.status_code == 415 and wrong.json()["request_id"]
    empty = requests.post(server_url, data=b"", headers={"Content-Type": "image/png"}, timeout=10)
    assert empty.status_code == 400 and empty.json()["error"] == "empty_body"
    assert requests.get(server_url + "nope", timeout=10).status_code == 404
    # the server survives all of that
    assert requests.get(server_url + "health", timeout=10).status_code == 200


def test_chunked_upload_is_refused_not_hung(server_url, photo_bytes):
    def chunks():
        yield photo_bytes[:1000]
        yield photo_bytes[1000:]

    r = requests.post(server_url, data=chunks(), headers={"Content-Type": "image/jpeg"}, timeout=10)
    assert r.status_code == 411


def test_predict_cli_against_the_server(server_url, photo_path, capsys):
    assert cli_main(["predict", server_url, str(photo_path), "--json", "--top-k", "4"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result) == 1 and len(result[0]["predictions"]) == 4


def test_serve_refuses_a_port_in_use(bundle_dir, capsys):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert cli_main(["serve", str(bundle_dir), "--port", str(port)]) == 2
    assert "cannot listen" in capsys.readouterr().err


def test_serve_refuses_a_missing_bundle(tmp_path, capsys):
    assert cli_main(["serve", str(tmp_path / "none"), "--port", "0"]) == 2
    assert "does not exist" in capsys.readouterr().err
