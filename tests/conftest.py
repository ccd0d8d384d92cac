"""Shared fixtures: real images from ../shared, small prepared datasets, tiny trained runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DATASETS = SHARED / "datasets"
EVA4 = DATASETS / "eva4_crops"
BIRD_DRONE = DATASETS / "bird_drone"
EVA4_CLASSES = ["Flying Birds", "Large QuadCopters", "Small QuadCopters", "Winged Drones"]


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data set {path} is not on this machine")
    return path


@pytest.fixture(scope="session")
def eva4_dir() -> Path:
    """174 real images of the 4 reference classes (plus a stray SOURCES.csv)."""
    return _need(EVA4)


@pytest.fixture(scope="session")
def bird_drone_dir() -> Path:
    return _need(BIRD_DRONE)


@pytest.fixture(scope="session")
def ddd_visible_dir() -> Path:
    """1,014 crops of flying objects on plain skies, 6 frames of each video."""
    return _need(DATASETS / "ddd_visible")


@pytest.fixture(scope="session")
def eva4_images(eva4_dir: Path) -> dict[str, list[Path]]:
    """Class name -> sorted image paths."""
    return {c: sorted((eva4_dir / c).glob("*.png")) for c in EVA4_CLASSES}


@pytest.fixture(scope="session")
def eva4_zip(tmp_path_factory: pytest.TempPathFactory, eva4_dir: Path) -> Path:
    """eva4_crops prepared at 64 px: small enough for fast real training in tests."""
    from skyclass.prepare import PrepareConfig, prepare

    out = tmp_path_factory.mktemp("eva4") / "eva4.zip"
    prepare(PrepareConfig(raw=eva4_dir, out=out, size=64, workers=1, quiet=True, seed=0))
    return out


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, eva4_zip: Path) -> Path:
    """A real 2-epoch training run (MobileNetV2 x0.25, random init, 64 px) on eva4_zip.

    The run dir holds best.pt, last.pt, history.jsonl, config.json, model_scripted.pt and
    model_traced_cpu.pt, as `skyclass train` writes them. Read-only for the tests using it.
    """
    from skyclass.train import TrainConfig, train

    out = tmp_path_factory.mktemp("tiny_run") / "run"
    train(TrainConfig(data=str(eva4_zip), out=str(out), epochs=2, width_mult=0.25,
                      pretrained=False, unfreeze_from=0, lr=0.05, workers=0, seed=0,
                      amp="off", quiet=True))
    return out


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory, tiny_run: Path) -> Path:
    """`skyclass export` of tiny_run (model.onnx, model.pt, skyclass.json). Read-only."""
    from skyclass.export import ExportConfig, export_bundle

    return export_bundle(ExportConfig(run=tiny_run, out=tmp_path_factory.mktemp("bundle") / "b"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """In CI a skip is a failure: CI sets up Chromium, Node and the Lambda wheels itself, so a
    skipped test there means the set-up broke, not that a tool is optional."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("CI") and not os.environ.get("SKYCLASS_ALLOW_SKIPS"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped in CI (set SKYCLASS_ALLOW_SKIPS=1 to allow): {reason}"
