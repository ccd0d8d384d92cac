"""Torch side of a prepared dataset: a Dataset over the zip, its transforms, samplers.

The eval transform is *exactly* the serving preprocessing (`images.decode_image` then
`images.to_model_input`), so the test accuracy measured while training is the accuracy the
served model has. Training augmentations (albumentations, on uint8 HWC arrays) end with
`images.normalize_array`, the one normalisation in skyclass. The augmentation settings and
pipeline live in `skyclass.augment` (no torch); the zip itself is read by `skyclass.dataset_zip`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset, WeightedRandomSampler

from skyclass.augment import AugmentConfig, build_albumentations
from skyclass.dataset_zip import Entry, PreparedDataset
from skyclass.errors import DatasetFormatError
from skyclass.images import PreprocessSpec, decode_image, normalize_array, to_model_input

Transform = Callable[[bytes], np.ndarray]


class TrainTransform:
    """bytes -> decoded uint8 array -> albumentations -> normalize_array (CHW float32)."""

    def __init__(self, aug: AugmentConfig, spec: PreprocessSpec) -> None:
        self.spec = spec
        self.pipeline = build_albumentations(aug, spec.size)

    def __call__(self, data: bytes) -> np.ndarray:
        arr = np.asarray(decode_image(data))
        arr = self.pipeline(image=arr)["image"]
        return normalize_array(arr, self.spec)

    def reseed(self, seed: int) -> None:
        """albumentations draws from its own generators: seed them for reproducible runs."""
        self.pipeline.set_random_seed(seed % 2**32)


class EvalTransform:
    """bytes -> exactly what the served model receives."""

    def __init__(self, spec: PreprocessSpec) -> None:
        self.spec = spec

    def __call__(self, data: bytes) -> np.ndarray:
        return to_model_input(decode_image(data), self.spec)


class ZipImageDataset(Dataset):
    """One split of a prepared zip as (CHW float32 tensor, class index) pairs.

    Images are read from the zip on demand (random access); each DataLoader worker reopens
    the zip itself (PreparedDataset drops its handle when pickled).
    """

    def __init__(self, dataset: PreparedDataset, split: str, transform: Transform) -> None:
        self.dataset = dataset
        self.entries: list[Entry] = dataset.split(split)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        entry = self.entries[index]
        x = self.transform(self.dataset.read(entry.path))
        return torch.from_numpy(x), entry.target

    @property
    def targets(self) -> list[int]:
        return [e.target for e in self.entries]


def class_counts(entries: list[Entry], num_classes: int) -> list[int]:
    counts = Counter(e.target for e in entries)
    return [counts.get(i, 0) for i in range(num_classes)]


def check_trainable(dataset: PreparedDataset) -> None:
    """Every class needs training images and the test split must not be empty.

    (The validation split may be missing: an old two-way zip validates on its test split.)
    """
    counts = class_counts(dataset.split("train"), len(dataset.classes))
    empty = [name for name, n in zip(dataset.classes, counts, strict=True) if n == 0]
    if empty:
        raise DatasetFormatError(
            f"{dataset.path}: class(es) {', '.join(map(repr, empty))} have no training images; "
            "add photos to them or remove the folder and run `skyclass prepare` again"
        )
    if not dataset.split("test"):
        raise DatasetFormatError(
            f"{dataset.path}: the test split is empty; prepare it with --test-fraction > 0"
        )


def inverse_frequency_weights(counts: list[int]) -> list[float]:
    """Per-class weights n_total / (k * n_c): 1.0 for every class when balanced."""
    total, k = sum(counts), len(counts)
    return [total / (k * c) if c else 0.0 for c in counts]


def balanced_sampler(targets: list[int], num_classes: int, seed: int) -> WeightedRandomSampler:
    """Draw every class equally often per epoch (same number of draws as images)."""
    counts = Counter(targets)
    per_class = inverse_frequency_weights([counts.get(i, 0) for i in range(num_classes)])
    weights = [per_class[t] for t in targets]  # the sampler makes a float64 tensor of them
    generator = torch.Generator().manual_seed(seed)
    return WeightedRandomSampler(
        weights, num_samples=len(targets), replacement=True, generator=generator
    )
