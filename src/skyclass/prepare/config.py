"""Configuration of the `prepare` stage: one dataclass, filled from the CLI or the API."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from skyclass.images import DEFAULT_MAX_PIXELS, RESIZE_MODES

DEDUPE_MODES = ("exact", "near", "off")


def default_workers() -> int:
    """The cores this process may use (a container's CPU set, not the host's core count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1
OUTPUT_FORMATS = ("jpeg", "png")


@dataclass
class PrepareConfig:
    """How a raw photo folder (or zip) becomes a dataset zip."""

    raw: Path
    out: Path
    size: int = 224
    resize: str = "pad"
    # Held out per class: validation (model selection) and test (scored once, reported).
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 0
    dedupe: str = "near"
    # Hamming distance (of 64) between perceptual hashes, minimised over the 8 rotations/flips.
    near_threshold: int = 6
    min_side: int = 32
    workers: int = field(default_factory=default_workers)
    format: str = "jpeg"
    quality: int = 95
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_file_bytes: int = 100 * 1024 * 1024
    quiet: bool = False
    # Split units the user knows: a regex on the path inside the class folder (first capture
    # group), or a CSV of path,group. Such a group never straddles a split.
    group_by: str | None = None
    groups_file: Path | None = None
    # `skyclass review`'s decisions.csv: relabel/exclude photos (by source path and sha256).
    decisions: Path | None = None

    def __post_init__(self) -> None:
        self.raw = Path(self.raw)
        self.out = Path(self.out)
        if self.groups_file is not None:
            self.groups_file = Path(self.groups_file)
        self.decisions = None if self.decisions is None else Path(self.decisions)
        checks = [
            (self.size >= 16, f"--size must be at least 16, got {self.size}"),
            (self.resize in RESIZE_MODES, f"--resize must be one of {RESIZE_MODES}"),
            (0.0 <= self.val_fraction < 1.0, "--val-fraction must be in [0, 1)"),
            (0.0 <= self.test_fraction < 1.0, "--test-fraction must be in [0, 1)"),
            (self.val_fraction + self.test_fraction < 1.0,
             "--val-fraction + --test-fraction must leave images for training (sum < 1)"),
            (not (self.group_by and self.groups_file),
             "give either --group-by or --groups, not both"),
            (self.dedupe in DEDUPE_MODES, f"--dedupe must be one of {DEDUPE_MODES}"),
            (0 <= self.near_threshold <= 32, "--near-threshold must be in 0..32"),
            (self.min_side >= 1, "--min-side must be at least 1"),
            (self.workers >= 1, "--workers must be at least 1"),
            (self.format in OUTPUT_FORMATS, f"--format must be one of {OUTPUT_FORMATS}"),
            (1 <= self.quality <= 100, "--quality must be in 1..100"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["raw"] = str(self.raw)
        data["out"] = str(self.out)
        data["groups_file"] = None if self.groups_file is None else str(self.groups_file)
        data["decisions"] = None if self.decisions is None else str(self.decisions)
        return data
