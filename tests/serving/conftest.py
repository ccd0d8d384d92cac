"""Fixtures of the serving tests: a real photo, the handler bound to the exported bundle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def photo_path(bird_drone_dir: Path) -> Path:
    """One real 416x416 JPEG from the bird/drone data set."""
    return sorted((bird_drone_dir / "drone").glob("*.jpg"))[0]


@pytest.fixture(scope="session")
def photo_bytes(photo_path: Path) -> bytes:
    return photo_path.read_bytes()


@pytest.fixture(scope="session")
def classifier(bundle_dir: Path):
    from skyclass.serving.classifier import Classifier

    return Classifier.from_bundle(bundle_dir)


@pytest.fixture()
def app(classifier):
    """The handler's App with the bundle's classifier (what MODEL_URI=bundle_dir loads)."""
    from skyclass.serving.lambda_handler import App

    return App(loader=lambda: classifier)


def body_json(response: dict[str, Any]) -> dict[str, Any]:
    assert response["headers"]["content-type"].startswith("application/json")
    return json.loads(response["body"])
