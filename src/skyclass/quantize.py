"""INT8 serving model for `skyclass export --quantize int8`, behind an accuracy gate.

ONNX Runtime's static quantization (QDQ format, per-channel INT8 weights, UINT8 activations;
the stem convolution and the classifier stay FP32) turns the exported FP32 model.onnx into
model.int8.onnx: about a quarter of the file, and
faster on CPUs with integer dot-product instructions. Activation ranges are calibrated on a few
hundred *training* images put through `skyclass.images.preprocess` with the bundle's spec, i.e.
exactly the tensors serving will feed it.

A quantized model is only served if it earns it: on the run's test split it must give the same
top-1 answer as the FP32 model on at least `min_agreement` of the images and lose at most
`max_accuracy_drop` accuracy, overall and within every class. Otherwise the bundle keeps
serving FP32 and skyclass.json says why, with the numbers. This module imports onnxruntime's
quantization tools only when it runs; serving never imports it.

FP16 is not offered: measured on this project's CPU (AMD EPYC, AVX2) an FP16 MobileNetV2 runs
*slower* than FP32 in ONNX Runtime (its CPU kernels cast back to FP32), see
bench/results/serve_latency.json; its only gain, half the file, INT8 gives twice over.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from skyclass.dataset_zip import Entry, PreparedDataset
from skyclass.export_config import DEFAULT_RECIPE, QuantizeOptions, QuantRecipe
from skyclass.images import ImageError, PreprocessSpec, preprocess
from skyclass.progress import progress
from skyclass.serving.bundle import INT8_NAME, ONNX_NAME

_EVAL_BATCH = 32


# --- images ----------------------------------------------------------------------------------


def calibration_entries(dataset: PreparedDataset, count: int, seed: int) -> list[Entry]:
    """Up to `count` training images, the same share of each class, in a seeded order.

    Calibration only sets activation ranges, but a range set on one class alone clips the
    others: hence a stratified sample, never the test split (that is what the gate scores).
    """
    rng = random.Random(seed)
    by_class: dict[int, list[Entry]] = {}
    for entry in dataset.split("train"):
        by_class.setdefault(entry.target, []).append(entry)
    for entries in by_class.values():
        rng.shuffle(entries)
    picked: list[Entry] = []
    while len(picked) < count and any(by_class.values()):
        for target in sorted(by_class):
            if by_class[target] and len(picked) < count:
                picked.append(by_class[target].pop())
    return picked


def load_tensors(
    dataset: PreparedDataset, entries: Sequence[Entry], spec: PreprocessSpec, desc: str, quiet: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Entries -> (N x C x H x W float32 through the serving preprocessing, N targets)."""
    tensors, targets = [], []
    for entry in progress(entries, total=len(entries), desc=desc, quiet=quiet):
        try:
            tensors.append(preprocess(dataset.read(entry.path), spec))
        except ImageError:  # prepare wrote it, so this is a damaged zip: score what is left
            continue
        targets.append(entry.target)
    if not tensors:
        return np.zeros((0, 3, spec.size, spec.size), np.float32), np.zeros(0, np.int64)
    return np.stack(tensors).astype(np.float32), np.asarray(targets, dtype=np.int64)


# --- quantization ----------------------------------------------------------------------------


# Images per calibration pass: bounds the calibrator's memory (it keeps every intermediate
# activation of the images of one pass: ~28 MB per 224-px MobileNetV2 image, so 300 images at
# once took ~8 GB).
_CALIBRATION_STRIDE_MAX = 25


def _calibration_reader(batch: np.ndarray, input_name: str) -> Any:
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        """Feeds the calibration images one at a time, a range of them per calibration pass."""

        def __init__(self) -> None:
            self.set_range(0, len(batch))

        def __len__(self) -> int:
            return len(batch)

        def set_range(self, start_index: int, end_index: int) -> None:
            self._items: Iterator[np.ndarray] = iter(batch[start_index:end_index])

        def get_next(self) -> dict[str, np.ndarray] | None:
            item = next(self._items, None)
            return None if item is None else {input_name: item[None]}

    return _Reader()


