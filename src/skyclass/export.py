"""`skyclass export RUN_DIR --out BUNDLE_DIR`: the lean serving bundle of a trained run.

The bundle holds the network twice — `model.onnx` for ONNX Runtime (what serving uses: ~50 MB
of runtime instead of ~760 MB of PyTorch, which is what pushed the reference over Lambda's
250 MB limit) and `model.pt`, the traced CPU TorchScript the reference served — plus
`skyclass.json`, which makes the bundle self-describing: class names in index order, the
preprocessing spec, the training recipe and metrics, and the sha256 of each model file.

Before anything is published the exported models are checked against the PyTorch model on
real images: a max |logit| difference of 1e-4 or more, or any changed top-1, aborts the export.
Everything is written into a temporary folder beside BUNDLE_DIR and renamed at the end, so a
failed export never leaves a half bundle behind.

With `--quantize int8` (the default) skyclass.quantize adds model.int8.onnx when it passes an
accuracy gate against model.onnx on the test split; skyclass.json's "serving" entry names the
file servers load and records the gate's figures.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from skyclass import __version__
from skyclass.checkpoint import TrainedModel, load_trained_model
from skyclass.dataset_zip import PreparedDataset, find_run_dataset
from skyclass.errors import ExportError
from skyclass.export_config import ExportConfig
from skyclass.fileio import replace_folder, sha256_file
from skyclass.images import ImageError, preprocess
from skyclass.quantize import quantize_for_serving
from skyclass.serving.bundle import (
    BUNDLE_FORMAT,
    BUNDLE_FORMAT_VERSION,
    MANIFEST_NAME,
    ONNX_NAME,
    TORCHSCRIPT_NAME,
)

PARITY_ATOL = 1e-4
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
# Training-only checkpoint entries that say nothing about the model (and can be large).
_NOT_METADATA = {"model", "optimizer", "scheduler", "rng", "scaler", "format", "version"}


def _jsonable(value: Any) -> Any:
    """Checkpoint metadata -> plain JSON (tensors and numpy scalars become numbers/lists)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (torch.Tensor, np.ndarray, np.generic)):
        return _jsonable(value.tolist())
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None  # NaN/Infinity are not JSON (a NaN loss is recorded as null)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def training_metadata(trained: TrainedModel) -> dict[str, Any]:
    """Recipe, config, epoch and metrics of the checkpoint: what the model is and how good."""
    state = trained.checkpoint
    return _jsonable(
        {
            k: v
            for k, v in state.items()
            if k not in _NOT_METADATA and k not in ("class_names", "preprocess")
        }
    )


def model_identity(config: ExportConfig, trained: TrainedModel) -> dict[str, Any]:
    ckpt_sha = sha256_file(trained.path)
    epoch = trained.checkpoint.get("epoch")
    default_version = f"e{epoch}-{ckpt_sha[:8]}" if epoch is not None else ckpt_sha[:12]
    run_name = config.run.resolve().name if config.run.is_dir() else config.run.stem
    return {
        "name": config.name or run_name,
        "version": config.version or default_version,
        "architecture": "mobilenet_v2",
        "width_mult": float(trained.config.get("width_mult", 1.0)),
        "num_classes": len(trained.class_names),
        "checkpoint": str(trained.path.resolve()),
        "checkpoint_sha256": ckpt_sha,
    }


# --- parity images ---------------------------------------------------------------------------


def _dataset_path(trained: TrainedModel, run: Path) -> Path | None:
    return find_run_dataset(trained.config.get("data"), run)


