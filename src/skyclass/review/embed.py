"""Image embeddings from the MobileNetV2 backbone: ImageNet weights, or a run's fine-tuned ones.

The embedding is the 1280-d global average of the last feature map: what the classifier head
sees. A linear head on it is fast to cross-validate (seconds), so every image can be scored by
heads that never saw its label; fine-tuning the whole network k times would take hours on a CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from skyclass.dataset_zip import PreparedDataset
from skyclass.images import ImageError, PreprocessSpec, decode_image, to_model_input
from skyclass.progress import progress

EMBED_BATCH = 32


def imagenet_backbone(weights: str | Path | None = None) -> nn.Module:
    """MobileNetV2's ImageNet feature extractor (weights found offline, see skyclass.model)."""
    from skyclass.model import build_model, feature_blocks

    return feature_blocks(build_model(num_classes=2, pretrained=True, weights=weights)).eval()


def run_backbone(run: str | Path) -> tuple[nn.Module, PreprocessSpec, Path]:
    """The fine-tuned feature extractor of a training run (best.pt), its preprocessing and
    the checkpoint file it came from."""
    from skyclass.checkpoint import load_trained_model
    from skyclass.model import feature_blocks

    trained = load_trained_model(run, "best")
    return feature_blocks(trained.model).eval(), trained.spec, trained.path


def _pooled(features: nn.Module, batch: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        x = torch.from_numpy(batch).contiguous(memory_format=torch.channels_last)
        fmap = features(x)
        return torch.flatten(nn.functional.adaptive_avg_pool2d(fmap, 1), 1).numpy()


def embed(
    dataset: PreparedDataset,
    paths: Sequence[str],
    features: nn.Module,
    spec: PreprocessSpec,
    quiet: bool = False,
) -> tuple[np.ndarray, list[str]]:
    """(N, D) float32 embeddings of the zip members `paths`, in order, and the paths that could
    not be decoded (their rows are NaN)."""
    features = features.to(memory_format=torch.channels_last)
    out: np.ndarray | None = None
    failed: list[str] = []
    batch: list[np.ndarray] = []
    rows: list[int] = []

    def flush() -> None:
        nonlocal out
        vectors = _pooled(features, np.stack(batch))
        if out is None:
            out = np.full((len(paths), vectors.shape[1]), np.nan, dtype=np.float32)
        out[rows] = vectors
        batch.clear()
        rows.clear()

    for i, path in enumerate(progress(paths, total=len(paths), desc="embed", quiet=quiet)):
        try:
            batch.append(to_model_input(decode_image(dataset.read(path)), spec))
        except (ImageError, KeyError, OSError):
            failed.append(path)
            continue
        rows.append(i)
        if len(batch) == EMBED_BATCH:
            flush()
    if batch:
        flush()
    if out is None:
        out = np.full((len(paths), 1), np.nan, dtype=np.float32)
    return out, failed
