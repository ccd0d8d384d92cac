"""Classify images with the bundle's ONNX model: numpy + Pillow + onnxruntime, never torch.

The preprocessing is `skyclass.images.preprocess` with the spec recorded in skyclass.json at
export time, i.e. exactly what the training-side eval transform does; class names come from the
bundle too, in index order, so a handler can never disagree with the model about them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from skyclass.decode_limits import DecodeLimits
from skyclass.images import DEFAULT_MAX_PIXELS, PreprocessSpec, preprocess
from skyclass.serving.bundle import (
    MANIFEST_NAME,
    BundleError,
    read_manifest,
    served_model_name,
)


@dataclass(frozen=True)
class Prediction:
    label: str
    index: int
    probability: float

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "index": self.index, "probability": self.probability}


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, shifted by the row maximum so large logits cannot overflow."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def top_predictions(probabilities: np.ndarray, class_names: list[str], k: int) -> list[Prediction]:
    """The k most likely classes of one probability row, most likely first."""
    k = max(1, min(int(k), len(class_names)))
    order = np.argsort(-probabilities, kind="stable")[:k]
    return [Prediction(class_names[i], int(i), float(probabilities[i])) for i in order]


class Classifier:
    """An onnxruntime session plus the bundle's class names and preprocessing spec.

    Build it once per process (model load dominates a cold start) and reuse it; onnxruntime
    sessions are safe to call from several threads at once.
    """

    def __init__(self, onnx_path: Path, manifest: dict[str, Any], threads: int = 0) -> None:
        import onnxruntime as ort  # the one heavy import, paid once per process

        options = ort.SessionOptions()
        if threads > 0:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(
                str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ORT raises its own untyped errors
            raise BundleError(f"onnxruntime cannot load {onnx_path}: {exc}") from exc
        self.manifest = manifest
        self.class_names: list[str] = list(manifest["class_names"])
        self.spec = PreprocessSpec.from_dict(manifest["preprocess"])
        self.input_name = self.session.get_inputs()[0].name
        n_out = self.session.get_outputs()[0].shape[-1]
        if isinstance(n_out, int) and n_out != len(self.class_names):
            raise BundleError(
                f"{Path(onnx_path).name} has {n_out} outputs but {MANIFEST_NAME} "
                f"lists {len(self.class_names)} classes"
            )

    @classmethod
    def from_bundle(cls, bundle: str | Path, threads: int = 0) -> Classifier:
        """Load a local bundle folder (use `bundle.resolve_bundle` first for s3:// URIs)."""
        bundle = Path(bundle)
        manifest = read_manifest(bundle)
        return cls(bundle / served_model_name(manifest), manifest, threads=threads)

    @property
    def model_info(self) -> dict[str, Any]:
        """Name, version and model sha256: what every response says it was answered by."""
        model = self.manifest.get("model", {})
        return {
            "name": model.get("name"),
            "version": model.get("version"),
            "sha256": self.manifest["files"][served_model_name(self.manifest)]["sha256"],
        }

    def predict_proba(self, batch: np.ndarray) -> np.ndarray:
        """NCHW float32 batch (already preprocessed) -> N x classes probabilities."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.ndim == 3:
            batch = batch[None]
        logits = self.session.run(None, {self.input_name: batch})[0]
        return softmax(logits.astype(np.float64)).astype(np.float32)

    def preprocess(
        self,
        data: bytes | str | Path,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        limits: DecodeLimits | None = None,
    ) -> np.ndarray:
        """Image file or bytes -> CHW tensor, with the bundle's spec (raises images.ImageError)."""
        return preprocess(data, self.spec, max_pixels=max_pixels, limits=limits)

    def predict_image(
        self,
        data: bytes | str | Path,
        top_k: int = 3,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        limits: DecodeLimits | None = None,
    ) -> list[Prediction]:
        """One encoded image (its bytes, or the path of its file) -> its top classes."""
        probs = self.predict_proba(self.preprocess(data, max_pixels, limits))[0]
        return top_predictions(probs, self.class_names, top_k)