def parity_batch(config: ExportConfig, trained: TrainedModel) -> tuple[np.ndarray, str]:
    """Real images for the parity check, preprocessed exactly as serving will do it.

    Prefers the run's own test split (the images the metrics were measured on); falls back
    to --parity-images. Without real images there is no export: random noise would hide
    exactly the kind of preprocessing/graph mismatch this check exists to catch.
    """
    tensors: list[np.ndarray] = []
    dataset_path = _dataset_path(trained, config.run)
    if dataset_path is not None:
        dataset = PreparedDataset(dataset_path)
        for entry in dataset.split("test")[: config.parity_count]:
            tensors.append(preprocess(dataset.read(entry.path), trained.spec))
        source = f"{dataset_path} (test split)"
    elif config.parity_images is not None:
        folder = config.parity_images
        if not folder.is_dir():
            raise ExportError(f"--parity-images {folder} is not a folder")
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        for path in files:
            if len(tensors) >= config.parity_count:
                break
            with contextlib.suppress(ImageError):
                tensors.append(preprocess(path, trained.spec))
        source = str(folder)
    else:
        raise ExportError(
            f"the run's dataset ({trained.config.get('data')!r}) is not reachable from here: "
            "pass --parity-images FOLDER with a few real photos for the ONNX parity check"
        )
    if not tensors:
        raise ExportError(f"no usable image for the parity check in {source}")
    return np.stack(tensors).astype(np.float32), source


# --- writers ---------------------------------------------------------------------------------


def write_onnx(model: torch.nn.Module, example: torch.Tensor, path: Path, opset: int) -> None:
    """One self-contained .onnx file with a dynamic batch dimension."""
    batch = torch.export.Dim("batch", min=1, max=4096)
    # The exporter narrates every step on stdout; a CLI command should not.
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes={"x": {0: batch}},
            opset_version=opset,
            external_data=False,
            dynamo=True,
            verbose=False,
        )
    stray = [p.name for p in path.parent.iterdir() if p.name.startswith(path.name + ".")]
    if stray:
        raise ExportError(f"the ONNX exporter wrote external data files {stray}; expected one file")


