"""Run a model over evaluation data and collect its class probabilities.

Models: a training run's checkpoint (PyTorch) or an exported bundle (ONNX Runtime through the
serving Classifier; torch is never imported on that path, so a bundle can be evaluated where
only the serving extras are installed).

Data: a prepared dataset zip (a split of it; the images are already at model size and go
through the training-time eval transform) or a plain folder of class folders of raw photos,
which go through exactly the serving preprocessing, so the accuracy is what the deployed API
would score. Unreadable files are skipped and listed, never fatal.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from skyclass.dataset_zip import PreparedDataset, find_run_dataset
from skyclass.decode_limits import MAX_FILE_BYTES
from skyclass.errors import EvaluateError
from skyclass.evaluate.config import DEFAULT_BATCH
from skyclass.fileio import special_file_kind
from skyclass.images import ImageError, PreprocessSpec, decode_image, preprocess, to_model_input
from skyclass.progress import progress
from skyclass.serving.bundle import MANIFEST_NAME as BUNDLE_MANIFEST
from skyclass.textsafe import display_text


class Predictor(Protocol):
    """What evaluation needs from a model: its classes, its preprocessing and probabilities."""

    class_names: list[str]
    spec: PreprocessSpec

    def predict_proba(self, batch: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Sample:
    """One image to score: a name to show, its true class (model index), how to read it."""

    path: str
    target: int
    read: Callable[[], bytes] = field(repr=False, compare=False)


@dataclass
class ModelSource:
    """A loaded model and what the report says about it."""

    predictor: Predictor
    kind: str  # "run" or "bundle"
    path: Path
    info: dict  # checkpoint / bundle facts for the report (epoch, config, ...)
    config: dict  # the training config recorded with the model ({} if unknown)


@dataclass
class EvalData:
    """The samples to score and the facts about where they came from."""

    samples: list[Sample]
    kind: str  # "dataset" or "folder"
    path: Path
    split: str | None
    transform: str  # which preprocessing was applied (for the report)
    skipped: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)  # prepare's report.json, or folder counts
    notes: list[str] = field(default_factory=list)


@dataclass
class Predictions:
    """Probabilities of the samples that could be scored, in order."""

    class_names: list[str]
    samples: list[Sample]
    probs: np.ndarray  # (N, C) float
    skipped: list[dict]

    @property
    def targets(self) -> np.ndarray:
        return np.asarray([s.target for s in self.samples], dtype=np.int64)

    @property
    def paths(self) -> list[str]:
        return [s.path for s in self.samples]


# ---------------------------------------------------------------------------- models


class TorchPredictor:
    """A trained PyTorch model behind the Predictor interface (softmax probabilities)."""

    def __init__(self, model: Any, class_names: list[str], spec: PreprocessSpec) -> None:
        self.model = model.eval()
        self.class_names = class_names
        self.spec = spec

    def predict_proba(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            logits = self.model(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)))
            return torch.softmax(logits.float(), dim=1).numpy()


def is_bundle(path: Path) -> bool:
    return path.is_dir() and (path / BUNDLE_MANIFEST).is_file()


def load_model(path: str | Path, which: str = "best") -> ModelSource:
    """A run dir (or .pt file) or an exported bundle dir -> a ready predictor."""
    path = Path(path)
    if not path.exists():
        raise EvaluateError(f"{path} does not exist: give a run directory or an exported bundle")
    if is_bundle(path):
        return _load_bundle(path)
    return _load_run(path, which)


def _load_run(path: Path, which: str) -> ModelSource:
    from skyclass.checkpoint import load_trained_model  # torch: only on the run path

    trained = load_trained_model(path, which)
    state = trained.checkpoint
    info = {
        "checkpoint": str(trained.path),
        "which": which if path.is_dir() else trained.path.stem,
        **_plain_items(state),
        "training_metrics": _plain_items(state.get("metrics") or {}),
    }
    return ModelSource(
        predictor=TorchPredictor(trained.model, trained.class_names, trained.spec),
        kind="run",
        path=path,
        info=info,
        config=trained.config,
    )


def _load_bundle(path: Path) -> ModelSource:
    from skyclass.serving.classifier import Classifier  # numpy + onnxruntime, no torch

    classifier = Classifier.from_bundle(path)
    manifest = _read_json(path / BUNDLE_MANIFEST)
    training: dict[str, Any] = (
        manifest["training"] if isinstance(manifest.get("training"), dict) else {}
    )
    config: dict[str, Any] = training["config"] if isinstance(training.get("config"), dict) else {}
    info = {
        "bundle": str(path),
        **_plain_items(manifest),
        **_plain_items(manifest.get("model") or {}),
        "epoch": training.get("epoch"),
        "training_metrics": _plain_items(training.get("metrics") or {}),
    }
    return ModelSource(predictor=classifier, kind="bundle", path=path, info=info, config=config)


def _plain_items(d: dict) -> dict:
    return {k: v for k, v in d.items() if _is_plain(v) and k != "format"}


def _is_plain(value: Any) -> bool:
    """Small JSON-able facts (numbers, short strings) worth printing in a report."""
    if isinstance(value, (bool, int, float)) or value is None:
        return True
    return isinstance(value, str) and len(value) < 300


def _read_json(path: Path) -> dict:
    import json

    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise EvaluateError(f"cannot read {path}: {exc}") from exc
    return data if isinstance(data, dict) else {}


# ---------------------------------------------------------------------------- data


def dataset_of_run(model: ModelSource) -> Path:
    """The dataset zip a run (or a bundle's run) was trained on: TrainConfig.data.

    A relative path is tried from the working directory, the run dir and its parent.
    """
    recorded = model.config.get("data")
    found = find_run_dataset(recorded, model.path)
    if found is not None:
        return found
    if isinstance(recorded, str) and recorded:
        where = f"it was trained on {recorded}, which does not exist here"
    else:
        where = "no dataset is recorded with the model"
    raise EvaluateError(
        f"cannot find the dataset to evaluate {model.path} on ({where}); "
        "pass it with --data DATASET.zip or --data FOLDER"
    )


def load_data(data: Path, class_names: Sequence[str], split: str = "test") -> EvalData:
    """A prepared dataset zip (one split) or a raw folder of class folders."""
    if not data.exists():
        raise EvaluateError(f"--data {data} does not exist")
    special = special_file_kind(data)
    if special:
        raise EvaluateError(f"--data {data} is {special}, not a folder or a zip file")
    if data.is_dir():
        return folder_data(data, class_names)
    if _is_prepared_zip(data):
        return dataset_data(data, class_names, split)
    return folder_data(data, class_names)  # a zip of raw class folders, like prepare takes


def _is_prepared_zip(path: Path) -> bool:
    import zipfile

    if not zipfile.is_zipfile(path):
        raise EvaluateError(f"--data {path} is neither a folder nor a zip file")
    with zipfile.ZipFile(path) as zf:
        return "manifest.csv" in zf.namelist()


def _class_index(
    data_classes: Sequence[str], class_names: Sequence[str], data: Path, exact: bool
) -> dict[str, int]:
    """Match data classes to the model's by name; any unknown class is a clear error."""
    model_index = {name: i for i, name in enumerate(class_names)}
    unknown = [c for c in data_classes if c not in model_index]
    missing = [c for c in class_names if c not in set(data_classes)]
    if unknown or (exact and missing):
        raise EvaluateError(
            f"the classes of {data} do not match the model's: model has "
            f"{list(class_names)}, data has {list(data_classes)}"
            + (f" (unknown to the model: {unknown})" if unknown else "")
            + (f" (missing from the data: {missing})" if exact and missing else "")
            + ". Was the checkpoint trained on a different class list?"
        )
    return model_index


def dataset_data(path: Path, class_names: Sequence[str], split: str) -> EvalData:
    ds = PreparedDataset(path)
    index = _class_index(ds.classes, class_names, path, exact=True)
    entries = ds.split(split)
    if not entries:
        raise EvaluateError(f"{path} has no images in its {split!r} split")
    # Shown by the original file name (what the person can find), read from the zip.
    samples = [
        Sample(e.source or e.path, index[e.label], functools.partial(ds.read, e.path))
        for e in entries
    ]
    return EvalData(
        samples=samples,
        kind="dataset",
        path=path,
        split=split,
        transform="eval transform (to_model_input of the prepared image)",
        summary=ds.report,
    )


def folder_data(path: Path, class_names: Sequence[str]) -> EvalData:
    from skyclass.prepare.scan import scan

    scanned = scan(path)
    index = _class_index(scanned.classes, class_names, path, exact=False)
    samples = [
        Sample(s.path, index[s.label], functools.partial(_read_source, s)) for s in scanned.sources
    ]
    if not samples:
        raise EvaluateError(
            f"no files to evaluate in {path}: its class folders "
            f"({', '.join(scanned.classes)}) are empty"
        )
    skipped = [{"path": s.path, "reason": s.reason, "detail": s.detail} for s in scanned.skipped]
    missing = [c for c in class_names if c not in scanned.classes]
    notes = [f"no folder for class(es) {missing}: they are not evaluated"] if missing else []
    counts = {c: sum(1 for s in scanned.sources if s.label == c) for c in scanned.classes}
    return EvalData(
        samples=samples,
        kind="folder",
        path=path,
        split=None,
        transform="serving preprocessing (skyclass.images.preprocess)",
        skipped=skipped,
        notes=notes,
        summary={"source": str(path), "files_per_class": counts},
    )


def _read_source(source: Any) -> bytes:
    from skyclass.prepare.process import read_source

    return read_source(source, MAX_FILE_BYTES)


# ---------------------------------------------------------------------------- scoring


def _model_input(sample: Sample, data: EvalData, spec: PreprocessSpec) -> np.ndarray:
    raw = sample.read()
    if data.kind == "folder":
        return preprocess(raw, spec)
    return to_model_input(decode_image(raw), spec)


def _batches(
    data: EvalData, spec: PreprocessSpec, batch_size: int, quiet: bool
) -> Iterator[tuple[list[Sample], np.ndarray]]:
    """Decoded batches; a sample that cannot be read is recorded in data.skipped instead."""
    batch: list[np.ndarray] = []
    kept: list[Sample] = []
    for sample in progress(data.samples, total=len(data.samples), desc="evaluate", quiet=quiet):
        try:
            batch.append(_model_input(sample, data, spec))
        except ImageError as exc:
            data.skipped.append({"path": sample.path, "reason": exc.reason, "detail": exc.detail})
            continue
        except OSError as exc:
            data.skipped.append(
                {
                    "path": display_text(sample.path),
                    "reason": "unreadable",
                    "detail": exc.strerror or str(exc),
                }
            )
            continue
        kept.append(sample)
        if len(batch) == batch_size:
            yield kept, np.stack(batch)
            batch, kept = [], []
    if batch:
        yield kept, np.stack(batch)


def predict(
    model: Predictor, data: EvalData, batch_size: int = DEFAULT_BATCH, quiet: bool = True
) -> Predictions:
    """Score every readable sample of `data` with `model`."""
    samples: list[Sample] = []
    chunks: list[np.ndarray] = []
    skipped_before = len(data.skipped)
    for kept, batch in _batches(data, model.spec, batch_size, quiet):
        probs = np.asarray(model.predict_proba(batch), dtype=np.float64)
        if probs.shape != (len(kept), len(model.class_names)):
            raise EvaluateError(f"the model returned probabilities of shape {probs.shape}")
        samples.extend(kept)
        chunks.append(probs)
    if not samples:
        first = data.skipped[skipped_before]
        raise EvaluateError(
            f"none of the {len(data.samples)} files in {data.path} could be read as an image "
            f"(first problem: {first['path']}: {first['reason']}, {first['detail']})"
        )
    return Predictions(
        class_names=list(model.class_names),
        samples=samples,
        probs=np.concatenate(chunks),
        skipped=list(data.skipped),
    )