def calibration_stride(count: int) -> int:
    """The largest pass size <= _CALIBRATION_STRIDE_MAX that divides `count` (ORT demands it)."""
    return max(d for d in range(1, min(count, _CALIBRATION_STRIDE_MAX) + 1) if count % d == 0)


def nodes_kept_in_fp32(model_path: Path, policy: str = DEFAULT_RECIPE.fp32_nodes) -> list[str]:
    """Nodes left in FP32 by `policy`: "stem+head" = the first convolution and the classifier.

    The stem convolution reads normalised pixels, whose range one UINT8 scale covers badly,
    and the classifier's output *is* the top-1 decision; they hold well under 1% of
    MobileNetV2's FLOPs. "+depthwise" also keeps the depthwise convolutions (group > 1), whose
    per-channel weight ranges differ most. Measured per policy in bench/quantize_variants.py.
    """
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    convs = [node for node in graph.node if node.op_type == "Conv"]
    heads = [node.name for node in graph.node if node.op_type in ("Gemm", "MatMul")]
    if policy == "none":
        return []
    kept = [convs[0].name, *heads] if convs else heads
    if policy == "stem+head+depthwise":
        kept += [
            node.name
            for node in convs[1:]
            if any(a.name == "group" and a.i > 1 for a in node.attribute)
        ]
    return kept


def quantize_int8(
    fp32_path: Path,
    out_path: Path,
    calibration: np.ndarray,
    input_name: str,
    recipe: QuantRecipe = DEFAULT_RECIPE,
) -> None:
    """FP32 .onnx -> static INT8 .onnx made by `recipe`, calibrated on `calibration`.

    quant_pre_process folds constants and fuses BatchNorm/shape ops first (ONNX Runtime's
    recommended step), so fewer tensors are quantized and the scales are tighter.
    """
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    types = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
    methods = {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }
    formats = {"qdq": QuantFormat.QDQ, "qoperator": QuantFormat.QOperator}
    with tempfile.TemporaryDirectory(prefix="skyclass-quant-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(out_path),
            _calibration_reader(calibration, input_name),
            quant_format=formats[recipe.quant_format],
            per_channel=recipe.per_channel,
            reduce_range=recipe.reduce_range,
            activation_type=types[recipe.activations],
            weight_type=types[recipe.weights],
            calibrate_method=methods[recipe.calibration],
            nodes_to_exclude=nodes_kept_in_fp32(prepared, recipe.fp32_nodes),
            extra_options={
                "CalibStridedMinMax": calibration_stride(len(calibration)),
                "CalibPercentile": recipe.percentile,
            },
        )
        # The calibrator leaves its augmented model beside the output in older releases.
        for stray in out_path.parent.glob("augmented_model*.onnx"):
            stray.unlink()


# --- the gate --------------------------------------------------------------------------------


