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
from skyclass.model import fold_batchnorm
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


class Pooled(nn.Module):
    """Backbone features -> global average pool -> (N, D)."""

    def __init__(self, features: nn.Module) -> None:
        super().__init__()
        self.features = features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1)


def inference_module(features: nn.Module) -> nn.Module:
    """The pooled backbone ready for fast CPU inference: BatchNorm folded, channels-last.
    Why: embedding is nearly all of a fresh review's time, and this halves it
    (bench/review_embed_speed.py, MobileNetV2 at 224 px, 1 thread: about 0.035 CPU-s per
    image against 0.07 for the network as trained; vectors equal to ~1e-5)."""
    return Pooled(fold_batchnorm(features)).to(memory_format=torch.channels_last)


def embed(
    dataset: PreparedDataset,
    paths: Sequence[str],
    features: nn.Module,
    spec: PreprocessSpec,
    quiet: bool = False,
) -> tuple[np.ndarray, list[str]]:
    """(N, D) float32 embeddings of the zip members `paths`, in order, and the paths that could
    not be decoded (their rows are NaN)."""
    model = inference_module(features)
    out: np.ndarray | None = None
    failed: list[str] = []
    batch: list[np.ndarray] = []
    rows: list[int] = []

    def flush() -> None:
        nonlocal out
        x = torch.from_numpy(np.stack(batch)).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            vectors = model(x).numpy()
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