def write_torchscript(
    model: torch.nn.Module, example: torch.Tensor, path: Path, metadata: dict[str, Any]
) -> None:
    """The reference's deployment format: traced CPU TorchScript, metadata in _extra_files."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # jit is deprecated upstream; this file is for torch users
        traced = torch.jit.trace(model, example)
        torch.jit.save(
            traced, str(path), _extra_files={MANIFEST_NAME: json.dumps(metadata, sort_keys=True)}
        )


def check_finite_weights(model: torch.nn.Module) -> None:
    """Refuse a model with a NaN/Infinity weight: it would answer NaN probabilities."""
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise ExportError(
                f"the checkpoint's weight {name} holds {bad} non-finite value(s) "
                "(NaN/Infinity): training diverged; export an earlier checkpoint "
                "(--checkpoint) or retrain with a lower learning rate"
            )


def _check_finite_outputs(outputs: dict[str, np.ndarray]) -> None:
    for name, out in outputs.items():
        if not np.isfinite(out).all():
            raise ExportError(
                f"the {name} model's outputs on the parity images hold "
                "NaN/Infinity: the bundle was not written"
            )


def check_parity(model: torch.nn.Module, folder: Path, batch: np.ndarray) -> dict[str, Any]:
    """Run the same real images through PyTorch, ONNX Runtime and TorchScript; compare.

    Non-finite outputs fail outright: NaN compares as no difference at all."""
    import onnxruntime as ort

    with torch.inference_mode():
        reference = model(torch.from_numpy(batch)).numpy()
    session = ort.InferenceSession(str(folder / ONNX_NAME), providers=["CPUExecutionProvider"])
    onnx_out = session.run(None, {INPUT_NAME: batch})[0]
    single = session.run(None, {INPUT_NAME: batch[:1]})[0]  # proves the batch axis is dynamic
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.load(str(folder / TORCHSCRIPT_NAME), map_location="cpu")
    with torch.inference_mode():
        ts_out = scripted(torch.from_numpy(batch)).numpy()
    _check_finite_outputs(
        {"PyTorch": reference, "ONNX": onnx_out, "ONNX batch-1": single, "TorchScript": ts_out}
    )
    result = {
        "images": int(batch.shape[0]),
        "onnx_max_abs_diff": float(np.abs(onnx_out - reference).max()),
        "onnx_batch1_max_abs_diff": float(np.abs(single - reference[:1]).max()),
        "torchscript_max_abs_diff": float(np.abs(ts_out - reference).max()),
        "top1_identical": bool(
            (onnx_out.argmax(1) == reference.argmax(1)).all()
            and (ts_out.argmax(1) == reference.argmax(1)).all()
        ),
        "tolerance": PARITY_ATOL,
    }
    worst = max(
        result["onnx_max_abs_diff"],
        result["onnx_batch1_max_abs_diff"],
        result["torchscript_max_abs_diff"],
    )
    if worst >= PARITY_ATOL or not result["top1_identical"]:
        raise ExportError(
            f"exported model does not match PyTorch on {result['images']} real images: "
            f"max |logit diff| ONNX {result['onnx_max_abs_diff']:.2e} (batch 1: "
            f"{result['onnx_batch1_max_abs_diff']:.2e}), TorchScript "
            f"{result['torchscript_max_abs_diff']:.2e}, limit {PARITY_ATOL:.0e}; top-1 identical: "
            f"{result['top1_identical']}. The bundle was not written."
        )
    return result


def _publish(tmp: Path, out: Path, force: bool) -> None:
    """Rename the finished temp folder to OUT (replacing an old bundle only with --force)."""
    if out.exists() and not force:
        raise ExportError(f"{out} already exists; pass --force to replace it")
    replace_folder(tmp, out)


def export_bundle(config: ExportConfig) -> Path:
    """Write BUNDLE_DIR from RUN_DIR (see module docstring). Returns the bundle folder."""
    if config.out.exists() and not config.force:
        raise ExportError(f"{config.out} already exists; pass --force to replace it")
    start = time.perf_counter()
    trained = load_trained_model(config.run, config.checkpoint)
    model = trained.model.cpu().eval()
    check_finite_weights(model)
    batch, source = parity_batch(config, trained)
    example = torch.from_numpy(batch[:2] if len(batch) > 1 else batch)
    identity = model_identity(config, trained)
    metadata = {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_FORMAT_VERSION,
        "model": identity,
        "class_names": list(trained.class_names),
        "preprocess": trained.spec.to_dict(),
        "input": {
            "name": INPUT_NAME,
            "shape": ["batch", 3, trained.spec.size, trained.spec.size],
            "dtype": "float32",
            "layout": "NCHW",
        },
        "output": {
            "name": OUTPUT_NAME,
            "shape": ["batch", len(trained.class_names)],
            "meaning": "logits; softmax gives probabilities",
        },
        "training": training_metadata(trained),
        "skyclass_version": __version__,
        "exported_with": {"torch": torch.__version__, "onnx_opset": config.opset},
    }
    config.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{config.out.name}.tmp-", dir=config.out.parent))
    tmp.chmod(0o755)  # mkdtemp's 0700 would make the published bundle private to this user
    try:
        write_onnx(model, example, tmp / ONNX_NAME, config.opset)
        write_torchscript(model, example, tmp / TORCHSCRIPT_NAME, metadata)
        parity = check_parity(model, tmp, batch)
        serving = quantize_for_serving(
            tmp,
            _dataset_path(trained, config.run),
            trained.spec,
            trained.class_names,
            INPUT_NAME,
            config.quantize,
            config.quiet,
        )
        names = dict.fromkeys((ONNX_NAME, TORCHSCRIPT_NAME, serving["model_file"]))
        manifest = {
            **metadata,
            "files": {
                name: {"sha256": sha256_file(tmp / name), "bytes": (tmp / name).stat().st_size}
                for name in names
            },
            "serving": serving,
            "parity": {**parity, "source": source},
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "export_seconds": round(time.perf_counter() - start, 2),
        }
        (tmp / MANIFEST_NAME).write_text(
            json.dumps(manifest, indent=2, sort_keys=False, allow_nan=False) + "\n"
        )
        _publish(tmp, config.out, config.force)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return config.out