def predict_top1(model_path: Path, batch: np.ndarray, input_name: str) -> np.ndarray:
    """Top-1 class of every image, in batches (one ORT session per model)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    out = [
        session.run(None, {input_name: batch[i : i + _EVAL_BATCH]})[0].argmax(1)
        for i in range(0, len(batch), _EVAL_BATCH)
    ]
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def _figures(reference: np.ndarray, candidate: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
    return {
        "images": len(targets),
        "agreement": float((reference == candidate).mean()),
        "fp32_accuracy": float((reference == targets).mean()),
        "int8_accuracy": float((candidate == targets).mean()),
    }


def gate_figures(
    reference: np.ndarray, candidate: np.ndarray, targets: np.ndarray, class_names: Sequence[str]
) -> dict[str, Any]:
    """Agreement and accuracy of FP32 vs INT8 top-1 answers, overall and per true class."""
    per_class = {
        name: _figures(reference[targets == i], candidate[targets == i], targets[targets == i])
        for i, name in enumerate(class_names)
        if (targets == i).any()
    }
    return {"overall": _figures(reference, candidate, targets), "per_class": per_class}


def gate_failures(figures: dict[str, Any], options: QuantizeOptions) -> list[str]:
    """Why the INT8 model may not be served (empty list: it passes)."""
    failures = []
    for scope, row in [("overall", figures["overall"]), *figures["per_class"].items()]:
        drop = row["fp32_accuracy"] - row["int8_accuracy"]
        if row["agreement"] < options.min_agreement:
            failures.append(
                f"{scope}: top-1 agreement {row['agreement']:.2%} < "
                f"{options.min_agreement:.2%} ({row['images']} images)"
            )
        if drop > options.max_accuracy_drop + 1e-12:
            failures.append(
                f"{scope}: accuracy {row['fp32_accuracy']:.2%} -> "
                f"{row['int8_accuracy']:.2%}, a loss of {drop * 100:.2f} points > "
                f"{options.max_accuracy_drop * 100:.2f}"
            )
    return failures


# --- the export hook -------------------------------------------------------------------------


def _fp32_serving(reason: str, options: QuantizeOptions, **extra: Any) -> dict[str, Any]:
    return {
        "model_file": ONNX_NAME,
        "precision": "fp32",
        "requested": options.mode,
        "reason": reason,
        **extra,
    }


def quantize_for_serving(
    folder: Path,
    dataset_path: Path | None,
    spec: PreprocessSpec,
    class_names: Sequence[str],
    input_name: str,
    options: QuantizeOptions,
    quiet: bool = False,
) -> dict[str, Any]:
    """Write folder/model.int8.onnx if it passes the gate; return skyclass.json's "serving".

    The FP32 folder/model.onnx must exist. On a failed gate the INT8 file is deleted again,
    so a bundle never holds a model it does not serve (besides model.onnx and model.pt).
    """
    if options.mode == "none":
        return _fp32_serving("--quantize none", options)
    if dataset_path is None:
        return _fp32_serving(
            "the run's dataset zip is not reachable, so there are no labelled "
            "test images for the INT8 accuracy gate",
            options,
        )
    dataset = PreparedDataset(dataset_path)
    calib, _ = load_tensors(
        dataset,
        calibration_entries(dataset, options.calibration_images, options.seed),
        spec,
        "calibration images",
        quiet,
    )
    test, targets = load_tensors(dataset, dataset.split("test"), spec, "gate: test split", quiet)
    if not len(calib) or not len(test):
        return _fp32_serving(
            f"{dataset_path} has no usable train/test images for calibration and the accuracy gate",
            options,
        )
    int8_path = folder / INT8_NAME
    quantize_int8(folder / ONNX_NAME, int8_path, calib, input_name, options.recipe)
    reference = predict_top1(folder / ONNX_NAME, test, input_name)
    candidate = predict_top1(int8_path, test, input_name)
    figures = gate_figures(reference, candidate, targets, class_names)
    failures = gate_failures(figures, options)
    gate = {
        "passed": not failures,
        "failures": failures,
        "split": "test",
        "dataset": str(dataset_path),
        "calibration_images": len(calib),
        "thresholds": {
            "min_agreement": options.min_agreement,
            "max_accuracy_drop": options.max_accuracy_drop,
        },
        **figures,
    }
    if failures:
        int8_path.unlink()
        return _fp32_serving(
            "INT8 failed the accuracy gate: " + "; ".join(failures), options, gate=gate
        )
    return {
        "model_file": INT8_NAME,
        "precision": "int8",
        "requested": options.mode,
        "reason": "INT8 passed the accuracy gate",
        "gate": gate,
        "quantization": {"method": "onnxruntime quantize_static", "options": asdict(options)},
    }
