"""The Lambda handler and `skyclass serve` with an INT8 bundle: same API, INT8 model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from skyclass.serving.classifier import Classifier
from skyclass.serving.lambda_handler import App

from .aws_events import v1_event
from .server_proc import serve_in_subprocess


def test_handler_and_serve_answer_from_the_int8_bundle(
    int8_bundle: Path, bird_drone_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MODEL_URI=bundle: the Lambda handler and `skyclass serve` load model.int8.onnx, same API."""
    photo = sorted((bird_drone_dir / "bird").glob("*.jpg"))[0].read_bytes()
    manifest = json.loads((int8_bundle / "skyclass.json").read_text())
    int8_sha = manifest["files"]["model.int8.onnx"]["sha256"]
    monkeypatch.setenv("MODEL_URI", str(int8_bundle))
    event = v1_event(
        method="POST",
        path="/predict",
        headers={"Content-Type": "image/jpeg"},
        body=photo,
        b64=True,
        query={"top_k": "2"},
    )
    answer = App()(event)
    assert answer["statusCode"] == 200, answer["body"]
    body = json.loads(answer["body"])
    assert body["model"]["sha256"] == int8_sha
    expected = Classifier.from_bundle(int8_bundle).predict_image(photo, top_k=2)
    assert [p["label"] for p in body["predictions"]] == [p.label for p in expected]
    with serve_in_subprocess(int8_bundle, timeout=120) as (url, _proc):
        resp = requests.post(
            url + "predict",
            files={"file": ("b.jpg", photo, "image/jpeg")},
            params={"top_k": 2},
            timeout=60,
        )
    assert resp.status_code == 200, resp.text
    assert resp.json()["model"]["sha256"] == int8_sha
    assert resp.json()["predictions"] == body["predictions"]
