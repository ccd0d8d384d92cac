"""`skyclass export`: the bundle's files, manifest, parity check and atomic writing."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from skyclass import export as export_mod
from skyclass.checkpoint import load_checkpoint, load_trained_model, save_checkpoint
from skyclass.cli import main as cli_main
from skyclass.export import ExportConfig, ExportError, export_bundle
from skyclass.images import preprocess


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_bundle_files_and_manifest(bundle_dir: Path, tiny_run: Path) -> None:
    assert sorted(p.name for p in bundle_dir.iterdir()) == [
        "model.onnx",
        "model.pt",
        "skyclass.json",
    ]
    manifest = json.loads((bundle_dir / "skyclass.json").read_text())
    trained = load_trained_model(tiny_run)
    assert manifest["class_names"] == trained.class_names
    assert manifest["preprocess"] == json.loads(json.dumps(trained.spec.to_dict()))
    for name in ("model.onnx", "model.pt"):
        assert manifest["files"][name]["sha256"] == _sha(bundle_dir / name)
    assert manifest["training"]["config"]["recipe"]
    assert manifest["training"]["metrics"]["test_acc"] == trained.checkpoint["metrics"]["test_acc"]
    assert manifest["skyclass_version"]
    assert manifest["model"]["name"] == tiny_run.name and manifest["model"]["version"]
    parity = manifest["parity"]
    assert parity["images"] > 0 and "test split" in parity["source"]
    assert 0.0 <= parity["onnx_max_abs_diff"] < 1e-4 and parity["top1_identical"] is True


def test_onnx_and_torchscript_match_pytorch_on_a_real_image(bundle_dir, tiny_run, eva4_images):
    trained = load_trained_model(tiny_run)
    files = [paths[1] for paths in eva4_images.values()]
    batch = np.stack([preprocess(p, trained.spec) for p in files])
    with torch.inference_mode():
        reference = trained.model(torch.from_numpy(batch)).numpy()
    session = ort.InferenceSession(
        str(bundle_dir / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    assert isinstance(session.get_inputs()[0].shape[0], str)  # dynamic batch axis
    assert np.abs(session.run(None, {"input": batch})[0] - reference).max() < 1e-4
    assert np.abs(session.run(None, {"input": batch[:1]})[0] - reference[:1]).max() < 1e-4

    extra = {"skyclass.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.load(
            str(bundle_dir / "model.pt"), map_location="cpu", _extra_files=extra
        )
    meta = json.loads(extra["skyclass.json"])
    assert meta["class_names"] == trained.class_names
    assert meta["preprocess"]["size"] == trained.spec.size
    with torch.inference_mode():
        assert np.abs(scripted(torch.from_numpy(batch)).numpy() - reference).max() < 1e-4


def test_existing_output_is_refused(bundle_dir, tiny_run, capsys):
    before = _sha(bundle_dir / "skyclass.json")
    assert cli_main(["export", str(tiny_run), "--out", str(bundle_dir)]) == 2
    assert "--force" in capsys.readouterr().err
    assert _sha(bundle_dir / "skyclass.json") == before


@pytest.fixture()
def orphan_run(tiny_run: Path, tmp_path: Path) -> Path:
    """tiny_run's best checkpoint, but its dataset zip is gone (moved to another machine)."""
    state = load_checkpoint(tiny_run / "best.pt")
    state["config"]["data"] = str(tmp_path / "gone.zip")
    state.pop("format"), state.pop("version")
    run = tmp_path / "orphan"
    save_checkpoint(run / "best.pt", state)
    return run


def test_unreachable_dataset_needs_parity_images(orphan_run, tmp_path, eva4_dir, capsys):
    out = tmp_path / "bundle"
    assert cli_main(["export", str(orphan_run), "--out", str(out)]) == 2
    assert "--parity-images" in capsys.readouterr().err
    assert not out.exists()
    assert (
        cli_main(
            [
                "export",
                str(orphan_run),
                "--out",
                str(out),
                "--parity-images",
                str(eva4_dir),
                "--parity-count",
                "8",
                "--name",
                "eva4",
                "--model-version",
                "7",
            ]
        )
        == 0
    )
    manifest = json.loads((out / "skyclass.json").read_text())
    assert manifest["parity"]["images"] == 8 and manifest["parity"]["source"] == str(eva4_dir)
    assert manifest["model"]["name"] == "eva4" and manifest["model"]["version"] == "7"


def test_parity_failure_is_loud_and_leaves_nothing(orphan_run, tmp_path, eva4_dir, monkeypatch):
    """With a zero tolerance the real comparison must fail; nothing may be published."""
    monkeypatch.setattr(export_mod, "PARITY_ATOL", 0.0)
    out = tmp_path / "bundle"
    with pytest.raises(ExportError, match="does not match PyTorch"):
        export_bundle(ExportConfig(run=orphan_run, out=out, parity_images=eva4_dir, parity_count=4))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["orphan"]  # no temp dir left either


def test_a_nan_weight_is_refused_and_nothing_is_written(tiny_run: Path, tmp_path: Path, capsys):
    """The parity check compared NaN as 'identical': a diverged checkpoint exported with exit 0."""
    state = load_checkpoint(tiny_run / "best.pt")
    state.pop("format"), state.pop("version")
    name = next(k for k, v in state["model"].items() if v.is_floating_point() and v.numel() > 1)
    state["model"][name] = state["model"][name].clone().contiguous()
    state["model"][name].view(-1)[0] = float("nan")
    run = tmp_path / "diverged"
    save_checkpoint(run / "best.pt", state)
    out = tmp_path / "bundle"
    assert cli_main(["export", str(run), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert name in err and "non-finite" in err
    assert not out.exists() and not list(tmp_path.glob(".bundle.tmp-*"))


def test_non_finite_outputs_fail_the_parity_check(tiny_run: Path, tmp_path: Path):
    batch = np.zeros((2, 3, 64, 64), np.float32)
    with pytest.raises(ExportError, match="NaN"):
        export_mod._check_finite_outputs({"ONNX": np.array([[0.1, np.nan]]), "PyTorch": batch})
