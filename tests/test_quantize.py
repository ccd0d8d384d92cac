"""`skyclass export --quantize int8`: the INT8 model, its accuracy gate, and serving it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from skyclass.cli import main as cli_main
from skyclass.dataset_zip import PreparedDataset
from skyclass.images import PreprocessSpec, preprocess
from skyclass.quantize import QuantizeOptions, gate_failures, gate_figures
from skyclass.serving.bundle import BundleError, served_model_name
from skyclass.serving.classifier import Classifier


def _manifest(bundle: Path) -> dict:
    return json.loads((bundle / "skyclass.json").read_text())


def _test_split(bundle: Path) -> tuple[np.ndarray, np.ndarray]:
    manifest = _manifest(bundle)
    dataset = PreparedDataset(manifest["serving"]["gate"]["dataset"])
    spec = PreprocessSpec.from_dict(manifest["preprocess"])
    entries = dataset.split("test")
    batch = np.stack([preprocess(dataset.read(e.path), spec) for e in entries])
    return batch, np.array([e.target for e in entries])


def test_int8_passes_the_gate_and_is_served(int8_bundle: Path) -> None:
    manifest = _manifest(int8_bundle)
    serving = manifest["serving"]
    assert (serving["model_file"], serving["precision"]) == ("model.int8.onnx", "int8")
    gate = serving["gate"]
    assert gate["passed"] and gate["failures"] == []
    assert gate["overall"]["agreement"] >= gate["thresholds"]["min_agreement"]
    assert set(gate["per_class"]) == set(manifest["class_names"])
    assert gate["overall"]["images"] == sum(r["images"] for r in gate["per_class"].values())
    assert gate["calibration_images"] > 50
    # Quantized for real: a fraction of the FP32 file, listed with its sha256.
    files = manifest["files"]
    assert set(files) == {"model.onnx", "model.pt", "model.int8.onnx"}
    assert files["model.int8.onnx"]["bytes"] < files["model.onnx"]["bytes"] / 3
    # The figures are what the two models really answer on the test split (recomputed here).
    batch, targets = _test_split(int8_bundle)
    fp32 = Classifier(int8_bundle / "model.onnx", manifest).predict_proba(batch).argmax(1)
    served = Classifier.from_bundle(int8_bundle)
    int8 = served.predict_proba(batch).argmax(1)
    assert served.model_info["sha256"] == files["model.int8.onnx"]["sha256"]
    assert gate["overall"]["agreement"] == pytest.approx((fp32 == int8).mean())
    assert gate["overall"]["fp32_accuracy"] == pytest.approx((fp32 == targets).mean())
    assert gate["overall"]["int8_accuracy"] == pytest.approx((int8 == targets).mean())
    # A model that tells the classes apart, so the agreement means something.
    assert len(set(fp32.tolist())) == 2 and gate["overall"]["fp32_accuracy"] > 0.7


def test_impossible_threshold_keeps_fp32_and_says_why(
    gated_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A negative allowed drop demands that INT8 *gain* accuracy: it cannot, FP32 is served."""
    out = tmp_path / "b"
    args = ["export", str(gated_run), "--out", str(out), "--quantize", "int8"]
    assert cli_main([*args, "--max-accuracy-drop", "-0.5", "--calibration-images", "40"]) == 0
    stdout = capsys.readouterr().out
    assert "serving model.onnx (fp32): INT8 failed the accuracy gate" in stdout
    assert "accuracy" in stdout and "points" in stdout
    manifest = _manifest(out)
    serving = manifest["serving"]
    assert (serving["model_file"], serving["precision"]) == ("model.onnx", "fp32")
    assert not serving["gate"]["passed"]
    assert serving["gate"]["thresholds"]["max_accuracy_drop"] == -0.5
    assert serving["gate"]["calibration_images"] == 40
    # Nothing unserved is left in the bundle, and servers load FP32.
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx", "model.pt", "skyclass.json"]
    assert set(manifest["files"]) == {"model.onnx", "model.pt"}
    assert (
        Classifier.from_bundle(out).model_info["sha256"]
        == manifest["files"]["model.onnx"]["sha256"]
    )


def test_gate_checks_every_class_not_just_the_total() -> None:
    """50 right in class 0, 2 of 10 flipped in class 1: 96.7% overall, 80% in class 1."""
    targets = np.array([0] * 50 + [1] * 10)
    fp32 = targets.copy()
    int8 = targets.copy()
    int8[50:52] = 0
    figures = gate_figures(fp32, int8, targets, ["a", "b"])
    assert figures["per_class"]["a"]["agreement"] == 1.0
    assert figures["per_class"]["b"]["agreement"] == pytest.approx(0.8)
    lenient = QuantizeOptions(min_agreement=0.95, max_accuracy_drop=0.05)
    failures = gate_failures(figures, lenient)
    assert failures and all(f.startswith("b:") for f in failures)
    assert gate_failures(gate_figures(fp32, fp32, targets, ["a", "b"]), QuantizeOptions()) == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mode": "fp16"}, "--quantize"),
        ({"calibration_images": 0}, "--calibration-images"),
        ({"min_agreement": 99.0}, "--min-agreement"),
    ],
)
def test_bad_quantize_options_are_refused(options: dict, message: str) -> None:
    assert any(message in p for p in QuantizeOptions(**options).problems())


def test_hostile_served_file_name_is_refused() -> None:
    manifest = {"files": {"model.onnx": {}}, "serving": {"model_file": "../../x.onnx"}}
    with pytest.raises(BundleError, match="plain"):
        served_model_name(manifest)
    assert served_model_name({"files": {"model.onnx": {}}}) == "model.onnx"  # older bundles


def test_fp32_node_policies_pick_the_named_nodes(bundle_dir: Path) -> None:
    """MobileNetV2's graph: the stem conv + the classifier; +depthwise adds its 17 grouped convs."""
    import onnx

    from skyclass.quantize import nodes_kept_in_fp32

    model = bundle_dir / "model.onnx"
    graph = onnx.load(str(model)).graph
    convs = [n for n in graph.node if n.op_type == "Conv"]
    grouped = {n.name for n in convs if any(a.name == "group" and a.i > 1 for a in n.attribute)}
    gemm = [n.name for n in graph.node if n.op_type == "Gemm"]
    assert nodes_kept_in_fp32(model, "none") == []
    assert nodes_kept_in_fp32(model, "stem+head") == [convs[0].name, *gemm]
    with_depthwise = nodes_kept_in_fp32(model, "stem+head+depthwise")
    assert set(with_depthwise) == {convs[0].name, *gemm, *grouped} and len(grouped) == 17


@pytest.mark.parametrize(("count", "stride"), [(300, 25), (100, 25), (7, 7), (31, 1), (48, 24)])
def test_calibration_passes_divide_the_images(count: int, stride: int) -> None:
    """ONNX Runtime calibrates in passes of equal size; no pass holds more than 25 images."""
    from skyclass.quantize import calibration_stride

    assert calibration_stride(count) == stride
    assert count % stride == 0
